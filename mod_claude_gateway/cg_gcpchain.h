/* cg_gcpchain: Google application default credentials for Vertex upstreams
 * whose auth is {}, and the token exchange every Vertex credential uses
 * (httpd glue; parsing in cg_vertex.c). */
#ifndef CG_GCPCHAIN_H
#define CG_GCPCHAIN_H

#include <httpd.h>

void cg_gcp_chain_child_init(apr_pool_t *pchild);

/**
 * POST a token request (cg_vertex_token_request, cg_vertex_adc_token_request)
 * to a token endpoint and read the answer.
 * @param uri the endpoint (a service account's or the user credentials' token_uri)
 * @param form the request's form body (secret)
 * @param now when the request is sent
 * @param token receives the access token, in r->pool (secret: never logged)
 * @param expires receives when it expires
 * @return NULL on success, else a message for the log (never a secret)
 */
const char *cg_gcp_exchange(request_rec *r, const char *uri, const char *form, apr_time_t now,
                            const char **token, apr_time_t *expires);

/**
 * An access token from the application default credentials, resolved on
 * first use and kept per child until 3 min 45 s before it expires.
 * @param token receives the token, in r->pool
 * @param quota_project receives the file's quota_project_id (send it as
 *        x-goog-user-project), or NULL
 * @return 1 with a token; 0 when no source gave one (reasons in the error log,
 *         CG0145)
 */
int cg_gcp_chain_token(request_rec *r, const char **token, const char **quota_project);

/** Vertex refused the token (401): fetch a new one next time. */
void cg_gcp_chain_forget(void);

#endif
