/* Unit tests for cg_audit: the claude_json line byte for byte as the old
 * LogFormat printed it (all fields, absent ones), its JSON escaping (quotes,
 * backslashes, controls, UTF-8 kept, invalid bytes replaced, checked by
 * parsing it back with jansson), and cg_notes_read agreeing with
 * apr_table_get for mixed-case and repeated keys. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "unit.h"
#include "cg_audit.h"
#include "../fuzz/notes_names.h"

#define NNAMES (sizeof(notes_names) / sizeof(notes_names[0]))

static const char *field(const cg_notes_t *n, apr_size_t i)
{
    return *(const char *const *)((const char *)n + notes_names[i].off);
}

/* cg_notes_read must give, for every name, what apr_table_get gives. */
static void assert_like_table_get(const apr_table_t *t)
{
    cg_notes_t n;
    apr_size_t i;

    cg_notes_read(t, &n);
    for (i = 0; i < NNAMES; i++) {
        const char *want = apr_table_get(t, notes_names[i].name);

        ck_assert_msg(field(&n, i) == want, "%s: got %s, apr_table_get %s", notes_names[i].name,
                      field(&n, i) ? field(&n, i) : "(null)", want ? want : "(null)");
    }
}

START_TEST(notes_read_every_name)
{
    apr_table_t *t = apr_table_make(unit_pool, 4);
    cg_notes_t n;
    apr_size_t i;

    apr_table_setn(t, "proxy-noquery", "1"); /* other modules' notes are skipped */
    for (i = 0; i < NNAMES; i++) {
        apr_table_setn(t, notes_names[i].name, apr_psprintf(unit_pool, "v%d", (int)i));
    }
    apr_table_setn(t, "claude-unknown", "x");
    apr_table_setn(t, "claude-", "x");
    apr_table_setn(t, "clau", "x");
    cg_notes_read(t, &n);
    for (i = 0; i < NNAMES; i++) {
        ck_assert_ptr_nonnull(field(&n, i));
        ck_assert_str_eq(field(&n, i), apr_psprintf(unit_pool, "v%d", (int)i));
    }
    assert_like_table_get(t);
}
END_TEST

/* cg_notes_slot names the field cg_notes_read fills, and nothing else. */
START_TEST(notes_slot_every_name)
{
    cg_notes_t n;
    apr_size_t i;

    for (i = 0; i < NNAMES; i++) {
        ck_assert_ptr_eq(cg_notes_slot(&n, notes_names[i].name),
                         (const char **)((char *)&n + notes_names[i].off));
    }
    ck_assert_ptr_null(cg_notes_slot(&n, "claude-unknown"));
    ck_assert_ptr_null(cg_notes_slot(&n, "claude-"));
    ck_assert_ptr_null(cg_notes_slot(&n, "claude-use"));
    ck_assert_ptr_null(cg_notes_slot(&n, "claude-users"));
    ck_assert_ptr_null(cg_notes_slot(&n, "proxy-noquery"));
    ck_assert_ptr_null(cg_notes_slot(&n, ""));
    ck_assert_ptr_null(cg_notes_slot(&n, "Claude-User")); /* our literals only */
    ck_assert_ptr_null(cg_notes_slot(&n, "claude-usage-ix"));
    ck_assert_ptr_null(cg_notes_slot(&n, "claude-request-id-"));
}
END_TEST

START_TEST(notes_read_absent_and_null)
{
    apr_table_t *t = apr_table_make(unit_pool, 4);
    cg_notes_t n;
    apr_size_t i;

    memset(&n, 0xff, sizeof(n)); /* every field is written */
    cg_notes_read(NULL, &n);
    for (i = 0; i < NNAMES; i++) {
        ck_assert_ptr_null(field(&n, i));
    }
    apr_table_setn(t, "claude-user", "alice");
    apr_table_setn(t, "claude-email", ""); /* present but empty is not absent */
    cg_notes_read(t, &n);
    ck_assert_str_eq(n.user, "alice");
    ck_assert_str_eq(n.email, "");
    ck_assert_ptr_null(n.model);
    assert_like_table_get(t);
}
END_TEST

START_TEST(notes_read_mixed_case_and_duplicates)
{
    apr_table_t *t = apr_table_make(unit_pool, 4);
    cg_notes_t n;

    apr_table_addn(t, "Claude-User", "first");
    apr_table_addn(t, "claude-user", "second");
    apr_table_addn(t, "CLAUDE-MODEL", "upper");
    apr_table_addn(t, "claude-usage-in", "10");
    apr_table_addn(t, "claude-usage-IN", "20");
    apr_table_addn(t, "cLaUdE-dEcIsIoN", "allowed");
    cg_notes_read(t, &n);
    ck_assert_str_eq(n.user, "first");
    ck_assert_str_eq(n.model, "upper");
    ck_assert_str_eq(n.usage_in, "10");
    ck_assert_str_eq(n.decision, "allowed");
    assert_like_table_get(t);
    /* after an unset and a set, the table's order decides again */
    apr_table_unset(t, "claude-user");
    apr_table_addn(t, "claude-user", "third");
    apr_table_setn(t, "claude-usage-in", "30");
    assert_like_table_get(t);
}
END_TEST

/* Random tables: names in random case, some repeated, among other notes. */
START_TEST(notes_read_random_tables)
{
    unsigned int seed = 12345;
    int round;

    for (round = 0; round < 500; round++) {
        apr_table_t *t = apr_table_make(unit_pool, 8);
        int k, count = rand_r(&seed) % 40;

        for (k = 0; k < count; k++) {
            int r = rand_r(&seed);
            char *key;
            apr_size_t j;

            if (r % 7 == 0) {
                key = apr_psprintf(unit_pool, "other-%d", r % 5);
            }
            else {
                key = apr_pstrdup(unit_pool, notes_names[(apr_size_t)r % NNAMES].name);
                for (j = 0; key[j] != '\0'; j++) {
                    if (rand_r(&seed) % 3 == 0) {
                        key[j] = (char)apr_toupper(key[j]);
                    }
                }
            }
            if (rand_r(&seed) % 4 == 0) {
                apr_table_set(t, key, apr_psprintf(unit_pool, "s%d", k));
            }
            else {
                apr_table_addn(t, key, apr_psprintf(unit_pool, "a%d", k));
            }
        }
        assert_like_table_get(t);
    }
}
END_TEST

/* A record with every field set. */
static cg_audit_rec_t full_rec(void)
{
    cg_audit_rec_t rec;

    memset(&rec, 0, sizeof(rec));
    rec.notes.request_id = "req-1";
    rec.notes.user = "user-alice";
    rec.notes.email = "alice@example.com";
    rec.notes.groups = "eng,claude-users";
    rec.notes.model = "claude-sonnet-4-5";
    rec.notes.model_served = "claude-sonnet-4-5-20250929";
    rec.notes.decision = "allowed";
    rec.notes.reason = "spend caps unavailable: let through";
    rec.notes.usage_in = "12";
    rec.notes.usage_out = "34";
    rec.notes.usage_cache_read = "5";
    rec.notes.usage_cache_write = "6";
    rec.notes.usage_partial = "0";
    rec.notes.cost_micro_usd = "789";
    rec.notes.upstream = "anthropic"; /* not in the line */
    rec.time = apr_time_from_sec(1795451875) + 999999;
    rec.client_ip = "127.0.0.1";
    rec.method = "POST";
    rec.path = "/v1/messages";
    rec.status = 200;
    rec.latency_us = 123456;
    rec.bytes_out = 4321;
    return rec;
}

START_TEST(json_all_fields)
{
    cg_audit_rec_t rec = full_rec();

    ck_assert_str_eq(
        cg_audit_json(unit_pool, &rec),
        "{\"request_id\":\"req-1\",\"time\":1795451875,\"client\":\"127.0.0.1\","
        "\"user\":\"user-alice\",\"email\":\"alice@example.com\",\"groups\":\"eng,claude-users\","
        "\"method\":\"POST\",\"path\":\"/v1/messages\",\"model\":\"claude-sonnet-4-5\","
        "\"model_served\":\"claude-sonnet-4-5-20250929\",\"status\":200,\"decision\":\"allowed\","
        "\"reason\":\"spend caps unavailable: let through\",\"input_tokens\":\"12\","
        "\"output_tokens\":\"34\",\"cache_read_tokens\":\"5\",\"cache_write_tokens\":\"6\","
        "\"partial\":\"0\",\"cost_micro_usd\":\"789\",\"latency_us\":123456,\"bytes_out\":4321}");
    rec.bytes_out = (apr_off_t)9000000000LL; /* past 32 bits */
    rec.latency_us = 0;
    rec.status = 599;
    ck_assert_ptr_nonnull(
        strstr(cg_audit_json(unit_pool, &rec), "\"status\":599,\"decision\":\"allowed\""));
    ck_assert_ptr_nonnull(
        strstr(cg_audit_json(unit_pool, &rec), "\"latency_us\":0,\"bytes_out\":9000000000}"));
}
END_TEST

/* What mod_log_config printed when nothing was noted: "-" in the quotes, a
 * bare - for a status of 0, and 0 bytes. */
START_TEST(json_absent_fields)
{
    cg_audit_rec_t rec;

    memset(&rec, 0, sizeof(rec));
    rec.time = apr_time_from_sec(7);
    ck_assert_str_eq(
        cg_audit_json(unit_pool, &rec),
        "{\"request_id\":\"-\",\"time\":7,\"client\":\"-\",\"user\":\"-\",\"email\":\"-\","
        "\"groups\":\"-\",\"method\":\"-\",\"path\":\"-\",\"model\":\"-\",\"model_served\":\"-\","
        "\"status\":-,\"decision\":\"-\",\"reason\":\"-\",\"input_tokens\":\"-\","
        "\"output_tokens\":\"-\",\"cache_read_tokens\":\"-\",\"cache_write_tokens\":\"-\","
        "\"partial\":\"-\",\"cost_micro_usd\":\"-\",\"latency_us\":0,\"bytes_out\":0}");
    rec.status = 404;
    rec.notes.reason = ""; /* an empty note prints empty, as %{..}n did */
    ck_assert_ptr_nonnull(strstr(cg_audit_json(unit_pool, &rec), "\"status\":404,"));
    ck_assert_ptr_nonnull(strstr(cg_audit_json(unit_pool, &rec), "\"reason\":\"\","));
}
END_TEST

/* The line parses, and the field decodes to want. */
static void assert_decodes(const char *line, const char *key, const char *want)
{
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);

    ck_assert_msg(j != NULL, "not JSON (%s): %s", err.text, line);
    ck_assert_str_eq(json_string_value(json_object_get(j, key)), want);
    ck_assert_int_eq(json_object_size(j), 21);
    json_decref(j);
}

START_TEST(json_escapes_quotes_backslashes_controls)
{
    cg_audit_rec_t rec = full_rec();
    const char *line;

    rec.notes.model = "a\"b\\c";
    rec.notes.email = "x\ny\tz\r\b\f\x01\x1f\x7f!";
    rec.path = "/p\"q";
    line = cg_audit_json(unit_pool, &rec);
    ck_assert_ptr_nonnull(strstr(line, "\"model\":\"a\\\"b\\\\c\","));
    ck_assert_ptr_nonnull(
        strstr(line, "\"email\":\"x\\u000ay\\u0009z\\u000d\\u0008\\u000c\\u0001\\u001f\\u007f!\""));
    ck_assert_ptr_nonnull(strstr(line, "\"path\":\"/p\\\"q\""));
    ck_assert_ptr_null(strchr(line, '\n'));
    assert_decodes(line, "model", "a\"b\\c");
    assert_decodes(line, "email", "x\ny\tz\r\b\f\x01\x1f\x7f!");
    assert_decodes(line, "path", "/p\"q");
}
END_TEST

/* The worst case the line is sized for: every byte of every quoted field
 * becomes a six-byte escape (controls, DEL, stray bytes), 4 KB per field. */
START_TEST(json_worst_case_expansion)
{
    cg_audit_rec_t rec = full_rec();
    const char *line, *plain;
    apr_size_t plain_len, want, k;
    char *bad = apr_palloc(unit_pool, 4097);

    plain = cg_audit_json(unit_pool, &rec);
    plain_len = strlen(plain);
    for (k = 0; k < 4096; k++) {
        static const unsigned char worst[] = {0x01, 0x1f, 0x7f, 0xff, 0x80, 0xc0};
        bad[k] = (char)worst[k % sizeof(worst)];
    }
    bad[4096] = '\0';
    want = plain_len - strlen(rec.notes.model) - strlen(rec.notes.email) - strlen(rec.path) +
           3 * 6 * 4096;
    rec.notes.model = bad;
    rec.notes.email = bad;
    rec.path = bad;
    line = cg_audit_json(unit_pool, &rec);
    ck_assert_uint_eq(strlen(line), want);
    ck_assert_ptr_null(strchr(line, '\n'));
    ck_assert_int_eq(line[strlen(line) - 1], '}');
}
END_TEST

START_TEST(json_keeps_valid_utf8)
{
    cg_audit_rec_t rec = full_rec();
    const char *line;
    /* 2, 3 and 4 bytes, and the ends of each range */
    const char *u = "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\x80 \xdf\xbf \xe0\xa0\x80 "
                    "\xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbf \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf";

    rec.notes.email = u;
    line = cg_audit_json(unit_pool, &rec);
    ck_assert_ptr_nonnull(strstr(line, apr_pstrcat(unit_pool, "\"email\":\"", u, "\"", NULL)));
    assert_decodes(line, "email", u);
}
END_TEST

START_TEST(json_replaces_invalid_utf8)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff"
         "b",
         "a\\ufffdb"},                                        /* never in UTF-8 */
        {"\x80", "\\ufffd"},                                  /* a lone continuation */
        {"\xc0\xaf", "\\ufffd\\ufffd"},                       /* overlong / */
        {"\xc1\xbf", "\\ufffd\\ufffd"},                       /* overlong */
        {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"},            /* overlong, 3 bytes */
        {"\xf0\x80\x80\xaf", "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* overlong, 4 bytes */
        {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},            /* a surrogate, U+D800 */
        {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* above U+10FFFF */
        {"\xf5\x80", "\\ufffd\\ufffd"},
        {"x\xe2\x82", "x\\ufffd\\ufffd"}, /* cut short at the end */
        {"\xe2\x82"
         "A",
         "\\ufffd\\ufffdA"},                 /* cut short by ASCII */
        {"\xc3\"", "\\ufffd\\\""},           /* cut short by a quote */
        {"\xc3\xa9\xa9", "\xc3\xa9\\ufffd"}, /* one continuation too many */
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cg_audit_rec_t rec = full_rec();
        const char *line, *want;
        json_t *j;

        rec.notes.reason = cases[i].in;
        line = cg_audit_json(unit_pool, &rec);
        want = apr_pstrcat(unit_pool, "\"reason\":\"", cases[i].out, "\",", NULL);
        ck_assert_msg(strstr(line, want) != NULL, "case %d: %s", (int)i, line);
        j = json_loads(line, 0, NULL); /* jansson refuses invalid UTF-8 */
        ck_assert_msg(j != NULL, "case %d is not JSON: %s", (int)i, line);
        json_decref(j);
    }
}
END_TEST

Suite *unit_suite_cg_audit(void)
{
    Suite *s = suite_create("cg_audit");
    TCase *c = tcase_create("cg_audit");

    tcase_add_checked_fixture(c, unit_setup, unit_teardown);
    tcase_add_test(c, notes_read_every_name);
    tcase_add_test(c, notes_read_absent_and_null);
    tcase_add_test(c, notes_slot_every_name);
    tcase_add_test(c, notes_read_mixed_case_and_duplicates);
    tcase_add_test(c, notes_read_random_tables);
    tcase_add_test(c, json_all_fields);
    tcase_add_test(c, json_absent_fields);
    tcase_add_test(c, json_escapes_quotes_backslashes_controls);
    tcase_add_test(c, json_worst_case_expansion);
    tcase_add_test(c, json_keeps_valid_utf8);
    tcase_add_test(c, json_replaces_invalid_utf8);
    suite_add_tcase(s, c);
    return s;
}
