/* Unit tests for cs_price: the table, provider spellings, the fallback, and
 * integer cost arithmetic against the reference's captured figures. */
#include "unit.h"
#include "cs_price.h"

START_TEST(capture_figures)
{
    cs_price_t p;

    /* capture 91: 1000 in + 500 out on Sonnet 4.5 metered at 1.05 cents */
    cs_price_lookup("claude-sonnet-4-5-20250929", &p);
    ck_assert_int_eq(p.known, 1);
    ck_assert_int_eq(cs_price_cost(&p, 1000, 500, 0, 0), 10500);
    /* capture 92: 2000 in + 800 out streamed, 1.8 cents */
    ck_assert_int_eq(cs_price_cost(&p, 2000, 800, 0, 0), 18000);
}
END_TEST

START_TEST(families_and_spellings)
{
    cs_price_t p;

    cs_price_lookup("claude-opus-4-5", &p);
    ck_assert_int_eq(p.input, 5000000);
    cs_price_lookup("claude-opus-4-1-20250805", &p);
    ck_assert_int_eq(p.input, 15000000);
    ck_assert_int_eq(p.output, 75000000);
    cs_price_lookup("us.anthropic.claude-haiku-4-5-20251001-v1:0", &p);
    ck_assert_int_eq(p.known, 1);
    ck_assert_int_eq(p.output, 5000000);
    cs_price_lookup("claude-sonnet-4-5@20250929", &p);
    ck_assert_int_eq(p.cache_read, 300000);
    ck_assert_int_eq(p.cache_write, 3750000);
    cs_price_lookup("claude-3-5-haiku-latest", &p);
    ck_assert_int_eq(p.input, 800000);
}
END_TEST

START_TEST(unknown_model_fallback)
{
    cs_price_t p;

    cs_price_lookup("my-private-model", &p);
    ck_assert_int_eq(p.known, 0);
    ck_assert_int_eq(p.input, 5000000);
    ck_assert_int_eq(p.output, 25000000);
    cs_price_lookup(NULL, &p);
    ck_assert_int_eq(p.known, 0);
}
END_TEST

START_TEST(rounding_and_cache)
{
    cs_price_t p;

    cs_price_lookup("claude-haiku-4-5", &p);
    ck_assert_int_eq(cs_price_cost(&p, 1, 0, 0, 0), 1); /* 1 token is 1 micro-USD, never 0 */
    ck_assert_int_eq(cs_price_cost(&p, 0, 0, 0, 0), 0);
    ck_assert_int_eq(cs_price_cost(&p, 0, 0, 1000000, 1000000), 100000 + 1250000);
    ck_assert_int_eq(cs_price_cost(&p, -5, 0, 0, 0), 0);
}
END_TEST

START_TEST(multiplier_rounds_up)
{
    ck_assert_int_eq(cs_price_scale(10000, 1000000), 10000);
    ck_assert_int_eq(cs_price_scale(7800, 500000), 3900);
    ck_assert_int_eq(cs_price_scale(1, 850000), 1);        /* never rounds a cost down to 0 */
    ck_assert_int_eq(cs_price_scale(10584, 850000), 8997); /* 8996.4 up */
    ck_assert_int_eq(cs_price_scale(0, 850000), 0);
}
END_TEST

Suite *unit_suite_cs_price(void)
{
    Suite *s = suite_create("cs_price");
    TCase *tc = tcase_create("price");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, capture_figures);
    tcase_add_test(tc, families_and_spellings);
    tcase_add_test(tc, unknown_model_fallback);
    tcase_add_test(tc, rounding_and_cache);
    tcase_add_test(tc, multiplier_rounds_up);
    suite_add_tcase(s, tc);
    return s;
}
