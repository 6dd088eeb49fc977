/* Unit tests for ca_chain: the chained spellings and their exact inverse,
 * the JSON check that decides between them, truncation, checkpoints signed
 * and verified with a key made per test, and the small meta formats. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "unit.h"
#include "ca_chain.h"

/* sha256("0"*64 + "\n" + '{"request_id":"r1","status":200}'), by Python's hashlib */
#define R1_HASH "47b227368ea18d30b5d5823dbb8b3939a536f286fb6f35ae1f32f0a175347cc4"

static char line_buf[CA_LINE_BUF];
static char content_buf[CA_LINE_BUF + 1];

START_TEST(hash_vector)
{
    char h[CA_HEX_LEN + 1];
    const char *c = "{\"request_id\":\"r1\",\"status\":200}";

    ck_assert_int_eq(ca_hash(CA_ZERO_HASH, c, strlen(c), h), 0);
    ck_assert_str_eq(h, R1_HASH);
}
END_TEST

START_TEST(json_line_exact)
{
    char h[CA_HEX_LEN + 1], want[512];
    const char *c = "{\"request_id\":\"r1\",\"status\":200}";
    size_t n = ca_chain_line(c, strlen(c), 1, CA_ZERO_HASH, line_buf, sizeof(line_buf), h);

    ck_assert_str_eq(h, R1_HASH);
    snprintf(
        want, sizeof(want),
        "{\"request_id\":\"r1\",\"status\":200,\"_seq\":1,\"_prev\":\"%s\",\"_hash\":\"%s\"}\n",
        CA_ZERO_HASH, R1_HASH);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(memcmp(line_buf, want, n) == 0);
}
END_TEST

START_TEST(text_line_exact)
{
    char h[CA_HEX_LEN + 1], want[512];
    const char *c = "127.0.0.1 - - \"GET / HTTP/1.1\" 200";
    size_t n = ca_chain_line(c, strlen(c), 42, R1_HASH, line_buf, sizeof(line_buf), h);

    snprintf(want, sizeof(want), "%s #chain seq=42 prev=%s hash=%s\n", c, R1_HASH, h);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(memcmp(line_buf, want, n) == 0);
}
END_TEST

static void roundtrip(const char *c, size_t len, int json)
{
    char h[CA_HEX_LEN + 1];
    ca_link_t link;
    size_t clen = 0;
    size_t n = ca_chain_line(c, len, 7, R1_HASH, line_buf, sizeof(line_buf), h);

    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(line_buf[n - 1], '\n');
    ck_assert(memchr(line_buf, '\n', n - 1) == NULL);
    ck_assert_int_eq(line_buf[n - 2] == '}', json);
    if (json) {
        ck_assert(ca_json_is_object(line_buf, n - 1));
    }
    ck_assert_int_eq(ca_parse_line(line_buf, n - 1, &link, content_buf, &clen), 0);
    ck_assert_uint_eq(clen, len);
    ck_assert(memcmp(content_buf, c, len) == 0);
    ck_assert_uint_eq(link.seq, 7);
    ck_assert_str_eq(link.prev, R1_HASH);
    ck_assert_str_eq(link.hash, h);
}

START_TEST(parse_is_inverse)
{
    static const struct {
        const char *s;
        int json;
    } cases[] = {
        {"{\"a\":1}", 1},
        {"{}", 1},
        {"{ }", 1},
        {"{\"a\":1 }", 1},
        {"{\"a\":{\"b\":[1,2,{}]},\"c\":\"\\u00e9 \xc3\xa9\"}", 1},
        {"{\"a\":1,}", 0}, /* trailing comma: not JSON, so chained as text */
        {"{bad json}", 0},
        {"[1,2]", 0},
        {"", 0},
        {"plain line", 0},
        {"{\"u\":\"\\x41\"}", 0}, /* how mod_log_config escapes 8-bit bytes */
        {"ends like us #chain seq=1 prev=00 hash=00", 0},
        {"{\"x\":1,\"_seq\":3,\"_prev\":\"" CA_ZERO_HASH "\",\"_hash\":\"" CA_ZERO_HASH "\"}", 1},
        {"x #chain seq=1 prev=" CA_ZERO_HASH " hash=" CA_ZERO_HASH, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        roundtrip(cases[i].s, strlen(cases[i].s), cases[i].json);
    }
    roundtrip("nul\0inside", 10, 0);
}
END_TEST

START_TEST(json_check)
{
#define OK(s) ck_assert_msg(ca_json_is_object(s, strlen(s)), "should pass: %s", s)
#define NO(s) ck_assert_msg(!ca_json_is_object(s, strlen(s)), "should fail: %s", s)
    OK("{\"a\":-0.5e+3,\"b\":true,\"c\":false,\"d\":null,\"e\":[],\"f\":\"\\\"\\\\\\/"
       "\\b\\f\\n\\r\\t\"}");
    OK("{\"a\" : 1 ,\n\"b\":\t2}");
    NO("{\"a\":01}");
    NO("{\"a\":1.}");
    NO("{\"a\":tru}");
    NO("{a:1}");
    NO("{\"a\":\"\x01\"}");
    NO("{\"a\":\"\xff\"}");
    NO("{\"a\":\"\xed\xa0\x80\"}"); /* a surrogate in UTF-8 */
    NO("{\"a\":1}{\"b\":2}");
    NO("{\"a\":1} ");
    NO("{\"a\":\"\\u12g4\"}");
    NO("{\"a\":[1,]}");
    NO("{\"a\":1");
#undef OK
#undef NO
}
END_TEST

START_TEST(json_depth_limited)
{
    static char deep[4096];
    size_t i, n = 0;

    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (i = 0; i < 1000; i++) {
        deep[n++] = '[';
    }
    for (i = 0; i < 1000; i++) {
        deep[n++] = ']';
    }
    deep[n++] = '}';
    ck_assert(!ca_json_is_object(deep, n));
}
END_TEST

START_TEST(parse_rejects)
{
    char h[CA_HEX_LEN + 1];
    ca_link_t link;
    size_t clen, n;
    char *p;

    ck_assert_int_eq(ca_parse_line("{\"a\":1}", 7, &link, content_buf, &clen), -1);
    ck_assert_int_eq(ca_parse_line("", 0, &link, content_buf, &clen), -1);
    n = ca_chain_line("{\"a\":1}", 7, 12, R1_HASH, line_buf, sizeof(line_buf), h) - 1;
    ck_assert_int_eq(ca_parse_line(line_buf, n, &link, content_buf, &clen), 0);
    /* uppercase hex */
    p = strstr(line_buf, "47b2");
    p[2] = 'B';
    ck_assert_int_eq(ca_parse_line(line_buf, n, &link, content_buf, &clen), -1);
    p[2] = 'b';
    /* a leading zero in the sequence number: "_seq":10 made "_seq":00 */
    n = ca_chain_line("{\"a\":1}", 7, 10, R1_HASH, line_buf, sizeof(line_buf), h) - 1;
    ck_assert_int_eq(ca_parse_line(line_buf, n, &link, content_buf, &clen), 0);
    p = strstr(line_buf, "\"_seq\":10");
    p[7] = '0';
    ck_assert_int_eq(ca_parse_line(line_buf, n, &link, content_buf, &clen), -1);
    /* a hash one digit short */
    n = ca_chain_line("text", 4, 1, R1_HASH, line_buf, sizeof(line_buf), h) - 1;
    ck_assert_int_eq(ca_parse_line(line_buf, n - 1, &link, content_buf, &clen), -1);
    /* bad input to the chainer */
    ck_assert_uint_eq(ca_chain_line("a\nb", 3, 1, R1_HASH, line_buf, sizeof(line_buf), h), 0);
    ck_assert_uint_eq(ca_chain_line("a", 1, 1, "xyz", line_buf, sizeof(line_buf), h), 0);
    ck_assert_uint_eq(ca_chain_line("a", 1, 1, R1_HASH, line_buf, 100, h), 0);
}
END_TEST

START_TEST(truncation_is_bounded_json)
{
    static char big[CA_MAX_CONTENT + 5000], out[CA_MAX_CONTENT + 1];
    char h[CA_HEX_LEN + 1];
    const char *want;
    size_t i, n;

    for (i = 0; i < sizeof(big); i++) {
        big[i] = "ab\"\\\x01\xc3\xa9\xff"[i % 8];
    }
    n = ca_truncated(big, CA_MAX_CONTENT, 123456, out, sizeof(out));
    ck_assert_uint_gt(n, 1000);
    ck_assert_uint_le(n, CA_MAX_CONTENT);
    ck_assert(ca_json_is_object(out, n));
    want = "{\"_truncated\":{\"bytes\":123456,\"head\":\"ab\\\"\\\\\\u0001\xc3\xa9\\ufffdab";
    ck_assert(strncmp(out, want, strlen(want)) == 0);
    ck_assert_int_eq(ca_content_kind(out, n), CA_KIND_OTHER_META);
    /* and chainable as it is */
    ck_assert_uint_gt(ca_chain_line(out, n, 1, CA_ZERO_HASH, line_buf, sizeof(line_buf), h), 0);
}
END_TEST

START_TEST(escape_cuts_whole_characters)
{
    char out[8];
    size_t used;

    /* "é" needs 2 bytes: with room for 3 plus the NUL, "aé" fits, not "aéé" */
    ck_assert_uint_eq(ca_json_escape("a\xc3\xa9\xc3\xa9", 5, out, 4, &used), 3);
    ck_assert_uint_eq(used, 3);
    ck_assert_str_eq(out, "a\xc3\xa9");
    ck_assert_uint_eq(ca_json_escape("\"x", 2, out, 2, &used), 0);
    ck_assert_uint_eq(used, 0);
}
END_TEST

static EVP_PKEY *make_key(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

    ck_assert_ptr_nonnull(key);
    return key;
}

START_TEST(checkpoint_sign_and_verify)
{
    EVP_PKEY *key = make_key(), *other = make_key();
    ca_checkpoint_t cp, back;
    char buf[CA_CHECKPOINT_MAX], canon[256];
    size_t n;

    memset(&cp, 0, sizeof(cp));
    cp.seq = 1000;
    memcpy(cp.hash, R1_HASH, sizeof(cp.hash));
    cp.time = 1767225600;
    ck_assert_int_eq(ca_checkpoint_sign(key, &cp), 0);
    ck_assert_uint_eq(strlen(cp.sig), CA_SIG_B64_LEN);
    ck_assert_uint_eq(strlen(cp.key_id), CA_KEY_ID_LEN);
    ck_assert_uint_gt(ca_checkpoint_canonical(&cp, canon, sizeof(canon)), 0);
    ck_assert_str_eq(canon, "claude-auditlog-checkpoint\n1000\n" R1_HASH "\n1767225600");

    n = ca_checkpoint_format(&cp, buf, sizeof(buf));
    ck_assert_uint_gt(n, 0);
    ck_assert(ca_json_is_object(buf, n));
    ck_assert_int_eq(ca_content_kind(buf, n), CA_KIND_CHECKPOINT);
    ck_assert_int_eq(ca_checkpoint_parse(buf, n, &back), 0);
    ck_assert(memcmp(&cp, &back, sizeof(cp)) == 0);
    ck_assert_int_eq(ca_checkpoint_verify(key, &back), 1);
    /* a chained checkpoint line stays within its bound */
    ck_assert_uint_lt(ca_chain_line(buf, n, UINT64_MAX, R1_HASH, line_buf, sizeof(line_buf), canon),
                      CA_CHECKPOINT_MAX);

    ck_assert_int_eq(ca_checkpoint_verify(other, &back), 0);
    back.seq++;
    ck_assert_int_eq(ca_checkpoint_verify(key, &back), 0);
    back.seq--;
    back.time++;
    ck_assert_int_eq(ca_checkpoint_verify(key, &back), 0);
    back.time--;
    back.sig[0] = back.sig[0] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(ca_checkpoint_verify(key, &back), 0);

    /* malformed spellings */
    ck_assert_int_eq(ca_checkpoint_parse(buf, n - 1, &back), -1);
    buf[strlen("{\"_checkpoint\":{\"seq\":")] = '0';
    ck_assert_int_eq(ca_checkpoint_parse(buf, n, &back), -1);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}
END_TEST

START_TEST(key_id_is_spki_digest)
{
    EVP_PKEY *key = make_key();
    unsigned char *der = NULL, md[32];
    char id[CA_KEY_ID_LEN + 1], want[CA_KEY_ID_LEN + 1];
    int n = i2d_PUBKEY(key, &der), i;

    ck_assert_int_gt(n, 0);
    EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL);
    for (i = 0; i < CA_KEY_ID_LEN / 2; i++) {
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    }
    ck_assert_int_eq(ca_key_id(key, id), 0);
    ck_assert_str_eq(id, want);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
}
END_TEST

START_TEST(meta_formats)
{
    char buf[2048], hash[CA_HEX_LEN + 1];
    uint64_t seq = 0;
    size_t n;

    n = ca_rotated_format("audit.json.20260101000000.99", 99, R1_HASH, 0, buf, sizeof(buf));
    ck_assert(ca_json_is_object(buf, n));
    ck_assert_int_eq(ca_content_kind(buf, n), CA_KIND_ROTATED);
    ck_assert_int_eq(ca_rotated_parse(buf, n, &seq, hash), 0);
    ck_assert_uint_eq(seq, 99);
    ck_assert_str_eq(hash, R1_HASH);
    n = ca_rotated_format("we\"ird\\name", 5, R1_HASH, 1, buf, sizeof(buf));
    ck_assert(ca_json_is_object(buf, n));
    ck_assert_int_eq(ca_rotated_parse(buf, n, &seq, hash), 0);
    ck_assert_uint_eq(seq, 5);
    ck_assert_int_eq(ca_rotated_parse(buf, n - 1, &seq, hash), -1);

    n = ca_dropped_format(3, buf, sizeof(buf));
    ck_assert_str_eq(buf, "{\"_dropped\":{\"lines\":3}}");
    ck_assert_int_eq(ca_content_kind(buf, n), CA_KIND_OTHER_META);
    ck_assert_int_eq(ca_content_kind("{\"request_id\":1}", 16), CA_KIND_RECORD);

    n = ca_state_format(18446744073709551615ULL, R1_HASH, buf, sizeof(buf));
    ck_assert_int_eq(ca_state_parse(buf, n, &seq, hash), 0);
    ck_assert_uint_eq(seq, UINT64_MAX);
    ck_assert_str_eq(hash, R1_HASH);
    ck_assert_int_eq(ca_state_parse("18446744073709551616 " R1_HASH, 85, &seq, hash), -1);
    ck_assert_int_eq(ca_state_parse("1 abc", 5, &seq, hash), -1);
}
END_TEST

START_TEST(reserved_input_wrapped)
{
    char out[256];
    size_t n;
    const char *fake = "{\"_checkpoint\":{\"seq\":1}}";

    ck_assert_uint_eq(ca_wrap_reserved("{\"request_id\":\"a\"}", 18, out, sizeof(out)), 0);
    n = ca_wrap_reserved(fake, strlen(fake), out, sizeof(out));
    out[n] = '\0';
    ck_assert_str_eq(out, "{\"_input\":{\"_checkpoint\":{\"seq\":1}}}");
    ck_assert_int_eq(ca_content_kind(out, n), CA_KIND_RECORD);
    ck_assert(ca_json_is_object(out, n));
    n = ca_wrap_reserved("{\"_rotated_from\": x", 19, out, sizeof(out));
    out[n] = '\0';
    ck_assert_str_eq(out, "_input {\"_rotated_from\": x");
    ck_assert_uint_eq(ca_wrap_reserved(fake, strlen(fake), out, 20), 0);
}
END_TEST

Suite *unit_suite_ca_chain(void)
{
    Suite *s = suite_create("ca_chain");
    TCase *tc = tcase_create("chain");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, hash_vector);
    tcase_add_test(tc, json_line_exact);
    tcase_add_test(tc, text_line_exact);
    tcase_add_test(tc, parse_is_inverse);
    tcase_add_test(tc, json_check);
    tcase_add_test(tc, json_depth_limited);
    tcase_add_test(tc, parse_rejects);
    tcase_add_test(tc, truncation_is_bounded_json);
    tcase_add_test(tc, escape_cuts_whole_characters);
    tcase_add_test(tc, checkpoint_sign_and_verify);
    tcase_add_test(tc, key_id_is_spki_digest);
    tcase_add_test(tc, meta_formats);
    tcase_add_test(tc, reserved_input_wrapped);
    suite_add_tcase(s, tc);
    return s;
}
