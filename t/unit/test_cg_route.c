/* Unit tests of cg_route: eligibility by groups and models, which answers
 * fail over, the reference's choice when all upstreams failed, and the
 * circuit breaker's states. */
#include <apr_strings.h>

#include "unit.h"
#include "cg_route.h"

static apr_array_header_t *list(const char *a, const char *b)
{
    apr_array_header_t *l = apr_array_make(unit_pool, 2, sizeof(char *));
    if (a) {
        APR_ARRAY_PUSH(l, const char *) = a;
    }
    if (b) {
        APR_ARRAY_PUSH(l, const char *) = b;
    }
    return l;
}

START_TEST(eligibility)
{
    cg_upstream_decl_t u = {0};

    u.name = "up";
    u.provider = "anthropic";
    ck_assert(cg_route_eligible(&u, NULL, "anything"));
    u.groups = list("eng", "ops");
    ck_assert(cg_route_group_ok(&u, list("hr", "ops")));
    ck_assert(!cg_route_group_ok(&u, list("hr", "Eng")));
    ck_assert(!cg_route_group_ok(&u, NULL));
    u.models = list("claude-haiku-*", "claude-opus-4-8");
    ck_assert(cg_route_model_ok(&u, "claude-haiku-4-5-20251001"));
    ck_assert(cg_route_model_ok(&u, "CLAUDE-OPUS-4-8"));
    ck_assert(!cg_route_model_ok(&u, "claude-opus-4-7"));
    ck_assert(!cg_route_model_ok(&u, NULL));
    ck_assert(!cg_route_eligible(&u, list("hr", NULL), "claude-opus-4-8"));
}
END_TEST

START_TEST(failover_statuses)
{
    static const int over[] = {0, 500, 502, 503, 529, 429, 401, 403, 404, 501};
    static const int stay[] = {200, 201, 400, 413, 422, 409};
    apr_size_t i;

    for (i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
        ck_assert_msg(cg_route_fails_over(over[i]), "%d", over[i]);
    }
    for (i = 0; i < sizeof(stay) / sizeof(stay[0]); i++) {
        ck_assert_msg(!cg_route_fails_over(stay[i]), "%d", stay[i]);
    }
}
END_TEST

START_TEST(final_choice_as_the_reference)
{
    int a[] = {429, 500, 429, 401};
    int b[] = {403, 404, 401, 500};
    int c[] = {404, 501, 0};
    int d[] = {501, 500, 0};
    int e[] = {500, 529, 0};

    ck_assert_int_eq(cg_route_pick(a, 4), 2); /* the last 429 */
    ck_assert_int_eq(cg_route_pick(b, 4), 2); /* the last 401/403 */
    ck_assert_int_eq(cg_route_pick(c, 3), 0); /* 404 before 501 */
    ck_assert_int_eq(cg_route_pick(d, 3), 0);
    ck_assert_int_eq(cg_route_pick(e, 3), -1); /* the gateway's 502 */
    ck_assert_int_eq(cg_route_pick(e, 0), -1);
}
END_TEST

START_TEST(breaker_states)
{
    cg_breaker_t b = {0};
    apr_time_t t = apr_time_from_sec(1000), cool = apr_time_from_sec(30);
    int trial;

    ck_assert(cg_breaker_allow(&b, t, &trial) && !trial);
    ck_assert_int_eq(cg_breaker_record(&b, 0, t, 3, cool), 0);
    ck_assert_int_eq(cg_breaker_record(&b, 0, t, 3, cool), 0);
    ck_assert_int_eq(cg_breaker_record(&b, 0, t, 3, cool), 1); /* opens */
    ck_assert(!cg_breaker_allow(&b, t + cool - 1, &trial));
    /* half-open: one trial at a time */
    ck_assert(cg_breaker_allow(&b, t + cool, &trial) && trial);
    ck_assert(!cg_breaker_allow(&b, t + cool, &trial));
    /* the trial fails: open again for a full cool-down */
    ck_assert_int_eq(cg_breaker_record(&b, 0, t + cool, 3, cool), 0);
    ck_assert(!cg_breaker_allow(&b, t + cool + 1, &trial));
    ck_assert(cg_breaker_allow(&b, t + 2 * cool, &trial) && trial);
    ck_assert_int_eq(cg_breaker_record(&b, 1, t + 2 * cool, 3, cool), -1); /* closes */
    ck_assert(cg_breaker_allow(&b, t + 2 * cool, &trial) && !trial);
    /* threshold 0: never opens */
    ck_assert_int_eq(cg_breaker_record(&b, 0, t, 0, cool), 0);
    ck_assert(cg_breaker_allow(&b, t, &trial));
}
END_TEST

Suite *unit_suite_cg_route(void)
{
    Suite *s = suite_create("cg_route");
    TCase *tc = tcase_create("route");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, eligibility);
    tcase_add_test(tc, failover_statuses);
    tcase_add_test(tc, final_choice_as_the_reference);
    tcase_add_test(tc, breaker_states);
    suite_add_tcase(s, tc);
    return s;
}
