/* cs_settle: ledger rows and lease returns, written in batches by one
 * background thread per child (see cs_settle.c). */
#ifndef CS_SETTLE_H
#define CS_SETTLE_H

#include <httpd.h>

#include "cs_batch.h"
#include "cs_lease.h"

/** The directory of the children's spool files (made by post_config). */
const char *cs_settle_spool_dir(apr_pool_t *p, server_rec *s);

/** Start the writer of this child (child_init); it stops with pchild. */
void cs_settle_child_init(apr_pool_t *pchild, server_rec *s);

/** The leases of this child; NULL before child_init or if it failed. */
cs_leases_t *cs_settle_leases(void);

/**
 * Queue a ledger row (values copied). Returns at once; the row reaches the
 * database within one flush, or the journal of r's server if it cannot.
 */
void cs_settle_row(request_rec *r, const char *const *values);

/** Queue the return of micro-USD to a lease (a request that produced nothing). */
void cs_settle_return(request_rec *r, const char *lease_id, apr_int64_t micro);

struct cs_renew_t; /* cs_admit.h */

/**
 * Queue the reservation of a lease's successor (strings copied); the ledger
 * writer runs it on its own connection before its next batch.
 */
void cs_settle_renew(const struct cs_renew_t *job);

#endif
