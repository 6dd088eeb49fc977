/* Unit tests for cg_util: request ids, secret references, constant-time
 * comparison, error envelopes and the upstream header allowlist. */
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <jansson.h>

#include "unit.h"
#include "cg_util.h"

START_TEST(request_id_rules)
{
    char long_id[80];

    ck_assert(cg_request_id_valid("myreq-001"));
    ck_assert(cg_request_id_valid("a.b_c-D9"));
    ck_assert(!cg_request_id_valid(""));
    ck_assert(!cg_request_id_valid(NULL));
    ck_assert(!cg_request_id_valid("has space"));
    ck_assert(!cg_request_id_valid("semi;colon"));
    ck_assert(!cg_request_id_valid("new\nline"));
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    ck_assert(cg_request_id_valid(long_id));
    long_id[64] = 'a';
    long_id[65] = '\0';
    ck_assert(!cg_request_id_valid(long_id));
}
END_TEST

START_TEST(uuid4_shape)
{
    const char *a = cg_uuid4(unit_pool), *b = cg_uuid4(unit_pool);

    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(strlen(a), 36);
    ck_assert_int_eq(a[14], '4');
    ck_assert(strchr("89ab", a[19]) != NULL);
    ck_assert_int_eq(a[8], '-');
    ck_assert(cg_request_id_valid(a));
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(secret_from_env)
{
    const char *v = NULL;

    setenv("CG_UNIT_SECRET", "s3cret", 1);
    ck_assert_ptr_null(cg_secret_resolve(unit_pool, "env:CG_UNIT_SECRET", &v));
    ck_assert_str_eq(v, "s3cret");
    unsetenv("CG_UNIT_SECRET");
    ck_assert_ptr_nonnull(cg_secret_resolve(unit_pool, "env:CG_UNIT_SECRET", &v));
    ck_assert_ptr_null(v);
    ck_assert_ptr_nonnull(cg_secret_resolve(unit_pool, "env:", &v));
}
END_TEST

START_TEST(secret_from_file)
{
    const char *v = NULL, *err;
    char path[] = "/tmp/cg_unit_secretXXXXXX";
    apr_file_t *f;
    apr_size_t n;

    ck_assert_int_eq(apr_file_mktemp(&f, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE, unit_pool),
                     APR_SUCCESS);
    n = 8;
    apr_file_write(f, "key-123\n", &n);
    apr_file_close(f);
    ck_assert_ptr_null(
        cg_secret_resolve(unit_pool, apr_pstrcat(unit_pool, "file:", path, NULL), &v));
    ck_assert_str_eq(v, "key-123"); /* trailing newline removed */
    apr_file_remove(path, unit_pool);
    err = cg_secret_resolve(unit_pool, apr_pstrcat(unit_pool, "file:", path, NULL), &v);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(secret_inline_refused)
{
    const char *v = NULL, *err = cg_secret_resolve(unit_pool, "sk-ant-literal", &v);

    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(strstr(err, "sk-ant-literal")); /* never echo the secret */
    ck_assert_ptr_null(v);
}
END_TEST

START_TEST(secret_equal)
{
    ck_assert(cg_secret_equal("abc", "abc"));
    ck_assert(!cg_secret_equal("abc", "abd"));
    ck_assert(!cg_secret_equal("abc", "abcd"));
    ck_assert(!cg_secret_equal("abcd", "abc"));
    ck_assert(!cg_secret_equal("", "a"));
    ck_assert(cg_secret_equal("", ""));
    ck_assert(!cg_secret_equal(NULL, "a"));
}
END_TEST

START_TEST(error_envelope_shape)
{
    const char *s = cg_error_envelope(unit_pool, "invalid_request_error", "model \"x\" bad", "r-1");
    json_t *j = json_loads(s, 0, NULL);

    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "r-1");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                     "model \"x\" bad");
    json_decref(j);
    s = cg_error_envelope(unit_pool, "api_error", "m", NULL);
    ck_assert_ptr_null(strstr(s, "request_id"));
    ck_assert_str_eq(cg_oauth_error(unit_pool, "slow_down", NULL), "{\"error\":\"slow_down\"}");
    ck_assert_str_eq(cg_oauth_error(unit_pool, "invalid_request", "d"),
                     "{\"error\":\"invalid_request\",\"error_description\":\"d\"}");
}
END_TEST

START_TEST(header_allowlist)
{
    ck_assert(cg_header_forwardable("Content-Type"));
    ck_assert(cg_header_forwardable("anthropic-beta"));
    ck_assert(cg_header_forwardable("ANTHROPIC-VERSION"));
    ck_assert(cg_header_forwardable("x-stainless-lang"));
    ck_assert(!cg_header_forwardable("Authorization"));
    ck_assert(!cg_header_forwardable("x-api-key"));
    ck_assert(!cg_header_forwardable("Cookie"));
    ck_assert(!cg_header_forwardable("X-Forwarded-For"));
    ck_assert(!cg_header_forwardable("x-claude-code-session-id"));
    ck_assert(!cg_header_forwardable("Accept-Encoding"));
    ck_assert(!cg_header_forwardable("x-stainless"));
    ck_assert(!cg_header_forwardable(NULL));
}
END_TEST

Suite *unit_suite_cg_util(void)
{
    Suite *s = suite_create("cg_util");
    TCase *tc = tcase_create("util");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, request_id_rules);
    tcase_add_test(tc, uuid4_shape);
    tcase_add_test(tc, secret_from_env);
    tcase_add_test(tc, secret_from_file);
    tcase_add_test(tc, secret_inline_refused);
    tcase_add_test(tc, secret_equal);
    tcase_add_test(tc, error_envelope_shape);
    tcase_add_test(tc, header_allowlist);
    suite_add_tcase(s, tc);
    return s;
}
