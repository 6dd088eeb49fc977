/* cg_awschain: the AWS default credential chain for Bedrock upstreams whose
 * auth is {} (httpd glue; parsing in cg_awscred.c). */
#ifndef CG_AWSCHAIN_H
#define CG_AWSCHAIN_H

#include <httpd.h>
#include "cg_awscred.h"

void cg_aws_chain_child_init(apr_pool_t *pchild);

/**
 * Credentials from the chain, resolved on first use and kept per child
 * until five minutes before they expire (static ones are looked up again
 * every five minutes, so rotated files and roles are picked up).
 * @param region the upstream's region, for STS when AWS_REGION is not set
 * @return 1 with *out (copied into r->pool); 0 when no source gave any (the
 *         reasons are in the error log, CG0142)
 */
int cg_aws_chain_get(request_rec *r, const char *region, cg_aws_creds_t *out);

/** The upstream refused what the chain gave (403): look again next time. */
void cg_aws_chain_forget(const char *region);

#endif
