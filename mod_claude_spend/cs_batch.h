/* cs_batch: what a batch of fresh ledger rows does to the totals (PURE:
 * APR only).
 *
 * Rows the writer queued itself are new by construction (their entry ids
 * were made by this child), so their batch is appended with COPY and
 * everything else arrives summed here for claude_settle_sums (sql/0008):
 * one period total per principal and period, one last-seen identity per
 * principal, one release per lease. The database then does per batch what
 * it did per row. Journaled rows, which may be in the ledger already, still
 * go through claude_settle, which counts only the rows it inserts. */
#ifndef CS_BATCH_H
#define CS_BATCH_H

#include <apr_pools.h>
#include <apr_tables.h>

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

/** What a batch adds to one principal's total of one period. */
typedef struct cs_batch_total_t {
    const char *principal, *period_key;
    apr_int64_t micro;
} cs_batch_total_t;

/** A principal as its latest row in the batch shows it. */
typedef struct cs_batch_who_t {
    const char *principal, *email, *groups; /* groups: a JSON array, never NULL */
    apr_int64_t at_us;
} cs_batch_who_t;

/** What a batch takes off one lease: its rows' holds and the returns. */
typedef struct cs_batch_release_t {
    const char *lease;
    apr_int64_t micro;
} cs_batch_release_t;

typedef struct cs_batch_sums_t {
    apr_array_header_t *totals;   /* cs_batch_total_t, by principal then period */
    apr_array_header_t *who;      /* cs_batch_who_t, by principal */
    apr_array_header_t *reserved; /* const char *: entry ids held by their own reservation */
    apr_array_header_t *releases; /* cs_batch_release_t, by lease */
} cs_batch_sums_t;

/**
 * Sum n rows (each CS_ROW_NV values, NULL where absent) and the returns
 * (lease, micro pairs; nonpositive ones are ignored) of a batch. Sorted, so
 * that two children's batches lock the same rows in the same order.
 * A value that is not a number counts as 0.
 */
void cs_batch_sum(apr_pool_t *p, const char *const *const *rows, int n,
                  const cs_batch_release_t *returns, int nreturns, cs_batch_sums_t *out);

/** Bytes cs_batch_quote() writes for s at most (NULL: 4). */
apr_size_t cs_batch_quoted_len(const char *s);

/**
 * An element of a PostgreSQL array literal at d: s double-quoted with
 * quotes and backslashes escaped, or NULL. Returns the end (no NUL).
 */
char *cs_batch_quote(char *d, const char *s);

/** The array literal of n strings (NULL elements allowed). */
const char *cs_batch_literal(apr_pool_t *p, const char *const *v, int n);

/* apr_atoi64(s), the same answer for every string, without strtol's cost
 * for the figures rows carry (at most 18 digits and an optional minus). */
apr_int64_t cs_batch_atoi64(const char *s);

#endif
