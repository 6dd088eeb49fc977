/* Unit tests for cg_claims: email fallbacks, groups by name or JSON pointer,
 * and the sign-in gates. */
#include <string.h>

#include "unit.h"
#include "cg_claims.h"

static apr_array_header_t *strs(const char *a, const char *b)
{
    apr_array_header_t *arr = apr_array_make(unit_pool, 2, sizeof(const char *));

    if (a) {
        APR_ARRAY_PUSH(arr, const char *) = a;
    }
    if (b) {
        APR_ARRAY_PUSH(arr, const char *) = b;
    }
    return arr;
}

START_TEST(email_fallbacks)
{
    json_t *c = json_loads("{\"email\":\"\",\"upn\":\"a@corp.example\",\"x\":1}", 0, NULL);

    ck_assert_str_eq(cg_claims_email(unit_pool, c, strs("email", "upn")), "a@corp.example");
    ck_assert_ptr_null(cg_claims_email(unit_pool, c, strs("email", "x")));
    json_decref(c);
}
END_TEST

START_TEST(groups_shapes)
{
    json_t *c = json_loads("{\"groups\":[\"eng\",5,\"ops\"],\"flat\":\"a,b\","
                           "\"realm_access\":{\"roles\":[\"r1\"]},\"we/ird\":{\"t~x\":[\"w\"]}}",
                           0, NULL);
    apr_array_header_t *g = cg_claims_groups(unit_pool, c, "groups");

    ck_assert_int_eq(g->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(g, 1, const char *), "ops");
    g = cg_claims_groups(unit_pool, c, "flat");
    ck_assert_int_eq(g->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(g, 0, const char *), "a");
    g = cg_claims_groups(unit_pool, c, "/realm_access/roles");
    ck_assert_int_eq(g->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(g, 0, const char *), "r1");
    g = cg_claims_groups(unit_pool, c, "/we~1ird/t~0x");
    ck_assert_int_eq(g->nelts, 1);
    ck_assert_int_eq(cg_claims_groups(unit_pool, c, "/nope/x")->nelts, 0);
    ck_assert_int_eq(cg_claims_groups(unit_pool, c, "missing")->nelts, 0);
    json_decref(c);
}
END_TEST

START_TEST(gates)
{
    ck_assert_ptr_null(cg_claims_gate("a@x.example", strs("eng", NULL), NULL, NULL));
    ck_assert_ptr_null(cg_claims_gate("a@X.Example", NULL, strs("x.example", NULL), NULL));
    ck_assert_ptr_nonnull(cg_claims_gate("a@evil.example", NULL, strs("x.example", NULL), NULL));
    ck_assert_ptr_nonnull(cg_claims_gate("a@sub.x.example", NULL, strs("x.example", NULL), NULL));
    ck_assert_ptr_nonnull(cg_claims_gate(NULL, NULL, strs("x.example", NULL), NULL));
    ck_assert_ptr_null(cg_claims_gate("a@x", strs("eng", "ops"), NULL, strs("ops", NULL)));
    ck_assert_ptr_nonnull(cg_claims_gate("a@x", strs("eng", NULL), NULL, strs("ops", NULL)));
    ck_assert_ptr_nonnull(cg_claims_gate("a@x", NULL, NULL, strs("ops", NULL)));
}
END_TEST

Suite *unit_suite_cg_claims(void)
{
    Suite *s = suite_create("cg_claims");
    TCase *tc = tcase_create("claims");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, email_fallbacks);
    tcase_add_test(tc, groups_shapes);
    tcase_add_test(tc, gates);
    suite_add_tcase(s, tc);
    return s;
}
