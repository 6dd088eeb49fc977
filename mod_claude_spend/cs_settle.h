/* cs_settle: ledger rows and lease returns, written in batches by one
 * background thread per child (see cs_settle.c). */
#ifndef CS_SETTLE_H
#define CS_SETTLE_H

#include <httpd.h>

#include "cs_lease.h"

/* The values of one ledger row, in the journal's order: the first 15 are
 * journal v1, 18 v2, all v3. */
enum {
    CS_COL_ENTRY,
    CS_COL_REQUEST,
    CS_COL_SUB,
    CS_COL_EMAIL,
    CS_COL_GROUPS,
    CS_COL_MODEL_REQ,
    CS_COL_MODEL_SRV,
    CS_COL_UPSTREAM,
    CS_COL_STATUS,
    CS_COL_IN,
    CS_COL_OUT,
    CS_COL_CACHE_READ,
    CS_COL_CACHE_WRITE,
    CS_COL_COST,
    CS_COL_PARTIAL, /* "t" | "f" */
    CS_COL_DAY,
    CS_COL_WEEK,
    CS_COL_MONTH,
    CS_COL_AT_US, /* request time, µs since the epoch */
    CS_COL_LEASE, /* the lease that admitted it, or NULL */
    CS_COL_HELD,  /* the estimate it held out of the lease */
    CS_ROW_NV
};
#define CS_ROW_NV_V1 15
#define CS_ROW_NV_V2 18

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

#endif
