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

/**
 * The temporary credentials of a role, assumed at STS (AssumeRole, signed
 * with base), kept per child and per role, external id and session name
 * until five minutes before they expire.
 * @param session the role session name (cg_aws_session_name)
 * @param base_refused set to 1 when STS refused the base credentials (403):
 *        the caller drops them if they came from the chain
 * @return 1 with *out (copied into r->pool); 0 when STS gave none (logged, CG0151)
 */
int cg_aws_assume_role(request_rec *r, const cg_aws_creds_t *base, const char *region,
                       const char *role_arn, const char *external_id, const char *session,
                       const char *upstream, cg_aws_creds_t *out, int *base_refused);

/** The upstream refused the role's credentials (403): assume it again next time. */
void cg_aws_assume_forget(const char *role_arn, const char *external_id, const char *session);

#endif
