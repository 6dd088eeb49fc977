/* cg_wif: Anthropic workload identity federation for anthropic upstreams
 * whose auth names a federation rule (httpd glue; the request body in
 * cg_provider.c). */
#ifndef CG_WIF_H
#define CG_WIF_H

#include <httpd.h>

#include "cg_policy.h"

void cg_wif_child_init(apr_pool_t *pchild);

/**
 * The upstream's access token: its identity token file exchanged at
 * {base_url}/v1/oauth/token, kept per child until two minutes before it
 * expires.
 * @param token receives it, in r->pool (secret: never logged)
 * @return 1 with a token; 0 when the exchange failed (logged, CG0153)
 */
int cg_wif_token(request_rec *r, const cg_upstream_decl_t *u, const char **token);

/** The upstream refused the token (401): exchange again next time. */
void cg_wif_forget(const cg_upstream_decl_t *u);

#endif
