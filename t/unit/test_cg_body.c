/* Unit tests for cg_body: the reference's refusals of a Messages body, and
 * the scanner held against jansson, whose json_loadb() it replaces: a table
 * of tricky bodies, then hundreds of thousands of mutated and generated ones,
 * each of which must get the same answer from both (accept or refuse, the
 * message, the model, stream and max_tokens). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>
#include <jansson.h>

#include "unit.h"
#include "cg_body.h"
#include "../fuzz/body_oracle.h"

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

/* --- jansson as the oracle -------------------------------------------------- */

/* the body, escaped and cut short, for a failure message */
static const char *shown(apr_pool_t *p, const char *buf, apr_size_t len)
{
    char *out = apr_palloc(p, 4 * 400 + 32), *o = out;
    apr_size_t i;

    for (i = 0; i < len && i < 400; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            *o++ = (char)c;
        }
        else {
            o += sprintf(o, "\\x%02x", c);
        }
    }
    strcpy(o, i < len ? "..." : "");
    return out;
}

/* Checks one body against jansson; returns whether it was accepted. */
static int same_as_jansson(apr_pool_t *p, const char *buf, apr_size_t len)
{
    cg_body_info_t a = {"unset", 7, 7}, b = {"unset", 7, 7};
    const char *ea = cg_body_check(p, buf, len, &a);
    const char *eb = body_oracle_check(p, buf, len, &b);

    if ((ea == NULL) != (eb == NULL) || (ea != NULL && strcmp(ea, eb) != 0)) {
        ck_abort_msg("scanner says %s, jansson %s, on %s (%lu bytes)", ea ? ea : "valid",
                     eb ? eb : "valid", shown(p, buf, len), (unsigned long)len);
    }
    if (ea == NULL &&
        (strcmp(a.model, b.model) != 0 || a.stream != b.stream || a.max_tokens != b.max_tokens)) {
        ck_abort_msg("outputs differ: model %s/%s stream %d/%d max_tokens %lld/%lld on %s", a.model,
                     b.model, a.stream, b.stream, a.max_tokens, b.max_tokens, shown(p, buf, len));
    }
    if (ea != NULL && (strcmp(a.model, "unset") != 0 || a.stream != 7 || a.max_tokens != 7)) {
        ck_abort_msg("info written on a refusal: %s", shown(p, buf, len));
    }
    /* info is optional and changes nothing */
    if ((cg_body_check(p, buf, len, NULL) == NULL) != (ea == NULL)) {
        ck_abort_msg("the answer depends on info: %s", shown(p, buf, len));
    }
    return ea == NULL;
}

/* --- the table ---------------------------------------------------------------- */

#define VALID NULL
#define BAD "invalid JSON"
#define ARRAY "request body must be a JSON object"
#define REQ "model is required"
#define STR "model must be a string"
/* a body with its exact length: some hold NUL bytes */
#define B(s, e)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1, e                                                                        \
    }
/* a member beside a model */
#define M(v, e) B("{\"model\":\"m\",\"x\":" v "}", e)

typedef struct {
    const char *body;
    apr_size_t len;
    const char *expect;
} body_case_t;

/* the real whose decimal strtod() first rounds to infinity, 2^1024 - 2^970 */
#define T_DIGITS                                                                                   \
    "17976931348623158079372897140530341507993413271003782693617377898044496829276475094664901"    \
    "79775872070963302864166928879109465555478519404026306574886715058206819089020007083836762"    \
    "73854845817711531764475730270069855571366959622842914819860834936475292719074168444365510"    \
    "704342711559699508093042880177904174497792"
#define T_BELOW                                                                                    \
    "17976931348623158079372897140530341507993413271003782693617377898044496829276475094664901"    \
    "79775872070963302864166928879109465555478519404026306574886715058206819089020007083836762"    \
    "73854845817711531764475730270069855571366959622842914819860834936475292719074168444365510"    \
    "704342711559699508093042880177904174497791"

static const body_case_t body_cases[] = {
    /* whitespace and structure */
    B(" \t\r\n{\"model\":\"m\"} \t\r\n", VALID),
    B("{\"model\":\"m\"}\f", BAD),
    B("\f{\"model\":\"m\"}", BAD),
    B("{\"model\":\"m\"}\v", BAD),
    B("\xEF\xBB\xBF{\"model\":\"m\"}", BAD),
    B("{\"model\":\"m\",}", BAD),
    B("{,\"model\":\"m\"}", BAD),
    B("{\"model\" \"m\"}", BAD),
    B("{\"model\"::\"m\"}", BAD),
    B("{\"model\":\"m\" \"x\":1}", BAD),
    B("{\"model\":\"m\"}}", BAD),
    B("{\"model\":\"m\"}{}", BAD),
    B("{\"model\":\"m\"", BAD),
    B("{\"model\":'m'}", BAD),
    B("{model:\"m\"}", BAD),
    B("{", BAD),
    B("}", BAD),
    B("[", BAD),
    B("]", BAD),
    B("", BAD),
    B("   ", BAD),
    B("[]", ARRAY),
    B(" [ ] ", ARRAY),
    B("[{\"model\":\"m\"}]", ARRAY),
    B("{}", REQ),
    B("{ }", REQ),
    B("\"m\"", BAD),
    B("1", BAD),
    B("true", BAD),
    B("null", BAD),
    M("[1,]", BAD),
    M("[,1]", BAD),
    M("[1 2]", BAD),
    M("[1,,2]", BAD),
    M("{\"a\":}", BAD),
    M("{\"a\"}", BAD),
    M("{1:2}", BAD),
    M("[[[]],{},[{}]]", VALID),
    /* literals */
    M("true", VALID),
    M("false", VALID),
    M("null", VALID),
    M("tru", BAD),
    M("True", BAD),
    M("truee", BAD),
    M("nul", BAD),
    M("NULL", BAD),
    M("falsetrue", BAD),
    M("true1", BAD),
    M("true false", BAD),
    /* numbers */
    M("0", VALID),
    M("-0", VALID),
    M("-0.0", VALID),
    M("01", BAD),
    M("-01", BAD),
    M("00", BAD),
    M("-", BAD),
    M("-a", BAD),
    M("--1", BAD),
    M("+1", BAD),
    M("1.", BAD),
    M(".5", BAD),
    M("1.e3", BAD),
    M("1e", BAD),
    M("1e+", BAD),
    M("1e-", BAD),
    M("1E5", VALID),
    M("1e+5", VALID),
    M("1e-5", VALID),
    M("1.0e0", VALID),
    M("0.5", VALID),
    M("0e0", VALID),
    M("0x10", BAD),
    M("1.5.5", BAD),
    M("1e5e5", BAD),
    M("1e5.5", BAD),
    M("Infinity", BAD),
    M("-Infinity", BAD),
    M("NaN", BAD),
    M("9223372036854775807", VALID),
    M("9223372036854775808", BAD),
    M("-9223372036854775808", VALID),
    M("-9223372036854775809", BAD),
    M("99999999999999999999999", BAD),
    M("9223372036854775807.0", VALID),
    M("9223372036854775808e0", VALID),
    M("1e308", VALID),
    M("1e309", BAD),
    M("-1e309", BAD),
    M("1.7976931348623157e308", VALID),
    M("1.7976931348623158e308", VALID),
    M("1.797693134862315807e308", VALID),
    M("1.797693134862315808e308", BAD),
    M(T_DIGITS, BAD), /* an integer: too big for a long long */
    M(T_DIGITS ".0", BAD),
    M(T_DIGITS "e0", BAD),
    M("-" T_DIGITS ".0", BAD),
    M(T_BELOW ".0", VALID),
    M("-" T_BELOW "e0", VALID),
    M(T_BELOW "999999999999999999999999999999e-30", VALID),
    M(T_DIGITS "0000000000000000000000000000001e-31", BAD),
    M(T_DIGITS ".0000000000000000000000000000001", BAD),
    M(T_BELOW ".999999999999999999999999999999", VALID),
    M("0." T_DIGITS "e309", BAD),
    M("0." T_BELOW "e309", VALID),
    M("0.000" T_DIGITS "e312", BAD),
    M("100000e304", BAD),
    M("0.0000000001e318", VALID),
    M("1e-400", VALID),
    M("-1e-400", VALID),
    M("1e-320", VALID),
    M("0e99999999999999999999", VALID),
    M("0.000e99999999999999999999", VALID),
    M("1e99999999999999999999", BAD),
    M("1e-99999999999999999999", VALID),
    M("1e00000000000000000000000308", VALID),
    M("1e00000000000000000000000309", BAD),
    /* strings: raw bytes */
    M("\"a\x01\"", BAD),
    M("\"a\x1f\"", BAD),
    M("\"a\x7f\"", VALID),
    M("\"a\tb\"", BAD),
    M("\"a\nb\"", BAD),
    M("\"a\rb\"", BAD),
    /* escapes */
    M("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", VALID),
    M("\"\\a\"", BAD),
    M("\"\\x41\"", BAD),
    M("\"\\'\"", BAD),
    M("\"\\0\"", BAD),
    M("\"\\U0041\"", BAD),
    M("\"\\\"", BAD),
    M("\"\\u041\"", BAD),
    M("\"\\u00g0\"", BAD),
    M("\"\\u00E9\\u00e9\"", VALID),
    M("\"\\u0001\"", VALID),
    M("\"\\u0000\"", BAD),
    M("\"a\\u0000b\"", BAD),
    M("\"\\uD83D\\uDE00\"", VALID),
    M("\"\\ud83d\\ude00\"", VALID),
    M("\"\\uDBFF\\uDFFF\"", VALID),
    M("\"\\uD800\\uDC00\"", VALID),
    M("\"\\uD83D\"", BAD),
    M("\"\\uDE00\"", BAD),
    M("\"\\uDE00\\uD83D\"", BAD),
    M("\"\\uD83D\\uD83D\"", BAD),
    M("\"\\uD83D\\u0041\"", BAD),
    M("\"\\uD83D\\u0000\"", BAD),
    M("\"\\uD83Dx\"", BAD),
    M("\"\\uD83D\\n\"", BAD),
    M("\"\\uD83D\\\\uDE00\"", BAD),
    M("\"\\uD83D\\uDE0\"", BAD),
    M("\"\\uFFFF\\uFFFE\"", VALID),
    /* strings: UTF-8 */
    M("\"\xC3\xA9\"", VALID),
    M("\"\xC0\x80\"", BAD),
    M("\"\xC1\xBF\"", BAD),
    M("\"\xC2\x80\"", VALID),
    M("\"\xDF\xBF\"", VALID),
    M("\"\xE0\x80\x80\"", BAD),
    M("\"\xE0\x9F\xBF\"", BAD),
    M("\"\xE0\xA0\x80\"", VALID),
    M("\"\xED\x9F\xBF\"", VALID),
    M("\"\xED\xA0\x80\"", BAD),
    M("\"\xED\xBF\xBF\"", BAD),
    M("\"\xEE\x80\x80\"", VALID),
    M("\"\xEF\xBF\xBF\"", VALID),
    M("\"\xF0\x8F\xBF\xBF\"", BAD),
    M("\"\xF0\x90\x80\x80\"", VALID),
    M("\"\xF4\x8F\xBF\xBF\"", VALID),
    M("\"\xF4\x90\x80\x80\"", BAD),
    M("\"\xF5\x80\x80\x80\"", BAD),
    M("\"\xF8\x88\x80\x80\x80\"", BAD),
    M("\"\xFF\"", BAD),
    M("\"\xFE\"", BAD),
    M("\"\x80\"", BAD),
    M("\"\xBF\"", BAD),
    M("\"\xC3\"", BAD),
    M("\"\xC3\xC3\xA9\"", BAD),
    M("\"\xE2\x82\"", BAD),
    M("\"\xF0\x9F\x98\"", BAD),
    M("\"\xC3\x41\"", BAD),
    B("{\"model\":\"m\",\"x\":\"\xC3", BAD),
    B("{\"model\":\"m\",\"x\":\"\xE2\x82", BAD),
    M("\xC3\xA9", BAD),
    B("{\"model\":\"m\"}\xC3\xA9", BAD),
    /* NUL bytes: jansson loses a NUL right after a number or a word */
    B("{\"model\":\"m\",\"x\":1\0}", VALID),
    B("{\"model\":\"m\",\"x\":-0\0}", VALID),
    B("{\"model\":\"m\",\"x\":1.5\0}", VALID),
    B("{\"model\":\"m\",\"x\":1e5\0}", VALID),
    B("{\"model\":\"m\",\"x\":true\0}", VALID),
    B("{\"model\":\"m\",\"x\":false\0}", VALID),
    B("{\"model\":\"m\",\"x\":null\0}", VALID),
    B("{\"model\":\"m\",\"x\":[1\0,2\0]}", VALID),
    B("{\"model\":\"m\",\"x\":1\0 }", VALID),
    B("{\"model\":\"m\",\"x\":1\0\0}", BAD),
    B("{\"model\":\"m\",\"x\":1 \0}", BAD),
    B("{\"model\":\"m\",\"x\":\"a\"\0}", BAD),
    B("{\"model\":\"m\",\"x\":[]\0}", BAD),
    B("{\"model\":\"m\",\"x\":-\0}", BAD),
    B("{\"model\":\"m\",\"x\":1.\0}", BAD),
    B("{\"model\":\"m\",\"x\":1e\0}", BAD),
    B("{\"model\":\"m\",\"x\":nu\0ll}", BAD),
    B("{\"model\":\"m\",\"x\":\"a\0\"}", BAD),
    B("{\"model\":\"m\"\0}", BAD),
    B("{\"model\":\"m\"}\0", BAD),
    B("\0{\"model\":\"m\"}", BAD),
    B("{\0\"model\":\"m\"}", BAD),
    B("{\"model\":\"m\",\"max_tokens\":5\0}", VALID),
    B("{\"model\":\"m\",\"stream\":true\0}", VALID),
    /* duplicate keys, compared decoded, at every depth */
    B("{\"model\":\"a\",\"model\":\"b\"}", BAD),
    B("{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", BAD),
    B("{\"mod\\u0065l\":\"a\",\"model\":\"b\"}", BAD),
    B("{\"model\":\"m\",\"a\":1,\"\\u0061\":2}", BAD),
    B("{\"model\":\"m\",\"\\u00e9\":1,\"\xC3\xA9\":2}", BAD),
    B("{\"model\":\"m\",\"\\u00E9\":1,\"\\u00e9\":2}", BAD),
    B("{\"model\":\"m\",\"\\/\":1,\"/\":2}", BAD),
    B("{\"model\":\"m\",\"\\ud83d\\ude00\":1,\"\xF0\x9F\x98\x80\":2}", BAD),
    B("{\"model\":\"m\",\"\\n\":1,\"\\u000a\":2}", BAD),
    B("{\"model\":\"m\",\"\":1,\"\":2}", BAD),
    B("{\"\":1,\"model\":\"m\"}", VALID),
    B("{\"model\":\"m\",\"a\":1,\"A\":2}", VALID),
    B("{\"model\":\"m\",\"a\":1,\"a \":2}", VALID),
    B("{\"model\":\"m\",\"ab\":1,\"a\":2,\"b\":3}", VALID),
    B("{\"model\":\"m\",\"x\":{\"a\":{\"b\":{\"c\":{\"d\":1,\"d\":2}}}}}", BAD),
    B("{\"model\":\"m\",\"x\":[[{\"k\":1}],[{\"k\":1,\"k\":1}]]}", BAD),
    B("{\"model\":\"m\",\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}", VALID),
    B("{\"model\":\"m\",\"x\":[{\"a\":1},{\"a\":1}]}", VALID),
    B("{\"model\":\"m\",\"x\":{\"a\":{},\"b\":1},\"a\":{}}", VALID),
    B("{\"model\":\"m\",\"x\":{\"a\":{\"z\":1},\"a\":2}}", BAD),
    B("{\"model\":\"m\",\"x\":{\"\\u0000\":1}}", BAD),
    /* the model */
    B("{\"model\":\"\\u00e9\"}", VALID),
    B("{\"mod\\u0065l\":\"x\"}", VALID),
    B("{\"model\":\"a\\\"b\"}", VALID),
    B("{\"model\":\"\\ud83d\\ude00 \\/\\n\"}", VALID),
    B("{\"model\":\"\\u0000\"}", BAD),
    B("{\"model\":null}", REQ),
    B("{\"model\":\"\"}", REQ),
    B("{\"model\":42}", STR),
    B("{\"model\":-1.5}", STR),
    B("{\"model\":true}", STR),
    B("{\"model\":false}", STR),
    B("{\"model\":{}}", STR),
    B("{\"model\":[]}", STR),
    B("{\"model\":{\"model\":\"m\"}}", STR),
    B("{\"Model\":\"m\"}", REQ),
    B("{\"model \":\"m\"}", REQ),
    B("{\"x\":{\"model\":\"m\"}}", REQ),
    B("{\"x\":[\"model\",\"m\"]}", REQ),
    /* precedence: the whole body is JSON first */
    B("{\"model\":\"m\",\"x\":tru}", BAD),
    B("{\"model\":42,\"x\":01}", BAD),
    B("{\"x\":01}", BAD),
    B("[{\"model\":1},01]", BAD),
    B("{\"model\":null,\"model\":\"m\"}", BAD),
    /* what the gateway reads */
    B("{\"model\":\"m\",\"max_tokens\":1024,\"stream\":true}", VALID),
    B("{\"model\":\"m\",\"max_tokens\":0}", VALID),
    B("{\"model\":\"m\",\"max_tokens\":-0}", VALID),
    B("{\"model\":\"m\",\"max_tokens\":-1}", VALID),
    B("{\"model\":\"m\",\"max_tokens\":1.5}", VALID),
    B("{\"model\":\"m\",\"max_tokens\":1e3}", VALID),
    B("{\"model\":\"m\",\"max_tokens\":\"1024\"}", VALID),
    B("{\"model\":\"m\",\"max_tokens\":null}", VALID),
    B("{\"model\":\"m\",\"max_tokens\":9223372036854775807}", VALID),
    B("{\"model\":\"m\",\"max_\\u0074okens\":7}", VALID),
    B("{\"model\":\"m\",\"x\":{\"max_tokens\":7,\"stream\":true}}", VALID),
    B("{\"model\":\"m\",\"stream\":false}", VALID),
    B("{\"model\":\"m\",\"stream\":1}", VALID),
    B("{\"model\":\"m\",\"stream\":null}", VALID),
    B("{\"model\":\"m\",\"stream\":[true]}", VALID),
    B("{\"model\":\"m\",\"str\\u0065am\":true}", VALID),
};

START_TEST(table_as_jansson)
{
    apr_size_t k;

    for (k = 0; k < sizeof(body_cases) / sizeof(body_cases[0]); k++) {
        const body_case_t *c = &body_cases[k];
        const char *got = cg_body_check(unit_pool, c->body, c->len, NULL);
        const char *jansson = body_oracle_check(unit_pool, c->body, c->len, NULL);

        /* the expectation is checked on jansson too: the table says what it does */
        if ((got == NULL) != (c->expect == NULL) || (got && strcmp(got, c->expect) != 0) ||
            (jansson == NULL) != (c->expect == NULL) ||
            (jansson && strcmp(jansson, c->expect) != 0)) {
            ck_abort_msg("case %lu %s: expected %s, scanner %s, jansson %s", (unsigned long)k,
                         shown(unit_pool, c->body, c->len), c->expect ? c->expect : "valid",
                         got ? got : "valid", jansson ? jansson : "valid");
        }
        same_as_jansson(unit_pool, c->body, c->len);
    }
}
END_TEST

START_TEST(outputs)
{
    cg_body_info_t info;
    static const struct {
        const char *body;
        const char *model;
        int stream;
        long long max_tokens;
    } cases[] = {
        {"{\"model\":\"m\",\"max_tokens\":1024,\"stream\":true}", "m", 1, 1024},
        {"{\"model\":\"m\",\"max_tokens\":-0}", "m", 0, 0},
        {"{\"model\":\"m\",\"max_tokens\":-1}", "m", 0, -1},
        {"{\"model\":\"m\",\"max_tokens\":1e3}", "m", 0, -1},
        {"{\"model\":\"m\",\"max_tokens\":\"5\"}", "m", 0, -1},
        {"{\"model\":\"m\",\"max_tokens\":9223372036854775807}", "m", 0, 9223372036854775807LL},
        {"{\"model\":\"m\",\"max_\\u0074okens\":7,\"str\\u0065am\":true}", "m", 1, 7},
        {"{\"model\":\"m\",\"x\":{\"max_tokens\":7,\"stream\":true}}", "m", 0, -1},
        {"{\"model\":\"m\",\"stream\":1}", "m", 0, -1},
        {"{\"mod\\u0065l\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\"}",
         "a\"b\\c/d\n\xC3\xA9\xF0\x9F\x98\x80", 0, -1},
        {"{\"model\":\"caf\xC3\xA9\"}", "caf\xC3\xA9", 0, -1},
    };
    apr_size_t k;

    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        memset(&info, 0x5A, sizeof(info));
        ck_assert_ptr_null(check(cases[k].body, &info));
        ck_assert_str_eq(info.model, cases[k].model);
        ck_assert_int_eq(info.stream, cases[k].stream);
        ck_assert_int_eq(info.max_tokens, cases[k].max_tokens);
        same_as_jansson(unit_pool, cases[k].body, strlen(cases[k].body));
    }
}
END_TEST

/* --- depth and size ------------------------------------------------------------- */

/* a string builder on a pool */
typedef struct {
    apr_pool_t *p;
    char *d;
    apr_size_t n, cap;
} sb_t;

static void sb_addn(sb_t *sb, const char *s, apr_size_t n)
{
    if (sb->n + n + 1 > sb->cap) {
        apr_size_t cap = sb->cap ? sb->cap : 256;
        char *d;

        while (cap < sb->n + n + 1) {
            cap *= 2;
        }
        d = apr_palloc(sb->p, cap);
        if (sb->n > 0) {
            memcpy(d, sb->d, sb->n);
        }
        sb->d = d;
        sb->cap = cap;
    }
    memcpy(sb->d + sb->n, s, n);
    sb->n += n;
    sb->d[sb->n] = '\0';
}

static void sb_add(sb_t *sb, const char *s)
{
    sb_addn(sb, s, strlen(s));
}

static void sb_addf(sb_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_addf(sb_t *sb, const char *fmt, ...)
{
    va_list ap;
    const char *s;

    va_start(ap, fmt);
    s = apr_pvsprintf(sb->p, fmt, ap);
    va_end(ap);
    sb_add(sb, s);
}

START_TEST(depth_limit_as_jansson)
{
    /* jansson counts values, scalars too: 2048 empty arrays pass, a scalar
     * inside 2048 does not */
    static const char *const inner[] = {"", "1", "\"s\"", "[]", "{}", "{\"a\":1}"};
    int d, k, wrap;

    for (wrap = 0; wrap < 2; wrap++) {
        for (d = 2040; d <= 2052; d++) {
            for (k = 0; k < 6; k++) {
                sb_t sb = {unit_pool};
                int j;

                if (wrap) { /* inside a body: objects and arrays mixed */
                    sb_add(&sb, "{\"model\":\"m\",\"x\":");
                }
                for (j = 0; j < d - wrap; j++) {
                    sb_add(&sb, (j + k) % 3 == 0 && wrap ? "{\"a\":" : "[");
                }
                sb_add(&sb, inner[k]);
                for (j = d - wrap - 1; j >= 0; j--) {
                    sb_add(&sb, (j + k) % 3 == 0 && wrap ? "}" : "]");
                }
                if (wrap) {
                    sb_add(&sb, "}");
                }
                same_as_jansson(unit_pool, sb.d, sb.n);
            }
        }
    }
    {
        sb_t sb = {unit_pool};

        for (d = 0; d < 2048; d++) {
            sb_add(&sb, "[");
        }
        for (d = 0; d < 2048; d++) {
            sb_add(&sb, "]");
        }
        ck_assert_str_eq(cg_body_check(unit_pool, sb.d, sb.n, NULL), ARRAY);
        sb.d[2047] = '1';
        ck_assert_str_eq(cg_body_check(unit_pool, sb.d, sb.n, NULL), BAD);
    }
}
END_TEST

/* n objects of n/2 keys inside one of n keys, the outer one's last key a
 * duplicate of one before the inner objects when dup is set */
static const char *nested(apr_pool_t *p, int n, int dup, apr_size_t *len)
{
    sb_t sb = {p};
    int k, j;

    sb_add(&sb, "{\"model\":\"m\",\"o\":{");
    for (k = 0; k < n; k++) {
        sb_addf(&sb, "\"a%d\":{", k);
        for (j = 0; j < n / 2; j++) {
            sb_addf(&sb, "%s\"a%d\":[{\"a%d\":1,\"b\":2}]", j ? "," : "", j, j);
        }
        sb_add(&sb, "},");
    }
    sb_addf(&sb, "\"z\":0,\"%s%d\":1}}", dup ? "a" : "b", n / 2);
    *len = sb.n;
    return sb.d;
}

START_TEST(many_keys)
{
    sb_t sb = {unit_pool};
    apr_size_t len;
    apr_time_t start;
    int k, n;

    /* one flat object: milliseconds, where a linear search per key would
     * take tens of seconds (the bound leaves room for sanitizers) */
    sb_add(&sb, "{\"model\":\"m\"");
    for (k = 0; k < 200000; k++) {
        sb_addf(&sb, ",\"key%d\":%d", k, k);
    }
    sb_add(&sb, "}");
    start = apr_time_now();
    ck_assert_ptr_null(cg_body_check(unit_pool, sb.d, sb.n, NULL));
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(2));
    ck_assert_int_eq(same_as_jansson(unit_pool, sb.d, sb.n), 1);
    sb.n--;
    sb_add(&sb, ",\"key1999\\u0039\":0}"); /* key19999, escaped */
    ck_assert_int_eq(same_as_jansson(unit_pool, sb.d, sb.n), 0);

    /* nested big objects: an outer table outlives the inner ones */
    for (n = 10; n < 200; n = n * 3 / 2) {
        const char *body = nested(unit_pool, n, 0, &len);

        ck_assert_int_eq(same_as_jansson(unit_pool, body, len), 1);
        body = nested(unit_pool, n, 1, &len);
        ck_assert_int_eq(same_as_jansson(unit_pool, body, len), 0);
    }

    /* many objects just past the linear search, some with a late duplicate */
    for (k = 0; k < 300; k++) {
        sb_t ob = {unit_pool};
        int j, keys = 10 + k % 60;

        sb_add(&ob, "{\"model\":\"m\",\"list\":[");
        for (n = 0; n < 5; n++) {
            sb_add(&ob, n ? ",{" : "{");
            for (j = 0; j < keys; j++) {
                sb_addf(&ob, "%s\"k%d\":{\"k%d\":%d}", j ? "," : "", j, j, j);
            }
            if ((k + n) % 7 == 0) {
                sb_addf(&ob, ",\"k%d\":0", (k * 31 + n) % keys);
            }
            sb_add(&ob, "}");
        }
        sb_add(&ob, "]}");
        same_as_jansson(unit_pool, ob.d, ob.n);
    }
}
END_TEST

/* --- mutations ------------------------------------------------------------------ */

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64*: fixed seeds, the same cases on every run */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static const char *const fragments[] = {
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "0",
    "-",
    "e",
    "E",
    ".",
    "\\u",
    "1",
    "9",
    " ",
    "\n",
    "\t",
    "\\u0000",
    "\\ud83d",
    "\\ude00",
    "\\u00e9",
    "\\n",
    "\xC3",
    "\xA9",
    "\xE2\x82",
    "\xF4\x90",
    "\xED\xA0",
    "\x00",
    "\xFF",
    "true",
    "null",
    "\"model\"",
    "\"mod\\u0065l\"",
    ",\"a\":1",
    "\"\":",
    "{\"a\":1,\"a\":2}",
    "[[[",
    "]]]",
    "1e309",
    "-0",
    "1.5e-400",
    "9223372036854775808",
};

static const char *const values[] = {
    "\"claude-x\"",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1e2",
    "1024",
    "1.5",
    "[]",
    "{}",
    "\"\"",
    "\"mod\\u0065l\"",
    "\"\\ud83d\\ude00\"",
    "1e400",
    "1e-400",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "\"\\u0000\"",
    "\"a\\\"b\"",
    "[true]",
    "{\"model\":\"x\"}",
    "\"caf\xC3\xA9\"",
    "tru",
    "01",
};

static const char *const members[] = {"\"model\"",        "\"stream\"",
                                      "\"max_tokens\"",   "\"mod\\u0065l\"",
                                      "\"str\\u0065am\"", "\"max_tokens\\u0020\""};

/* Mutate src (n bytes) into out (room for n + 4096): a few byte flips,
 * fragment insertions, deletions, truncations, duplicated slices and
 * replaced or added top-level members. Returns the new length. */
static apr_size_t mutate(uint64_t *s, const char *src, apr_size_t n, char *out)
{
    apr_size_t len = n, k, steps = 1 + rnd(s) % 3;

    memcpy(out, src, n);
    for (k = 0; k < steps; k++) {
        apr_size_t pos = len ? rnd(s) % (len + 1) : 0, l;
        const char *f;

        switch (rnd(s) % 9) {
        case 0: /* a byte flipped */
            if (pos < len) {
                out[pos] = (char)(rnd(s) % 4 ? fragments[rnd(s) % 30][0] : (char)rnd(s));
            }
            break;
        case 1: /* a bit flipped */
            if (pos < len) {
                out[pos] ^= (char)(1 << (rnd(s) % 8));
            }
            break;
        case 2: /* a fragment inserted */
        case 3:
            f = fragments[rnd(s) % (sizeof(fragments) / sizeof(fragments[0]))];
            l = f[0] ? strlen(f) : 1; /* "\x00" is one NUL */
            if (len + l <= n + 4096) {
                memmove(out + pos + l, out + pos, len - pos);
                memcpy(out + pos, f, l);
                len += l;
            }
            break;
        case 4: /* bytes deleted */
            l = 1 + rnd(s) % 8;
            if (pos + l <= len) {
                memmove(out + pos, out + pos + l, len - pos - l);
                len -= l;
            }
            break;
        case 5: /* cut short */
            if (rnd(s) % 4 == 0) {
                len = pos;
            }
            break;
        case 6: { /* a slice duplicated elsewhere: duplicate keys, nesting */
            apr_size_t from = len ? rnd(s) % len : 0;

            l = 1 + rnd(s) % 64;
            if (from + l > len) {
                l = len - from;
            }
            if (l > 0 && len + l <= n + 4096) {
                char tmp[64];

                memcpy(tmp, out + from, l);
                memmove(out + pos + l, out + pos, len - pos);
                memcpy(out + pos, tmp, l);
                len += l;
            }
            break;
        }
        case 7: { /* a top-level member's value replaced */
            const char *m = members[rnd(s) % 3], *hit;
            apr_size_t vs, ve;

            out[len] = '\0';
            hit = memchr(out, '\0', len) ? NULL : strstr(out, m);
            if (hit == NULL) {
                break;
            }
            vs = (apr_size_t)(hit - out) + strlen(m) + 1;
            if (vs > len) {
                break;
            }
            for (ve = vs; ve < len && out[ve] != ',' && out[ve] != '}'; ve++) {
            }
            f = values[rnd(s) % (sizeof(values) / sizeof(values[0]))];
            l = strlen(f);
            if (vs <= ve && len - (ve - vs) + l <= n + 4096) {
                memmove(out + vs + l, out + ve, len - ve);
                memcpy(out + vs, f, l);
                len = len - (ve - vs) + l;
            }
            break;
        }
        case 8: { /* a member added after the opening brace */
            char add[128];

            l = (apr_size_t)snprintf(add, sizeof(add), "%s:%s,",
                                     members[rnd(s) % (sizeof(members) / sizeof(members[0]))],
                                     values[rnd(s) % (sizeof(values) / sizeof(values[0]))]);
            if (len > 0 && out[0] == '{' && len + l <= n + 4096) {
                memmove(out + 1 + l, out + 1, len - 1);
                memcpy(out + 1, add, l);
                len += l;
            }
            break;
        }
        }
    }
    return len;
}

/* The model swapped in an accepted body, checked with jansson: the new model
 * there, every other member as it was. */
static void set_model_as_jansson(apr_pool_t *p, const char *buf, apr_size_t len)
{
    static const char *const models[] = {"claude-x", "q\"x\\y/z", "caf\xC3\xA9\x01\x1f\t\n"};
    const char *model = models[len % 3];
    apr_size_t olen;
    const char *out = cg_body_set_model(p, buf, len, model, &olen);
    json_t *a, *b, *m;

    ck_assert_msg(out != NULL, "no model to replace in %s", shown(p, buf, len));
    a = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    b = json_loadb(out, olen, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_msg(b != NULL, "swapped body refused: %s", shown(p, out, olen));
    m = json_object_get(b, "model");
    ck_assert_msg(json_is_string(m) && strcmp(json_string_value(m), model) == 0,
                  "wrong model in %s", shown(p, out, olen));
    json_object_del(a, "model");
    json_object_del(b, "model");
    ck_assert_msg(json_equal(a, b), "more than the model changed: %s", shown(p, out, olen));
    json_decref(a);
    json_decref(b);
}

/* the ~200 byte body of a short question */
static const char small_body[] =
    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"stream\":true,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"Hello, Claude! Say \\\"hi\\\" in "
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \\ud83d\\ude00\"}],"
    "\"metadata\":{\"user_id\":\"u1\"},\"temperature\":0.7}";

/* A realistic Claude Code body of about `size` bytes: system prompt, tools
 * with input schemas, nested content blocks, unicode and escapes. */
static const char *big_body(apr_pool_t *p, apr_size_t size, apr_size_t *len)
{
    sb_t sb = {p};
    int t, turn;

    sb_add(&sb, "{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\":32000,"
                "\"system\":[{\"type\":\"text\",\"text\":\"You are Claude Code, Anthropic's "
                "official CLI for Claude.\\n\\nIMPORTANT: Assist with defensive security tasks "
                "only.\\n\\t- Be concise \\u2014 use \\\"quotes\\\" and paths like "
                "C:\\\\Users\\\\me or \\/usr\\/bin.\\nna\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 "
                "\xF0\x9F\x9A\x80\",\"cache_control\":{\"type\":\"ephemeral\"}}],\"tools\":[");
    for (t = 0; t < 8; t++) {
        sb_addf(&sb,
                "%s{\"name\":\"Tool%d\",\"description\":\"Reads a file from the local "
                "filesystem. Usage:\\n- The file_path parameter must be an absolute path\\n- "
                "Lines longer than 2000 characters are truncated \\u00e9\\u00e8\","
                "\"input_schema\":{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":"
                "\"string\",\"description\":\"The absolute path to the file\"},\"offset\":{"
                "\"type\":\"number\",\"minimum\":0},\"limit\":{\"type\":\"integer\","
                "\"maximum\":1e4},\"mode\":{\"type\":\"string\",\"enum\":[\"read\",\"write\","
                "\"append\"]},\"edits\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                "\"properties\":{\"old_string\":{\"type\":\"string\"},\"new_string\":{"
                "\"type\":\"string\"},\"replace_all\":{\"type\":\"boolean\",\"default\":false}},"
                "\"required\":[\"old_string\",\"new_string\"],\"additionalProperties\":false},"
                "\"minItems\":1}},\"required\":[\"file_path\"],\"additionalProperties\":false,"
                "\"$schema\":\"http://json-schema.org/draft-07/schema#\"}}",
                t ? "," : "", t);
    }
    sb_add(&sb, "],\"messages\":[");
    for (turn = 0; sb.n < size; turn++) {
        sb_addf(&sb,
                "%s{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Fix the bug "
                "in main.c, turn %d \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \\ud83d\\ude00\"}]},"
                "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"Let "
                "me read the file first.\",\"signature\":\"EqQBCkYIBxgCKkBx9/+a==\"},"
                "{\"type\":\"tool_use\",\"id\":\"toolu_01A%d\",\"name\":\"Tool1\",\"input\":{"
                "\"file_path\":\"/src/main.c\",\"offset\":0,\"limit\":2000,\"edits\":[{"
                "\"old_string\":\"int x = 0;\",\"new_string\":\"int x = -1.5e-3;\"}]}}]},"
                "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
                "\"toolu_01A%d\",\"content\":[{\"type\":\"text\",\"text\":\"     1\\t#include "
                "<stdio.h>\\n     2\\tint main(void)\\n     3\\t{\\n     4\\t    printf(\\\"%%s"
                "\\\\n\\\", \\\"hi\\\");\\n     5\\t}\\r\\n\"}],\"is_error\":false}]}",
                turn ? "," : "", turn, turn, turn);
    }
    sb_add(&sb, "],\"metadata\":{\"user_id\":\"user_0a1b_account__session_9f8e\"},"
                "\"temperature\":1,\"stream\":true,\"thinking\":{\"type\":\"enabled\","
                "\"budget_tokens\":31999}}");
    *len = sb.n;
    return sb.d;
}

/* a random JSON value, valid most of the time, with keys that repeat */
static void gen_value(uint64_t *s, sb_t *sb, int depth)
{
    static const char *const keys[] = {"\"a\"",        "\"\\u0061\"",    "\"b\"",
                                       "\"\xC3\xA9\"", "\"\\u00e9\"",    "\"model\"",
                                       "\"stream\"",   "\"max_tokens\"", "\"\""};
    /* the last three of each are invalid, and picked one time in 16 */
    static const char *const strings[] = {
        "\"\"",    "\"x\"",       "\"\\n\\t\\\"\"", "\"\\ud83d\\ude00\"", "\"\xC3\xA9\"",
        "\"\\/\"", "\"\\ud83d\"", "\"\xC3\"",       "\"\\u0000\""};
    static const char *const scalars[] = {
        "null",   "true",         "false",           "0",  "-0",    "1e2", "1.5",
        "1e-400", "\"claude-x\"", "\"mod\\u0065l\"", "01", "1e400", "tru"};
    char num[48];
    int k, n;

    int bad = rnd(s) % 16 == 0 ? 3 : 0;

    switch (rnd(s) % (depth > 6 ? 4 : 6)) {
    case 0:
        sb_add(sb, strings[rnd(s) % (6 + bad)]);
        break;
    case 1:
        sb_add(sb, scalars[rnd(s) % (10 + bad)]);
        break;
    case 2:
        /* integers past 2^63 are refused, a fraction makes them fine */
        snprintf(num, sizeof(num), "%s%llu%s", rnd(s) % 2 ? "-" : "",
                 (unsigned long long)(rnd(s) >> (1 + rnd(s) % 63)), rnd(s) % 4 ? "" : ".5e-3");
        sb_add(sb, num);
        if (rnd(s) % 16 == 0) {
            sb_addn(sb, "\0", 1);
        }
        break;
    case 3:
        sb_add(sb, rnd(s) % 2 ? "true" : "null");
        break;
    case 4:
        n = (int)(rnd(s) % 5);
        sb_add(sb, "[");
        for (k = 0; k < n; k++) {
            if (k) {
                sb_add(sb, ",");
            }
            gen_value(s, sb, depth + 1);
        }
        sb_add(sb, "]");
        break;
    default:
        n = (int)(rnd(s) % 5);
        sb_add(sb, "{");
        for (k = 0; k < n; k++) {
            if (rnd(s) % 4 == 0) { /* likely to repeat */
                sb_addf(sb, "%s%s:", k ? "," : "", keys[rnd(s) % 9]);
            }
            else {
                sb_addf(sb, "%s\"k%d\":", k ? "," : "", (int)(rnd(s) % 1000));
            }
            gen_value(s, sb, depth + 1);
        }
        sb_add(sb, "}");
        break;
    }
}

/* n mutants of body, each checked against jansson; returns how many passed */
static int mutants(uint64_t *s, apr_pool_t *p, const char *body, apr_size_t n, int count, int swaps)
{
    char *out = apr_palloc(p, n + 4096 + 1);
    apr_pool_t *scratch;
    int k, accepted = 0;

    apr_pool_create(&scratch, p);
    for (k = 0; k < count; k++) {
        apr_size_t len = mutate(s, body, n, out);

        if (same_as_jansson(scratch, out, len)) {
            accepted++;
            if (swaps) {
                set_model_as_jansson(scratch, out, len);
            }
        }
        apr_pool_clear(scratch);
    }
    apr_pool_destroy(scratch);
    return accepted;
}

START_TEST(mutants_as_jansson)
{
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    apr_size_t len;
    const char *mid = big_body(unit_pool, 5000, &len);
    apr_size_t mid_len = len;
    const char *big = big_body(unit_pool, 20000, &len);
    int accepted = 0;

    ck_assert_int_eq(same_as_jansson(unit_pool, small_body, sizeof(small_body) - 1), 1);
    ck_assert_int_eq(same_as_jansson(unit_pool, mid, mid_len), 1);
    ck_assert_int_eq(same_as_jansson(unit_pool, big, len), 1);
    ck_assert_uint_ge(len, 20000);
    accepted += mutants(&s, unit_pool, small_body, sizeof(small_body) - 1, 150000, 1);
    accepted += mutants(&s, unit_pool, mid, mid_len, 5000, 1);
    accepted += mutants(&s, unit_pool, big, len, 1500, 0);
    /* enough of them valid for the outputs to have been compared */
    ck_assert_int_gt(accepted, 25000);
}
END_TEST

START_TEST(generated_as_jansson)
{
    uint64_t s = 0xD1B54A32D192ED03ULL;
    apr_pool_t *scratch;
    int k, accepted = 0;

    apr_pool_create(&scratch, unit_pool);
    for (k = 0; k < 200000; k++) {
        sb_t sb = {scratch};
        char *out;
        apr_size_t len;

        sb_add(&sb, "{\"model\":");
        if (rnd(&s) % 4) {
            sb_add(&sb, rnd(&s) % 2 ? "\"claude-x\"" : "\"caf\\u00e9\\ud83d\\ude00\"");
        }
        else {
            gen_value(&s, &sb, 1);
        }
        for (int j = (int)(rnd(&s) % 4); j > 0; j--) {
            sb_addf(&sb, ",%s:", members[rnd(&s) % 6]);
            gen_value(&s, &sb, 1);
        }
        sb_add(&sb, "}");
        accepted += same_as_jansson(scratch, sb.d, sb.n);
        if (k % 4 == 0) {
            out = apr_palloc(scratch, sb.n + 4096 + 1);
            len = mutate(&s, sb.d, sb.n, out);
            same_as_jansson(scratch, out, len);
        }
        apr_pool_clear(scratch);
    }
    apr_pool_destroy(scratch);
    ck_assert_int_gt(accepted, 50000);
}
END_TEST

/* --- the model's encoding ------------------------------------------------------- */

START_TEST(model_encoded_as_jansson)
{
    static const char *const models[] = {
        "claude-sonnet-4-5",
        "q\"x",
        "back\\slash",
        "a/b",
        "\b\f\n\r\t",
        "\x01\x02\x1f\x7f",
        "caf\xC3\xA9 \xE2\x80\x94 \xF0\x9F\x98\x80",
        "\xC3",
        "\xED\xA0\x80",
        "\xF4\x90\x80\x80",
        "\xC0\x80",
        "",
    };
    apr_size_t k, len;
    int c;

    for (k = 0; k < sizeof(models) / sizeof(models[0]); k++) {
        json_t *s = json_string(models[k]);
        char *enc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        const char *out = cg_body_set_model(unit_pool, "{\"model\":\"x\"}", 13, models[k], &len);

        if (enc == NULL) {
            ck_assert_msg(out == NULL, "jansson refuses model %lu", (unsigned long)k);
        }
        else {
            ck_assert_str_eq(out, apr_pstrcat(unit_pool, "{\"model\":", enc, "}", NULL));
            ck_assert_uint_eq(len, strlen(out));
        }
        free(enc);
        json_decref(s);
    }
    for (c = 1; c < 256; c++) { /* every single byte */
        char m[2] = {(char)c, '\0'};
        json_t *s = json_string(m);
        char *enc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        const char *out = cg_body_set_model(unit_pool, "{\"model\":\"x\"}", 13, m, &len);

        if (enc == NULL) {
            ck_assert_ptr_null(out);
        }
        else {
            ck_assert_str_eq(out, apr_pstrcat(unit_pool, "{\"model\":", enc, "}", NULL));
        }
        free(enc);
        json_decref(s);
    }
}
END_TEST

Suite *unit_suite_cg_body(void)
{
    Suite *s = suite_create("cg_body");
    TCase *tc = tcase_create("body");
    TCase *diff = tcase_create("as_jansson");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, valid_body);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, duplicate_keys_refused);
    tcase_add_test(tc, embedded_nul_refused);
    tcase_add_test(tc, model_replaced_in_place);
    tcase_add_test(tc, outputs);
    tcase_add_test(tc, model_encoded_as_jansson);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(diff, unit_setup, unit_teardown);
    tcase_set_timeout(diff, 120); /* hundreds of thousands of bodies, twice; slow under ASan */
    tcase_add_test(diff, table_as_jansson);
    tcase_add_test(diff, depth_limit_as_jansson);
    tcase_add_test(diff, many_keys);
    tcase_add_test(diff, mutants_as_jansson);
    tcase_add_test(diff, generated_as_jansson);
    suite_add_tcase(s, diff);
    return s;
}
