/* cg_admin: who may call the admin endpoints (spend limits, revocations).
 *
 * Admin keys (ClaudeGatewayAdminKey, compared in constant time), a session
 * token whose groups include an admin group (ClaudeGatewayAdminGroups), or a
 * browser admin signed in by mod_auth_openidc on that location. Exported to
 * other modules as the claude_gateway_admin_auth optional function. */
#ifndef CG_ADMIN_H
#define CG_ADMIN_H

#include <httpd.h>
#include <http_config.h>

/** One ClaudeGatewayAdminKey. */
typedef struct cg_admin_key_t {
    const char *id;  /* names the actor: admin-key:<id> */
    const char *key; /* resolved; secret: never logged */
    int can_write;   /* write key (1) or read key (0) */
} cg_admin_key_t;

/** ClaudeGatewayAdminKey read|write <id> env:NAME|file:/path */
const char *cg_admin_set_key(cmd_parms *cmd, void *dcv, const char *mode, const char *id,
                             const char *ref);

/** ClaudeGatewayAdminGroups <group>... */
const char *cg_admin_set_group(cmd_parms *cmd, void *dcv, const char *group);

/**
 * Authenticate an admin request. An x-api-key header is checked against
 * every admin key and nothing else; otherwise a bearer session token is
 * verified as AuthType claude-session does (revocation included) and must
 * list an admin group; otherwise a user signed in by another module
 * (mod_auth_openidc) whose groups claim lists an admin group is accepted.
 * Also sets the gateway's response headers on r.
 * @param actor receives "admin-key:<id>" or "oidc:<sub>" (r->pool)
 * @param can_write receives 0 for a read key, else 1
 * @return OK, or HTTP_UNAUTHORIZED
 */
int cg_admin_auth(request_rec *r, const char **actor, int *can_write);

/**
 * The admin API's request id, req_<32 hex>, made once per request and sent
 * in the request-id header.
 */
const char *cg_admin_request_id(request_rec *r);

/**
 * Answer with the admin API's error envelope
 * {"type":"error","error":{"type","message"},"request_id":"req_…"}.
 * @return OK
 */
int cg_admin_error(request_rec *r, int status, const char *type, const char *message);

#endif
