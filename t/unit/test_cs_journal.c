/* Unit tests of cs_journal: every line parses back (jansson, as the replay
 * reads it) to the values written, nulls included; bytes that are not
 * UTF-8 and control characters cannot break a line. */
#include <string.h>

#include <jansson.h>

#include "unit.h"
#include "cs_journal.h"

static json_t *parse(const char *line, apr_size_t len)
{
    json_t *j;

    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', len - 1)); /* one line */
    j = json_loadb(line, len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert(json_is_array(j));
    return j;
}

START_TEST(round_trips)
{
    const char *v[] = {"abc",
                       NULL,
                       "quote \" and \\ backslash",
                       "",
                       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                       "tab\tnew\nline\x01\x7f"};
    apr_size_t len;
    char *line = cs_journal_line(unit_pool, v, 6, &len);
    json_t *j = parse(line, len);
    size_t i;

    ck_assert_int_eq(strlen(line), len);
    ck_assert_int_eq(json_array_size(j), 6);
    for (i = 0; i < 6; i++) {
        json_t *e = json_array_get(j, i);
        if (v[i] == NULL) {
            ck_assert(json_is_null(e));
        }
        else {
            ck_assert_str_eq(json_string_value(e), v[i]);
        }
    }
    json_decref(j);
}
END_TEST

START_TEST(invalid_utf8_is_replaced)
{
    /* a lone continuation byte, a truncated sequence, an overlong '/', a
     * surrogate, and a lead byte at the very end */
    const char *v[] = {"a\x80z", "b\xe2\x82", "c\xc0\xaf", "d\xed\xa0\x80", "e\xf0"};
    apr_size_t len;
    char *line = cs_journal_line(unit_pool, v, 5, &len);
    json_t *j = parse(line, len);

    ck_assert_str_eq(json_string_value(json_array_get(j, 0)), "a\xef\xbf\xbdz");
    ck_assert_str_eq(json_string_value(json_array_get(j, 1)), "b\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(json_string_value(json_array_get(j, 4)), "e\xef\xbf\xbd");
    json_decref(j);
}
END_TEST

START_TEST(empty_row)
{
    apr_size_t len;
    char *line = cs_journal_line(unit_pool, NULL, 0, &len);

    ck_assert_str_eq(line, "[]\n");
    ck_assert_int_eq(len, 3);
}
END_TEST

Suite *unit_suite_cs_journal(void)
{
    Suite *s = suite_create("cs_journal");
    TCase *tc = tcase_create("journal");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, round_trips);
    tcase_add_test(tc, invalid_utf8_is_replaced);
    tcase_add_test(tc, empty_row);
    suite_add_tcase(s, tc);
    return s;
}
