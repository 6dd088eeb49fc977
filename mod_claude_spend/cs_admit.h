/* cs_admit: admission of a request against the user's spend caps. */
#ifndef CS_ADMIT_H
#define CS_ADMIT_H

#include <httpd.h>

#include "cs_private.h"

/**
 * Reserve the request's largest possible cost against every cap of the user,
 * or refuse it with the reference's 429 (through the gateway's handler).
 * Called from fixups, after the gateway admitted the request.
 * @param rq the request state: gets the reservation id and the cap headers
 * @param id the verified identity
 * @return DECLINED to go on, OK when the request was refused
 */
int cs_admit(request_rec *r, cs_req_t *rq, const cg_identity_t *id);

/** A lease to reserve in the background, to follow one half used (cs_lease.h). */
typedef struct cs_renew_t {
    const char *key;                        /* the lease key */
    const char *old_id;                     /* the lease it follows */
    const char *sub, *groups, *keys, *mode; /* claude_admit_lease's arguments */
    apr_int64_t estimate, want;
    int ttl;
} cs_renew_t;

/**
 * Reserve the lease a renewal asks for on conn (the ledger writer's) and
 * install it, or give it back at once (ret) when it came too late. Nothing
 * is installed when a cap is reached or the caps cannot be read: the old
 * lease is used up, and the request after it is admitted as usual.
 * @param p a pool for the call, cleared by the caller
 * @param ret receives what goes back to the database (lease_id NULL: nothing)
 * @return 0 when the statement failed (the connection may be broken)
 */
int cs_admit_renew(apr_pool_t *p, server_rec *s, struct pg_conn *conn, const cs_renew_t *job,
                   cs_lease_return_t *ret);

#endif
