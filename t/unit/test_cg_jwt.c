/* Unit tests of cg_jwt: base64url, HS256 signing and every verification
 * failure. The known vectors were computed independently with Python
 * (hmac/hashlib, and PyJWT 2.6 for a token minted by another library); the
 * malformed tokens are built here with OpenSSL's HMAC directly, so a bug in
 * cg_jwt_sign cannot hide one in cg_jwt_verify. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "unit.h"
#include "cg_jwt.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"
#define SECRET2 "another-secret-of-at-least-32-bytes!!"
/* iat of the claims below; tests run "now" one minute later */
#define T0 1795451852
#define CLAIMS                                                                                     \
    "{\"sub\":\"user-alice\",\"email\":\"alice@example.com\",\"groups\":[\"eng\",\"admins\"],"     \
    "\"aud\":\"claude-gateway\",\"iat\":1795451852,\"exp\":1795455452,"                            \
    "\"iss\":\"http://127.0.0.1:18000\"}"

/* Python: header {"alg":"HS256","typ":"JWT","kid":"k1"} (the reference's order),
 * CLAIMS compact, HMAC-SHA256 with SECRET */
static const char known_ours[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0."
    "eyJzdWIiOiJ1c2VyLWFsaWNlIiwiZW1haWwiOiJhbGljZUBleGFtcGxlLmNvbSIsImdyb3VwcyI6WyJlbmciLCJhZG1pbn"
    "MiXSwiYXVkIjoiY2xhdWRlLWdhdGV3YXkiLCJpYXQiOjE3OTU0NTE4NTIsImV4cCI6MTc5NTQ1NTQ1MiwiaXNzIjoiaHR0"
    "cDovLzEyNy4wLjAuMToxODAwMCJ9.RY17iFLUbr_SCRjE7A-RIP7yQWcRpk4WekxBodznHLM";

/* PyJWT 2.6: jwt.encode(CLAIMS, SECRET, algorithm="HS256", headers={"kid":"k1"}) */
static const char known_pyjwt[] =
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."
    "eyJzdWIiOiJ1c2VyLWFsaWNlIiwiZW1haWwiOiJhbGljZUBleGFtcGxlLmNvbSIsImdyb3VwcyI6WyJlbmciLCJhZG1pbn"
    "MiXSwiYXVkIjoiY2xhdWRlLWdhdGV3YXkiLCJpYXQiOjE3OTU0NTE4NTIsImV4cCI6MTc5NTQ1NTQ1MiwiaXNzIjoiaHR0"
    "cDovLzEyNy4wLjAuMToxODAwMCJ9.9owGVfa_5mzF28L-ffofFa_GbxSMPYOlB4GEEfnDwqA";

/* The reference gateway's token from capture 14 (its secret is not known). */
static const char capture14[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRkMTI3MTdlYWIwNTZkYmMifQ."
    "eyJzdWIiOiJ1c2VyLWFsaWNlIiwiZW1haWwiOiJhbGljZUBleGFtcGxlLmNvbSIsIm5hbWUiOiJBbGljZSBFeGFtcGxlIi"
    "wiZ3JvdXBzIjpbImVuZyIsImFkbWlucyJdLCJhdWQiOiJjbGF1ZGUtZ2F0ZXdheSIsImlhdCI6MTc5NTQ1MTg1MiwiZXhw"
    "IjoxNzk1NDU1NDUyLCJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjE4MDAwIn0."
    "icwN5D5KbJP989mEfXtO7p7o5PWJnUqnGdmqDIbIv_c";

static cg_jwt_key_t key1 = {"k1", (const unsigned char *)SECRET, sizeof(SECRET) - 1, NULL};
static cg_jwt_key_t key2 = {"k2", (const unsigned char *)SECRET2, sizeof(SECRET2) - 1, NULL};

static cg_jwt_expect_t expect_default(void)
{
    cg_jwt_expect_t w;

    w.iss = "http://127.0.0.1:18000";
    w.aud = "claude-gateway";
    w.now = apr_time_from_sec(T0 + 60);
    w.leeway = 0;
    return w;
}

/* A token from raw JSON texts, signed with OpenSSL directly. */
static const char *mint(const char *header, const char *payload, const char *secret)
{
    unsigned char mac[32];
    unsigned int maclen = 0;
    const char *input =
        apr_pstrcat(unit_pool, cg_jwt_b64url_encode(unit_pool, header, strlen(header)), ".",
                    cg_jwt_b64url_encode(unit_pool, payload, strlen(payload)), NULL);

    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                               (const unsigned char *)input, strlen(input), mac, &maclen));
    return apr_pstrcat(unit_pool, input, ".", cg_jwt_b64url_encode(unit_pool, mac, maclen), NULL);
}

/* A payload with the given exp/nbf/iat (0: left out) around the test's now. */
static const char *payload_times(long exp, long nbf, long iat)
{
    const char *s = "{\"sub\":\"u1\",\"aud\":\"claude-gateway\",\"iss\":\"http://127.0.0.1:18000\"";

    if (exp) {
        s = apr_psprintf(unit_pool, "%s,\"exp\":%ld", s, exp);
    }
    if (nbf) {
        s = apr_psprintf(unit_pool, "%s,\"nbf\":%ld", s, nbf);
    }
    if (iat) {
        s = apr_psprintf(unit_pool, "%s,\"iat\":%ld", s, iat);
    }
    return apr_pstrcat(unit_pool, s, "}", NULL);
}

#define HDR_K1 "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"
#define NOW (T0 + 60)

static cg_jwt_status_e verify1(const char *token, const cg_jwt_expect_t *w)
{
    json_t *claims;
    const char *reason = NULL;
    cg_jwt_status_e st = cg_jwt_verify(unit_pool, token, &key1, 1, w, &claims, &reason);

    ck_assert_ptr_nonnull(reason);
    ck_assert(st == CG_JWT_OK ? claims != NULL : claims == NULL);
    return st;
}

#define ck_assert_jwt(got, want)                                                                   \
    ck_assert_msg((got) == (want), "got %s, want %s", cg_jwt_status_name(got),                     \
                  cg_jwt_status_name(want))

START_TEST(test_b64url_rfc4648_vectors)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    static const unsigned char urlsafe[] = {0xfb, 0xff, 0xbf};
    size_t i;

    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        unsigned char *out;
        apr_size_t n;

        ck_assert_str_eq(cg_jwt_b64url_encode(unit_pool, plain[i], strlen(plain[i])), enc[i]);
        ck_assert_int_eq(cg_jwt_b64url_decode(unit_pool, enc[i], strlen(enc[i]), &out, &n),
                         APR_SUCCESS);
        ck_assert_uint_eq(n, strlen(plain[i]));
        ck_assert_str_eq((const char *)out, plain[i]);
    }
    /* the two characters that differ from standard base64 */
    ck_assert_str_eq(cg_jwt_b64url_encode(unit_pool, urlsafe, 3), "-_-_");
}
END_TEST

START_TEST(test_b64url_round_trip_all_bytes)
{
    unsigned char in[256];
    apr_size_t len;

    for (len = 0; len < sizeof(in); len++) {
        in[len] = (unsigned char)(255 - len);
    }
    for (len = 0; len <= sizeof(in); len++) {
        const char *e = cg_jwt_b64url_encode(unit_pool, in, len);
        unsigned char *out;
        apr_size_t n;

        ck_assert_ptr_null(strchr(e, '='));
        ck_assert_int_eq(cg_jwt_b64url_decode(unit_pool, e, strlen(e), &out, &n), APR_SUCCESS);
        ck_assert_uint_eq(n, len);
        ck_assert_int_eq(memcmp(out, in, len), 0);
    }
}
END_TEST

START_TEST(test_b64url_decode_rejects)
{
    static const char *bad[] = {
        "Zg==",     /* padding */
        "Zg=",      /* padding */
        "Z",        /* 4n+1 characters */
        "Zm9vY",    /* 4n+1 characters */
        "Zm9v Yg",  /* space */
        "Zm9v\nYg", /* newline */
        "Zm+v",     /* standard base64, not url */
        "Zm/v",     /* standard base64, not url */
        "Zh",       /* "f" with non-zero unused bits */
        "Zm9",      /* "fo" with non-zero unused bits */
        "Zm9v\x80", /* high byte */
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char *out = (unsigned char *)"x";
        apr_size_t n = 99;

        ck_assert_msg(cg_jwt_b64url_decode(unit_pool, bad[i], strlen(bad[i]), &out, &n) ==
                          APR_EINVAL,
                      "accepted %s", bad[i]);
        ck_assert_ptr_null(out);
        ck_assert_uint_eq(n, 0);
    }
}
END_TEST

START_TEST(test_b64url_decode_embedded_nul)
{
    unsigned char *out;
    apr_size_t n;

    /* the length, not a NUL, ends the input */
    ck_assert_int_eq(cg_jwt_b64url_decode(unit_pool, "Zg\0v", 4, &out, &n), APR_EINVAL);
    ck_assert_int_eq(cg_jwt_b64url_decode(unit_pool, "Zm9vYmFy", 4, &out, &n), APR_SUCCESS);
    ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(test_sign_known_vector)
{
    json_error_t err;
    json_t *claims = json_loads(CLAIMS, 0, &err);
    const char *token;

    ck_assert_ptr_nonnull(claims);
    token = cg_jwt_sign(unit_pool, &key1, claims);
    json_decref(claims);
    ck_assert_str_eq(token, known_ours);
}
END_TEST

START_TEST(test_verify_known_vectors)
{
    cg_jwt_expect_t w = expect_default();
    json_t *claims = NULL;
    const char *reason = NULL;

    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &key1, 1, &w, &claims, &reason), CG_JWT_OK);
    ck_assert_str_eq(reason, "ok");
    ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "user-alice");
    ck_assert_int_eq(json_array_size(json_object_get(claims, "groups")), 2);
    /* another library's token: header keys in another order */
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_pyjwt, &key1, 1, &w, &claims, NULL), CG_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "email")), "alice@example.com");
}
END_TEST

START_TEST(test_round_trip)
{
    cg_jwt_expect_t w = expect_default();
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:[s], s:s, s:I, s:I}", "sub", "user-bob", "email",
                  "bob@example.com", "name", "Bób Ünïcode", "groups", "eng", "aud",
                  "claude-gateway", "iat", (json_int_t)NOW, "exp", (json_int_t)NOW + 3600);
    const char *token;
    json_t *got;

    w.iss = NULL; /* no public_url: no iss claim, none expected */
    token = cg_jwt_sign(unit_pool, &key2, claims);
    ck_assert_ptr_nonnull(token);
    ck_assert_jwt(cg_jwt_verify(unit_pool, token, &key2, 1, &w, &got, NULL), CG_JWT_OK);
    ck_assert(json_equal(got, claims));
    json_decref(claims);
}
END_TEST

START_TEST(test_key_selection)
{
    cg_jwt_key_t both[2];
    cg_jwt_key_t nokid = key1;
    cg_jwt_expect_t w = expect_default();
    const char *p = payload_times(NOW + 100, 0, 0);
    const char *by1 = mint("{\"alg\":\"HS256\",\"kid\":\"k1\"}", p, SECRET);
    const char *by2 = mint("{\"alg\":\"HS256\",\"kid\":\"k2\"}", p, SECRET2);
    const char *none1 = mint("{\"alg\":\"HS256\"}", p, SECRET);
    const char *none2 = mint("{\"alg\":\"HS256\"}", p, SECRET2);

    both[0] = key1;
    both[1] = key2;
    /* rotation: the kid picks the key, whatever its position */
    ck_assert_jwt(cg_jwt_verify(unit_pool, by1, both, 2, &w, NULL, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, by2, both, 2, &w, NULL, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, by2, &key1, 1, &w, NULL, NULL), CG_JWT_UNKNOWN_KID);
    /* no kid: the first key, as the reference does */
    ck_assert_jwt(cg_jwt_verify(unit_pool, none1, &key1, 1, &w, NULL, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, none1, both, 2, &w, NULL, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, none2, both, 2, &w, NULL, NULL), CG_JWT_BAD_SIGNATURE);
    /* a key without kid never matches a token with one */
    nokid.kid = NULL;
    ck_assert_jwt(cg_jwt_verify(unit_pool, by1, &nokid, 1, &w, NULL, NULL), CG_JWT_UNKNOWN_KID);
    ck_assert_jwt(cg_jwt_verify(unit_pool, none1, &nokid, 1, &w, NULL, NULL), CG_JWT_OK);
    /* no keys at all */
    ck_assert_jwt(cg_jwt_verify(unit_pool, by1, NULL, 0, &w, NULL, NULL), CG_JWT_UNKNOWN_KID);
}
END_TEST

START_TEST(test_capture_token)
{
    /* the reference's kid rule selects the key; the secret is not ours */
    cg_jwt_key_t k = {"dd12717eab056dbc", (const unsigned char *)SECRET, sizeof(SECRET) - 1};
    cg_jwt_expect_t w = expect_default();

    ck_assert_jwt(cg_jwt_verify(unit_pool, capture14, &k, 1, &w, NULL, NULL), CG_JWT_BAD_SIGNATURE);
    ck_assert_jwt(cg_jwt_verify(unit_pool, capture14, &key1, 1, &w, NULL, NULL),
                  CG_JWT_UNKNOWN_KID);
}
END_TEST

START_TEST(test_alg_rejected)
{
    static const char *headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":\"None\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS512\",\"kid\":\"k1\"}",
        "{\"alg\":\"hs256\",\"kid\":\"k1\"}",
        "{\"alg\":\"RS256\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS256 \",\"kid\":\"k1\"}",
        "{\"alg\":null,\"kid\":\"k1\"}",
        "{\"alg\":[\"HS256\"],\"kid\":\"k1\"}",
        "{\"kid\":\"k1\"}",
    };
    cg_jwt_expect_t w = expect_default();
    const char *p = payload_times(NOW + 100, 0, 0);
    size_t i;

    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        ck_assert_jwt(verify1(mint(headers[i], p, SECRET), &w), CG_JWT_BAD_ALG);
    }
}
END_TEST

START_TEST(test_alg_none_unsigned)
{
    /* the classic attack: alg none and an empty signature */
    cg_jwt_expect_t w = expect_default();
    const char *h = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    const char *p = payload_times(NOW + 100, 0, 0);
    const char *t = apr_pstrcat(unit_pool, cg_jwt_b64url_encode(unit_pool, h, strlen(h)), ".",
                                cg_jwt_b64url_encode(unit_pool, p, strlen(p)), ".", NULL);

    ck_assert_jwt(verify1(t, &w), CG_JWT_MALFORMED);
    ck_assert_jwt(verify1(apr_pstrcat(unit_pool, t, "AAAA", NULL), &w), CG_JWT_BAD_ALG);
}
END_TEST

START_TEST(test_tampered)
{
    cg_jwt_expect_t w = expect_default();
    char *t = apr_pstrdup(unit_pool, known_ours);
    const char *p2 = "{\"sub\":\"user-mallory\",\"aud\":\"claude-gateway\",\"exp\":1795455452,"
                     "\"iss\":\"http://127.0.0.1:18000\"}";
    char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
    size_t siglen = strlen(dot2 + 1), input_len = (size_t)(dot2 - t) + 1;
    static const unsigned char zeros[33];

    /* another payload under the original signature */
    ck_assert_jwt(verify1(apr_pstrcat(unit_pool, apr_pstrndup(unit_pool, t, dot1 - t + 1),
                                      cg_jwt_b64url_encode(unit_pool, p2, strlen(p2)), dot2, NULL),
                          &w),
                  CG_JWT_BAD_SIGNATURE);
    /* signed with another secret */
    ck_assert_jwt(verify1(mint(HDR_K1, CLAIMS, SECRET2), &w), CG_JWT_BAD_SIGNATURE);
    /* a flipped signature bit */
    t[dot2 - t + 1] = t[dot2 - t + 1] == 'A' ? 'B' : 'A';
    ck_assert_jwt(verify1(t, &w), CG_JWT_BAD_SIGNATURE);
    /* signature of 31 and 33 bytes */
    ck_assert_uint_eq(siglen, 43);
    ck_assert_jwt(verify1(apr_pstrcat(unit_pool, apr_pstrndup(unit_pool, known_ours, input_len),
                                      cg_jwt_b64url_encode(unit_pool, zeros, 31), NULL),
                          &w),
                  CG_JWT_BAD_SIGNATURE);
    ck_assert_jwt(verify1(apr_pstrcat(unit_pool, apr_pstrndup(unit_pool, known_ours, input_len),
                                      cg_jwt_b64url_encode(unit_pool, zeros, 33), NULL),
                          &w),
                  CG_JWT_BAD_SIGNATURE);
}
END_TEST

START_TEST(test_signature_one_spelling)
{
    /* 43 characters carry 258 bits for 256: the last two must be zero, or the
     * same signature would have four spellings */
    cg_jwt_expect_t w = expect_default();
    char *t = apr_pstrdup(unit_pool, known_ours);
    char *last = t + strlen(t) - 1;

    ck_assert_int_eq(*last, 'M'); /* value 12: low bits 00 */
    *last = 'N';
    ck_assert_jwt(verify1(t, &w), CG_JWT_MALFORMED);
}
END_TEST

START_TEST(test_expiry_and_leeway)
{
    cg_jwt_expect_t w = expect_default();
    const char *past = mint(HDR_K1, payload_times(NOW - 10, 0, 0), SECRET);
    const char *edge = mint(HDR_K1, payload_times(NOW, 0, 0), SECRET);
    const char *fine = mint(HDR_K1, payload_times(NOW + 1, 0, 0), SECRET);

    ck_assert_jwt(verify1(past, &w), CG_JWT_EXPIRED);
    ck_assert_jwt(verify1(edge, &w), CG_JWT_EXPIRED); /* valid only before exp */
    ck_assert_jwt(verify1(fine, &w), CG_JWT_OK);
    w.leeway = 30;
    ck_assert_jwt(verify1(past, &w), CG_JWT_OK);
    w.leeway = 10;
    ck_assert_jwt(verify1(past, &w), CG_JWT_EXPIRED);
    w.leeway = -100; /* a negative leeway is no leeway */
    ck_assert_jwt(verify1(fine, &w), CG_JWT_OK);
    /* fractional NumericDate */
    ck_assert_jwt(verify1(mint(HDR_K1,
                               "{\"sub\":\"u\",\"aud\":\"claude-gateway\",\"iss\":"
                               "\"http://127.0.0.1:18000\",\"exp\":1795451912.5}",
                               SECRET),
                          &w),
                  CG_JWT_OK);
}
END_TEST

START_TEST(test_not_yet_valid)
{
    cg_jwt_expect_t w = expect_default();
    const char *nbf = mint(HDR_K1, payload_times(NOW + 3600, NOW + 100, 0), SECRET);
    const char *iat = mint(HDR_K1, payload_times(NOW + 3600, 0, NOW + 100), SECRET);
    const char *ok = mint(HDR_K1, payload_times(NOW + 3600, NOW, NOW), SECRET);

    ck_assert_jwt(verify1(nbf, &w), CG_JWT_NOT_YET_VALID);
    ck_assert_jwt(verify1(iat, &w), CG_JWT_NOT_YET_VALID);
    ck_assert_jwt(verify1(ok, &w), CG_JWT_OK);
    w.leeway = 100;
    ck_assert_jwt(verify1(nbf, &w), CG_JWT_OK);
    ck_assert_jwt(verify1(iat, &w), CG_JWT_OK);
}
END_TEST

START_TEST(test_issuer)
{
    cg_jwt_expect_t w = expect_default();
    const char *noiss =
        mint(HDR_K1, "{\"sub\":\"u\",\"aud\":\"claude-gateway\",\"exp\":1795459999}", SECRET);

    ck_assert_jwt(verify1(known_ours, &w), CG_JWT_OK);
    w.iss = "https://gw.example.com";
    ck_assert_jwt(verify1(known_ours, &w), CG_JWT_BAD_ISSUER);
    ck_assert_jwt(verify1(noiss, &w), CG_JWT_BAD_ISSUER);
    w.iss = NULL;
    ck_assert_jwt(verify1(noiss, &w), CG_JWT_OK);
    ck_assert_jwt(verify1(known_ours, &w), CG_JWT_OK);
}
END_TEST

START_TEST(test_audience)
{
    static const struct {
        const char *aud;
        cg_jwt_status_e st;
    } cases[] = {
        {"\"claude-gateway\"", CG_JWT_OK},
        {"[\"other\",\"claude-gateway\"]", CG_JWT_OK},
        {"[1,null,\"claude-gateway\"]", CG_JWT_OK},
        {"[\"other\"]", CG_JWT_BAD_AUDIENCE},
        {"[]", CG_JWT_BAD_AUDIENCE},
        {"\"claude-gateway2\"", CG_JWT_BAD_AUDIENCE},
        {"\"Claude-Gateway\"", CG_JWT_BAD_AUDIENCE},
        {"42", CG_JWT_BAD_AUDIENCE},
        {"{\"claude-gateway\":1}", CG_JWT_BAD_AUDIENCE},
        {NULL, CG_JWT_BAD_AUDIENCE},
    };
    cg_jwt_expect_t w = expect_default();
    size_t i;

    w.iss = NULL;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p =
            cases[i].aud != NULL
                ? apr_psprintf(unit_pool, "{\"sub\":\"u\",\"exp\":1795459999,\"aud\":%s}",
                               cases[i].aud)
                : "{\"sub\":\"u\",\"exp\":1795459999}";
        ck_assert_jwt(verify1(mint(HDR_K1, p, SECRET), &w), cases[i].st);
    }
    w.aud = NULL; /* not checked */
    ck_assert_jwt(verify1(mint(HDR_K1, "{\"sub\":\"u\",\"exp\":1795459999}", SECRET), &w),
                  CG_JWT_OK);
}
END_TEST

START_TEST(test_required_claims)
{
    static const char *bad[] = {
        "{\"sub\":\"u\",\"aud\":\"claude-gateway\"}",                        /* no exp */
        "{\"sub\":\"u\",\"aud\":\"claude-gateway\",\"exp\":\"1795459999\"}", /* exp a string */
        "{\"sub\":\"u\",\"aud\":\"claude-gateway\",\"exp\":null}",
        "{\"aud\":\"claude-gateway\",\"exp\":1795459999}", /* no sub */
        "{\"sub\":\"\",\"aud\":\"claude-gateway\",\"exp\":1795459999}",
        "{\"sub\":7,\"aud\":\"claude-gateway\",\"exp\":1795459999}",
        "{\"sub\":\"u\",\"aud\":\"claude-gateway\",\"exp\":1795459999,\"nbf\":\"0\"}",
        "{\"sub\":\"u\",\"aud\":\"claude-gateway\",\"exp\":1795459999,\"iat\":true}",
    };
    cg_jwt_expect_t w = expect_default();
    size_t i;

    w.iss = NULL;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_jwt(verify1(mint(HDR_K1, bad[i], SECRET), &w), CG_JWT_BAD_CLAIM);
    }
}
END_TEST

START_TEST(test_bad_header)
{
    static const char *bad[] = {
        "not json",
        "[\"alg\",\"HS256\"]",
        "\"HS256\"",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\",\"kid\":\"k1\"}", /* duplicate key */
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWE\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":1}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"HS256\",\"kid\":1}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\"} trailing",
    };
    cg_jwt_expect_t w = expect_default();
    const char *p = payload_times(NOW + 100, 0, 0);
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_jwt(verify1(mint(bad[i], p, SECRET), &w), CG_JWT_BAD_HEADER);
    }
    /* typ is optional, and compared without case */
    ck_assert_jwt(
        verify1(mint("{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"jwt\"}", p, SECRET), &w),
        CG_JWT_OK);
}
END_TEST

START_TEST(test_bad_payload)
{
    static const char *bad[] = {
        "not json",
        "[1,2]",
        "{\"sub\":\"u\",\"sub\":\"admin\",\"aud\":\"claude-gateway\",\"exp\":1795459999}",
        "{\"sub\":\"u\\u0000admin\",\"aud\":\"claude-gateway\",\"exp\":1795459999}",
        "",
    };
    cg_jwt_expect_t w = expect_default();
    size_t i;

    w.iss = NULL;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *t = mint(HDR_K1, bad[i], SECRET);
        ck_assert_jwt(verify1(t, &w), CG_JWT_MALFORMED);
    }
}
END_TEST

START_TEST(test_malformed_shapes)
{
    cg_jwt_expect_t w = expect_default();
    const char *dots[] = {"", ".", "..", "...", "a.b", "a..c", ".b.c", "a.b.", "abc"};
    char *big;
    char *padded;
    size_t i;

    for (i = 0; i < sizeof(dots) / sizeof(dots[0]); i++) {
        ck_assert_jwt(verify1(dots[i], &w), CG_JWT_MALFORMED);
    }
    ck_assert_jwt(cg_jwt_verify(unit_pool, NULL, &key1, 1, &w, NULL, NULL), CG_JWT_MALFORMED);
    /* five segments: a JWE */
    ck_assert_jwt(verify1(apr_pstrcat(unit_pool, known_ours, ".AAAA.BBBB", NULL), &w),
                  CG_JWT_MALFORMED);
    ck_assert_jwt(verify1(apr_pstrcat(unit_pool, known_ours, ".", NULL), &w), CG_JWT_MALFORMED);
    /* padding, whitespace, standard base64 */
    padded = apr_pstrcat(unit_pool, "eyJhbGciOiJIUzI1NiJ9==", strchr(known_ours, '.'), NULL);
    ck_assert_jwt(verify1(padded, &w), CG_JWT_MALFORMED);
    ck_assert_jwt(verify1(apr_pstrcat(unit_pool, " ", known_ours, NULL), &w), CG_JWT_MALFORMED);
    ck_assert_jwt(verify1(apr_pstrcat(unit_pool, known_ours, "\n", NULL), &w), CG_JWT_MALFORMED);
    /* over 8 KiB, even when otherwise well formed */
    big = apr_palloc(unit_pool, CG_JWT_MAX_LEN + 2);
    memset(big, 'A', CG_JWT_MAX_LEN + 1);
    big[10] = '.';
    big[20] = '.';
    big[CG_JWT_MAX_LEN + 1] = '\0';
    ck_assert_jwt(verify1(big, &w), CG_JWT_MALFORMED);
}
END_TEST

START_TEST(test_max_len_boundary)
{
    cg_jwt_expect_t w = expect_default();
    json_t *claims = json_pack("{s:s, s:s, s:I, s:s}", "sub", "u", "aud", "claude-gateway", "exp",
                               (json_int_t)NOW + 100, "pad", "");
    const char *t = cg_jwt_sign(unit_pool, &key1, claims);
    size_t pad = 0, longest = 0;

    w.iss = NULL;
    ck_assert_ptr_nonnull(t);
    /* grow the claims until the token passes the limit: the last one signed
     * must verify, and sign must refuse the next */
    while (t != NULL) {
        char *s = apr_palloc(unit_pool, pad + 2);
        memset(s, 'x', pad + 1);
        s[pad + 1] = '\0';
        ck_assert_jwt(verify1(t, &w), CG_JWT_OK);
        ck_assert_uint_le(strlen(t), CG_JWT_MAX_LEN);
        longest = strlen(t);
        json_object_set_new(claims, "pad", json_string(s));
        pad += strlen(t) < CG_JWT_MAX_LEN - 1000 ? 600 : 1;
        t = cg_jwt_sign(unit_pool, &key1, claims);
    }
    ck_assert_uint_ge(longest, CG_JWT_MAX_LEN - 4);
    json_decref(claims);
}
END_TEST

START_TEST(test_sign_refuses)
{
    cg_jwt_key_t empty = {"k", (const unsigned char *)"", 0};
    json_t *arr = json_array();
    json_t *obj = json_object();

    ck_assert_ptr_null(cg_jwt_sign(unit_pool, &key1, arr));
    ck_assert_ptr_null(cg_jwt_sign(unit_pool, &key1, NULL));
    ck_assert_ptr_null(cg_jwt_sign(unit_pool, &empty, obj));
    ck_assert_ptr_null(cg_jwt_sign(unit_pool, NULL, obj));
    json_decref(arr);
    json_decref(obj);
}
END_TEST

START_TEST(test_claims_owned_by_pool)
{
    /* the claims outlive nothing: destroying the pool releases them (valgrind
     * checks there is no leak), and callers never decref */
    apr_pool_t *sub;
    cg_jwt_expect_t w = expect_default();
    json_t *claims = NULL;

    apr_pool_create(&sub, unit_pool);
    ck_assert_jwt(cg_jwt_verify(sub, known_ours, &key1, 1, &w, &claims, NULL), CG_JWT_OK);
    /* a prepared key's cache holds the other reference */
    ck_assert_int_eq(claims->refcount, key1.mac != NULL ? 2 : 1);
    apr_pool_destroy(sub);
}
END_TEST

START_TEST(test_status_names)
{
    int s;

    for (s = CG_JWT_OK; s <= CG_JWT_BAD_CLAIM; s++) {
        ck_assert_str_ne(cg_jwt_status_name((cg_jwt_status_e)s), "unknown");
    }
    ck_assert_str_eq(cg_jwt_status_name(CG_JWT_EXPIRED), "expired");
}
END_TEST

START_TEST(test_random)
{
    const char *a = cg_jwt_random_b64url(unit_pool, 32);
    const char *b = cg_jwt_random_b64url(unit_pool, 32);
    unsigned char *out;
    apr_size_t n;

    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(strlen(a), 43);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(cg_jwt_b64url_decode(unit_pool, a, strlen(a), &out, &n), APR_SUCCESS);
    ck_assert_uint_eq(n, 32);
    ck_assert_uint_eq(strlen(cg_jwt_random_b64url(unit_pool, 1)), 2);
    ck_assert_ptr_nonnull(cg_jwt_random_b64url(unit_pool, 1024));
    ck_assert_ptr_null(cg_jwt_random_b64url(unit_pool, 0));
    ck_assert_ptr_null(cg_jwt_random_b64url(unit_pool, 1025));
}
END_TEST

START_TEST(test_sha256_and_kid)
{
    /* FIPS 180-2 vectors, and the kid Python computes for SECRET */
    ck_assert_str_eq(cg_jwt_sha256_hex(unit_pool, "abc", 3),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_str_eq(cg_jwt_sha256_hex(unit_pool, NULL, 0),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_str_eq(cg_jwt_kid(unit_pool, key1.secret, key1.secret_len), "3fdcb8cdfe57f203");
}
END_TEST

static void *APR_THREAD_FUNC verify_many(apr_thread_t *thd, void *data)
{
    cg_jwt_expect_t w = expect_default();
    apr_pool_t *p;
    apr_status_t rv = APR_SUCCESS;
    int i;

    (void)data;
    apr_pool_create_unmanaged(&p);
    for (i = 0; i < 2000 && rv == APR_SUCCESS; i++) {
        if (cg_jwt_verify(p, known_ours, &key1, 1, &w, NULL, NULL) != CG_JWT_OK) {
            rv = APR_EGENERAL;
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    apr_thread_exit(thd, rv);
    return NULL;
}

/* --- prepared keys (cg_jwt_key_prepare) -------------------------------- */

/* The "jwt prepared" case runs every jwt test again with key1 and key2 keyed
 * in advance: tokens must come out and be judged exactly the same. */
static void setup_prepared(void)
{
    unit_setup();
    ck_assert_int_eq(cg_jwt_key_prepare(unit_pool, &key1), APR_SUCCESS);
    ck_assert_int_eq(cg_jwt_key_prepare(unit_pool, &key2), APR_SUCCESS);
}

static void teardown_prepared(void)
{
    unit_teardown();
    /* the pool's cleanup forgot the prepared state */
    ck_assert_ptr_null(key1.mac);
    ck_assert_ptr_null(key2.mac);
}

START_TEST(test_prepare_lifecycle)
{
    cg_jwt_key_t k = {"k1", (const unsigned char *)SECRET, sizeof(SECRET) - 1, NULL};
    cg_jwt_key_t empty = {"k", (const unsigned char *)"", 0, NULL};
    const cg_jwt_mac_t *m;
    apr_pool_t *sub;
    json_error_t err;
    json_t *claims = json_loads(CLAIMS, 0, &err);

    ck_assert_int_eq(cg_jwt_key_prepare(unit_pool, &empty), APR_EINVAL);
    ck_assert_ptr_null(empty.mac);
    apr_pool_create(&sub, unit_pool);
    ck_assert_int_eq(cg_jwt_key_prepare(sub, &k), APR_SUCCESS);
    m = k.mac;
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(cg_jwt_key_prepare(sub, &k), APR_SUCCESS);
    ck_assert_ptr_eq(k.mac, m); /* once is enough */
    ck_assert_str_eq(cg_jwt_sign(unit_pool, &k, claims), known_ours);
    apr_pool_destroy(sub);
    ck_assert_ptr_null(k.mac);
    ck_assert_str_eq(cg_jwt_sign(unit_pool, &k, claims), known_ours);
    json_decref(claims);
}
END_TEST

START_TEST(test_prepare_stale_copy)
{
    /* a copy of a prepared key whose kid or secret changed must not use the
     * state prepared for the original */
    cg_jwt_key_t k = {"k1", (const unsigned char *)SECRET, sizeof(SECRET) - 1, NULL};
    cg_jwt_key_t other, nokid;
    cg_jwt_expect_t w = expect_default();
    json_error_t err;
    json_t *claims = json_loads(CLAIMS, 0, &err);
    const char *t;
    apr_pool_t *sub; /* k must outlive the pool that prepared it */

    apr_pool_create(&sub, unit_pool);
    ck_assert_int_eq(cg_jwt_key_prepare(sub, &k), APR_SUCCESS);
    other = k;
    other.secret = (const unsigned char *)SECRET2;
    other.secret_len = sizeof(SECRET2) - 1;
    t = cg_jwt_sign(unit_pool, &other, claims);
    ck_assert_ptr_nonnull(t);
    ck_assert_jwt(cg_jwt_verify(unit_pool, t, &k, 1, &w, NULL, NULL), CG_JWT_BAD_SIGNATURE);
    ck_assert_jwt(cg_jwt_verify(unit_pool, t, &key2, 1, &w, NULL, NULL), CG_JWT_UNKNOWN_KID);
    ck_assert_jwt(cg_jwt_verify(unit_pool, t, &other, 1, &w, NULL, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &other, 1, &w, NULL, NULL),
                  CG_JWT_BAD_SIGNATURE);
    nokid = k;
    nokid.kid = NULL;
    t = cg_jwt_sign(unit_pool, &nokid, claims);
    ck_assert_ptr_nonnull(t);
    /* {"alg":"HS256","typ":"JWT"}: no kid in the header */
    ck_assert_int_eq(strncmp(t, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37), 0);
    ck_assert_jwt(cg_jwt_verify(unit_pool, t, &nokid, 1, &w, NULL, NULL), CG_JWT_OK);
    json_decref(claims);
    apr_pool_destroy(sub);
}
END_TEST

START_TEST(test_prepare_same_key_choice)
{
    /* two keys with the same kid: parsing the header picks the first usable
     * one, and so must the shortcut for our own header, prepared or not */
    cg_jwt_key_t keys[3];
    cg_jwt_expect_t w = expect_default();
    apr_pool_t *sub;

    keys[0] = (cg_jwt_key_t){"k1", (const unsigned char *)"", 0, NULL}; /* unusable */
    keys[1] = (cg_jwt_key_t){"k1", (const unsigned char *)SECRET2, sizeof(SECRET2) - 1, NULL};
    keys[2] = (cg_jwt_key_t){"k1", (const unsigned char *)SECRET, sizeof(SECRET) - 1, NULL};
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, keys, 3, &w, NULL, NULL),
                  CG_JWT_BAD_SIGNATURE);
    /* only the later key prepared: the walk stops at the unprepared one */
    apr_pool_create(&sub, unit_pool);
    ck_assert_int_eq(cg_jwt_key_prepare(sub, &keys[2]), APR_SUCCESS);
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, keys, 3, &w, NULL, NULL),
                  CG_JWT_BAD_SIGNATURE);
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, keys + 2, 1, &w, NULL, NULL), CG_JWT_OK);
    ck_assert_int_eq(cg_jwt_key_prepare(sub, &keys[1]), APR_SUCCESS);
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, keys, 3, &w, NULL, NULL),
                  CG_JWT_BAD_SIGNATURE);
    apr_pool_destroy(sub);
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, keys, 3, &w, NULL, NULL),
                  CG_JWT_BAD_SIGNATURE);
}
END_TEST

START_TEST(test_prepare_cache)
{
    /* a token verified once is remembered; only exactly its bytes hit, and
     * its claims are judged again on every call */
    cg_jwt_expect_t w = expect_default();
    size_t n = strlen(known_ours), sig = n - 43;
    char *t = apr_pstrdup(unit_pool, known_ours);
    json_t *a = NULL, *b = NULL;

    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &key1, 1, &w, &a, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, t, &key1, 1, &w, &b, NULL), CG_JWT_OK);
    ck_assert(json_equal(a, b));
    ck_assert_str_eq(json_string_value(json_object_get(b, "sub")), "user-alice");
    /* same length and same signature tail (same slot), other bytes: the
     * payload, then the signature's first character */
    t[60] = t[60] == 'A' ? 'B' : 'A';
    ck_assert_jwt(cg_jwt_verify(unit_pool, t, &key1, 1, &w, NULL, NULL), CG_JWT_BAD_SIGNATURE);
    t[60] = known_ours[60];
    t[sig] = t[sig] == 'A' ? 'B' : 'A';
    ck_assert_jwt(cg_jwt_verify(unit_pool, t, &key1, 1, &w, NULL, NULL), CG_JWT_BAD_SIGNATURE);
    /* a prefix is not the token (its last character carries unused bits) */
    ck_assert_jwt(cg_jwt_verify(unit_pool, apr_pstrmemdup(unit_pool, known_ours, n - 1), &key1, 1,
                                &w, NULL, NULL),
                  CG_JWT_MALFORMED);
    /* the cached token is still checked against the time and want */
    w.now = apr_time_from_sec(T0 + 3600);
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &key1, 1, &w, NULL, NULL), CG_JWT_EXPIRED);
    w = expect_default();
    w.iss = "https://elsewhere";
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &key1, 1, &w, NULL, NULL),
                  CG_JWT_BAD_ISSUER);
    w = expect_default();
    w.aud = "other";
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &key1, 1, &w, NULL, NULL),
                  CG_JWT_BAD_AUDIENCE);
    /* and only with the key that verified it */
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &key2, 1, &w, NULL, NULL),
                  CG_JWT_UNKNOWN_KID);
    w = expect_default();
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &key1, 1, &w, NULL, NULL), CG_JWT_OK);
}
END_TEST

START_TEST(test_prepare_cache_many_tokens)
{
    /* many live tokens stay cached side by side: on a second round each one
     * answers with the payload object its first verification cached */
    enum { N = 64 };
    cg_jwt_expect_t w = expect_default();
    json_error_t err;
    json_t *claims = json_loads(CLAIMS, 0, &err), *first[N], *again;
    const char *tokens[N];
    int i, hits = 0;

    ck_assert_ptr_nonnull(claims);
    for (i = 0; i < N; i++) {
        json_object_set_new(claims, "jti", json_integer(i));
        tokens[i] = cg_jwt_sign(unit_pool, &key1, claims);
        ck_assert_jwt(cg_jwt_verify(unit_pool, tokens[i], &key1, 1, &w, &first[i], NULL),
                      CG_JWT_OK);
    }
    json_decref(claims);
    for (i = 0; i < N; i++) {
        ck_assert_jwt(cg_jwt_verify(unit_pool, tokens[i], &key1, 1, &w, &again, NULL), CG_JWT_OK);
        hits += again == first[i]; /* the payloads belong to unit_pool's cleanups */
    }
    /* 64 tokens in 256 sets of 4 (these fixed tokens put at most four in a
     * set); 128 direct-mapped slots, as before, lost some to collisions */
    ck_assert_int_eq(hits, N);
}
END_TEST

START_TEST(test_prepare_cache_other_headers)
{
    /* a token with another header is parsed, and the key parsing chooses
     * answers from its cache: the same payload object comes back */
    cg_jwt_key_t both[2];
    cg_jwt_expect_t w = expect_default();
    const char *p = payload_times(NOW + 100, 0, 0);
    const char *none1 = mint("{\"alg\":\"HS256\"}", p, SECRET);
    json_t *a = NULL, *b = NULL;

    ck_assert_jwt(cg_jwt_verify(unit_pool, known_pyjwt, &key1, 1, &w, &a, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_pyjwt, &key1, 1, &w, &b, NULL), CG_JWT_OK);
    ck_assert_ptr_eq(a, b);
    both[0] = key2;
    both[1] = key1;
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_pyjwt, both, 2, &w, &b, NULL), CG_JWT_OK);
    ck_assert_ptr_eq(a, b);
    /* without kid the first key is chosen: key1 verified it, key2 must not */
    ck_assert_jwt(cg_jwt_verify(unit_pool, none1, &key1, 1, &w, &a, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, none1, &key1, 1, &w, &b, NULL), CG_JWT_OK);
    ck_assert_ptr_eq(a, b);
    ck_assert_jwt(cg_jwt_verify(unit_pool, none1, both, 2, &w, NULL, NULL), CG_JWT_BAD_SIGNATURE);
    /* and a hit of our own header returns the cached object as well */
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, &key1, 1, &w, &a, NULL), CG_JWT_OK);
    ck_assert_jwt(cg_jwt_verify(unit_pool, known_ours, both, 2, &w, &b, NULL), CG_JWT_OK);
    ck_assert_ptr_eq(a, b);
}
END_TEST

/* jansson allocations, counted: a header or payload parsed allocates, a
 * token answered from a cache does not */
static unsigned long json_allocs;

static void *count_malloc(size_t n)
{
    json_allocs++;
    return malloc(n);
}

/* The status of a verification, and through *allocs how many times jansson
 * allocated during it. */
static cg_jwt_status_e verify_counting(const char *token, const cg_jwt_key_t *keys, int nkeys,
                                       json_t **claims, unsigned long *allocs)
{
    cg_jwt_expect_t w = expect_default();
    cg_jwt_status_e st;

    json_allocs = 0;
    json_set_alloc_funcs(count_malloc, free);
    st = cg_jwt_verify(unit_pool, token, keys, nkeys, &w, claims, NULL);
    json_set_alloc_funcs(malloc, free);
    *allocs = json_allocs;
    return st;
}

START_TEST(test_prepare_cache_foreign_header)
{
    /* a token with another library's header (PyJWT's order, or no kid) is
     * answered from the cache of the key that verified it without its header
     * being decoded or parsed, but only where parsing would choose that key */
    cg_jwt_key_t keys[2], k1copy = key1;
    const char *p = payload_times(NOW + 100, 0, 0);
    const char *none1 = mint("{\"alg\":\"HS256\"}", p, SECRET);
    const char *fresh = mint("{\"kid\":\"k1\",\"alg\":\"HS256\"}", p, SECRET);
    size_t n = strlen(known_pyjwt);
    char *t = apr_pstrdup(unit_pool, known_pyjwt);
    json_t *a = NULL, *b = NULL;
    unsigned long allocs = 0;
    apr_pool_t *sub;

    /* a first verification parses (the counter sees it), a second does not */
    ck_assert_jwt(verify_counting(known_pyjwt, &key1, 1, &a, &allocs), CG_JWT_OK);
    ck_assert_uint_gt(allocs, 0);
    ck_assert_jwt(verify_counting(known_pyjwt, &key1, 1, &b, &allocs), CG_JWT_OK);
    ck_assert_uint_eq(allocs, 0);
    ck_assert_ptr_eq(a, b);
    ck_assert_jwt(verify_counting(none1, &key1, 1, &a, &allocs), CG_JWT_OK);
    ck_assert_uint_gt(allocs, 0);
    ck_assert_jwt(verify_counting(none1, &key1, 1, &b, &allocs), CG_JWT_OK);
    ck_assert_uint_eq(allocs, 0);
    ck_assert_ptr_eq(a, b);
    /* with key1 second, its cache still answers a kid k1 token */
    keys[0] = key2;
    keys[1] = key1;
    ck_assert_jwt(verify_counting(known_pyjwt, keys, 2, &b, &allocs), CG_JWT_OK);
    ck_assert_uint_eq(allocs, 0);
    /* but not a kid-less one: keys[0] is the key for those */
    ck_assert_jwt(verify_counting(none1, keys, 2, NULL, &allocs), CG_JWT_BAD_SIGNATURE);
    /* the same header with a changed payload or signature byte (same
     * length; the signature change keeps the slot too) */
    t[60] = t[60] == 'A' ? 'B' : 'A';
    ck_assert_jwt(verify_counting(t, &key1, 1, NULL, &allocs), CG_JWT_BAD_SIGNATURE);
    t[60] = known_pyjwt[60];
    t[n - 43] = t[n - 43] == 'A' ? 'B' : 'A';
    ck_assert_jwt(verify_counting(t, &key1, 1, NULL, &allocs), CG_JWT_BAD_SIGNATURE);
    /* key1 removed from the configuration, or left unusable in front of
     * key2: its cache is not asked */
    ck_assert_jwt(verify_counting(known_pyjwt, &key2, 1, NULL, &allocs), CG_JWT_UNKNOWN_KID);
    keys[0] = key1;
    keys[0].secret_len = 0;
    keys[1] = key2;
    ck_assert_jwt(verify_counting(known_pyjwt, keys, 2, NULL, &allocs), CG_JWT_UNKNOWN_KID);
    /* key1's secret changed: a copy with another secret has no cache */
    k1copy.secret = (const unsigned char *)SECRET2;
    k1copy.secret_len = sizeof(SECRET2) - 1;
    ck_assert_jwt(verify_counting(known_pyjwt, &k1copy, 1, NULL, &allocs), CG_JWT_BAD_SIGNATURE);
    ck_assert_jwt(verify_counting(none1, &k1copy, 1, NULL, &allocs), CG_JWT_BAD_SIGNATURE);
    /* an unusable key with kid k1 first is skipped by parsing, so key1's
     * cache answers */
    keys[1] = key1;
    ck_assert_jwt(verify_counting(known_pyjwt, keys, 2, NULL, &allocs), CG_JWT_OK);
    ck_assert_uint_eq(allocs, 0);
    /* another usable key with kid k1 first is the one parsing chooses: key1's
     * cache must not answer, prepared or not */
    keys[0] = (cg_jwt_key_t){"k1", (const unsigned char *)SECRET2, sizeof(SECRET2) - 1, NULL};
    ck_assert_jwt(verify_counting(known_pyjwt, keys, 2, NULL, &allocs), CG_JWT_BAD_SIGNATURE);
    apr_pool_create(&sub, unit_pool);
    ck_assert_int_eq(cg_jwt_key_prepare(sub, &keys[0]), APR_SUCCESS);
    ck_assert_jwt(verify_counting(known_pyjwt, keys, 2, NULL, &allocs), CG_JWT_BAD_SIGNATURE);
    apr_pool_destroy(sub);
    /* a token never seen is verified in full, and then remembered */
    ck_assert_jwt(verify_counting(fresh, &key1, 1, NULL, &allocs), CG_JWT_OK);
    ck_assert_uint_gt(allocs, 0);
    ck_assert_jwt(verify_counting(fresh, &key1, 1, NULL, &allocs), CG_JWT_OK);
    ck_assert_uint_eq(allocs, 0);
}
END_TEST

START_TEST(test_prepare_threads_share)
{
    /* verification from several threads at once against one prepared key */
    int i;
    apr_thread_t *t[4];
    apr_status_t rv;

#ifdef __SANITIZE_ADDRESS__
    /* gcc's ASan reports a stack overflow in its own sigaltstack interceptor
     * when a thread that used libcrypto exits (any program, not ours) */
    return;
#endif
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, verify_many, NULL, unit_pool), APR_SUCCESS);
    }
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(apr_thread_join(&rv, t[i]), APR_SUCCESS);
        ck_assert_int_eq(rv, APR_SUCCESS);
    }
}
END_TEST

/* Word-at-a-time equality: every length up to 40 (whole words and every
 * tail), a difference in each byte and each bit, at every alignment. */
START_TEST(test_ct_equal)
{
    unsigned char a[64], b[64];
    size_t n, i, bit, off;

    ck_assert_int_eq(cg_jwt_ct_equal(NULL, NULL, 0), 1);
    for (off = 0; off < 8; off++) {
        for (n = 0; n <= 40; n++) {
            for (i = 0; i < n; i++) {
                a[off + i] = b[i] = (unsigned char)(i * 37 + n + 1);
            }
            ck_assert_int_eq(cg_jwt_ct_equal(a + off, b, n), 1);
            for (i = 0; i < n; i++) {
                for (bit = 0; bit < 8; bit++) {
                    b[i] ^= (unsigned char)(1u << bit);
                    ck_assert_msg(cg_jwt_ct_equal(a + off, b, n) == 0,
                                  "len %zu, byte %zu, bit %zu, offset %zu", n, i, bit, off);
                    ck_assert_int_eq(cg_jwt_ct_equal(b, a + off, n), 0);
                    b[i] ^= (unsigned char)(1u << bit);
                }
                b[i] = (unsigned char)~b[i]; /* every bit of one byte at once */
                ck_assert_int_eq(cg_jwt_ct_equal(a + off, b, n), 0);
                b[i] = (unsigned char)~b[i];
            }
            /* bytes past n are not looked at */
            a[off + n] = 1;
            b[n] = 2;
            ck_assert_int_eq(cg_jwt_ct_equal(a + off, b, n), 1);
        }
    }
}
END_TEST

/* cg_jwt_verify_session: the claims a session reads, the same on the first
 * verification and from a prepared key's cache, and the verdict and reason
 * of cg_jwt_verify in every case. */
START_TEST(test_verify_session)
{
    static const char full[] =
        "{\"sub\":\"u1\",\"email\":\"u1@example.com\",\"name\":\"U One\",\"sid\":\"s-1\","
        "\"groups\":[\"eng\",5,\"admins\"],\"aud\":[\"x\",\"claude-gateway\"],"
        "\"iat\":1795451852.9,\"exp\":1795455452,\"iss\":\"http://127.0.0.1:18000\"}";
    static const char sparse[] =
        "{\"sub\":\"u2\",\"email\":7,\"sid\":null,\"groups\":\"eng,admins\","
        "\"aud\":\"claude-gateway\",\"exp\":1795455452,\"iss\":\"http://127.0.0.1:18000\"}";
    const char *tfull = mint(HDR_K1, full, SECRET), *tsparse = mint(HDR_K1, sparse, SECRET);
    cg_jwt_expect_t w = expect_default();
    cg_jwt_session_t ses;
    const char *r1, *r2;
    json_t *claims;
    int round, k;

    for (round = 0; round < 2; round++) { /* prepared: the second round hits the cache */
        ck_assert_jwt(cg_jwt_verify_session(unit_pool, tfull, &key1, 1, &w, &ses, &r1), CG_JWT_OK);
        ck_assert_str_eq(r1, "ok");
        ck_assert_str_eq(ses.sub, "u1");
        ck_assert_str_eq(ses.email, "u1@example.com");
        ck_assert_str_eq(ses.name, "U One");
        ck_assert_str_eq(ses.sid, "s-1");
        ck_assert_int_eq(json_array_size(ses.groups), 3);
        ck_assert_str_eq(json_string_value(json_array_get(ses.groups, 2)), "admins");
        ck_assert_int_eq(ses.has_iat, 1);
        ck_assert(ses.iat == 1795451852.9);
        ck_assert_jwt(cg_jwt_verify(unit_pool, tfull, &key1, 1, &w, &claims, NULL), CG_JWT_OK);
        ck_assert(json_equal(claims, ses.claims));

        ck_assert_jwt(cg_jwt_verify_session(unit_pool, tsparse, &key1, 1, &w, &ses, NULL),
                      CG_JWT_OK);
        ck_assert_str_eq(ses.sub, "u2");
        ck_assert_ptr_null(ses.email);
        ck_assert_ptr_null(ses.name);
        ck_assert_ptr_null(ses.sid);
        ck_assert_ptr_null(ses.groups);
        ck_assert_int_eq(ses.has_iat, 0);
    }
    /* what depends on the time or on want is judged on every call */
    for (k = 0; k < 5; k++) {
        cg_jwt_status_e st;

        w = expect_default();
        if (k == 0) {
            w.now = apr_time_from_sec(1795455452);
        }
        else if (k == 1) {
            w.now = apr_time_from_sec(T0 - 100);
        }
        else if (k == 2) {
            w.iss = "https://elsewhere";
        }
        else if (k == 3) {
            w.aud = "other";
        }
        else {
            w.leeway = 200;
            w.now = apr_time_from_sec(1795455452 + 150);
        }
        st = cg_jwt_verify(unit_pool, tfull, &key1, 1, &w, NULL, &r1);
        ck_assert_jwt(cg_jwt_verify_session(unit_pool, tfull, &key1, 1, &w, &ses, &r2), st);
        ck_assert_str_eq(r1, r2);
        ck_assert(st == CG_JWT_OK ? ses.sub != NULL : ses.sub == NULL && ses.claims == NULL);
        ck_assert_int_eq(st, k == 4   ? CG_JWT_OK
                             : k == 0 ? CG_JWT_EXPIRED
                             : k == 1 ? CG_JWT_NOT_YET_VALID
                             : k == 2 ? CG_JWT_BAD_ISSUER
                                      : CG_JWT_BAD_AUDIENCE);
    }
    /* a claim of the wrong type: the same reason either way */
    w = expect_default();
    tfull = mint(HDR_K1, "{\"sub\":\"u1\",\"exp\":1795455452,\"iat\":\"x\"}", SECRET);
    ck_assert_jwt(cg_jwt_verify_session(unit_pool, tfull, &key1, 1, &w, &ses, &r1),
                  CG_JWT_BAD_CLAIM);
    ck_assert_str_eq(r1, "iat is not a number");
}
END_TEST

Suite *unit_suite_cg_jwt(void)
{
    Suite *s = suite_create("cg_jwt");
    TCase *b64 = tcase_create("base64url");
    TCase *jwt = tcase_create("jwt");
    TCase *util = tcase_create("helpers");
    TCase *prep = tcase_create("jwt prepared");

    tcase_add_checked_fixture(b64, unit_setup, unit_teardown);
    tcase_add_test(b64, test_b64url_rfc4648_vectors);
    tcase_add_test(b64, test_b64url_round_trip_all_bytes);
    tcase_add_test(b64, test_b64url_decode_rejects);
    tcase_add_test(b64, test_b64url_decode_embedded_nul);
    suite_add_tcase(s, b64);

    tcase_add_checked_fixture(jwt, unit_setup, unit_teardown);
    tcase_add_test(jwt, test_sign_known_vector);
    tcase_add_test(jwt, test_verify_known_vectors);
    tcase_add_test(jwt, test_round_trip);
    tcase_add_test(jwt, test_key_selection);
    tcase_add_test(jwt, test_capture_token);
    tcase_add_test(jwt, test_alg_rejected);
    tcase_add_test(jwt, test_alg_none_unsigned);
    tcase_add_test(jwt, test_tampered);
    tcase_add_test(jwt, test_signature_one_spelling);
    tcase_add_test(jwt, test_expiry_and_leeway);
    tcase_add_test(jwt, test_not_yet_valid);
    tcase_add_test(jwt, test_issuer);
    tcase_add_test(jwt, test_audience);
    tcase_add_test(jwt, test_required_claims);
    tcase_add_test(jwt, test_bad_header);
    tcase_add_test(jwt, test_bad_payload);
    tcase_add_test(jwt, test_malformed_shapes);
    tcase_add_test(jwt, test_max_len_boundary);
    tcase_add_test(jwt, test_sign_refuses);
    tcase_add_test(jwt, test_claims_owned_by_pool);
    tcase_add_test(jwt, test_status_names);
    tcase_add_test(jwt, test_verify_session);
    suite_add_tcase(s, jwt);

    tcase_add_checked_fixture(prep, setup_prepared, teardown_prepared);
    tcase_add_test(prep, test_sign_known_vector);
    tcase_add_test(prep, test_verify_known_vectors);
    tcase_add_test(prep, test_round_trip);
    tcase_add_test(prep, test_key_selection);
    tcase_add_test(prep, test_capture_token);
    tcase_add_test(prep, test_alg_rejected);
    tcase_add_test(prep, test_alg_none_unsigned);
    tcase_add_test(prep, test_tampered);
    tcase_add_test(prep, test_signature_one_spelling);
    tcase_add_test(prep, test_expiry_and_leeway);
    tcase_add_test(prep, test_not_yet_valid);
    tcase_add_test(prep, test_issuer);
    tcase_add_test(prep, test_audience);
    tcase_add_test(prep, test_required_claims);
    tcase_add_test(prep, test_bad_header);
    tcase_add_test(prep, test_bad_payload);
    tcase_add_test(prep, test_malformed_shapes);
    tcase_add_test(prep, test_max_len_boundary);
    tcase_add_test(prep, test_sign_refuses);
    tcase_add_test(prep, test_claims_owned_by_pool);
    tcase_add_test(prep, test_status_names);
    tcase_add_test(prep, test_verify_session);
    tcase_add_test(prep, test_prepare_lifecycle);
    tcase_add_test(prep, test_prepare_stale_copy);
    tcase_add_test(prep, test_prepare_same_key_choice);
    tcase_add_test(prep, test_prepare_cache);
    tcase_add_test(prep, test_prepare_cache_many_tokens);
    tcase_add_test(prep, test_prepare_cache_other_headers);
    tcase_add_test(prep, test_prepare_cache_foreign_header);
    tcase_add_test(prep, test_prepare_threads_share);
    suite_add_tcase(s, prep);

    tcase_add_checked_fixture(util, unit_setup, unit_teardown);
    tcase_add_test(util, test_random);
    tcase_add_test(util, test_sha256_and_kid);
    tcase_add_test(util, test_ct_equal);
    suite_add_tcase(s, util);
    return s;
}
