/* cg_tokcache: one bearer token kept per child, see cg_tokcache.h. */
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include <string.h>

#include "cg_tokcache.h"

struct cg_tokcache_t {
    apr_pool_t *parent;
    apr_pool_t *pool; /* the value's strings; replaced with them */
    apr_thread_mutex_t *lock;
    apr_interval_time_t refresh;
    apr_interval_time_t pause;
    cg_tokcache_value_t value; /* token NULL: none */
    apr_time_t paused_until;
    int fetching;
};

cg_tokcache_t *cg_tokcache_create(apr_pool_t *p, apr_interval_time_t refresh,
                                  apr_interval_time_t pause)
{
    cg_tokcache_t *c = apr_pcalloc(p, sizeof(*c));

    c->parent = p;
    c->refresh = refresh;
    c->pause = pause;
    if (apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        return NULL;
    }
    return c;
}

static void cg_tokcache_copy(apr_pool_t *p, const cg_tokcache_value_t *in, cg_tokcache_value_t *out)
{
    out->token = apr_pstrdup(p, in->token);
    out->extra = in->extra ? apr_pstrdup(p, in->extra) : NULL;
    out->source = in->source;
    out->expires = in->expires;
}

cg_tokcache_result_e cg_tokcache_get(cg_tokcache_t *c, apr_pool_t *p, apr_time_t now,
                                     cg_tokcache_resolve_fn resolve, void *baton,
                                     cg_tokcache_value_t *out, const char **why)
{
    cg_tokcache_value_t got;
    cg_tokcache_result_e res;
    apr_pool_t *np;
    int usable, ok;

    memset(out, 0, sizeof(*out));
    *why = NULL;
    apr_thread_mutex_lock(c->lock);
    usable = c->value.token != NULL && now < c->value.expires;
    if (usable && (now < c->value.expires - c->refresh || c->fetching || now < c->paused_until)) {
        cg_tokcache_copy(p, &c->value, out);
        apr_thread_mutex_unlock(c->lock);
        return CG_TOKCACHE_CACHED;
    }
    if (!usable && now < c->paused_until) {
        apr_thread_mutex_unlock(c->lock);
        return CG_TOKCACHE_PAUSED;
    }
    c->fetching = 1;
    apr_thread_mutex_unlock(c->lock);

    /* outside the lock: a slow endpoint holds up only the requests that have
     * nothing to go on (with nothing usable, each looks for itself) */
    memset(&got, 0, sizeof(got));
    ok = resolve(baton, p, now, &got, why) && got.token != NULL && got.source != NULL;

    apr_thread_mutex_lock(c->lock);
    c->fetching = 0;
    if (ok && apr_pool_create(&np, c->parent) == APR_SUCCESS) {
        res = c->value.source != NULL && !strcmp(c->value.source, got.source)
                  ? CG_TOKCACHE_FETCHED
                  : CG_TOKCACHE_NEW_SOURCE;
        if (c->pool != NULL) {
            apr_pool_destroy(c->pool); /* readers copied under the lock */
        }
        c->pool = np;
        cg_tokcache_copy(np, &got, &c->value);
        c->paused_until = 0;
        *why = NULL;
        cg_tokcache_copy(p, &got, out);
    }
    else {
        if (*why == NULL) {
            *why = ok ? "out of memory" : "no token";
        }
        if (c->value.token != NULL && now < c->value.expires) {
            c->paused_until = now + c->pause; /* not again at once */
            cg_tokcache_copy(p, &c->value, out);
            res = CG_TOKCACHE_KEPT;
        }
        else {
            c->value.token = NULL;
            c->paused_until = now + c->pause;
            res = CG_TOKCACHE_FAILED;
        }
    }
    apr_thread_mutex_unlock(c->lock);
    return res;
}

void cg_tokcache_forget(cg_tokcache_t *c)
{
    apr_thread_mutex_lock(c->lock);
    c->value.expires = 0; /* neither fresh nor usable: fetched anew */
    c->paused_until = 0;
    apr_thread_mutex_unlock(c->lock);
}
