/* mod_claude_gateway.h: the gateway's public interface for other modules.
 *
 * mod_claude_spend (and any site module) reaches the gateway only through
 * these APR optional functions, so the two modules are not linked together
 * and load in either order. Retrieve them in post_config and check for NULL. */
#ifndef MOD_CLAUDE_GATEWAY_H
#define MOD_CLAUDE_GATEWAY_H

#include <apr_optional.h>
#include <apr_tables.h>
#include <httpd.h>

/** Who a request was made by, as the gateway verified it. */
typedef struct cg_identity_t {
    const char *sub;                  /* stable subject: the ledger key */
    const char *email;                /* may be NULL */
    const char *name;                 /* may be NULL */
    const apr_array_header_t *groups; /* const char * elements; never NULL once set */
    const char *source;               /* how it was established: "session", "dev" */
    const char *session_id;           /* the session token's sid, or NULL */
    apr_time_t issued_at;             /* the session token's iat, or 0 */
    const apr_array_header_t *models; /* a service key's own model list (lower case), or NULL */
} cg_identity_t;

struct pg_conn; /* libpq's PGconn, without making every includer pull libpq */

/**
 * The verified identity of a request.
 * @param r any request; internal redirects and subrequests see the initial one's
 * @return the identity, or NULL when the request is not authenticated by us
 */
APR_DECLARE_OPTIONAL_FN(const cg_identity_t *, claude_gateway_identity, (request_rec * r));

/**
 * The gateway's request id (the client's x-client-request-id when valid,
 * else a UUIDv4), as sent back in x-request-id.
 */
APR_DECLARE_OPTIONAL_FN(const char *, claude_gateway_request_id, (request_rec * r));

/**
 * Borrow a PostgreSQL connection from the child's pool. Use it for one short
 * statement or transaction and give it back at once: never across a stream.
 * @param s the server (for logging)
 * @param conn receives the connection
 * @return APR_SUCCESS, APR_ENOTIMPL when no ClaudeGatewayDatabase is set,
 *         APR_TIMEUP when none became free in time, another error when the
 *         database cannot be reached
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, claude_gateway_db_acquire,
                        (server_rec * s, struct pg_conn **conn));

/**
 * Give a connection back.
 * @param broken non-zero when a statement failed in a way that may have left
 *        the connection unusable: it is then closed instead of reused
 */
APR_DECLARE_OPTIONAL_FN(void, claude_gateway_db_release,
                        (server_rec * s, struct pg_conn *conn, int broken));

/**
 * Authenticate a request to an admin endpoint: an admin key in x-api-key
 * (ClaudeGatewayAdminKey; with the header present nothing else is tried), a
 * session token (Authorization: Bearer) whose groups include one of
 * ClaudeGatewayAdminGroups, or a user signed in on that location by
 * mod_auth_openidc whose groups claim does. Sets the gateway's response
 * headers (security headers, x-request-id) and the admin request-id header
 * (req_<32 hex>, also in r->notes "claude-admin-request-id") on r.
 * @param actor receives who it is for the audit trail: "admin-key:<id>" or
 *        "oidc:<sub>" (r->pool)
 * @param can_write receives 0 for a read key, 1 otherwise
 * @return OK, or HTTP_UNAUTHORIZED (the caller writes its own answer)
 */
APR_DECLARE_OPTIONAL_FN(int, claude_gateway_admin_auth,
                        (request_rec * r, const char **actor, int *can_write));

/** Prices for metering a request, from the policy file's pricing section. */
typedef struct claude_gateway_price_t {
    int overridden;            /* a pricing.overrides row applies: the rates below */
    apr_int64_t input, output; /* micro-USD per million tokens */
    apr_int64_t cache_read, cache_write;
    apr_int64_t multiplier_ppm; /* pricing.multiplier in millionths; 1000000 without one */
} claude_gateway_price_t;

/**
 * The site's pricing for a request: the pricing.overrides row of the
 * upstream this location proxies to that matches the served or requested
 * model, and pricing.multiplier.
 * @param served the model the upstream reported (may be NULL)
 * @param out receives the prices; out->overridden is 0 when list prices apply
 */
APR_DECLARE_OPTIONAL_FN(void, claude_gateway_pricing,
                        (request_rec * r, const char *served, claude_gateway_price_t *out));

/**
 * Refuse r from a fixups hook that runs after the gateway's: the gateway's
 * handler answers with the JSON envelope and mod_proxy never runs. Headers
 * the answer needs go in r->err_headers_out first.
 * @param status HTTP status
 * @param type the envelope's error.type (billing_error, ...)
 * @param message the client-facing message
 * @param with_request_id whether the body carries request_id
 * @return OK, to be returned by the calling hook
 */
APR_DECLARE_OPTIONAL_FN(int, claude_gateway_refuse,
                        (request_rec * r, int status, const char *type, const char *message,
                         int with_request_id));

/**
 * Set a note of r (apr_table_setn(r->notes, name, value): value is not
 * copied). mod_claude_spend writes its claude-* notes through this, so the
 * gateway's copy of the initial request's notes stays whole.
 */
APR_DECLARE_OPTIONAL_FN(void, claude_gateway_note_set,
                        (request_rec * r, const char *name, const char *value));

/** A note of r, as apr_table_get(r->notes, name), the claude-* ones from the gateway's copy. */
APR_DECLARE_OPTIONAL_FN(const char *, claude_gateway_note_get, (request_rec * r, const char *name));

#endif
