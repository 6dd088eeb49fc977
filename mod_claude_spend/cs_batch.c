/* cs_batch: the sums of a batch of fresh ledger rows (see cs_batch.h). */
#include <apr_hash.h>
#include <apr_strings.h>

#include <stdlib.h>
#include <string.h>

#include "cs_batch.h"

static apr_int64_t cs_batch_int(const char *s)
{
    char *end;
    apr_int64_t v;

    if (s == NULL || *s == '\0') {
        return 0;
    }
    v = apr_strtoi64(s, &end, 10);
    return *end == '\0' ? v : 0;
}

static int cs_batch_total_cmp(const void *a, const void *b)
{
    const cs_batch_total_t *x = a, *y = b;
    int c = strcmp(x->principal, y->principal);

    return c != 0 ? c : strcmp(x->period_key, y->period_key);
}

static int cs_batch_who_cmp(const void *a, const void *b)
{
    return strcmp(((const cs_batch_who_t *)a)->principal, ((const cs_batch_who_t *)b)->principal);
}

static int cs_batch_release_cmp(const void *a, const void *b)
{
    return strcmp(((const cs_batch_release_t *)a)->lease, ((const cs_batch_release_t *)b)->lease);
}

/* The entry of key (klen bytes) in h, made with size bytes of zeroes when new. */
static void *cs_batch_slot(apr_pool_t *p, apr_hash_t *h, const char *key, apr_size_t klen,
                           apr_size_t size, int *fresh)
{
    void *v = apr_hash_get(h, key, (apr_ssize_t)klen);

    *fresh = v == NULL;
    if (v == NULL) {
        v = apr_pcalloc(p, size);
        apr_hash_set(h, apr_pmemdup(p, key, klen), (apr_ssize_t)klen, v);
    }
    return v;
}

/* The values of h, sorted, into a new array. */
static apr_array_header_t *cs_batch_sorted(apr_pool_t *p, apr_hash_t *h, apr_size_t size,
                                           int (*cmp)(const void *, const void *))
{
    apr_array_header_t *a = apr_array_make(p, (int)apr_hash_count(h) + 1, (int)size);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, h); hi != NULL; hi = apr_hash_next(hi)) {
        memcpy(apr_array_push(a), apr_hash_this_val(hi), size);
    }
    if (a->nelts > 1) {
        qsort(a->elts, (size_t)a->nelts, size, cmp);
    }
    return a;
}

void cs_batch_sum(apr_pool_t *p, const char *const *const *rows, int n,
                  const cs_batch_release_t *returns, int nreturns, cs_batch_sums_t *out)
{
    static const int periods[] = {CS_COL_DAY, CS_COL_WEEK, CS_COL_MONTH};
    apr_hash_t *totals = apr_hash_make(p), *who = apr_hash_make(p), *rel = apr_hash_make(p);
    char kbuf[512];
    int i, j, fresh;

    out->reserved = apr_array_make(p, 4, sizeof(const char *));
    for (i = 0; i < n; i++) {
        const char *const *v = rows[i];
        const char *sub = v[CS_COL_SUB];
        apr_int64_t cost = cs_batch_int(v[CS_COL_COST]);
        apr_int64_t at = v[CS_COL_AT_US] != NULL ? cs_batch_int(v[CS_COL_AT_US]) : APR_INT64_MIN;
        apr_size_t slen;
        cs_batch_who_t *w;

        if (sub == NULL) {
            continue; /* the ledger refuses it; the database says why */
        }
        slen = strlen(sub);
        for (j = 0; j < 3; j++) {
            const char *key = v[periods[j]];
            apr_size_t klen;
            cs_batch_total_t *t;
            char *k;

            if (key == NULL) {
                continue;
            }
            klen = strlen(key);
            k = slen + klen + 1 <= sizeof(kbuf) ? kbuf : apr_palloc(p, slen + klen + 1);
            memcpy(k, sub, slen);
            k[slen] = '\0'; /* no principal or key holds a NUL */
            memcpy(k + slen + 1, key, klen);
            t = cs_batch_slot(p, totals, k, slen + 1 + klen, sizeof(*t), &fresh);
            if (fresh) {
                t->principal = sub;
                t->period_key = key;
            }
            t->micro += cost;
        }
        /* the latest row names the principal; rows without a time come last */
        w = cs_batch_slot(p, who, sub, slen, sizeof(*w), &fresh);
        if (fresh || at > w->at_us) {
            w->principal = sub;
            w->email = v[CS_COL_EMAIL];
            w->groups = v[CS_COL_GROUPS] != NULL ? v[CS_COL_GROUPS] : "[]";
            w->at_us = at;
        }
        if (v[CS_COL_LEASE] == NULL) {
            if (v[CS_COL_ENTRY] != NULL) {
                APR_ARRAY_PUSH(out->reserved, const char *) = v[CS_COL_ENTRY];
            }
        }
        else {
            apr_int64_t held = cs_batch_int(v[CS_COL_HELD]);
            if (held > 0) {
                cs_batch_release_t *r = cs_batch_slot(p, rel, v[CS_COL_LEASE],
                                                      strlen(v[CS_COL_LEASE]), sizeof(*r), &fresh);
                r->lease = v[CS_COL_LEASE];
                r->micro += held;
            }
        }
    }
    for (i = 0; i < nreturns; i++) {
        cs_batch_release_t *r;
        if (returns[i].lease == NULL || returns[i].micro <= 0) {
            continue;
        }
        r = cs_batch_slot(p, rel, returns[i].lease, strlen(returns[i].lease), sizeof(*r), &fresh);
        r->lease = returns[i].lease;
        r->micro += returns[i].micro;
    }
    out->totals = cs_batch_sorted(p, totals, sizeof(cs_batch_total_t), cs_batch_total_cmp);
    out->who = cs_batch_sorted(p, who, sizeof(cs_batch_who_t), cs_batch_who_cmp);
    out->releases = cs_batch_sorted(p, rel, sizeof(cs_batch_release_t), cs_batch_release_cmp);
}

apr_size_t cs_batch_quoted_len(const char *s)
{
    return s != NULL ? strlen(s) * 2 + 2 : 4;
}

char *cs_batch_quote(char *d, const char *s)
{
    if (s == NULL) {
        memcpy(d, "NULL", 4);
        return d + 4;
    }
    *d++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            *d++ = '\\';
        }
        *d++ = *s;
    }
    *d++ = '"';
    return d;
}

const char *cs_batch_literal(apr_pool_t *p, const char *const *v, int n)
{
    apr_size_t len = 3;
    char *out, *d;
    int i;

    for (i = 0; i < n; i++) {
        len += cs_batch_quoted_len(v[i]) + 1;
    }
    out = d = apr_palloc(p, len);
    *d++ = '{';
    for (i = 0; i < n; i++) {
        if (i > 0) {
            *d++ = ',';
        }
        d = cs_batch_quote(d, v[i]);
    }
    *d++ = '}';
    *d = '\0';
    return out;
}
