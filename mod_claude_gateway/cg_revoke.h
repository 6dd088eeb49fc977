/* cg_revoke: immediate offboarding. A user revoked by an admin, or one
 * session revoked through RFC 7009, is refused on its next request instead
 * of at token expiry (the reference's weakness: 1 h). */
#ifndef CG_REVOKE_H
#define CG_REVOKE_H

#include <httpd.h>

#include "mod_claude_gateway.h"

#define CG_HANDLER_REVOKE "claude-gateway-revoke"
#define CG_HANDLER_ADMIN_REVOCATIONS "claude-gateway-admin-revocations"

/** Per-child state (child_init). */
void cg_revoke_child_init(apr_pool_t *pchild, server_rec *s);

/**
 * Whether a verified session has been revoked since it was issued.
 * With ClaudeGatewayRevocationRefresh 0 this asks the database every time;
 * otherwise it consults the child's copy of the revocation list, refreshed
 * at most that often. When the database cannot answer, the last copy is used.
 * @return non-zero when the request must be refused
 */
int cg_revoked(request_rec *r, const cg_identity_t *id);

/** The handlers named by CG_HANDLER_REVOKE and CG_HANDLER_ADMIN_REVOCATIONS. */
int cg_revoke_handler(request_rec *r);

#endif
