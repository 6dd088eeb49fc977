/* cg_upstream: the upstream router of `ClaudeGatewayRoute On` locations. */
#ifndef CG_UPSTREAM_H
#define CG_UPSTREAM_H

#include <httpd.h>

/** Per-child state: the pooled-connection share and the circuit breakers. */
void cg_upstream_child_init(apr_pool_t *pchild, server_rec *s);

/**
 * Serve an admitted Messages request through the policy's upstreams, in
 * order, failing over before the first byte reaches the client.
 */
int cg_upstream_handler(request_rec *r);

#endif
