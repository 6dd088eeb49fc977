/* cg_provider: what every cloud upstream shares (PURE: APR + jansson).
 *
 * The provider kinds of `upstreams[].provider`, the anthropic-beta header as a
 * list, the JSON body helpers the Bedrock and Vertex translations are built
 * on, Foundry's URL and credential header (Foundry takes the Messages body
 * unchanged, so it needs nothing more), the SSE keepalive frame, and the
 * reference gateway's error hygiene: what a client sees of an upstream error.
 *
 * Not here: Bedrock's and Vertex's own translations (cg_bedrock, cg_vertex),
 * signing (cg_sigv4), sending anything. Nothing here logs. */
#ifndef CG_PROVIDER_H
#define CG_PROVIDER_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/** The kinds of upstream of gateway.yaml's `upstreams[].provider`. */
typedef enum {
    CG_PROVIDER_UNKNOWN = 0,
    CG_PROVIDER_ANTHROPIC,     /* "anthropic": the Messages API, passed through */
    CG_PROVIDER_ANTHROPIC_AWS, /* "anthropicAws": Claude Platform on AWS, first-party shapes */
    CG_PROVIDER_BEDROCK,       /* "bedrock" */
    CG_PROVIDER_VERTEX,        /* "vertex" */
    CG_PROVIDER_FOUNDRY        /* "foundry" */
} cg_provider_e;

/** The request-tags beta: Bedrock and Vertex refuse it (and the body's "tags"). */
#define CG_PROVIDER_REQUEST_TAGS_BETA "request-tags-2026-08-21"

/** Foundry's API-key header (what Anthropic's Foundry SDKs send), and its path. */
#define CG_FOUNDRY_KEY_HEADER "x-api-key"
#define CG_FOUNDRY_MESSAGES_PATH "/anthropic/v1/messages"

/** The keepalive frame sent on silent non-anthropic streams (about every 15 s). */
#define CG_SSE_PING "event: ping\ndata: {\"type\":\"ping\"}\n\n"

/**
 * The provider named in configuration ("bedrock", "anthropicAws", ...; exact case).
 * @return the kind, CG_PROVIDER_UNKNOWN for anything else or NULL
 */
cg_provider_e cg_provider_parse(const char *name);

/**
 * The configuration spelling of a provider.
 * @return a static string; "unknown" for CG_PROVIDER_UNKNOWN
 */
const char *cg_provider_name(cg_provider_e provider);

/**
 * The values of an anthropic-beta header (several headers joined with ','):
 * split at commas, blanks trimmed, empty items and repeats dropped, order kept.
 * @param p pool for the array and its strings
 * @param header the header value; may be NULL
 * @param drop one value to leave out (e.g. CG_PROVIDER_REQUEST_TAGS_BETA), or NULL
 * @return an array of const char * (maybe empty), owned by p
 */
apr_array_header_t *cg_provider_betas(apr_pool_t *p, const char *header, const char *drop);

/**
 * Join beta values into one header value ("a,b").
 * @return the value owned by p, or NULL when the list is empty (send no header)
 */
const char *cg_provider_betas_join(apr_pool_t *p, const apr_array_header_t *betas);

/**
 * Parse a Messages API body for rewriting. Duplicate keys are refused, as
 * cg_body_check() does, so our reading and the upstream's cannot differ.
 * @param p the reference is released by a cleanup on p: never json_decref it
 * @param buf the body bytes (need not be NUL-terminated)
 * @param len their number
 * @return the object, or NULL when the body is not valid JSON or not an object
 */
json_t *cg_provider_body_parse(apr_pool_t *p, const char *buf, apr_size_t len);

/**
 * Serialise a rewritten body as compact JSON, members in their order.
 * @param p pool for the text
 * @param body the object
 * @param len receives the length; may be NULL
 * @return NUL-terminated text owned by p, or NULL if jansson fails
 */
const char *cg_provider_body_dump(apr_pool_t *p, const json_t *body, apr_size_t *len);

/**
 * Foundry's Messages URL: base_url (sovereign clouds, tests) or
 * https://{resource}.services.ai.azure.com, then /anthropic/v1/messages, and
 * /count_tokens after it when asked. The body goes unchanged, the key in
 * CG_FOUNDRY_KEY_HEADER (or an Entra token as Authorization: Bearer).
 * @param p pool for the result
 * @param base_url the configured base_url without trailing '/', or NULL
 * @param resource the Foundry resource name (used when base_url is NULL)
 * @param count_tokens non-zero for /v1/messages/count_tokens
 * @return the URL owned by p, or NULL when neither base_url nor a valid resource name
 *         (letters, digits and '-') is given
 */
const char *cg_foundry_url(apr_pool_t *p, const char *base_url, const char *resource,
                           int count_tokens);

/** What the client is told of an upstream's error answer. */
typedef struct cg_provider_error_t {
    int passthrough;           /* non-zero: relay the upstream's status and body unchanged */
    int status;                /* the status to send (always the upstream's) */
    const char *type;          /* error.type: the upstream's when it gave one, else per status */
    const char *message;       /* error.message as sent to the client */
    const char *upstream_text; /* the upstream's own message (or body start), for the
                                  operational log only: may name accounts, ARNs, projects */
} cg_provider_error_t;

/**
 * Error hygiene of the reference gateway (v2.1.233+ and the /protocol text of
 * v2.1.328). An anthropic or anthropicAws upstream's answer is relayed as is.
 * For a cloud upstream the status and error.type are kept and the message is:
 * - 400/413 in Anthropic's envelope: the upstream's own message (the client's
 *   recovery keys on it, e.g. "prompt is too long: ...");
 * - 400/413 whose whole message is Bedrock's "Input is too long.", or Vertex's
 *   size refusal ("The request size (N bytes) exceeds 30.000MB limit."):
 *   exactly "Input is too long.";
 * - other 400/413 in a provider's shape: "capability_rejected: <token>" when
 *   recognised (prompt_too_long, thinking_signature, effort_unsupported,
 *   image_block), else "upstream rejected the request" (400) or "request too
 *   large for this upstream" (413);
 * - any other status: a fixed sentence per status ("upstream rate limit
 *   exceeded" for 429, ...).
 * @param p pool for the strings
 * @param provider the upstream's kind
 * @param status the upstream's HTTP status (>= 400)
 * @param body the upstream's error body; may be NULL
 * @param len its length
 * @param out receives the decision
 */
void cg_provider_error(apr_pool_t *p, cg_provider_e provider, int status, const char *body,
                       apr_size_t len, cg_provider_error_t *out);

/**
 * The client-facing message for an upstream message of a given status, as
 * cg_provider_error() chooses it for a provider-shaped body (also used for
 * errors that arrive inside a Bedrock stream).
 * @param status the HTTP status the error stands for
 * @param upstream_message the provider's message; may be NULL
 * @return a static string
 */
const char *cg_provider_error_message(int status, const char *upstream_message);

/**
 * The Anthropic error.type of an HTTP status: 400 invalid_request_error, 401
 * authentication_error, 403 permission_error, 404 not_found_error, 413
 * request_too_large, 429 rate_limit_error, 501 not_supported, 529
 * overloaded_error, other 4xx invalid_request_error, other 5xx api_error.
 * @return a static string
 */
const char *cg_provider_error_type(int status);

/**
 * The Anthropic SSE error frame: "event: error\ndata: {...}\n\n".
 * @param p pool for the result
 * @param type error.type
 * @param message error.message
 * @return the frame owned by p
 */
const char *cg_provider_sse_error(apr_pool_t *p, const char *type, const char *message);

/** The betas of Anthropic's workload identity exchange and of OAuth bearer requests. */
#define CG_PROVIDER_FEDERATION_BETA "oidc-federation-2026-04-01"
#define CG_PROVIDER_OAUTH_BETA "oauth-2025-04-20"

/**
 * The JSON body of Anthropic's workload identity exchange (POST
 * /v1/oauth/token, RFC 7523 jwt-bearer): the identity token as the
 * assertion, the federation rule and organization, and the service account
 * and workspace when given.
 * @return compact JSON owned by p (secret: never logged), or NULL on a NULL argument
 */
const char *cg_provider_wif_request(apr_pool_t *p, const char *assertion, const char *rule,
                                    const char *organization, const char *service_account,
                                    const char *workspace);

/**
 * Whether a credential may be sent to this base URL: https, or plain http
 * to a loopback host only (as Anthropic's SDKs require).
 */
int cg_provider_secure_endpoint(const char *url);

/**
 * An anthropic-beta value with one beta added when it is not there yet.
 * @param header the client's value; may be NULL
 * @return the value owned by p
 */
const char *cg_provider_beta_with(apr_pool_t *p, const char *header, const char *beta);

#endif
