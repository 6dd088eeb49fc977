/* cg_oauth: sign-in for Claude Code (RFC 8628 device flow as the reference
 * gateway speaks it) and the session tokens it hands out.
 *
 * Handlers: discovery, device authorization, token, the /device approval
 * pages (behind mod_auth_openidc) and revocation. State lives in PostgreSQL
 * so any number of httpd nodes serve one login. */
#ifndef CG_OAUTH_H
#define CG_OAUTH_H

#include <httpd.h>

#include "mod_claude_gateway.h"

#define CG_HANDLER_DISCOVERY "claude-gateway-discovery"
#define CG_HANDLER_DEVICE_AUTHZ "claude-gateway-device-authorization"
#define CG_HANDLER_TOKEN "claude-gateway-token"
#define CG_HANDLER_DEVICE "claude-gateway-device"

/**
 * Run the sign-in handler named by r->handler.
 * @return DECLINED when r->handler is not one of ours
 */
int cg_oauth_handler(request_rec *r);

/**
 * Check a bearer session token.
 * @param token the token (secret: never logged)
 * @param id receives the identity on success (pool strings of r->pool)
 * @param why receives a short reason on failure, for the debug log
 * @return non-zero when the token is valid
 */
int cg_session_verify(request_rec *r, const char *token, cg_identity_t *id, const char **why);

#endif
