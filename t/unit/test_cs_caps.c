/* Unit tests of cs_caps: the reference's spend-cap headers, the 429's
 * message and retry-after, utilization formatting and the cost bound used
 * as a reservation's estimate. */
#include <string.h>

#include <apr_strings.h>

#include "unit.h"
#include "cs_caps.h"

/* 2026-11-23T16:38:25Z, the time of the reference's capture 81 */
#define T_CAPTURE ((apr_time_t)1795451905 * APR_USEC_PER_SEC)

static const char *hdr(const cs_caps_verdict_t *v, const char *name)
{
    return apr_table_get(v->headers, name);
}

START_TEST(ratio_formats_like_the_reference)
{
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 0, 100), "0");
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 120, 100), "1.2");
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 78, 100), "0.78");
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 57, 100), "0.57");
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 100, 100), "1");
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 31200, 30000), "1.04");
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 2, 3), "0.67"); /* half up */
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 5, 0), "1");
    ck_assert_str_eq(cs_caps_ratio(unit_pool, 0, 0), "0");
}
END_TEST

START_TEST(estimate_bounds_the_cost)
{
    /* 225 bytes at the cache-write rate, 500 output tokens, Sonnet list */
    ck_assert_int_eq(cs_caps_estimate(225, 500, 3000000, 3750000, 15000000), 8344);
    ck_assert_int_eq(cs_caps_estimate(1, 0, 1, 1, 1), 1); /* rounded up */
    ck_assert_int_eq(cs_caps_estimate(-5, -1, 3000000, 3750000, 15000000), 0);
    /* no overflow with absurd inputs */
    ck_assert_int_gt(cs_caps_estimate(1LL << 40, 1LL << 40, 75000000, 93750000, 75000000), 0);
}
END_TEST

START_TEST(blocked_as_capture_81)
{
    cs_cap_t caps[] = {{CS_PERIOD_DAILY, 5, 60000, 0, 0},
                       {CS_PERIOD_WEEKLY, -1, 60000, 0, 1},
                       {CS_PERIOD_MONTHLY, 500, 60000, 0, 1}};
    cs_caps_verdict_t v;

    cs_caps_verdict(unit_pool, caps, 3, T_CAPTURE, NULL, &v);
    ck_assert(v.capped && v.blocked);
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-status"), "rejected");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-reset"), "1795478400");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-reset"), "1795478400");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-utilization"), "1.2");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-surpassed-threshold"), "1");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-period"), "daily");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-disabled-reason"),
                     "org_spend_cap_reached");
    ck_assert_str_eq(hdr(&v, "retry-after"), "26495");
    ck_assert_int_eq(v.retry_after, 26495);
    ck_assert_str_eq(hdr(&v, "x-should-retry"), "false");
    ck_assert_str_eq(v.message, "spend limit reached \xc2\xb7 resets Nov 24");
    cs_caps_verdict(unit_pool, caps, 3, T_CAPTURE, "ask finance", &v);
    ck_assert_str_eq(v.message, "ask finance");
}
END_TEST

START_TEST(blocked_names_the_cap_that_resets_last)
{
    cs_cap_t caps[] = {{CS_PERIOD_DAILY, 1, 20000, 0, 0}, {CS_PERIOD_MONTHLY, 1, 20000, 0, 0}};
    cs_caps_verdict_t v;

    cs_caps_verdict(unit_pool, caps, 2, T_CAPTURE, NULL, &v);
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-period"), "monthly");
    ck_assert_str_eq(v.message, "spend limit reached \xc2\xb7 resets Dec 1");
    /* 2026-12-01T00:00:00Z */
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-reset"), "1796083200");
}
END_TEST

START_TEST(allowed_headers_and_thresholds)
{
    cs_cap_t caps[] = {{CS_PERIOD_DAILY, 100, 500000, 0, 1},
                       {CS_PERIOD_MONTHLY, 10, 70000, 8000, 1}};
    cs_caps_verdict_t v;

    /* the monthly cap is the fullest: 78000 / 100000 */
    cs_caps_verdict(unit_pool, caps, 2, T_CAPTURE, NULL, &v);
    ck_assert(v.capped && !v.blocked);
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-status"), "allowed_warning");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-status"), "allowed_warning");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-utilization"), "0.78");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-surpassed-threshold"), "0.75");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-representative-claim"), "overage");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-reset"), "1796083200");
    ck_assert_ptr_null(hdr(&v, "retry-after"));
    caps[1].spent_micro = 96000;
    cs_caps_verdict(unit_pool, caps, 2, T_CAPTURE, NULL, &v);
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-surpassed-threshold"), "0.95");
    /* exactly 0.75 is not past the threshold */
    caps[1].spent_micro = 75000;
    caps[1].reserved_micro = 0;
    cs_caps_verdict(unit_pool, caps, 2, T_CAPTURE, NULL, &v);
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-status"), "allowed");
    ck_assert_ptr_null(hdr(&v, "anthropic-ratelimit-unified-overage-surpassed-threshold"));
}
END_TEST

START_TEST(uncapped_and_unavailable)
{
    cs_cap_t caps[] = {{CS_PERIOD_DAILY, -1, 5, 0, 1}, {CS_PERIOD_WEEKLY, -1, 5, 0, 1}};
    cs_caps_verdict_t v;

    cs_caps_verdict(unit_pool, caps, 2, T_CAPTURE, NULL, &v);
    ck_assert(!v.capped && !v.blocked);
    ck_assert_int_eq(apr_table_elts(v.headers)->nelts, 0);
    cs_caps_unavailable(unit_pool, &v);
    ck_assert(v.blocked);
    ck_assert_str_eq(v.message, "spend limit unavailable");
    ck_assert_str_eq(hdr(&v, "anthropic-ratelimit-unified-overage-disabled-reason"), "fetch_error");
    ck_assert_ptr_null(hdr(&v, "retry-after"));
    ck_assert_ptr_null(hdr(&v, "anthropic-ratelimit-unified-overage-period"));
}
END_TEST

Suite *unit_suite_cs_caps(void)
{
    Suite *s = suite_create("cs_caps");
    TCase *tc = tcase_create("caps");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, ratio_formats_like_the_reference);
    tcase_add_test(tc, estimate_bounds_the_cost);
    tcase_add_test(tc, blocked_as_capture_81);
    tcase_add_test(tc, blocked_names_the_cap_that_resets_last);
    tcase_add_test(tc, allowed_headers_and_thresholds);
    tcase_add_test(tc, uncapped_and_unavailable);
    suite_add_tcase(s, tc);
    return s;
}
