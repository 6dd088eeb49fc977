/* cs_batch: the sums of a batch of fresh ledger rows (see cs_batch.h). */
#include <apr_strings.h>

#include <stdlib.h>
#include <string.h>

#include "cs_batch.h"

/* A number as apr_strtoi64 reads it, 0 unless it is all number. The values
 * come from apr_off_t_toa: an optional minus and at most 18 digits are read
 * here, anything else (signs, spaces, 19 digits and more) by apr_strtoi64. */
static apr_int64_t cs_batch_int(const char *s)
{
    const char *q = s;
    apr_int64_t v = 0;
    char *end;
    int neg;

    if (s == NULL || *s == '\0') {
        return 0;
    }
    neg = *q == '-';
    q += neg;
    while (*q >= '0' && *q <= '9' && q - s < 18 + neg) {
        v = v * 10 + (*q++ - '0');
    }
    if (*q == '\0' && q > s + neg) {
        return neg ? -v : v;
    }
    v = apr_strtoi64(s, &end, 10);
    return *end == '\0' ? v : 0;
}

apr_int64_t cs_batch_atoi64(const char *s)
{
    const char *q = s;
    apr_int64_t v = 0;
    int neg = *q == '-';

    q += neg;
    /* the usual value: our own decimal, at most 18 digits, read in place */
    while (*q >= '0' && *q <= '9' && q - s < 18 + neg) {
        v = v * 10 + (*q++ - '0');
    }
    if (q > s + neg && (*q < '0' || *q > '9')) {
        return neg ? -v : v;
    }
    return apr_atoi64(s); /* spaces, a plus, no digits, 19 digits and more */
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

/* A key of one or two strings (b NULL for one), with its length and hash. */
typedef struct cs_batch_key_t {
    const char *a, *b;
    apr_size_t alen, blen;
    apr_uint32_t hash;
} cs_batch_key_t;

/* FNV-1a over a NUL-terminated string, from h; its length in *len. */
static apr_uint32_t cs_batch_hash(apr_uint32_t h, const char *s, apr_size_t *len)
{
    const unsigned char *p = (const unsigned char *)s;

    for (; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    *len = (apr_size_t)(p - (const unsigned char *)s);
    return h;
}

/* An open-addressed table from keys to elements of an output array, at
 * most half full, so a probe always ends at a free slot. It replaces
 * apr_hash, whose key had to be copied together and whose entries were
 * copied out. */
typedef struct cs_batch_slot_t {
    cs_batch_key_t key;
    int elt; /* index in the array plus one, 0 when free */
} cs_batch_slot_t;

typedef struct cs_batch_table_t {
    apr_pool_t *p;
    cs_batch_slot_t *slots;
    apr_uint32_t mask;
    apr_array_header_t *a;
} cs_batch_table_t;

#define CS_BATCH_TABLE_MIN 16

static void cs_batch_table_init(apr_pool_t *p, cs_batch_table_t *t, apr_size_t size)
{
    t->p = p;
    t->slots = apr_pcalloc(p, sizeof(*t->slots) * CS_BATCH_TABLE_MIN);
    t->mask = CS_BATCH_TABLE_MIN - 1;
    t->a = apr_array_make(p, CS_BATCH_TABLE_MIN / 2, (int)size);
}

/* Twice the slots, the keys where they now hash. */
static void cs_batch_table_grow(cs_batch_table_t *t)
{
    apr_uint32_t cap = (t->mask + 1) * 2, i, j;
    cs_batch_slot_t *old = t->slots;

    t->slots = apr_pcalloc(t->p, sizeof(*t->slots) * cap);
    for (i = 0; i <= t->mask; i++) {
        if (old[i].elt != 0) {
            for (j = old[i].key.hash & (cap - 1); t->slots[j].elt != 0; j = (j + 1) & (cap - 1)) {
                /* the next free slot */
            }
            t->slots[j] = old[i];
        }
    }
    t->mask = cap - 1;
}

/* The element of k, zeroed when new (*fresh). */
static void *cs_batch_table_get(cs_batch_table_t *t, const cs_batch_key_t *k, int *fresh)
{
    apr_uint32_t i;
    cs_batch_slot_t *sl;
    void *e;

    if ((apr_uint32_t)t->a->nelts * 2 >= t->mask) {
        cs_batch_table_grow(t);
    }
    i = k->hash & t->mask;

    for (;; i = (i + 1) & t->mask) {
        sl = &t->slots[i];
        if (sl->elt == 0) {
            break;
        }
        if (sl->key.hash == k->hash && sl->key.alen == k->alen && sl->key.blen == k->blen &&
            memcmp(sl->key.a, k->a, k->alen) == 0 &&
            (k->b == NULL || memcmp(sl->key.b, k->b, k->blen) == 0)) {
            *fresh = 0;
            return t->a->elts + (apr_size_t)(sl->elt - 1) * (apr_size_t)t->a->elt_size;
        }
    }
    sl->key = *k;
    e = apr_array_push(t->a);
    sl->elt = t->a->nelts;
    memset(e, 0, (apr_size_t)t->a->elt_size);
    *fresh = 1;
    return e;
}

/* The table's elements, sorted. */
static apr_array_header_t *cs_batch_sorted(cs_batch_table_t *t,
                                           int (*cmp)(const void *, const void *))
{
    if (t->a->nelts > 1) {
        qsort(t->a->elts, (size_t)t->a->nelts, (size_t)t->a->elt_size, cmp);
    }
    return t->a;
}

#define CS_BATCH_FNV_BASIS 2166136261u

void cs_batch_sum(apr_pool_t *p, const char *const *const *rows, int n,
                  const cs_batch_release_t *returns, int nreturns, cs_batch_sums_t *out)
{
    static const int periods[] = {CS_COL_DAY, CS_COL_WEEK, CS_COL_MONTH};
    cs_batch_table_t totals, who, rel;
    cs_batch_key_t k;
    int i, j, fresh;

    cs_batch_table_init(p, &totals, sizeof(cs_batch_total_t));
    cs_batch_table_init(p, &who, sizeof(cs_batch_who_t));
    cs_batch_table_init(p, &rel, sizeof(cs_batch_release_t));
    out->reserved = apr_array_make(p, 4, sizeof(const char *));
    for (i = 0; i < n; i++) {
        const char *const *v = rows[i];
        const char *sub = v[CS_COL_SUB];
        apr_int64_t cost = cs_batch_int(v[CS_COL_COST]);
        apr_int64_t at = v[CS_COL_AT_US] != NULL ? cs_batch_int(v[CS_COL_AT_US]) : APR_INT64_MIN;
        apr_uint32_t hsub;
        cs_batch_who_t *w;

        if (sub == NULL) {
            continue; /* the ledger refuses it; the database says why */
        }
        hsub = cs_batch_hash(CS_BATCH_FNV_BASIS, sub, &k.alen);
        k.a = sub;
        for (j = 0; j < 3; j++) {
            cs_batch_total_t *t;

            if (v[periods[j]] == NULL) {
                continue;
            }
            /* the principal's hash goes on over a NUL, then the period key */
            k.b = v[periods[j]];
            k.hash = cs_batch_hash(hsub * 16777619u, k.b, &k.blen);
            t = cs_batch_table_get(&totals, &k, &fresh);
            if (fresh) {
                t->principal = sub;
                t->period_key = k.b;
            }
            t->micro += cost;
        }
        /* the latest row names the principal; rows without a time come last */
        k.b = NULL;
        k.blen = 0;
        k.hash = hsub;
        w = cs_batch_table_get(&who, &k, &fresh);
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
                cs_batch_release_t *r;

                k.a = v[CS_COL_LEASE];
                k.hash = cs_batch_hash(CS_BATCH_FNV_BASIS, k.a, &k.alen);
                r = cs_batch_table_get(&rel, &k, &fresh);
                r->lease = v[CS_COL_LEASE];
                r->micro += held;
            }
        }
    }
    k.b = NULL;
    k.blen = 0;
    for (i = 0; i < nreturns; i++) {
        cs_batch_release_t *r;
        if (returns[i].lease == NULL || returns[i].micro <= 0) {
            continue;
        }
        k.a = returns[i].lease;
        k.hash = cs_batch_hash(CS_BATCH_FNV_BASIS, k.a, &k.alen);
        r = cs_batch_table_get(&rel, &k, &fresh);
        r->lease = returns[i].lease;
        r->micro += returns[i].micro;
    }
    out->totals = cs_batch_sorted(&totals, cs_batch_total_cmp);
    out->who = cs_batch_sorted(&who, cs_batch_who_cmp);
    out->releases = cs_batch_sorted(&rel, cs_batch_release_cmp);
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
