/* fuzz_jwt: cg_jwt on arbitrary bearer tokens.
 *
 * The input is verified as a token against two fixed keys; it is also
 * base64url-decoded (a decoded value must re-encode to exactly the input: one
 * spelling per value), and, when it is a JSON object, signed as claims and
 * verified back (what we mint we must accept, short of its claims). Every
 * verification is done twice, with the keys as configured and with the same
 * keys prepared (cg_jwt_key_prepare): both must reach the same verdict for the
 * same reason, and sign the same token. Each input gets its own APR subpool;
 * the claims are released with it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <jansson.h>

#include "cg_jwt.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SECRET1 "0123456789abcdef0123456789abcdef-test"
#define FUZZ_SECRET2 "another-secret-of-at-least-32-bytes!!"

static apr_pool_t *fuzz_pool;
static const cg_jwt_key_t fuzz_keys[2] = {
    {"k1", (const unsigned char *)FUZZ_SECRET1, sizeof(FUZZ_SECRET1) - 1},
    {"k2", (const unsigned char *)FUZZ_SECRET2, sizeof(FUZZ_SECRET2) - 1},
};

/* The same keys, keyed in advance; the third has k1's kid and k2's secret,
 * after k1, so it is never chosen by a kid (only the first match is). */
static cg_jwt_key_t fuzz_prepared[3];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int i;

    (void)argc;
    (void)argv;
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&fuzz_pool, NULL);
    fuzz_prepared[0] = fuzz_keys[0];
    fuzz_prepared[1] = fuzz_keys[1];
    fuzz_prepared[2] = fuzz_keys[1];
    fuzz_prepared[2].kid = "k1";
    for (i = 0; i < 3; i++) {
        if (cg_jwt_key_prepare(fuzz_pool, &fuzz_prepared[i]) != APR_SUCCESS) {
            abort();
        }
    }
    return 0;
}

static cg_jwt_expect_t fuzz_expect(void)
{
    cg_jwt_expect_t w;

    w.iss = "http://127.0.0.1:18000";
    w.aud = "claude-gateway";
    w.now = apr_time_from_sec(1795451912);
    w.leeway = 60;
    return w;
}

static void fuzz_verify(apr_pool_t *p, const char *token)
{
    cg_jwt_expect_t w = fuzz_expect();
    json_t *claims = NULL;
    const char *reason = NULL;
    cg_jwt_status_e st = cg_jwt_verify(p, token, fuzz_keys, 2, &w, &claims, &reason);
    const char *reason2 = NULL;
    json_t *claims2 = NULL;

    if (reason == NULL || (st == CG_JWT_OK) != (claims != NULL)) {
        abort();
    }
    if (cg_jwt_verify(p, token, fuzz_prepared, 3, &w, &claims2, &reason2) != st ||
        reason2 == NULL || strcmp(reason, reason2) != 0 ||
        (claims != NULL && !json_equal(claims, claims2))) {
        abort();
    }
    if (st == CG_JWT_OK &&
        (!json_is_object(claims) || json_string_value(json_object_get(claims, "sub")) == NULL)) {
        abort();
    }
}

static void fuzz_b64(apr_pool_t *p, const char *buf, size_t size)
{
    unsigned char *out;
    apr_size_t n;

    if (cg_jwt_b64url_decode(p, buf, size, &out, &n) == APR_SUCCESS) {
        const char *again = cg_jwt_b64url_encode(p, out, n);
        if (strlen(again) != size || memcmp(again, buf, size) != 0) {
            abort();
        }
    }
}

static void fuzz_sign(apr_pool_t *p, const char *buf, size_t size)
{
    json_error_t jerr;
    json_t *claims = json_loadb(buf, size, JSON_REJECT_DUPLICATES, &jerr);
    const char *token;

    if (json_is_object(claims) && (token = cg_jwt_sign(p, &fuzz_keys[1], claims)) != NULL) {
        cg_jwt_expect_t w = fuzz_expect();
        cg_jwt_status_e st = cg_jwt_verify(p, token, fuzz_keys, 2, &w, NULL, NULL);
        const char *again = cg_jwt_sign(p, &fuzz_prepared[1], claims);
        if (st == CG_JWT_MALFORMED || st == CG_JWT_BAD_HEADER || st == CG_JWT_BAD_ALG ||
            st == CG_JWT_UNKNOWN_KID || st == CG_JWT_BAD_SIGNATURE) {
            abort();
        }
        if (again == NULL || strcmp(again, token) != 0 ||
            cg_jwt_verify(p, token, fuzz_prepared, 3, &w, NULL, NULL) != st) {
            abort();
        }
    }
    json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    apr_pool_t *p;

    apr_pool_create(&p, fuzz_pool);
    fuzz_verify(p, apr_pstrmemdup(p, buf, size));
    fuzz_b64(p, buf, size);
    fuzz_sign(p, buf, size);
    apr_pool_destroy(p);
    return 0;
}
