/* Unit tests for cs_price: the table, provider spellings, the fallback, and
 * integer cost arithmetic against the reference's captured figures. */
#include <string.h>

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

START_TEST(lookup_matches_case_and_stops_at_at_sign)
{
    cs_price_t p;

    cs_price_lookup("CLAUDE-Haiku-4-5-20251001", &p);
    ck_assert_int_eq(p.known, 1);
    ck_assert_int_eq(p.input, 1000000);
    cs_price_lookup("eu.anthropic.CLAUDE-opus-4-1-20250805-v1:0", &p);
    ck_assert_int_eq(p.input, 15000000);
    /* the first matching row, not the longest: opus-4-5 before opus-4 */
    cs_price_lookup("claude-opus-4-5-x", &p);
    ck_assert_int_eq(p.input, 5000000);
    /* '@' ends the id: "claude-opus-4@..." is opus 4, not opus-4-5 */
    cs_price_lookup("claude-opus-4@-5", &p);
    ck_assert_int_eq(p.input, 15000000);
    cs_price_lookup("claude-haiku@4-5", &p);
    ck_assert_int_eq(p.known, 0);
    /* shorter than every prefix, or only the stem */
    cs_price_lookup("claude-", &p);
    ck_assert_int_eq(p.known, 0);
    cs_price_lookup("claude", &p);
    ck_assert_int_eq(p.known, 0);
    cs_price_lookup("", &p);
    ck_assert_int_eq(p.known, 0);
    cs_price_lookup("claude-sonnet-", &p);
    ck_assert_int_eq(p.known, 0);
    cs_price_lookup("x-claude-sonnet-4", &p);
    ck_assert_int_eq(p.known, 0);
}
END_TEST

/* A stand-in for cs_price_for's lookup: an override for "site-model", the
 * list price otherwise; counts its calls. */
static int memo_calls;

static int memo_fn(void *ctx, const char *model, cs_price_t *price, apr_int64_t *ppm)
{
    memo_calls++;
    cs_price_lookup(model, price);
    *ppm = *(const apr_int64_t *)ctx;
    if (model != NULL && strcmp(model, "site-model") == 0) {
        price->input = 42;
        price->known = 1;
    }
    return price->known;
}

START_TEST(memo_keys_on_the_model)
{
    cs_price_memo_t m;
    cs_price_t p;
    apr_int64_t ppm = 0, mult = 850000;
    char copy[] = "claude-haiku-4-5";

    memset(&m, 0, sizeof(m));
    memo_calls = 0;
    ck_assert_int_eq(cs_price_memo_get(&m, "claude-haiku-4-5", memo_fn, &mult, &p, &ppm), 1);
    ck_assert_int_eq(p.input, 1000000);
    ck_assert_int_eq(ppm, 850000);
    /* the same model, even in another string: no second lookup */
    mult = 1;
    ck_assert_int_eq(cs_price_memo_get(&m, copy, memo_fn, &mult, &p, &ppm), 1);
    ck_assert_int_eq(memo_calls, 1);
    ck_assert_int_eq(p.input, 1000000);
    ck_assert_int_eq(ppm, 850000);
    /* another model: looked up, and the override applies */
    ck_assert_int_eq(cs_price_memo_get(&m, "site-model", memo_fn, &mult, &p, &ppm), 1);
    ck_assert_int_eq(memo_calls, 2);
    ck_assert_int_eq(p.input, 42);
    ck_assert_int_eq(ppm, 1);
    /* back to the first: looked up again, the override gone */
    ck_assert_int_eq(cs_price_memo_get(&m, "claude-haiku-4-5", memo_fn, &mult, &p, &ppm), 1);
    ck_assert_int_eq(memo_calls, 3);
    ck_assert_int_eq(p.input, 1000000);
    /* NULL is a key of its own: the fallback, and unknown */
    ck_assert_int_eq(cs_price_memo_get(&m, NULL, memo_fn, &mult, &p, &ppm), 0);
    ck_assert_int_eq(memo_calls, 4);
    ck_assert_int_eq(p.input, 5000000);
    ck_assert_int_eq(cs_price_memo_get(&m, NULL, memo_fn, &mult, &p, &ppm), 0);
    ck_assert_int_eq(memo_calls, 4);
    ck_assert_int_eq(cs_price_memo_get(&m, "my-model", memo_fn, &mult, &p, &ppm), 0);
    ck_assert_int_eq(memo_calls, 5);
    ck_assert_int_eq(cs_price_memo_get(&m, NULL, memo_fn, &mult, &p, &ppm), 0);
    ck_assert_int_eq(memo_calls, 6);
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
    tcase_add_test(tc, lookup_matches_case_and_stops_at_at_sign);
    tcase_add_test(tc, memo_keys_on_the_model);
    suite_add_tcase(s, tc);
    return s;
}
