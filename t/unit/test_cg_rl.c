/* Unit tests of cg_rl: per-minute windows, check-then-count, tokens, and a
 * full table that forgets old windows rather than refusing. */
#include <stdlib.h>

#include <apr_strings.h>

#include "unit.h"
#include "cg_rl.h"

#define T0 ((apr_time_t)1796000000 * APR_USEC_PER_SEC) /* :20 past a minute */

START_TEST(requests_per_minute)
{
    void *mem = calloc(1, cg_rl_size(64));
    cg_rl_table_t *t = cg_rl_init(mem, 64);
    apr_uint64_t k = cg_rl_key("u:alice");
    int i;

    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(cg_rl_take(t, k, T0, 3, 0, 1), 0);
    }
    ck_assert_int_eq(cg_rl_take(t, k, T0, 3, 0, 1), 40); /* seconds to the next minute */
    ck_assert_int_eq(cg_rl_take(t, cg_rl_key("u:bob"), T0, 3, 0, 1), 0);
    /* the next minute starts afresh */
    ck_assert_int_eq(cg_rl_take(t, k, T0 + apr_time_from_sec(40), 3, 0, 1), 0);
    /* check without counting */
    ck_assert_int_eq(cg_rl_take(t, cg_rl_key("u:carol"), T0, 1, 0, 0), 0);
    ck_assert_int_eq(cg_rl_take(t, cg_rl_key("u:carol"), T0, 1, 0, 0), 0);
    ck_assert_int_eq(cg_rl_take(t, cg_rl_key("u:carol"), T0, 1, 0, 1), 0);
    ck_assert_int_ne(cg_rl_take(t, cg_rl_key("u:carol"), T0, 1, 0, 0), 0);
    free(mem);
}
END_TEST

START_TEST(tokens_per_minute)
{
    void *mem = calloc(1, cg_rl_size(16));
    cg_rl_table_t *t = cg_rl_init(mem, 16);
    apr_uint64_t k = cg_rl_key("g:tok");

    ck_assert_int_eq(cg_rl_take(t, k, T0, 0, 20, 1), 0);
    cg_rl_add_tokens(t, k, T0, 19);
    ck_assert_int_eq(cg_rl_take(t, k, T0, 0, 20, 1), 0);
    cg_rl_add_tokens(t, k, T0, 19);
    ck_assert_int_ne(cg_rl_take(t, k, T0, 0, 20, 1), 0);
    free(mem);
}
END_TEST

START_TEST(full_table_forgets_old_windows)
{
    void *mem = calloc(1, cg_rl_size(4));
    cg_rl_table_t *t = cg_rl_init(mem, 4);
    char name[32];
    int i;

    for (i = 0; i < 100; i++) {
        apr_snprintf(name, sizeof(name), "u:%d", i);
        /* never refused: a collision takes a slot over instead */
        ck_assert_int_eq(cg_rl_take(t, cg_rl_key(name), T0, 1, 0, 1), 0);
    }
    ck_assert(cg_rl_key("") != 0);
    free(mem);
}
END_TEST

Suite *unit_suite_cg_rl(void)
{
    Suite *s = suite_create("cg_rl");
    TCase *tc = tcase_create("rl");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, requests_per_minute);
    tcase_add_test(tc, tokens_per_minute);
    tcase_add_test(tc, full_table_forgets_old_windows);
    suite_add_tcase(s, tc);
    return s;
}
