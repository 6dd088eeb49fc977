/* Unit tests of cs_journal: every line parses back (jansson, as the replay
 * reads it) to the values written, nulls included; bytes that are not
 * UTF-8 and control characters cannot break a line. */
#include <string.h>

#include <jansson.h>

#include "unit.h"
#include "cs_journal.h"
#include "../fuzz/journal_oracle.h"

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

static void same_as_oracle(const char *const *v, int n)
{
    apr_size_t len, want_len;
    char *line = cs_journal_line(unit_pool, v, n, &len);
    char *want = journal_oracle_line(unit_pool, v, n, &want_len);

    ck_assert_uint_eq(len, want_len);
    ck_assert_mem_eq(line, want, len + 1);
}

/* Every byte that is not plain, at every offset of values around the eight
 * byte word, alone and next to others: the line is the byte-by-byte one. */
START_TEST(same_as_oracle_each_byte)
{
    static const unsigned char special[] = {0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c,
                                            0x5d, 0x7e, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xdf,
                                            0xe0, 0xe2, 0xed, 0xf0, 0xf4, 0xf5, 0xfe, 0xff};
    char buf[40];
    const char *v[3];
    apr_size_t len, pos, k, j;

    for (len = 1; len < sizeof(buf); len++) {
        for (pos = 0; pos < len; pos++) {
            for (k = 0; k < sizeof(special); k++) {
                memset(buf, 'a', len);
                buf[len] = '\0';
                buf[pos] = (char)special[k];
                v[0] = buf;
                v[1] = NULL;
                v[2] = buf + pos;
                same_as_oracle(v, 3);
                for (j = pos + 1; j < len; j++) {
                    buf[j] = (char)special[(k + j) % sizeof(special)];
                }
                same_as_oracle(v, 3);
            }
        }
    }
}
END_TEST

/* Rows of random values drawn mostly from plain bytes, some NULL, some rows
 * longer than the lengths cs_journal_line keeps. */
START_TEST(same_as_oracle_random)
{
    static const char pool[] = "abcXYZ019 -_:/\"\\\x01\x1f\x7f\x80\xc3\xa9\xe2\x82\xac\xf0\x9f"
                               "\x98\x80\xff";
    char bufs[40][48];
    const char *v[40];
    unsigned int seed = 12345;
    int row, i, n;
    apr_size_t k, vlen;

    for (row = 0; row < 3000; row++) {
        seed = seed * 1103515245u + 12345u;
        n = (int)((seed >> 16) % 40);
        for (i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            vlen = (seed >> 16) % (sizeof(bufs[i]) - 1);
            if ((seed >> 8) % 11 == 0) {
                v[i] = NULL;
                continue;
            }
            for (k = 0; k < vlen; k++) {
                seed = seed * 1103515245u + 12345u;
                /* three in four plain letters, so runs are long */
                bufs[i][k] = (seed >> 16) % 4 != 0 ? (char)('a' + (seed >> 20) % 26)
                                                   : pool[(seed >> 20) % (sizeof(pool) - 1)];
            }
            bufs[i][vlen] = '\0';
            v[i] = bufs[i];
        }
        same_as_oracle(v, n);
    }
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
    tcase_add_test(tc, same_as_oracle_each_byte);
    tcase_add_test(tc, same_as_oracle_random);
    suite_add_tcase(s, tc);
    return s;
}
