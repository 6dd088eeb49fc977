/* Unit tests for cg_sigv4: AWS's published Signature Version 4 test suite
 * (credentials AKIDEXAMPLE, service "service", us-east-1, 20150830T123600Z),
 * the signing-key example of the AWS documentation, and Bedrock requests whose
 * model ids need the second encoding. Every expected value below was also
 * recomputed with Python's hmac/hashlib, independently of this code. */
#include <string.h>

#include "unit.h"
#include "cg_sigv4.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE "20150830T123600Z"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define STS_TOKEN                                                                                  \
    "AQoDYXdzEPT//////////"                                                                        \
    "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"                     \
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7" \
    "WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlz"  \
    "m8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

static const cg_sigv4_credentials_t suite_creds = {AKID, SECRET, NULL};

/* One request of the suite: host example.amazonaws.com plus extra headers. */
static cg_sigv4_result_t suite_sign(const char *method, const char *path, const char *query,
                                    const cg_sigv4_header_t *extra, int nextra, const char *body,
                                    const cg_sigv4_credentials_t *creds)
{
    cg_sigv4_header_t h[8] = {{"Host", "example.amazonaws.com"}};
    cg_sigv4_request_t req = {method, path, query, h, 1 + nextra, body, body ? strlen(body) : 0, 0};
    cg_sigv4_result_t res;
    int i;

    for (i = 0; i < nextra; i++) {
        h[1 + i] = extra[i];
    }
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, creds ? creds : &suite_creds, "us-east-1",
                                   "service", DATE, &res),
                     APR_SUCCESS);
    return res;
}

START_TEST(get_vanilla)
{
    cg_sigv4_result_t r = suite_sign("GET", "/", NULL, NULL, 0, NULL, NULL);

    ck_assert_str_eq(r.canonical_request,
                     "GET\n/\n\nhost:example.amazonaws.com\n"
                     "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA);
    ck_assert_str_eq(r.string_to_sign,
                     "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    ck_assert_str_eq(r.signature,
                     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    ck_assert_str_eq(r.authorization,
                     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                     "aws4_request, SignedHeaders=host;x-amz-date, "
                     "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    ck_assert_int_eq(r.nset, 2);
    ck_assert_str_eq(r.set[0].name, "x-amz-date");
    ck_assert_str_eq(r.set[0].value, DATE);
    ck_assert_str_eq(r.set[1].name, "authorization");
    ck_assert_str_eq(r.set[1].value, r.authorization);
}
END_TEST

START_TEST(post_vanilla_and_form)
{
    cg_sigv4_header_t ct = {"Content-Type", "application/x-www-form-urlencoded"};
    cg_sigv4_result_t r = suite_sign("POST", "/", NULL, NULL, 0, NULL, NULL);

    ck_assert_str_eq(r.signature,
                     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
    r = suite_sign("POST", "/", NULL, &ct, 1, "Param1=value1", NULL);
    ck_assert_str_eq(r.signed_headers, "content-type;host;x-amz-date");
    ck_assert_str_eq(r.signature,
                     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}
END_TEST

START_TEST(query_path_and_header_rules)
{
    cg_sigv4_header_t trim[2] = {{"My-Header1", "value1"}, {"My-Header2", "\"a   b   c\""}};
    cg_sigv4_result_t r;

    /* get-vanilla-query-order-key-case: parameters sorted */
    r = suite_sign("GET", "/", "Param2=value2&Param1=value1", NULL, 0, NULL, NULL);
    ck_assert_str_eq(r.signature,
                     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    /* the same parameters already encoded, in another order: same signature */
    r = suite_sign("GET", "/", "Param%31=value1&Param2=%76alue2", NULL, 0, NULL, NULL);
    ck_assert_str_eq(r.signature,
                     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    /* get-utf8 and get-space: the raw path is encoded once */
    r = suite_sign("GET", "/\xe1\x88\xb4", NULL, NULL, 0, NULL, NULL);
    ck_assert_str_eq(r.signature,
                     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
    r = suite_sign("GET", "/example space/", NULL, NULL, 0, NULL, NULL);
    ck_assert_str_eq(r.signature,
                     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741");
    /* get-slash-dot-slash, get-relative-relative: normalized to "/" (get-vanilla) */
    r = suite_sign("GET", "/./", NULL, NULL, 0, NULL, NULL);
    ck_assert_str_eq(r.signature,
                     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    r = suite_sign("GET", "/example1/example2/../..", NULL, NULL, 0, NULL, NULL);
    ck_assert_str_eq(r.signature,
                     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    /* get-header-value-trim: inner runs of spaces folded */
    r = suite_sign("GET", "/", NULL, trim, 2, NULL, NULL);
    ck_assert_str_eq(r.signed_headers, "host;my-header1;my-header2;x-amz-date");
    ck_assert_str_eq(r.signature,
                     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}
END_TEST

START_TEST(session_token_signed)
{
    cg_sigv4_credentials_t sts = {AKID, SECRET, STS_TOKEN};
    cg_sigv4_result_t r = suite_sign("POST", "/", NULL, NULL, 0, NULL, &sts);

    /* post-sts-header-before: the token is a signed header */
    ck_assert_str_eq(r.signed_headers, "host;x-amz-date;x-amz-security-token");
    ck_assert_str_eq(r.signature,
                     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
    ck_assert_int_eq(r.nset, 3);
    ck_assert_str_eq(r.set[1].name, "x-amz-security-token");
    ck_assert_str_eq(r.set[1].value, STS_TOKEN);
}
END_TEST

START_TEST(signing_key_and_iam_example)
{
    static const unsigned char want[32] = {0xf4, 0x78, 0x0e, 0x2d, 0x9f, 0x65, 0xfa, 0x89,
                                           0x5f, 0x9c, 0x67, 0xb3, 0x2c, 0xe1, 0xba, 0xf0,
                                           0xb0, 0xd8, 0xa4, 0x35, 0x05, 0xa0, 0x00, 0xa1,
                                           0xa9, 0xe0, 0x90, 0xd4, 0x14, 0xdb, 0x40, 0x4d};
    unsigned char key[32];
    cg_sigv4_header_t h[2] = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"},
                              {"host", "iam.amazonaws.com"}};
    cg_sigv4_request_t req = {"GET", "/", "Action=ListUsers&Version=2010-05-08", h, 2, NULL, 0, 0};
    cg_sigv4_result_t r;

    /* the AWS documentation's "deriving the signing key" example */
    ck_assert_int_eq(cg_sigv4_signing_key(SECRET, "20120215", "us-east-1", "iam", key),
                     APR_SUCCESS);
    ck_assert_mem_eq(key, want, 32);
    /* and its signed IAM ListUsers request */
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &suite_creds, "us-east-1", "iam", DATE, &r),
                     APR_SUCCESS);
    ck_assert_str_eq(r.signature,
                     "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}
END_TEST

#define BODY                                                                                       \
    "{\"anthropic_version\":\"bedrock-2023-05-31\",\"max_tokens\":8,\"messages\":[{\"role\":"      \
    "\"user\",\"content\":\"hi\"}]}"

START_TEST(bedrock_model_id_encoded_twice)
{
    cg_sigv4_header_t h[2] = {{"host", "bedrock-runtime.us-east-1.amazonaws.com"},
                              {"content-type", "application/json"}};
    cg_sigv4_request_t req = {"POST",
                              "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
                              NULL,
                              h,
                              2,
                              BODY,
                              strlen(BODY),
                              0};
    cg_sigv4_credentials_t tok = {AKID, SECRET, "FQoGZXIvYXdzEXAMPLETOKEN"};
    cg_sigv4_result_t r;

    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &suite_creds, "us-east-1", "bedrock", DATE, &r),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(r.canonical_request, "\n/model/us.anthropic.claude-sonnet-4-5-"
                                                      "20250929-v1%253A0/invoke\n"));
    ck_assert_str_eq(r.signature,
                     "aef880365fe5e2b1f31f03abcb6bfbdb4c8d09a0c96a4e647dfae0ae314137e0");
    req.path = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream";
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &tok, "eu-west-1", "bedrock", DATE, &r),
                     APR_SUCCESS);
    ck_assert_str_eq(r.signature,
                     "64adb6cb1f58fd9c0b809e79933b4154e1bcd16dfd9b2ca11f511eae419ed518");
    ck_assert_ptr_nonnull(strstr(r.authorization, "/20150830/eu-west-1/bedrock/aws4_request, "
                                                  "SignedHeaders=content-type;host;x-amz-date;"
                                                  "x-amz-security-token, "));
    /* x-amz-content-sha256 on request: sent and signed */
    req.content_sha256_header = 1;
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &tok, "eu-west-1", "bedrock", DATE, &r),
                     APR_SUCCESS);
    ck_assert_str_eq(r.signed_headers,
                     "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
    ck_assert_int_eq(r.nset, 4);
    ck_assert_str_eq(r.set[2].name, "x-amz-content-sha256");
    ck_assert_str_eq(r.set[2].value, r.payload_hash);
}
END_TEST

START_TEST(encode_and_date)
{
    ck_assert_str_eq(cg_sigv4_uri_encode(unit_pool, "us.anthropic.claude-x-v1:0", 0),
                     "us.anthropic.claude-x-v1%3A0");
    ck_assert_str_eq(cg_sigv4_uri_encode(unit_pool, "arn:aws:bedrock:us-east-1:1:x/y z~", 0),
                     "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ax%2Fy%20z~");
    ck_assert_str_eq(cg_sigv4_uri_encode(unit_pool, "/a b/c", 1), "/a%20b/c");
    ck_assert_str_eq(cg_sigv4_uri_encode(unit_pool, NULL, 1), "");
    /* 2015-08-30 12:36:00 UTC */
    ck_assert_str_eq(cg_sigv4_amz_date(unit_pool, apr_time_from_sec(1440938160)), DATE);
}
END_TEST

START_TEST(refusals)
{
    cg_sigv4_header_t h[2] = {{"host", "example.amazonaws.com"}, {"x-evil", "a\r\nb: c"}};
    cg_sigv4_header_t dated[2] = {{"host", "example.amazonaws.com"}, {"X-Amz-Date", DATE}};
    cg_sigv4_request_t req = {"GET", "/", NULL, h, 1, NULL, 0, 0};
    cg_sigv4_credentials_t nokey = {AKID, "", NULL};
    cg_sigv4_result_t r;
    unsigned char key[32];

    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &suite_creds, "us-east-1", "s", "2015", &r),
                     APR_EINVAL);
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &nokey, "us-east-1", "s", DATE, &r),
                     APR_EINVAL);
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &suite_creds, "", "s", DATE, &r), APR_EINVAL);
    req.nheaders = 2; /* CR LF in a value */
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &suite_creds, "us-east-1", "s", DATE, &r),
                     APR_EINVAL);
    req.headers = h + 1; /* no host */
    req.nheaders = 0;
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &suite_creds, "us-east-1", "s", DATE, &r),
                     APR_EINVAL);
    req.headers = dated; /* x-amz-date is the signer's to add */
    req.nheaders = 2;
    ck_assert_int_eq(cg_sigv4_sign(unit_pool, &req, &suite_creds, "us-east-1", "s", DATE, &r),
                     APR_EINVAL);
    ck_assert_int_eq(cg_sigv4_signing_key(NULL, "20150830", "r", "s", key), APR_EINVAL);
}
END_TEST

Suite *unit_suite_cg_sigv4(void)
{
    Suite *s = suite_create("cg_sigv4");
    TCase *tc = tcase_create("sigv4");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, get_vanilla);
    tcase_add_test(tc, post_vanilla_and_form);
    tcase_add_test(tc, query_path_and_header_rules);
    tcase_add_test(tc, session_token_signed);
    tcase_add_test(tc, signing_key_and_iam_example);
    tcase_add_test(tc, bedrock_model_id_encoded_twice);
    tcase_add_test(tc, encode_and_date);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return s;
}
