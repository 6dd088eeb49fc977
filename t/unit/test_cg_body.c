/* Unit tests for cg_body: the reference's refusals of a Messages body. */
#include <string.h>

#include "unit.h"
#include "cg_body.h"

static const char *check(const char *body, cg_body_info_t *info)
{
    return cg_body_check(unit_pool, body, strlen(body), info);
}

START_TEST(valid_body)
{
    cg_body_info_t info = {0};

    ck_assert_ptr_null(check("{\"model\":\"claude-sonnet-4-5\",\"stream\":true,\"x\":[1]}", &info));
    ck_assert_str_eq(info.model, "claude-sonnet-4-5");
    ck_assert_int_eq(info.stream, 1);
    ck_assert_ptr_null(check("{\"model\":\"m\",\"stream\":\"true\"}", &info));
    ck_assert_int_eq(info.stream, 0); /* only a JSON true streams */
    ck_assert_ptr_null(check("{\"model\":\"m\"}", NULL));
}
END_TEST

START_TEST(refusals)
{
    ck_assert_str_eq(check("{nope", NULL), "invalid JSON");
    ck_assert_str_eq(check("", NULL), "invalid JSON");
    ck_assert_str_eq(check("{\"model\":\"a\"} trailing", NULL), "invalid JSON");
    ck_assert_str_eq(check("[1,2]", NULL), "request body must be a JSON object");
    ck_assert_str_eq(check("\"str\"", NULL), "invalid JSON"); /* jansson wants a container */
    ck_assert_str_eq(check("{}", NULL), "model is required");
    ck_assert_str_eq(check("{\"model\":null}", NULL), "model is required");
    ck_assert_str_eq(check("{\"model\":\"\"}", NULL), "model is required");
    ck_assert_str_eq(check("{\"model\":42}", NULL), "model must be a string");
    ck_assert_str_eq(check("{\"model\":[\"a\"]}", NULL), "model must be a string");
}
END_TEST

START_TEST(duplicate_keys_refused)
{
    /* jansson would keep the last, an upstream might keep the first */
    ck_assert_str_eq(check("{\"model\":\"a\",\"model\":\"b\"}", NULL), "invalid JSON");
    ck_assert_str_eq(check("{\"model\":\"a\",\"m\":{\"k\":1,\"k\":2}}", NULL), "invalid JSON");
}
END_TEST

START_TEST(embedded_nul_refused)
{
    const char body[] = "{\"model\":\"a\\u0000b\"}";

    ck_assert_ptr_nonnull(cg_body_check(unit_pool, body, sizeof(body) - 1, NULL));
}
END_TEST

START_TEST(model_replaced_in_place)
{
    const char *body = "{ \"max_tokens\": 10, \"mod\\u0065l\" : \"claude-sonnet-4-5\" ,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"model\"}],"
                       "\"metadata\":{\"model\":\"x\"},\"temperature\":0.7}";
    apr_size_t len;
    const char *out =
        cg_body_set_model(unit_pool, body, strlen(body), "claude-sonnet-4-5-20250929", &len);

    ck_assert_str_eq(out, "{ \"max_tokens\": 10, \"mod\\u0065l\" : "
                          "\"claude-sonnet-4-5-20250929\" ,\"messages\":[{\"role\":\"user\","
                          "\"content\":\"model\"}],\"metadata\":{\"model\":\"x\"},"
                          "\"temperature\":0.7}");
    ck_assert_uint_eq(len, strlen(out));
    out = cg_body_set_model(unit_pool,
                            "{\"a\":[1,{\"b\":\"}\"}],\"n\":-1.5e3,\"t\":true,"
                            "\"model\":\"m\"}",
                            51, "q\"x", &len);
    ck_assert_str_eq(out, "{\"a\":[1,{\"b\":\"}\"}],\"n\":-1.5e3,\"t\":true,"
                          "\"model\":\"q\\\"x\"}");
    ck_assert_ptr_null(cg_body_set_model(unit_pool, "{\"a\":1}", 7, "m", &len));
}
END_TEST

Suite *unit_suite_cg_body(void)
{
    Suite *s = suite_create("cg_body");
    TCase *tc = tcase_create("body");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, valid_body);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, duplicate_keys_refused);
    tcase_add_test(tc, embedded_nul_refused);
    tcase_add_test(tc, model_replaced_in_place);
    suite_add_tcase(s, tc);
    return s;
}
