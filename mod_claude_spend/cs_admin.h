/* cs_admin: the spend admin API and the user's own spend report.
 *
 *   SetHandler claude-spend-admin   <Location /v1/organizations>: spend limits
 *                                   (list, upsert, get, delete, effective,
 *                                   audit) and analytics/cost, for admins
 *                                   (claude_gateway_admin_auth)
 *   SetHandler claude-usage         <Location /api/oauth/usage>, behind
 *                                   AuthType claude-session: the caller's caps */
#ifndef CS_ADMIN_H
#define CS_ADMIN_H

#include <httpd.h>

#define CS_HANDLER_ADMIN "claude-spend-admin"
#define CS_HANDLER_USAGE "claude-usage"

/** The content handler of CS_HANDLER_ADMIN and CS_HANDLER_USAGE; declines the rest. */
int cs_admin_handler(request_rec *r);

#endif
