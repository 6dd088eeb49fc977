/* Unit tests of cs_batch: the sums that claude_settle_fresh applies equal
 * what claude_settle works out row by row (totals per principal and
 * period, the latest identity, holds and returns per lease), sorted; and
 * array literals quote what PostgreSQL would otherwise misread. */
#include <string.h>

#include "unit.h"
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
    suite_add_tcase(s, tc);
    return s;
}
