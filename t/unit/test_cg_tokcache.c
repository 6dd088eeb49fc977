/* Unit tests for cg_tokcache: when the chain is asked, what a failure keeps,
 * and the pause after nothing was found. The resolver is a stub that counts
 * its calls and answers as the test says. */
#include <string.h>

#include "unit.h"
#include "cg_tokcache.h"

#define SEC(n) apr_time_from_sec(n)

typedef struct stub_t {
    int calls;
    int fail;
    const char *source;
    apr_interval_time_t ttl;
} stub_t;

static int stub_resolve(void *baton, apr_pool_t *p, apr_time_t now, cg_tokcache_value_t *out,
                        const char **why)
{
    stub_t *st = baton;

    (void)p;
    st->calls++;
    if (st->fail) {
        *why = "stub: nothing";
        return 0;
    }
    out->token = st->calls % 2 ? "tok-odd" : "tok-even";
    out->extra = "quota-1";
    out->source = st->source;
    out->expires = now + st->ttl;
    return 1;
}

START_TEST(fetch_keep_refresh)
{
    cg_tokcache_t *c = cg_tokcache_create(unit_pool, SEC(225), SEC(5));
    stub_t st = {0, 0, "file", SEC(3600)};
    cg_tokcache_value_t v;
    const char *why;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(1000), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_NEW_SOURCE);
    ck_assert_str_eq(v.token, "tok-odd");
    ck_assert_str_eq(v.extra, "quota-1");
    ck_assert_int_eq(v.expires, SEC(4600));
    /* kept until 225 s before it expires */
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(4374), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_CACHED);
    ck_assert_int_eq(st.calls, 1);
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(4375), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_FETCHED);
    ck_assert_int_eq(st.calls, 2);
    ck_assert_str_eq(v.token, "tok-even");
    /* another source is news for the log */
    cg_tokcache_forget(c);
    st.source = "metadata server";
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(4376), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_NEW_SOURCE);
    ck_assert_int_eq(st.calls, 3);
}
END_TEST

START_TEST(short_lived_tokens_are_not_kept)
{
    cg_tokcache_t *c = cg_tokcache_create(unit_pool, SEC(225), SEC(5));
    stub_t st = {0, 0, "metadata server", SEC(200)};
    cg_tokcache_value_t v;
    const char *why;
    int i;

    for (i = 0; i < 3; i++) {
        ck_assert(CG_TOKCACHE_OK(
            cg_tokcache_get(c, unit_pool, SEC(1000 + i), stub_resolve, &st, &v, &why)));
    }
    ck_assert_int_eq(st.calls, 3);
}
END_TEST

START_TEST(failed_refresh_keeps_the_token)
{
    cg_tokcache_t *c = cg_tokcache_create(unit_pool, SEC(300), SEC(5));
    stub_t st = {0, 0, "secret", SEC(3600)};
    cg_tokcache_value_t v;
    const char *why;

    cg_tokcache_get(c, unit_pool, SEC(1000), stub_resolve, &st, &v, &why);
    st.fail = 1;
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(4400), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_KEPT);
    ck_assert_str_eq(why, "stub: nothing");
    ck_assert_str_eq(v.token, "tok-odd");
    /* not asked again during the pause, the current token served */
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(4404), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_CACHED);
    ck_assert_int_eq(st.calls, 2);
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(4405), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_KEPT);
    ck_assert_int_eq(st.calls, 3);
    /* expired: nothing to serve */
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(4600), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_FAILED);
    ck_assert_ptr_null(v.token);
}
END_TEST

START_TEST(nothing_found_pauses)
{
    cg_tokcache_t *c = cg_tokcache_create(unit_pool, SEC(300), SEC(5));
    stub_t st = {0, 1, "imds", SEC(3600)};
    cg_tokcache_value_t v;
    const char *why;

    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(1000), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_FAILED);
    ck_assert_str_eq(why, "stub: nothing");
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(1004), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_PAUSED);
    ck_assert_int_eq(st.calls, 1);
    st.fail = 0;
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(1005), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_NEW_SOURCE);
    ck_assert_int_eq(st.calls, 2);
    /* a 401: fetched anew even though the token has not expired */
    cg_tokcache_forget(c);
    ck_assert_int_eq(cg_tokcache_get(c, unit_pool, SEC(1006), stub_resolve, &st, &v, &why),
                     CG_TOKCACHE_FETCHED);
    ck_assert_int_eq(st.calls, 3);
}
END_TEST

Suite *unit_suite_cg_tokcache(void)
{
    Suite *s = suite_create("cg_tokcache");
    TCase *tc = tcase_create("tokcache");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, fetch_keep_refresh);
    tcase_add_test(tc, short_lived_tokens_are_not_kept);
    tcase_add_test(tc, failed_refresh_keeps_the_token);
    tcase_add_test(tc, nothing_found_pauses);
    suite_add_tcase(s, tc);
    return s;
}
