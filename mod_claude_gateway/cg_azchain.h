/* cg_azchain: the Microsoft Entra token of Foundry upstreams with
 * auth {use_azure_ad: true} (httpd glue; requests and answers in cg_azure.c). */
#ifndef CG_AZCHAIN_H
#define CG_AZCHAIN_H

#include <httpd.h>

void cg_az_chain_child_init(apr_pool_t *pchild);

/**
 * A token for the Cognitive Services resource, resolved on first use and
 * kept per child until five minutes before it expires.
 * @param token receives it, in r->pool (secret: never logged)
 * @return 1 with a token; 0 when no source gave one (reasons in the error
 *         log, CG0148)
 */
int cg_az_chain_token(request_rec *r, const char **token);

/** Foundry refused the token (401): fetch a new one next time. */
void cg_az_chain_forget(void);

#endif
