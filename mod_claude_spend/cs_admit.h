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

#endif
