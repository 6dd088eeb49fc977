/* cg_ratelimit: requests and tokens per minute (the policy's rate_limits). */
#ifndef CG_RATELIMIT_H
#define CG_RATELIMIT_H

#include <httpd.h>

#include "mod_claude_gateway.h"

/** Register the node-wide mutex (pre_config). */
void cg_ratelimit_pre_config(apr_pool_t *pconf);

/** Make the shared counter table when some policy counts per node. */
int cg_ratelimit_post_config(apr_pool_t *pconf, server_rec *s);

/** Attach the mutex in a child. */
void cg_ratelimit_child_init(apr_pool_t *pchild, server_rec *s);

/**
 * Count the request against its principal's and groups' limits, or refuse
 * it with the Anthropic 429 rate_limit_error and retry-after (recorded with
 * cg_error_set: the gateway's handler answers).
 * @return OK
 */
int cg_ratelimit_check(request_rec *r, const cg_identity_t *id);

/** Add the request's metered tokens to its minute (log_transaction). */
void cg_ratelimit_account(request_rec *r, const cg_identity_t *id);

#endif
