/* cs_lease: per-child spend leases (PURE: APR only).
 *
 * A lease is a reservation one child took in the database for several
 * requests of one principal at once (claude_admit_lease, sql/0007). The
 * child then admits that principal's requests locally while the lease has
 * room for their estimates, so the database sees one admission per lease
 * instead of one per request. Each admitted request holds its estimate out
 * of the lease until it settles; the part no request took goes back to the
 * database when the lease retires: replaced by a new one, idle, or too old.
 * Once half a lease is taken, or three quarters of its lifetime are gone,
 * the request that notices asks for the next one to be reserved in the
 * background (cs_lease_take_t.renew), so a steady principal's requests do
 * not wait for the database when a lease runs out.
 * When a principal's lease runs out under load, one request asks the
 * database for the next and the others of this child wait for its answer
 * (at most conf.wait) instead of all asking at once, which the database
 * would serialize on the principal's lock.
 * A principal with no cap gets an "uncapped" entry, which admits without
 * any reservation until it is too old, so caps set later apply within the
 * lease lifetime.
 *
 * The table is shared by the threads of a child and guarded by its own
 * mutex; every lease lives in its own subpool, freed once it is retired and
 * its last request is done. */
#ifndef CS_LEASE_H
#define CS_LEASE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

typedef struct cs_leases_t cs_leases_t;
typedef struct cs_lease_t cs_lease_t;

/** How big and how long leases are. */
typedef struct cs_lease_conf_t {
    int max_requests; /* a lease covers at most this many estimates; 1: one per request */
    apr_interval_time_t max_age; /* a lease is not used after this */
    apr_interval_time_t idle;    /* an unused lease is handed back after this */
    apr_interval_time_t wait;    /* how long a request waits for another one's
                                    admission of its key; 0: never */
} cs_lease_conf_t;

/** What one admitted request took. lease_id and headers are the lease's
 * own, read only: valid until cs_leases_done() for the take, so a request
 * calls that when nothing of it can read them any more (its pool's end). */
typedef struct cs_lease_take_t {
    cs_lease_t *lease;          /* for cs_leases_done; NULL when nothing is held */
    const char *lease_id;       /* NULL: uncapped, nothing reserved */
    apr_int64_t held;           /* the estimate held out of the lease */
    const apr_table_t *headers; /* the caps' headers; NULL: uncapped */
    apr_int64_t renew;          /* > 0: ask now for a lease of this much to follow lease_id */
} cs_lease_take_t;

/** Unused micro-USD of a retired lease, to give back to the database. */
typedef struct cs_lease_return_t {
    const char *lease_id;
    apr_int64_t micro;
} cs_lease_return_t;

/** A table of leases whose memory comes from subpools of p. */
apr_status_t cs_leases_create(cs_leases_t **out, apr_pool_t *p, const cs_lease_conf_t *conf);

/**
 * Admit a request of key (the principal, its groups and the period keys)
 * from its current lease when that is young enough and has room.
 * @param rp pool for ret's strings
 * While another request of this child asks the database for the key, this
 * one waits for that answer (at most conf.wait, not at all after a failed
 * admission) and takes from the lease it brings.
 * @return 1 when admitted (take filled); 0 when the database must be
 *         asked: *want receives the amount to ask for, and *ret the part of
 *         a lease that was retired now (lease_id NULL if none), to give
 *         back in the same call. The caller then ends its admission with
 *         cs_leases_install() or cs_leases_asked(), exactly once.
 */
int cs_leases_take(cs_leases_t *t, const char *key, apr_int64_t estimate, apr_time_t now,
                   apr_pool_t *rp, cs_lease_take_t *take, apr_int64_t *want,
                   cs_lease_return_t *ret);

/**
 * Install the lease the database granted (granted 0 with uncapped: no cap
 * applies) and take this request's estimate from it at once.
 * @param headers the caps' headers for answers admitted from this lease
 * @param ret receives the part of a lease this one displaced (another
 *        thread's, installed meanwhile), lease_id NULL if none
 */
void cs_leases_install(cs_leases_t *t, const char *key, const char *lease_id, apr_int64_t granted,
                       int uncapped, apr_int64_t estimate, const apr_table_t *headers,
                       apr_time_t now, apr_pool_t *rp, cs_lease_take_t *take,
                       cs_lease_return_t *ret);

/**
 * End an admission that installs nothing (the cap refused, the database
 * failed, no database): requests waiting for it go on.
 * @param failed the database did not answer: for conf.wait after it, no
 *        request waits for another one's admission
 * t NULL: nothing to do.
 */
void cs_leases_asked(cs_leases_t *t, const char *key, int failed);

/**
 * Install a lease the database granted to follow the one a take asked to
 * renew (cs_lease_take_t.renew), if that one is still current: it retires
 * and its unused part goes to ret. When it is not current any more (run
 * out, replaced, swept), nothing is installed and ret holds the whole grant.
 * @param headers the caps' headers for answers admitted from the new lease
 * @param p pool for ret's strings
 */
void cs_leases_renewed(cs_leases_t *t, const char *key, const char *old_id, const char *lease_id,
                       apr_int64_t granted, apr_int64_t estimate, const apr_table_t *headers,
                       apr_time_t now, apr_pool_t *p, cs_lease_return_t *ret);

/** The request that took take has settled or given its hold back. */
void cs_leases_done(cs_leases_t *t, cs_lease_take_t *take);

/**
 * Retire the leases that are idle or too old (all of them with force), and
 * append what they give back to returns (elements cs_lease_return_t, ids
 * in the array's pool).
 * @return how many were retired
 */
int cs_leases_sweep(cs_leases_t *t, apr_time_t now, int force, apr_array_header_t *returns);

/** How many leases and uncapped entries are current (tests). */
int cs_leases_count(cs_leases_t *t);

/* What apr_table_setn(dst, key, value) for each header of src in turn gives,
 * for any tables: added without a search when no key of src is in dst or
 * twice in src, which is the usual case (a lease's keys are unique). */
void cs_headers_add(apr_table_t *dst, const apr_table_t *src);

#endif
