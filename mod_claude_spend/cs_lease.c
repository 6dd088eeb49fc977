/* cs_lease: per-child spend leases, see cs_lease.h. */
#include <string.h>
#include <strings.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>

#include "cs_lease.h"

/* A lease's first size in estimates; it doubles while leases run out in
 * less than half the longest a lease lives (conf.max_age), so a doubled one
 * still runs out before it gets too old, up to max_requests. */
#define CS_LEASE_FIRST 8

struct cs_lease_t {
    apr_pool_t *pool; /* the lease's own subpool: key, id, headers */
    const char *key;
    const char *id;        /* NULL: uncapped entry */
    apr_int64_t remaining; /* micro-USD not yet held by a request */
    apr_int64_t granted;   /* what the database reserved for it */
    apr_table_t *headers;  /* NULL: uncapped */
    apr_time_t created, last_used;
    int size;     /* estimates this lease was asked for */
    int inflight; /* requests holding part of it */
    int retired;  /* no longer in the table */
    int renewing; /* its successor was asked for */
};

/* Admissions of one key in flight, and the requests waiting for them; in
 * its own subpool, freed when both are none. */
typedef struct cs_asking_t {
    apr_pool_t *pool;
    const char *key;
    int count;   /* admissions in flight */
    int waiters; /* requests waiting for one */
} cs_asking_t;

struct cs_leases_t {
    apr_pool_t *pool; /* parent of the leases' subpools; used under mutex only */
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *asked; /* broadcast when an admission or a renewal ends */
    apr_hash_t *current;      /* key -> cs_lease_t */
    apr_hash_t *asking;       /* key -> cs_asking_t */
    apr_time_t failed;        /* the last admission the database did not answer */
    cs_lease_conf_t conf;
};

apr_status_t cs_leases_create(cs_leases_t **out, apr_pool_t *p, const cs_lease_conf_t *conf)
{
    cs_leases_t *t = apr_pcalloc(p, sizeof(*t));
    apr_status_t rv;

    rv = apr_thread_mutex_create(&t->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&t->asked, p);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_pool_create(&t->pool, p);
    t->current = apr_hash_make(p);
    t->asking = apr_hash_make(p);
    t->conf = *conf;
    if (t->conf.max_requests < 1) {
        t->conf.max_requests = 1;
    }
    *out = t;
    return APR_SUCCESS;
}

/* The table forgets l; it lives on while requests hold part of it. Under
 * the mutex. */
static void cs_lease_retire(cs_leases_t *t, cs_lease_t *l, cs_lease_return_t *ret)
{
    apr_hash_set(t->current, l->key, APR_HASH_KEY_STRING, NULL);
    l->retired = 1;
    if (ret != NULL) {
        ret->lease_id = l->id;
        ret->micro = l->id ? l->remaining : 0;
    }
    l->remaining = 0;
}

/* Under the mutex; the strings of ret move to p first. */
static void cs_lease_free_if_done(cs_lease_t *l)
{
    if (l->retired && l->inflight == 0) {
        apr_pool_destroy(l->pool);
    }
}

static void cs_return_copy(apr_pool_t *p, cs_lease_return_t *ret)
{
    if (ret->lease_id != NULL) {
        ret->lease_id = apr_pstrdup(p, ret->lease_id);
    }
}

/* The verdict's headers, for a new lease: set one by one, so a key given
 * twice ends up once (first position, last value). */
static apr_table_t *cs_headers_merge(apr_pool_t *p, const apr_table_t *h)
{
    const apr_array_header_t *arr = apr_table_elts(h);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    apr_table_t *out = apr_table_make(p, arr->nelts);
    int i;

    for (i = 0; i < arr->nelts; i++) {
        apr_table_set(out, e[i].key, e[i].val);
    }
    return out;
}

/* How many estimates the lease after l asks for: twice l's while l is
 * used up in less than half the longest a lease lives, so a doubled one
 * still runs out before it gets too old; max_requests at most. Under the
 * mutex. */
static int cs_next_size(const cs_leases_t *t, const cs_lease_t *l, apr_time_t now)
{
    int size = l->size;

    if (l->id != NULL && now - l->created < t->conf.max_age / 2) {
        size *= 2;
    }
    return size > t->conf.max_requests ? t->conf.max_requests : size;
}

/* estimate * size, or estimate alone should that overflow */
static apr_int64_t cs_want(apr_int64_t estimate, int size)
{
    apr_int64_t want = estimate > 0 ? estimate * size : 0;

    return estimate > 0 && want / size != estimate ? estimate : want;
}

static void cs_take_from(const cs_leases_t *t, cs_lease_t *l, apr_int64_t estimate, apr_time_t now,
                         cs_lease_take_t *take)
{
    l->last_used = now;
    take->renew = 0;
    if (l->id == NULL) {
        take->lease = NULL; /* uncapped: nothing held, nothing to settle */
        take->lease_id = NULL;
        take->held = 0;
        take->headers = NULL;
        return;
    }
    l->remaining -= estimate;
    l->inflight++;
    take->lease = l;
    /* the lease's own: it lives on until cs_leases_done (inflight), and
     * neither is changed once the lease is made; no copy under the mutex */
    take->lease_id = l->id;
    take->held = estimate;
    take->headers = l->headers;
    if (!l->renewing && t->conf.max_requests > 1 &&
        (l->remaining < l->granted / 2 || now - l->created >= t->conf.max_age / 4 * 3)) {
        /* half used (at this rate, used up in the other half of its age
         * doubles the next), or getting old: the next is asked for now */
        int size = l->size;
        if (now - l->created < t->conf.max_age / 4) {
            size *= 2;
        }
        l->renewing = 1;
        take->renew = cs_want(estimate, size > t->conf.max_requests ? t->conf.max_requests : size);
    }
}

/* Forget a key's admissions entry once nothing refers to it. Under the
 * mutex. */
static void cs_asking_free_if_done(cs_leases_t *t, cs_asking_t *a)
{
    if (a->count == 0 && a->waiters == 0) {
        apr_hash_set(t->asking, a->key, APR_HASH_KEY_STRING, NULL);
        apr_pool_destroy(a->pool);
    }
}

/* An admission of key ends: the requests waiting for it look again. Under
 * the mutex. */
static void cs_asking_end(cs_leases_t *t, const char *key)
{
    cs_asking_t *a = apr_hash_get(t->asking, key, APR_HASH_KEY_STRING);

    if (a != NULL && a->count > 0) {
        a->count--;
        apr_thread_cond_broadcast(t->asked);
        cs_asking_free_if_done(t, a);
    }
}

int cs_leases_take(cs_leases_t *t, const char *key, apr_int64_t estimate, apr_time_t now,
                   apr_pool_t *rp, cs_lease_take_t *take, apr_int64_t *want, cs_lease_return_t *ret)
{
    cs_lease_t *l;
    cs_asking_t *a;
    apr_time_t deadline = 0;
    int size = CS_LEASE_FIRST;

    ret->lease_id = NULL;
    ret->micro = 0;
    if (estimate < 0) {
        estimate = 0;
    }
    apr_thread_mutex_lock(t->mutex);
    for (;;) {
        apr_time_t clock;
        l = apr_hash_get(t->current, key, APR_HASH_KEY_STRING);
        if (l != NULL && now - l->created < t->conf.max_age && now >= l->created &&
            (l->id == NULL || l->remaining >= estimate)) {
            cs_take_from(t, l, estimate, now, take);
            apr_thread_mutex_unlock(t->mutex);
            return 1;
        }
        a = apr_hash_get(t->asking, key, APR_HASH_KEY_STRING);
        if (t->conf.wait <= 0 || a == NULL || a->count == 0) {
            break;
        }
        /* another request is asking the database for this key: its answer
         * serves this one too, unless the database is failing */
        clock = apr_time_now();
        if (deadline == 0) {
            deadline = clock + t->conf.wait;
        }
        if (clock >= deadline ||
            (t->failed != 0 && clock >= t->failed && clock - t->failed < t->conf.wait)) {
            break;
        }
        a->waiters++;
        apr_thread_cond_timedwait(t->asked, t->mutex, deadline - clock);
        a->waiters--;
        cs_asking_free_if_done(t, a);
        now = apr_time_now();
    }
    if (l != NULL) {
        /* a lease used up quickly asks for twice as much next time */
        size = cs_next_size(t, l, now);
        cs_lease_retire(t, l, ret);
        cs_return_copy(rp, ret);
        cs_lease_free_if_done(l);
    }
    if (size > t->conf.max_requests) {
        size = t->conf.max_requests;
    }
    if (t->conf.wait > 0) {
        a = apr_hash_get(t->asking, key, APR_HASH_KEY_STRING);
        if (a == NULL) {
            apr_pool_t *ap;
            apr_pool_create(&ap, t->pool);
            a = apr_pcalloc(ap, sizeof(*a));
            a->pool = ap;
            a->key = apr_pstrdup(ap, key);
            apr_hash_set(t->asking, a->key, APR_HASH_KEY_STRING, a);
        }
        a->count++;
    }
    apr_thread_mutex_unlock(t->mutex);
    *want = cs_want(estimate, size);
    return 0;
}

void cs_leases_asked(cs_leases_t *t, const char *key, int failed)
{
    if (t == NULL) {
        return; /* no table (the writer is not running): nothing was asked */
    }
    apr_thread_mutex_lock(t->mutex);
    if (failed) {
        t->failed = apr_time_now();
    }
    cs_asking_end(t, key);
    apr_thread_mutex_unlock(t->mutex);
}

/* A lease in its own subpool, not yet in the table. Under the mutex. */
static cs_lease_t *cs_lease_new(cs_leases_t *t, const char *key, const char *lease_id,
                                apr_int64_t granted, int uncapped, apr_int64_t estimate,
                                const apr_table_t *headers, apr_time_t now)
{
    apr_pool_t *lp;
    cs_lease_t *l;

    apr_pool_create(&lp, t->pool);
    l = apr_pcalloc(lp, sizeof(*l));
    l->pool = lp;
    l->key = apr_pstrdup(lp, key);
    l->id = uncapped ? NULL : apr_pstrdup(lp, lease_id);
    l->remaining = l->granted = uncapped ? 0 : granted;
    l->headers =
        uncapped || headers == NULL ? apr_table_make(lp, 1) : cs_headers_merge(lp, headers);
    l->created = l->last_used = now;
    l->size = granted > 0 && estimate > 0 ? (int)((granted + estimate - 1) / estimate) : 1;
    if (l->size < CS_LEASE_FIRST) {
        l->size = CS_LEASE_FIRST;
    }
    return l;
}

void cs_leases_install(cs_leases_t *t, const char *key, const char *lease_id, apr_int64_t granted,
                       int uncapped, apr_int64_t estimate, const apr_table_t *headers,
                       apr_time_t now, apr_pool_t *rp, cs_lease_take_t *take,
                       cs_lease_return_t *ret)
{
    cs_lease_t *l, *old;

    ret->lease_id = NULL;
    ret->micro = 0;
    if (estimate < 0) {
        estimate = 0;
    }
    apr_thread_mutex_lock(t->mutex);
    l = cs_lease_new(t, key, lease_id, granted, uncapped, estimate, headers, now);
    old = apr_hash_get(t->current, key, APR_HASH_KEY_STRING);
    if (old != NULL) {
        /* another thread asked at the same time: the newer lease wins */
        if (old->size > l->size) {
            l->size = old->size;
        }
        cs_lease_retire(t, old, ret);
        cs_return_copy(rp, ret);
        cs_lease_free_if_done(old);
    }
    apr_hash_set(t->current, l->key, APR_HASH_KEY_STRING, l);
    cs_take_from(t, l, estimate, now, take);
    t->failed = 0;
    cs_asking_end(t, key);
    apr_thread_mutex_unlock(t->mutex);
}

void cs_leases_renewed(cs_leases_t *t, const char *key, const char *old_id, const char *lease_id,
                       apr_int64_t granted, apr_int64_t estimate, const apr_table_t *headers,
                       apr_time_t now, apr_pool_t *p, cs_lease_return_t *ret)
{
    cs_lease_t *l, *old;

    apr_thread_mutex_lock(t->mutex);
    old = apr_hash_get(t->current, key, APR_HASH_KEY_STRING);
    if (old == NULL || old->id == NULL || strcmp(old->id, old_id) != 0) {
        apr_thread_mutex_unlock(t->mutex);
        ret->lease_id = apr_pstrdup(p, lease_id); /* too late: all of it goes back */
        ret->micro = granted;
        return;
    }
    l = cs_lease_new(t, key, lease_id, granted, 0, estimate, headers, now);
    if (l->size < old->size) {
        l->size = old->size; /* a grant cut to the room left does not shrink the next ask */
    }
    cs_lease_retire(t, old, ret);
    cs_return_copy(p, ret);
    cs_lease_free_if_done(old);
    apr_hash_set(t->current, l->key, APR_HASH_KEY_STRING, l);
    apr_thread_cond_broadcast(t->asked); /* requests waiting for this key take from it */
    apr_thread_mutex_unlock(t->mutex);
}

void cs_leases_done(cs_leases_t *t, cs_lease_take_t *take)
{
    cs_lease_t *l = take->lease;

    if (l == NULL) {
        return;
    }
    take->lease = NULL;
    apr_thread_mutex_lock(t->mutex);
    l->inflight--;
    cs_lease_free_if_done(l);
    apr_thread_mutex_unlock(t->mutex);
}

int cs_leases_sweep(cs_leases_t *t, apr_time_t now, int force, apr_array_header_t *returns)
{
    apr_hash_index_t *hi;
    int n = 0;

    apr_thread_mutex_lock(t->mutex);
    /* deleting the entry just returned by the iterator is allowed */
    for (hi = apr_hash_first(NULL, t->current); hi != NULL; hi = apr_hash_next(hi)) {
        cs_lease_t *l = apr_hash_this_val(hi);
        cs_lease_return_t ret;

        if (!force && now - l->last_used < t->conf.idle && now - l->created < t->conf.max_age &&
            now >= l->created) {
            continue;
        }
        cs_lease_retire(t, l, &ret);
        if (ret.lease_id != NULL && ret.micro > 0) {
            cs_lease_return_t *out = apr_array_push(returns);
            out->lease_id = apr_pstrdup(returns->pool, ret.lease_id);
            out->micro = ret.micro;
        }
        cs_lease_free_if_done(l);
        n++;
    }
    apr_thread_mutex_unlock(t->mutex);
    return n;
}

int cs_leases_count(cs_leases_t *t)
{
    int n;

    apr_thread_mutex_lock(t->mutex);
    n = (int)apr_hash_count(t->current);
    apr_thread_mutex_unlock(t->mutex);
    return n;
}

void cs_headers_add(apr_table_t *dst, const apr_table_t *src)
{
    const apr_array_header_t *sa = apr_table_elts(src), *da = apr_table_elts(dst);
    const apr_table_entry_t *se = (const apr_table_entry_t *)sa->elts;
    const apr_table_entry_t *de = (const apr_table_entry_t *)da->elts;
    apr_size_t slen[16];
    int i, j, shared = sa->nelts > 16;

    /* apr_table_setn compares each key with every key of dst sharing its
     * first four letters: all of ours share "anthropic-ratelimit-unified-" */
    for (i = 0; i < sa->nelts && !shared; i++) {
        slen[i] = strlen(se[i].key);
        for (j = 0; j < i && !shared; j++) { /* a key twice in src: set, as the loop */
            shared = slen[j] == slen[i] && strcasecmp(se[j].key, se[i].key) == 0;
        }
    }
    for (j = 0; j < da->nelts && !shared; j++) {
        apr_size_t dl = strlen(de[j].key);
        for (i = 0; i < sa->nelts && !shared; i++) {
            shared = slen[i] == dl && strcasecmp(se[i].key, de[j].key) == 0;
        }
    }
    for (i = 0; i < sa->nelts; i++) {
        if (shared) {
            apr_table_setn(dst, se[i].key, se[i].val);
        }
        else {
            apr_table_addn(dst, se[i].key, se[i].val);
        }
    }
}
