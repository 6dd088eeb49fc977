/* cg_tokcache: one bearer token kept per child for a credential chain
 * (PURE: APR only).
 *
 * The Google and Microsoft Entra chains hand out access tokens that live an
 * hour or so. A cache keeps the current one until `refresh` before it
 * expires; then one request fetches a new one while the others go on with
 * the current one as long as it is valid. A failed refresh keeps the current
 * token (and is not retried for `pause`); finding nothing pauses the chain
 * for `pause`, so a host without the metadata service does not cost every
 * request a timeout. The caller logs what the result says. */
#ifndef CG_TOKCACHE_H
#define CG_TOKCACHE_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct cg_tokcache_t cg_tokcache_t;

/** A token and what goes with it. */
typedef struct cg_tokcache_value_t {
    const char *token;  /**< secret: never logged */
    const char *extra;  /**< what the chain sends along (a quota project), or NULL */
    const char *source; /**< a string constant naming where it came from */
    apr_time_t expires;
} cg_tokcache_value_t;

/**
 * Look for a token; called without the cache's lock held.
 * @return 1 with *out filled (strings in p); 0 with *why
 */
typedef int (*cg_tokcache_resolve_fn)(void *baton, apr_pool_t *p, apr_time_t now,
                                      cg_tokcache_value_t *out, const char **why);

typedef enum {
    CG_TOKCACHE_CACHED,     /**< the current token */
    CG_TOKCACHE_FETCHED,    /**< a new token, from the same source as before */
    CG_TOKCACHE_NEW_SOURCE, /**< a new token, from another source than before (or the first) */
    CG_TOKCACHE_KEPT,       /**< the refresh failed (*why); the current token is still valid */
    CG_TOKCACHE_FAILED,     /**< nothing found (*why); paused */
    CG_TOKCACHE_PAUSED      /**< nothing found a moment ago: not asked */
} cg_tokcache_result_e;

/** Whether a result carries a token. */
#define CG_TOKCACHE_OK(res) ((res) <= CG_TOKCACHE_KEPT)

/**
 * @param p the lifetime of the cache (a child's pool)
 * @param refresh fetch anew this long before the token expires
 * @param pause how long nothing found, or a failed refresh, is not retried
 * @return the cache, or NULL when no mutex could be made
 */
cg_tokcache_t *cg_tokcache_create(apr_pool_t *p, apr_interval_time_t refresh,
                                  apr_interval_time_t pause);

/**
 * The token: the cached one, or a new one from resolve.
 * @param p pool for *out's copies and *why (a request's)
 * @param out receives the token when CG_TOKCACHE_OK(result)
 * @param why receives the reason with CG_TOKCACHE_KEPT and CG_TOKCACHE_FAILED
 */
cg_tokcache_result_e cg_tokcache_get(cg_tokcache_t *c, apr_pool_t *p, apr_time_t now,
                                     cg_tokcache_resolve_fn resolve, void *baton,
                                     cg_tokcache_value_t *out, const char **why);

/** The upstream refused the token: the next request fetches a new one. */
void cg_tokcache_forget(cg_tokcache_t *c);

#endif
