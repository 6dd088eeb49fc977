/* Unit tests of cs_batch: the sums that claude_settle_fresh applies equal
 * what claude_settle works out row by row (totals per principal and
 * period, the latest identity, holds and returns per lease), sorted; and
 * array literals quote what PostgreSQL would otherwise misread. */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "unit.h"
#include "atoi_cases.h"
#include "cs_batch.h"

/* A row of the given principal, cost, time, lease and hold. */
static const char *const *row(const char *entry, const char *sub, const char *email,
                              const char *cost, const char *at, const char *lease, const char *held)
{
    const char **v = apr_pcalloc(unit_pool, sizeof(*v) * CS_ROW_NV);

    v[CS_COL_ENTRY] = entry;
    v[CS_COL_SUB] = sub;
    v[CS_COL_EMAIL] = email;
    v[CS_COL_GROUPS] = email != NULL ? "[\"eng\"]" : NULL;
    v[CS_COL_COST] = cost;
    v[CS_COL_DAY] = "2026-11-30";
    v[CS_COL_WEEK] = "2026-W49";
    v[CS_COL_MONTH] = "2026-11";
    v[CS_COL_AT_US] = at;
    v[CS_COL_LEASE] = lease;
    v[CS_COL_HELD] = held;
    return v;
}

static const cs_batch_total_t *total(const cs_batch_sums_t *s, int i)
{
    return &APR_ARRAY_IDX(s->totals, i, cs_batch_total_t);
}

START_TEST(totals_per_principal_and_period)
{
    const char *const *rows[4];
    cs_batch_sums_t s;
    int i;

    rows[0] = row("e1", "bob", "b@x", "100", "10", "L2", "500");
    rows[1] = row("e2", "alice", "a@x", "7", "11", "L1", "50");
    rows[2] = row("e3", "bob", "b@x", "25", "12", "L2", "300");
    rows[3] = row("e4", "alice", "a@x", "not a number", "13", "L1", "0");
    cs_batch_sum(unit_pool, rows, 4, NULL, 0, &s);

    ck_assert_int_eq(s.totals->nelts, 6); /* 2 principals x 3 periods */
    /* sorted by principal, then period key */
    ck_assert_str_eq(total(&s, 0)->principal, "alice");
    ck_assert_str_eq(total(&s, 0)->period_key, "2026-11");
    ck_assert_str_eq(total(&s, 1)->period_key, "2026-11-30");
    ck_assert_str_eq(total(&s, 2)->period_key, "2026-W49");
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(total(&s, i)->micro, 7);
        ck_assert_str_eq(total(&s, 3 + i)->principal, "bob");
        ck_assert_int_eq(total(&s, 3 + i)->micro, 125);
    }
    ck_assert_int_eq(s.reserved->nelts, 0);
}
END_TEST

START_TEST(periods_without_key_are_skipped)
{
    const char **v = (const char **)row("e1", "bob", "b@x", "9", "1", "L", "9");
    const char *const *rows[1] = {v};
    cs_batch_sums_t s;

    v[CS_COL_WEEK] = NULL;
    v[CS_COL_MONTH] = NULL;
    cs_batch_sum(unit_pool, rows, 1, NULL, 0, &s);
    ck_assert_int_eq(s.totals->nelts, 1);
    ck_assert_str_eq(total(&s, 0)->period_key, "2026-11-30");
    ck_assert_int_eq(total(&s, 0)->micro, 9);
}
END_TEST

START_TEST(latest_row_names_the_principal)
{
    const char *const *rows[4];
    const cs_batch_who_t *w;
    cs_batch_sums_t s;

    rows[0] = row("e1", "bob", "old@x", "1", "20", "L", "1");
    rows[1] = row("e2", "bob", "new@x", "1", "30", "L", "1");
    rows[2] = row("e3", "bob", "older@x", "1", "10", "L", "1");
    rows[3] = row("e4", "bob", "untimed@x", "1", NULL, "L", "1"); /* no time: last */
    cs_batch_sum(unit_pool, rows, 4, NULL, 0, &s);
    ck_assert_int_eq(s.who->nelts, 1);
    w = &APR_ARRAY_IDX(s.who, 0, cs_batch_who_t);
    ck_assert_str_eq(w->principal, "bob");
    ck_assert_str_eq(w->email, "new@x");
    ck_assert_str_eq(w->groups, "[\"eng\"]");

    /* a principal seen without groups gets an empty array, never NULL */
    rows[0] = row("e5", "carol", NULL, "1", "1", "L", "1");
    cs_batch_sum(unit_pool, rows, 1, NULL, 0, &s);
    w = &APR_ARRAY_IDX(s.who, 0, cs_batch_who_t);
    ck_assert_ptr_null(w->email);
    ck_assert_str_eq(w->groups, "[]");
}
END_TEST

START_TEST(holds_and_returns_per_lease)
{
    const char *const *rows[4];
    const cs_batch_release_t rets[] = {{"L1", 1000}, {"L3", 40}, {"L1", -5}, {NULL, 9}};
    const cs_batch_release_t *r;
    cs_batch_sums_t s;

    rows[0] = row("e1", "bob", "b@x", "1", "1", "L2", "500");
    rows[1] = row("e2", "bob", "b@x", "1", "2", "L1", "50");
    rows[2] = row("e3", "bob", "b@x", "1", "3", "L2", "300");
    rows[3] = row("e4", "bob", "b@x", "1", "4", NULL, NULL); /* its own reservation */
    cs_batch_sum(unit_pool, rows, 4, rets, 4, &s);

    ck_assert_int_eq(s.releases->nelts, 3);
    r = &APR_ARRAY_IDX(s.releases, 0, cs_batch_release_t);
    ck_assert_str_eq(r->lease, "L1");
    ck_assert_int_eq(r->micro, 1050); /* the hold plus the return; -5 ignored */
    r = &APR_ARRAY_IDX(s.releases, 1, cs_batch_release_t);
    ck_assert_str_eq(r->lease, "L2");
    ck_assert_int_eq(r->micro, 800);
    r = &APR_ARRAY_IDX(s.releases, 2, cs_batch_release_t);
    ck_assert_str_eq(r->lease, "L3");
    ck_assert_int_eq(r->micro, 40);
    ck_assert_int_eq(s.reserved->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(s.reserved, 0, const char *), "e4");
}
END_TEST

START_TEST(empty_batch)
{
    const cs_batch_release_t rets[] = {{"L9", 7}};
    cs_batch_sums_t s;

    cs_batch_sum(unit_pool, NULL, 0, rets, 1, &s);
    ck_assert_int_eq(s.totals->nelts, 0);
    ck_assert_int_eq(s.who->nelts, 0);
    ck_assert_int_eq(s.reserved->nelts, 0);
    ck_assert_int_eq(s.releases->nelts, 1);
    ck_assert_str_eq(cs_batch_literal(unit_pool, NULL, 0), "{}");
}
END_TEST

START_TEST(literals_quote_everything)
{
    const char *v[] = {"plain", NULL, "NULL", "a\"b", "c\\d", "", "{x,y}"};
    const char *lit = cs_batch_literal(unit_pool, v, 7);

    ck_assert_str_eq(lit, "{\"plain\",NULL,\"NULL\",\"a\\\"b\",\"c\\\\d\",\"\",\"{x,y}\"}");
    ck_assert_uint_ge(cs_batch_quoted_len("a\"b\\"), strlen("\"a\\\"b\\\\\""));
    ck_assert_uint_eq(cs_batch_quoted_len(NULL), 4);
}
END_TEST

/* cs_batch_sum as it was with apr_hash and apr_strtoi64, the reference
 * for the differential tests below. */
static apr_int64_t ref_int(const char *s)
{
    char *end;
    apr_int64_t v;

    if (s == NULL || *s == '\0') {
        return 0;
    }
    v = apr_strtoi64(s, &end, 10);
    return *end == '\0' ? v : 0;
}

static int ref_total_cmp(const void *a, const void *b)
{
    const cs_batch_total_t *x = a, *y = b;
    int c = strcmp(x->principal, y->principal);

    return c != 0 ? c : strcmp(x->period_key, y->period_key);
}

static int ref_who_cmp(const void *a, const void *b)
{
    return strcmp(((const cs_batch_who_t *)a)->principal, ((const cs_batch_who_t *)b)->principal);
}

static int ref_release_cmp(const void *a, const void *b)
{
    return strcmp(((const cs_batch_release_t *)a)->lease, ((const cs_batch_release_t *)b)->lease);
}

static void *ref_slot(apr_hash_t *h, const char *key, apr_size_t klen, apr_size_t size, int *fresh)
{
    void *v = apr_hash_get(h, key, (apr_ssize_t)klen);

    *fresh = v == NULL;
    if (v == NULL) {
        v = apr_pcalloc(unit_pool, size);
        apr_hash_set(h, apr_pmemdup(unit_pool, key, klen), (apr_ssize_t)klen, v);
    }
    return v;
}

static apr_array_header_t *ref_sorted(apr_hash_t *h, apr_size_t size,
                                      int (*cmp)(const void *, const void *))
{
    apr_array_header_t *a = apr_array_make(unit_pool, (int)apr_hash_count(h) + 1, (int)size);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(unit_pool, h); hi != NULL; hi = apr_hash_next(hi)) {
        memcpy(apr_array_push(a), apr_hash_this_val(hi), size);
    }
    if (a->nelts > 1) {
        qsort(a->elts, (size_t)a->nelts, size, cmp);
    }
    return a;
}

static void ref_batch_sum(const char *const *const *rows, int n, const cs_batch_release_t *returns,
                          int nreturns, cs_batch_sums_t *out)
{
    static const int periods[] = {CS_COL_DAY, CS_COL_WEEK, CS_COL_MONTH};
    apr_hash_t *totals = apr_hash_make(unit_pool), *who = apr_hash_make(unit_pool),
               *rel = apr_hash_make(unit_pool);
    int i, j, fresh;

    out->reserved = apr_array_make(unit_pool, 4, sizeof(const char *));
    for (i = 0; i < n; i++) {
        const char *const *v = rows[i];
        const char *sub = v[CS_COL_SUB];
        apr_int64_t cost = ref_int(v[CS_COL_COST]);
        apr_int64_t at = v[CS_COL_AT_US] != NULL ? ref_int(v[CS_COL_AT_US]) : APR_INT64_MIN;
        cs_batch_who_t *w;

        if (sub == NULL) {
            continue;
        }
        for (j = 0; j < 3; j++) {
            const char *key = v[periods[j]];
            cs_batch_total_t *t;
            char *k;

            if (key == NULL) {
                continue;
            }
            k = apr_pstrcat(unit_pool, sub, " ", key, NULL);
            k[strlen(sub)] = '\0';
            t = ref_slot(totals, k, strlen(sub) + 1 + strlen(key), sizeof(*t), &fresh);
            if (fresh) {
                t->principal = sub;
                t->period_key = key;
            }
            t->micro += cost;
        }
        w = ref_slot(who, sub, strlen(sub), sizeof(*w), &fresh);
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
            apr_int64_t held = ref_int(v[CS_COL_HELD]);
            if (held > 0) {
                cs_batch_release_t *r =
                    ref_slot(rel, v[CS_COL_LEASE], strlen(v[CS_COL_LEASE]), sizeof(*r), &fresh);
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
        r = ref_slot(rel, returns[i].lease, strlen(returns[i].lease), sizeof(*r), &fresh);
        r->lease = returns[i].lease;
        r->micro += returns[i].micro;
    }
    out->totals = ref_sorted(totals, sizeof(cs_batch_total_t), ref_total_cmp);
    out->who = ref_sorted(who, sizeof(cs_batch_who_t), ref_who_cmp);
    out->releases = ref_sorted(rel, sizeof(cs_batch_release_t), ref_release_cmp);
}

static void ck_str_or_null(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        ck_assert_ptr_eq(a, b);
    }
    else {
        ck_assert_str_eq(a, b);
    }
}

static void same_as_ref(const char *const *const *rows, int n, const cs_batch_release_t *returns,
                        int nreturns)
{
    cs_batch_sums_t got, want;
    int i;

    cs_batch_sum(unit_pool, rows, n, returns, nreturns, &got);
    ref_batch_sum(rows, n, returns, nreturns, &want);
    ck_assert_int_eq(got.totals->nelts, want.totals->nelts);
    for (i = 0; i < want.totals->nelts; i++) {
        const cs_batch_total_t *g = &APR_ARRAY_IDX(got.totals, i, cs_batch_total_t);
        const cs_batch_total_t *w = &APR_ARRAY_IDX(want.totals, i, cs_batch_total_t);
        ck_assert_str_eq(g->principal, w->principal);
        ck_assert_str_eq(g->period_key, w->period_key);
        ck_assert_int_eq(g->micro, w->micro);
    }
    ck_assert_int_eq(got.who->nelts, want.who->nelts);
    for (i = 0; i < want.who->nelts; i++) {
        const cs_batch_who_t *g = &APR_ARRAY_IDX(got.who, i, cs_batch_who_t);
        const cs_batch_who_t *w = &APR_ARRAY_IDX(want.who, i, cs_batch_who_t);
        ck_assert_str_eq(g->principal, w->principal);
        ck_str_or_null(g->email, w->email);
        ck_assert_str_eq(g->groups, w->groups);
        ck_assert_int_eq(g->at_us, w->at_us);
    }
    ck_assert_int_eq(got.reserved->nelts, want.reserved->nelts);
    for (i = 0; i < want.reserved->nelts; i++) {
        ck_assert_str_eq(APR_ARRAY_IDX(got.reserved, i, const char *),
                         APR_ARRAY_IDX(want.reserved, i, const char *));
    }
    ck_assert_int_eq(got.releases->nelts, want.releases->nelts);
    for (i = 0; i < want.releases->nelts; i++) {
        const cs_batch_release_t *g = &APR_ARRAY_IDX(got.releases, i, cs_batch_release_t);
        const cs_batch_release_t *w = &APR_ARRAY_IDX(want.releases, i, cs_batch_release_t);
        ck_assert_str_eq(g->lease, w->lease);
        ck_assert_int_eq(g->micro, w->micro);
    }
}

/* Numbers as apr_strtoi64 reads them, edge cases included (atoi_cases.h),
 * as cost, time and hold. */
START_TEST(numbers_as_strtoi64)
{
    size_t i;

    for (i = 0; i < sizeof(atoi_cases) / sizeof(atoi_cases[0]); i++) {
        const char *const *rows[2];
        rows[0] = row("e1", "bob", "b@x", atoi_cases[i], atoi_cases[i], "L", atoi_cases[i]);
        /* adds nothing: the sums must not overflow at the edges */
        rows[1] = row("e2", "bob", NULL, "0", "5", "L", "0");
        same_as_ref(rows, 2, NULL, 0);
    }
}
END_TEST

static int next_rand(unsigned int *seed, int m)
{
    *seed = *seed * 1103515245u + 12345u;
    return (int)((*seed >> 16) % (unsigned int)m);
}

/* Random batches over a few principals, periods and leases, with NULLs,
 * duplicates and returns, large enough for the tables to grow. */
START_TEST(random_batches_as_reference)
{
    static const char *const subs[] = {"alice", "bob", "carol", "dave", "a", "alice2", "", "bo"};
    static const char *const keys[] = {"2026-11-30", "2026-W49", "2026-11", "2026-12-01", NULL};
    static const char *const leases[] = {"L1", "L2", "L10", "lease-x", NULL};
    static const char *const nums[] = {"0", "5", "-3", "100", "x", NULL, "1748736000123456"};
    unsigned int seed = 4242;
    int batch, i, n, nret;

    for (batch = 0; batch < 200; batch++) {
        const char *const **rows;
        cs_batch_release_t ret[8];

        n = next_rand(&seed, 300);
        rows = apr_palloc(unit_pool, sizeof(*rows) * (apr_size_t)(n + 1));
        for (i = 0; i < n; i++) {
            const char **v = (const char **)row(
                apr_psprintf(unit_pool, "e%d", i),
                next_rand(&seed, 20) == 0 ? NULL : subs[next_rand(&seed, 8)],
                next_rand(&seed, 3) == 0 ? NULL : "x@y", nums[next_rand(&seed, 7)],
                nums[next_rand(&seed, 7)], leases[next_rand(&seed, 5)], nums[next_rand(&seed, 7)]);
            v[CS_COL_DAY] = keys[next_rand(&seed, 5)];
            v[CS_COL_WEEK] = keys[next_rand(&seed, 5)];
            v[CS_COL_MONTH] = keys[next_rand(&seed, 5)];
            if (next_rand(&seed, 4) == 0) {
                v[CS_COL_ENTRY] = NULL;
            }
            rows[i] = v;
        }
        nret = next_rand(&seed, 8);
        for (i = 0; i < nret; i++) {
            ret[i].lease = leases[next_rand(&seed, 5)];
            ret[i].micro = next_rand(&seed, 5) - 1;
        }
        same_as_ref(rows, n, ret, nret);
    }
}
END_TEST

/* cs_batch_atoi64 gives apr_atoi64's answer for every string. */
START_TEST(atoi64_as_apr)
{
    char buf[32];
    unsigned int seed = 8;
    size_t i;

    for (i = 0; i < sizeof(atoi_cases) / sizeof(atoi_cases[0]); i++) {
        ck_assert_msg(cs_batch_atoi64(atoi_cases[i]) == apr_atoi64(atoi_cases[i]), "\"%s\"",
                      atoi_cases[i]);
    }
    for (i = 0; i < ATOI_RANDOM_ROUNDS; i++) {
        const char *s = atoi_random(buf, &seed);
        ck_assert_msg(cs_batch_atoi64(s) == apr_atoi64(s), "\"%s\"", s);
    }
}
END_TEST

Suite *unit_suite_cs_batch(void)
{
    Suite *s = suite_create("cs_batch");
    TCase *tc = tcase_create("batch");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, totals_per_principal_and_period);
    tcase_add_test(tc, periods_without_key_are_skipped);
    tcase_add_test(tc, latest_row_names_the_principal);
    tcase_add_test(tc, holds_and_returns_per_lease);
    tcase_add_test(tc, empty_batch);
    tcase_add_test(tc, literals_quote_everything);
    tcase_add_test(tc, numbers_as_strtoi64);
    tcase_add_test(tc, atoi64_as_apr);
    tcase_add_test(tc, random_batches_as_reference);
    suite_add_tcase(s, tc);
    return s;
}
