/* cg_jwt: HS256 session tokens and small crypto helpers, see cg_jwt.h.
 *
 * Verification order matters: the token's shape and size first, then the
 * header (to pick the key), then the HMAC, and only then the payload is
 * parsed, so an unauthenticated payload never reaches the JSON parser. Every
 * decoder is strict (one encoding per value, no duplicate JSON keys), so two
 * parties can never read different claims out of the same accepted token. */
#include <limits.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "cg_jwt.h"

#define CG_JWT_SIG_LEN 32 /* HMAC-SHA256 */
#define CG_JWT_RANDOM_MAX 1024

/* The verified-token cache of a prepared key: sets of a few slots, each the
 * exact bytes of a token this key verified and its parsed payload. A set
 * per token hash rather than one slot: with one, two live tokens that
 * share a slot evicted each other on every request (16 users in 128 slots
 * collide more often than not). */
#define CG_JWT_CACHE_SETS 256
#define CG_JWT_CACHE_WAYS 4
#define CG_JWT_CACHE_SLOTS (CG_JWT_CACHE_SETS * CG_JWT_CACHE_WAYS)
#define CG_JWT_CACHE_TOKEN_MAX 2048 /* longer tokens are verified in full every time */

/* What verification and the session read from an authenticated payload,
 * taken out once per payload: a cached token's claims are immutable, so a
 * cache hit only compares times and strings instead of looking up every
 * claim again. Pointers point into the payload. */
typedef struct cg_jwt_facts_t {
    int exp_has, nbf_has, iat_has; /* cg_jwt_time_claim(): 0 absent, 1 number, -1 other */
    double exp, nbf, iat;
    const char *iss;    /* NULL when absent or not a string */
    const json_t *aud;  /* as found, or NULL */
    cg_jwt_session_t s; /* sub, email, name, sid, groups, claims; s.iat from the above */
} cg_jwt_facts_t;

typedef struct cg_jwt_cached_t {
    char *token;          /* CG_JWT_CACHE_TOKEN_MAX bytes from the cache's pool, or NULL */
    apr_size_t len;       /* 0: empty */
    apr_uint32_t hash;    /* cg_jwt_cache_hash of the token: most misses end here */
    json_t *payload;      /* the payload object, one reference held by the slot */
    cg_jwt_facts_t facts; /* read from payload; copied out under the lock */
    int kidless;          /* its header had no kid (the key was chosen as the first one) */
} cg_jwt_cached_t;

typedef struct cg_jwt_cache_t {
    apr_thread_mutex_t *lock; /* guards everything below */
    apr_pool_t *pool;         /* the slots' buffers, allocated only under lock; unmanaged */
    cg_jwt_cached_t slots[CG_JWT_CACHE_SLOTS];
    unsigned char next[CG_JWT_CACHE_SETS]; /* per set: the way the next new token takes */
} cg_jwt_cache_t;

/* What cg_jwt_key_prepare() does once per key. */
struct cg_jwt_mac_t {
    cg_jwt_key_t *key; /* whose mac this is, reset by the cleanup */
    const char *kid;   /* key->kid and key->secret when it was prepared */
    const unsigned char *secret;
    apr_size_t secret_len;
    EVP_MAC *mac;           /* HMAC, fetched once */
    EVP_MAC_CTX *keyed;     /* keyed with SHA-256 and the secret; only ever duplicated */
    const char *header_b64; /* the first segment cg_jwt_sign() writes with this key */
    apr_size_t header_len;  /* its length */
    cg_jwt_cache_t *cache;  /* verified tokens; NULL without thread support */
};

static const char cg_b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *cg_jwt_b64url_encode(apr_pool_t *p, const void *data, apr_size_t len)
{
    const unsigned char *in = data;
    char *out = apr_palloc(p, (len / 3) * 4 + 4 + 1), *o = out;
    apr_size_t i;

    for (i = 0; i + 3 <= len; i += 3) {
        *o++ = cg_b64url_alphabet[in[i] >> 2];
        *o++ = cg_b64url_alphabet[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        *o++ = cg_b64url_alphabet[((in[i + 1] & 0x0f) << 2) | (in[i + 2] >> 6)];
        *o++ = cg_b64url_alphabet[in[i + 2] & 0x3f];
    }
    if (len - i == 1) {
        *o++ = cg_b64url_alphabet[in[i] >> 2];
        *o++ = cg_b64url_alphabet[(in[i] & 0x03) << 4];
    }
    else if (len - i == 2) {
        *o++ = cg_b64url_alphabet[in[i] >> 2];
        *o++ = cg_b64url_alphabet[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        *o++ = cg_b64url_alphabet[(in[i + 1] & 0x0f) << 2];
    }
    *o = '\0';
    return out;
}

/* The 6-bit value of each byte as a base64url character, or -1: decoding
 * is on every request's path (session tokens), so a table, not branches. */
/* clang-format off */
static const signed char cg_b64url_values[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
/* clang-format on */

apr_status_t cg_jwt_b64url_decode(apr_pool_t *p, const char *in, apr_size_t inlen,
                                  unsigned char **out, apr_size_t *outlen)
{
    unsigned char *buf, *o;
    apr_uint32_t acc = 0;
    apr_size_t i;
    int bits = 0;

    *out = NULL;
    *outlen = 0;
    if (inlen % 4 == 1) {
        return APR_EINVAL; /* 6 bits cannot make a byte */
    }
    buf = o = apr_palloc(p, inlen / 4 * 3 + 3 + 1);
    for (i = 0; i < inlen; i++) {
        int v = cg_b64url_values[(unsigned char)in[i]];
        if (v < 0) {
            return APR_EINVAL;
        }
        acc = (acc << 6) | (apr_uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* the 2 or 4 bits left over must be zero, else "xA" and "xB" would both
     * decode to the same bytes and a token would have several spellings */
    if (acc != 0) {
        return APR_EINVAL;
    }
    *o = '\0';
    *out = buf;
    *outlen = (apr_size_t)(o - buf);
    return APR_SUCCESS;
}

/* Compact JSON into the pool, without jansson's malloc'd string. */
static const char *cg_jwt_json_dump(apr_pool_t *p, const json_t *json, apr_size_t *len)
{
    size_t need = json_dumpb(json, NULL, 0, JSON_COMPACT);
    char *buf;

    if (need == 0) {
        return NULL;
    }
    buf = apr_palloc(p, need + 1);
    if (json_dumpb(json, buf, need, JSON_COMPACT) != need) {
        return NULL;
    }
    buf[need] = '\0';
    *len = need;
    return buf;
}

int cg_jwt_ct_equal(const void *a, const void *b, apr_size_t n)
{
    const unsigned char *x = a, *y = b;
    apr_uint64_t acc = 0, u, v;
    apr_size_t i;

    for (i = 0; i + sizeof(u) <= n; i += sizeof(u)) {
        memcpy(&u, x + i, sizeof(u)); /* any alignment */
        memcpy(&v, y + i, sizeof(v));
        acc |= u ^ v;
#if defined(__GNUC__)
        /* the compiler may not learn acc's value: no early exit once set */
        __asm__("" : "+r"(acc));
#endif
    }
    for (; i < n; i++) {
        acc |= (apr_uint64_t)(x[i] ^ y[i]);
    }
    /* the top bit of (acc - 1) & ~acc is set exactly when acc is 0 */
    return (int)(((acc - 1) & ~acc) >> 63);
}

static int cg_jwt_key_usable(const cg_jwt_key_t *key)
{
    return key != NULL && key->secret != NULL && key->secret_len > 0 && key->secret_len <= INT_MAX;
}

/* The prepared state of a key, if it still describes the key: a copy of the
 * struct whose kid or secret was changed afterwards does not use it. */
static const cg_jwt_mac_t *cg_jwt_mac_of(const cg_jwt_key_t *key)
{
    const cg_jwt_mac_t *m = key->mac;

    return m != NULL && m->kid == key->kid && m->secret == key->secret &&
                   m->secret_len == key->secret_len
               ? m
               : NULL;
}

static int cg_jwt_hmac(const cg_jwt_key_t *key, const char *data, apr_size_t len,
                       unsigned char mac[CG_JWT_SIG_LEN])
{
    const cg_jwt_mac_t *m = cg_jwt_mac_of(key);
    unsigned int maclen = 0;
    size_t outlen = 0;
    EVP_MAC_CTX *ctx;
    int ok;

    if (m != NULL) {
        /* a copy of the keyed template: no fetch, no key schedule, and the
         * template itself is only read, so threads share it safely */
        ctx = EVP_MAC_CTX_dup(m->keyed);
        ok = ctx != NULL && EVP_MAC_update(ctx, (const unsigned char *)data, len) == 1 &&
             EVP_MAC_final(ctx, mac, &outlen, CG_JWT_SIG_LEN) == 1 && outlen == CG_JWT_SIG_LEN;
        EVP_MAC_CTX_free(ctx);
        return ok;
    }
    if (HMAC(EVP_sha256(), key->secret, (int)key->secret_len, (const unsigned char *)data, len, mac,
             &maclen) == NULL ||
        maclen != CG_JWT_SIG_LEN) {
        return 0;
    }
    return 1;
}

/* The header segment of the tokens this key signs: the reference's header,
 * in its order (alg, typ, kid), compact JSON, base64url. */
static const char *cg_jwt_header_b64(apr_pool_t *p, const cg_jwt_key_t *key)
{
    json_t *header = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
    const char *hjson;
    apr_size_t hlen = 0;

    if (header == NULL ||
        (key->kid != NULL && json_object_set_new(header, "kid", json_string(key->kid)) != 0)) {
        json_decref(header);
        return NULL;
    }
    hjson = cg_jwt_json_dump(p, header, &hlen);
    json_decref(header);
    return hjson != NULL ? cg_jwt_b64url_encode(p, hjson, hlen) : NULL;
}

static apr_status_t cg_jwt_mac_cleanup(void *data)
{
    cg_jwt_mac_t *m = data;
    int i;

    m->key->mac = NULL;
    for (i = 0; m->cache != NULL && i < CG_JWT_CACHE_SLOTS; i++) {
        json_decref(m->cache->slots[i].payload);
    }
    if (m->cache != NULL) {
        apr_pool_destroy(m->cache->pool);
        m->cache = NULL;
    }
    EVP_MAC_CTX_free(m->keyed);
    EVP_MAC_free(m->mac);
    return APR_SUCCESS;
}

apr_status_t cg_jwt_key_prepare(apr_pool_t *p, cg_jwt_key_t *key)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[2];
    cg_jwt_mac_t *m;

    if (!cg_jwt_key_usable(key)) {
        return APR_EINVAL;
    }
    if (cg_jwt_mac_of(key) != NULL) {
        return APR_SUCCESS;
    }
    m = apr_pcalloc(p, sizeof(*m));
    m->key = key;
    m->kid = key->kid;
    m->secret = key->secret;
    m->secret_len = key->secret_len;
    m->header_b64 = cg_jwt_header_b64(p, key);
    if (m->header_b64 == NULL) {
        return APR_EGENERAL;
    }
    m->header_len = strlen(m->header_b64);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    m->keyed = m->mac != NULL ? EVP_MAC_CTX_new(m->mac) : NULL;
    if (m->keyed == NULL || EVP_MAC_init(m->keyed, key->secret, key->secret_len, params) != 1) {
        EVP_MAC_CTX_free(m->keyed);
        EVP_MAC_free(m->mac);
        return APR_EGENERAL;
    }
    /* the slots' pool has an allocator of its own: request threads allocate
     * from it (under the lock) while others use pconf's */
    m->cache = apr_pcalloc(p, sizeof(*m->cache));
    if (apr_thread_mutex_create(&m->cache->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS ||
        apr_pool_create_unmanaged_ex(&m->cache->pool, NULL, NULL) != APR_SUCCESS) {
        m->cache = NULL; /* verified in full every time, still correct */
    }
    apr_pool_cleanup_register(p, m, cg_jwt_mac_cleanup, apr_pool_cleanup_null);
    key->mac = m;
    return APR_SUCCESS;
}

/* A hash of a token's signature characters (its end); anyone may choose
 * them, which only decides who evicts whom and which slots are compared in
 * full. The set a token lives in, in every key's cache, is taken from it. */
static apr_uint32_t cg_jwt_cache_hash(const char *token, apr_size_t len)
{
    apr_uint32_t h = 2166136261u; /* FNV-1a */
    apr_size_t i = len > 32 ? len - 32 : 0;

    for (; i < len; i++) {
        h = (h ^ (unsigned char)token[i]) * 16777619u;
    }
    return h;
}

static cg_jwt_cached_t *cg_jwt_cache_set(const cg_jwt_cache_t *c, apr_uint32_t hash)
{
    return (cg_jwt_cached_t *)&c->slots[(hash % CG_JWT_CACHE_SETS) * CG_JWT_CACHE_WAYS];
}

/* The payload of a token this key verified earlier, byte for byte the same
 * token (compared whole, in constant time), with a reference for the caller;
 * else NULL. *kidless (may be NULL) is set to whether its header had no kid. The
 * payload is shared and never modified: jansson's reference counts are atomic
 * here (JSON_HAVE_ATOMIC_BUILTINS). */
static json_t *cg_jwt_cache_get(const cg_jwt_mac_t *m, const char *token, apr_size_t len,
                                apr_uint32_t hash, int *kidless, cg_jwt_facts_t *facts)
{
    cg_jwt_cached_t *set;
    json_t *payload = NULL;
    int w;

    if (m->cache == NULL || len > CG_JWT_CACHE_TOKEN_MAX) {
        return NULL;
    }
    set = cg_jwt_cache_set(m->cache, hash);
    apr_thread_mutex_lock(m->cache->lock);
    for (w = 0; w < CG_JWT_CACHE_WAYS; w++) {
        /* length and hash are no secret of the cached token's; its bytes
         * are compared in constant time */
        if (set[w].len == len && set[w].hash == hash && cg_jwt_ct_equal(set[w].token, token, len)) {
            payload = json_incref(set[w].payload);
            *facts = set[w].facts; /* points into payload, which the caller now holds */
            if (kidless != NULL) {
                *kidless = set[w].kidless;
            }
            break;
        }
    }
    apr_thread_mutex_unlock(m->cache->lock);
    return payload;
}

/* Remember a token whose signature this key has just verified, with its
 * parsed payload (the slot takes a reference) and whether its header had a
 * kid. */
static void cg_jwt_cache_put(const cg_jwt_mac_t *m, const char *token, apr_size_t len,
                             json_t *payload, const cg_jwt_facts_t *facts, int kidless)
{
    cg_jwt_cached_t *set, *slot = NULL;
    apr_uint32_t hash = cg_jwt_cache_hash(token, len);
    json_t *old;
    int w;

    if (m->cache == NULL || len > CG_JWT_CACHE_TOKEN_MAX) {
        return;
    }
    set = cg_jwt_cache_set(m->cache, hash);
    apr_thread_mutex_lock(m->cache->lock);
    for (w = 0; w < CG_JWT_CACHE_WAYS && slot == NULL; w++) {
        if (set[w].len == len && set[w].hash == hash && cg_jwt_ct_equal(set[w].token, token, len)) {
            slot = &set[w]; /* verified again meanwhile by another thread */
        }
    }
    if (slot == NULL) {
        /* the ways in turn: the oldest entry of the set goes */
        unsigned char *next = &m->cache->next[(hash % CG_JWT_CACHE_SETS)];
        slot = &set[*next % CG_JWT_CACHE_WAYS];
        *next = (unsigned char)((*next + 1) % CG_JWT_CACHE_WAYS);
    }
    if (slot->token == NULL) {
        slot->token = apr_palloc(m->cache->pool, CG_JWT_CACHE_TOKEN_MAX);
    }
    memcpy(slot->token, token, len);
    slot->len = len;
    slot->hash = hash;
    slot->kidless = kidless;
    old = slot->payload;
    slot->payload = json_incref(payload);
    slot->facts = *facts;
    apr_thread_mutex_unlock(m->cache->lock);
    json_decref(old);
}

const char *cg_jwt_sign(apr_pool_t *p, const cg_jwt_key_t *key, const json_t *claims)
{
    unsigned char mac[CG_JWT_SIG_LEN];
    const char *hb64, *cjson, *input, *token;
    apr_size_t clen = 0;

    if (!json_is_object(claims) || !cg_jwt_key_usable(key)) {
        return NULL;
    }
    hb64 = cg_jwt_mac_of(key) != NULL ? key->mac->header_b64 : cg_jwt_header_b64(p, key);
    cjson = cg_jwt_json_dump(p, claims, &clen);
    if (hb64 == NULL || cjson == NULL) {
        return NULL;
    }
    input = apr_pstrcat(p, hb64, ".", cg_jwt_b64url_encode(p, cjson, clen), NULL);
    if (!cg_jwt_hmac(key, input, strlen(input), mac)) {
        return NULL;
    }
    token = apr_pstrcat(p, input, ".", cg_jwt_b64url_encode(p, mac, sizeof(mac)), NULL);
    OPENSSL_cleanse(mac, sizeof(mac));
    /* one we could not verify ourselves is a configuration error (huge claims) */
    return strlen(token) <= CG_JWT_MAX_LEN ? token : NULL;
}

static apr_status_t cg_jwt_json_cleanup(void *json)
{
    json_decref(json);
    return APR_SUCCESS;
}

/* The key a header selects: by kid, or the first one when there is none. */
static const cg_jwt_key_t *cg_jwt_key_select(const cg_jwt_key_t *keys, int nkeys, const char *kid)
{
    int i;

    if (keys == NULL || nkeys <= 0) {
        return NULL;
    }
    if (kid == NULL) {
        return cg_jwt_key_usable(&keys[0]) ? &keys[0] : NULL;
    }
    for (i = 0; i < nkeys; i++) {
        if (keys[i].kid != NULL && strcmp(keys[i].kid, kid) == 0 && cg_jwt_key_usable(&keys[i])) {
            return &keys[i];
        }
    }
    return NULL;
}

/* The key of a token whose header is exactly the one cg_jwt_sign() writes
 * with a prepared key: that header could only parse to alg HS256, typ JWT and
 * this kid, so its decoding and JSON can be skipped. The keys are walked in
 * the order cg_jwt_key_select() uses; an unprepared key with a kid stops the
 * walk (NULL: the caller parses the header), so the choice is always the one
 * parsing would make. */
static const cg_jwt_key_t *cg_jwt_key_by_header(const cg_jwt_key_t *keys, int nkeys,
                                                const char *header, apr_size_t len)
{
    const cg_jwt_mac_t *m;
    int i;

    for (i = 0; keys != NULL && i < nkeys; i++) {
        if (keys[i].kid == NULL || !cg_jwt_key_usable(&keys[i])) {
            continue;
        }
        if ((m = cg_jwt_mac_of(&keys[i])) == NULL) {
            return NULL;
        }
        if (m->header_len == len && memcmp(m->header_b64, header, len) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

/* The payload of a token verified before, with another header than ours
 * (another library's order, no kid), found without decoding that header: the
 * caches of all prepared keys are asked (there are a few). A hit in the cache
 * of keys[i] means these very bytes passed under keys[i]; it counts only if
 * parsing the header now would choose keys[i] again, by the rules of
 * cg_jwt_key_select(): the slot knows whether the header had a kid, and if
 * it had, it was keys[i]'s (nothing else chooses keys[i]). So a kid-less
 * token is taken only from keys[0], and a kid shared by several keys only
 * from the first usable one; any other hit is left to the slow path, which
 * gives the verdict it always gave. NULL when nothing counts. */
static json_t *cg_jwt_cache_find(const cg_jwt_key_t *keys, int nkeys, const char *token,
                                 apr_size_t len, cg_jwt_facts_t *facts)
{
    const cg_jwt_mac_t *m;
    apr_uint32_t index;
    json_t *payload;
    int i, kidless;

    if (keys == NULL || len > CG_JWT_CACHE_TOKEN_MAX) {
        return NULL;
    }
    index = cg_jwt_cache_hash(token, len);
    for (i = 0; i < nkeys; i++) {
        if (!cg_jwt_key_usable(&keys[i]) || (m = cg_jwt_mac_of(&keys[i])) == NULL) {
            continue;
        }
        kidless = 0;
        if ((payload = cg_jwt_cache_get(m, token, len, index, &kidless, facts)) == NULL) {
            continue;
        }
        if ((kidless || keys[i].kid != NULL) &&
            cg_jwt_key_select(keys, nkeys, kidless ? NULL : keys[i].kid) == &keys[i]) {
            return payload;
        }
        json_decref(payload);
    }
    return NULL;
}

/* A NumericDate claim: absent (0), a number (1, *v set), or anything else (-1). */
static int cg_jwt_time_claim(const json_t *payload, const char *name, double *v)
{
    const json_t *c = json_object_get(payload, name);

    if (c == NULL) {
        return 0;
    }
    if (!json_is_number(c)) {
        return -1;
    }
    *v = json_number_value(c);
    return 1;
}

static int cg_jwt_aud_matches(const json_t *aud, const char *want)
{
    size_t i;

    if (json_is_string(aud)) {
        return strcmp(json_string_value(aud), want) == 0;
    }
    for (i = 0; i < json_array_size(aud); i++) {
        const char *a = json_string_value(json_array_get(aud, i));
        if (a != NULL && strcmp(a, want) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Read the facts of an authenticated payload (once per payload). */
static void cg_jwt_facts_read(const json_t *payload, cg_jwt_facts_t *f)
{
    const json_t *groups = json_object_get(payload, "groups");

    memset(f, 0, sizeof(*f));
    f->exp_has = cg_jwt_time_claim(payload, "exp", &f->exp);
    f->nbf_has = cg_jwt_time_claim(payload, "nbf", &f->nbf);
    f->iat_has = cg_jwt_time_claim(payload, "iat", &f->iat);
    f->iss = json_string_value(json_object_get(payload, "iss"));
    f->aud = json_object_get(payload, "aud");
    f->s.sub = json_string_value(json_object_get(payload, "sub"));
    f->s.email = json_string_value(json_object_get(payload, "email"));
    f->s.name = json_string_value(json_object_get(payload, "name"));
    f->s.sid = json_string_value(json_object_get(payload, "sid"));
    f->s.groups = json_is_array(groups) ? groups : NULL;
    f->s.has_iat = f->iat_has > 0;
    f->s.iat = f->iat;
}

/* The claim rules, on the facts of an authenticated payload; the order
 * decides which reason a token with several faults gets. */
static cg_jwt_status_e cg_jwt_check_claims(const cg_jwt_facts_t *f, const cg_jwt_expect_t *want,
                                           const char **reason)
{
    double now = (double)apr_time_sec(want->now);
    double leeway = want->leeway > 0 ? (double)want->leeway : 0.0;

    if (f->exp_has <= 0) {
        *reason = f->exp_has == 0 ? "exp missing" : "exp is not a number";
        return CG_JWT_BAD_CLAIM;
    }
    if (f->s.sub == NULL || *f->s.sub == '\0') {
        *reason = "sub missing or not a string";
        return CG_JWT_BAD_CLAIM;
    }
    if (now >= f->exp + leeway) {
        *reason = "token expired";
        return CG_JWT_EXPIRED;
    }
    if (f->nbf_has < 0) {
        *reason = "nbf is not a number";
        return CG_JWT_BAD_CLAIM;
    }
    if (f->nbf_has > 0 && f->nbf > now + leeway) {
        *reason = "token not valid yet (nbf)";
        return CG_JWT_NOT_YET_VALID;
    }
    if (f->iat_has < 0) {
        *reason = "iat is not a number";
        return CG_JWT_BAD_CLAIM;
    }
    if (f->iat_has > 0 && f->iat > now + leeway) {
        *reason = "token issued in the future (iat)";
        return CG_JWT_NOT_YET_VALID;
    }
    if (want->iss != NULL && (f->iss == NULL || strcmp(f->iss, want->iss) != 0)) {
        *reason = "wrong or missing issuer";
        return CG_JWT_BAD_ISSUER;
    }
    if (want->aud != NULL && !cg_jwt_aud_matches(f->aud, want->aud)) {
        *reason = "wrong or missing audience";
        return CG_JWT_BAD_AUDIENCE;
    }
    *reason = "ok";
    return CG_JWT_OK;
}

/* The header's verdict and the kid it names (valid while header lives). */
static cg_jwt_status_e cg_jwt_check_header(const json_t *header, const char **kid,
                                           const char **reason)
{
    const json_t *alg = json_object_get(header, "alg");
    const json_t *typ = json_object_get(header, "typ");
    const json_t *jkid = json_object_get(header, "kid");

    *kid = NULL;
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0) {
        *reason = "alg is not HS256";
        return CG_JWT_BAD_ALG;
    }
    if (typ != NULL && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) {
        *reason = "typ is not JWT";
        return CG_JWT_BAD_HEADER;
    }
    /* RFC 7515 §4.1.11: extensions we do not know must fail the token */
    if (json_object_get(header, "crit") != NULL) {
        *reason = "crit header not supported";
        return CG_JWT_BAD_HEADER;
    }
    if (jkid != NULL && !json_is_string(jkid)) {
        *reason = "kid is not a string";
        return CG_JWT_BAD_HEADER;
    }
    *kid = json_string_value(jkid);
    return CG_JWT_OK;
}

/* cg_jwt_verify(), also giving the payload's facts (f->s.claims is the
 * payload, kept by p, when claims is not NULL). */
static cg_jwt_status_e cg_jwt_verify_facts(apr_pool_t *p, const char *token,
                                           const cg_jwt_key_t *keys, int nkeys,
                                           const cg_jwt_expect_t *want, json_t **claims,
                                           cg_jwt_facts_t *f, const char **reason)
{
    const char *why = "ok", *dot1, *dot2, *kid;
    unsigned char *hbuf, *pbuf, *sbuf, mac[CG_JWT_SIG_LEN];
    apr_size_t len, hlen, plen, slen;
    const cg_jwt_key_t *key;
    json_t *header = NULL, *payload = NULL;
    json_error_t jerr;
    cg_jwt_status_e st;
    int kidless = 0;

    if (claims != NULL) {
        *claims = NULL;
    }
    len = token != NULL ? strnlen(token, CG_JWT_MAX_LEN + 1) : 0;
    if (len == 0 || len > CG_JWT_MAX_LEN) {
        st = CG_JWT_MALFORMED;
        why = len == 0 ? "empty token" : "token too long";
        goto leave;
    }
    /* exactly three non-empty segments: a JWE (five) or a bare JSON is not ours */
    dot1 = memchr(token, '.', len);
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (apr_size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (apr_size_t)(dot2 + 1 - token)) != NULL ||
        dot1 == token || dot2 == dot1 + 1 || dot2 + 1 == token + len) {
        st = CG_JWT_MALFORMED;
        why = "not three segments";
        goto leave;
    }
    /* our own header names its key without parsing; then a token verified
     * before needs nothing but its claims checked. Any other header is
     * looked up in every key's cache before it is decoded. */
    key = cg_jwt_key_by_header(keys, nkeys, token, (apr_size_t)(dot1 - token));
    payload = key != NULL
                  ? cg_jwt_cache_get(key->mac, token, len, cg_jwt_cache_hash(token, len), NULL, f)
                  : cg_jwt_cache_find(keys, nkeys, token, len, f);
    if (payload != NULL) {
        st = cg_jwt_check_claims(f, want, &why);
        goto leave;
    }
    if (cg_jwt_b64url_decode(p, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), &pbuf, &plen) !=
            APR_SUCCESS ||
        cg_jwt_b64url_decode(p, dot2 + 1, len - (apr_size_t)(dot2 + 1 - token), &sbuf, &slen) !=
            APR_SUCCESS) {
        st = CG_JWT_MALFORMED;
        why = "segment is not base64url";
        goto leave;
    }
    if (key == NULL) {
        if (cg_jwt_b64url_decode(p, token, (apr_size_t)(dot1 - token), &hbuf, &hlen) !=
            APR_SUCCESS) {
            st = CG_JWT_MALFORMED;
            why = "segment is not base64url";
            goto leave;
        }
        header = json_loadb((const char *)hbuf, hlen, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(header)) {
            st = CG_JWT_BAD_HEADER;
            why = "header is not a JSON object";
            goto leave;
        }
        if ((st = cg_jwt_check_header(header, &kid, &why)) != CG_JWT_OK) {
            goto leave;
        }
        key = cg_jwt_key_select(keys, nkeys, kid);
        if (key == NULL) {
            st = CG_JWT_UNKNOWN_KID;
            why = kid != NULL ? "unknown kid" : "no key for a token without kid";
            goto leave;
        }
        /* no second look in key's cache: cg_jwt_cache_find() asked it */
        kidless = kid == NULL;
    }
    if (slen != CG_JWT_SIG_LEN) {
        st = CG_JWT_BAD_SIGNATURE;
        why = "signature has the wrong length";
        goto leave;
    }
    if (!cg_jwt_hmac(key, token, (apr_size_t)(dot2 - token), mac)) {
        st = CG_JWT_BAD_SIGNATURE;
        why = "HMAC failed";
        goto leave;
    }
    if (CRYPTO_memcmp(mac, sbuf, CG_JWT_SIG_LEN) != 0) {
        st = CG_JWT_BAD_SIGNATURE;
        why = "bad signature";
        goto leave;
    }
    payload = json_loadb((const char *)pbuf, plen, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(payload)) {
        st = CG_JWT_MALFORMED;
        why = "payload is not a JSON object";
        goto leave;
    }
    cg_jwt_facts_read(payload, f);
    st = cg_jwt_check_claims(f, want, &why);
    if (st == CG_JWT_OK && cg_jwt_mac_of(key) != NULL) {
        /* exactly these bytes, under this key, are now known good up to the
         * claims: the cache keeps the token whole, never just its signature */
        cg_jwt_cache_put(key->mac, token, len, payload, f, kidless);
    }

leave:
    json_decref(header);
    if (st == CG_JWT_OK && claims != NULL) {
        apr_pool_cleanup_register(p, payload, cg_jwt_json_cleanup, apr_pool_cleanup_null);
        *claims = payload;
        f->s.claims = payload;
    }
    else {
        json_decref(payload);
    }
    if (reason != NULL) {
        *reason = why;
    }
    return st;
}

cg_jwt_status_e cg_jwt_verify(apr_pool_t *p, const char *token, const cg_jwt_key_t *keys, int nkeys,
                              const cg_jwt_expect_t *want, json_t **claims, const char **reason)
{
    cg_jwt_facts_t f;

    return cg_jwt_verify_facts(p, token, keys, nkeys, want, claims, &f, reason);
}

cg_jwt_status_e cg_jwt_verify_session(apr_pool_t *p, const char *token, const cg_jwt_key_t *keys,
                                      int nkeys, const cg_jwt_expect_t *want,
                                      cg_jwt_session_t *session, const char **reason)
{
    cg_jwt_facts_t f;
    json_t *claims;
    cg_jwt_status_e st = cg_jwt_verify_facts(p, token, keys, nkeys, want, &claims, &f, reason);

    if (st == CG_JWT_OK) {
        *session = f.s;
    }
    else {
        memset(session, 0, sizeof(*session));
    }
    return st;
}

const char *cg_jwt_status_name(cg_jwt_status_e status)
{
    switch (status) {
    case CG_JWT_OK:
        return "ok";
    case CG_JWT_MALFORMED:
        return "malformed";
    case CG_JWT_BAD_HEADER:
        return "bad header";
    case CG_JWT_BAD_ALG:
        return "bad alg";
    case CG_JWT_UNKNOWN_KID:
        return "unknown kid";
    case CG_JWT_BAD_SIGNATURE:
        return "bad signature";
    case CG_JWT_EXPIRED:
        return "expired";
    case CG_JWT_NOT_YET_VALID:
        return "not yet valid";
    case CG_JWT_BAD_ISSUER:
        return "bad issuer";
    case CG_JWT_BAD_AUDIENCE:
        return "bad audience";
    case CG_JWT_BAD_CLAIM:
        return "bad claim";
    }
    return "unknown";
}

const char *cg_jwt_random_b64url(apr_pool_t *p, apr_size_t nbytes)
{
    unsigned char buf[CG_JWT_RANDOM_MAX];
    const char *s;

    if (nbytes == 0 || nbytes > CG_JWT_RANDOM_MAX) {
        return NULL;
    }
    if (RAND_bytes(buf, (int)nbytes) != 1) {
        return NULL;
    }
    s = cg_jwt_b64url_encode(p, buf, nbytes);
    OPENSSL_cleanse(buf, nbytes); /* only the encoded copy, in p, remains */
    return s;
}

const char *cg_jwt_sha256_hex(apr_pool_t *p, const void *data, apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    char *out;

    if (EVP_Digest(len > 0 ? data : "", len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        return NULL;
    }
    out = apr_palloc(p, (apr_size_t)mdlen * 2 + 1);
    for (i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[2 * mdlen] = '\0';
    return out;
}

const char *cg_jwt_kid(apr_pool_t *p, const unsigned char *secret, apr_size_t len)
{
    const char *hex = cg_jwt_sha256_hex(p, secret, len);

    return hex != NULL ? apr_pstrmemdup(p, hex, 16) : NULL;
}

const char *cg_jwt_sign_rs256(apr_pool_t *p, void *key, const json_t *header, const json_t *claims)
{
    char *h = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *c = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
    const char *input = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *ctx;
    int ok;

    if (h != NULL && c != NULL) {
        input = apr_pstrcat(p, cg_jwt_b64url_encode(p, h, strlen(h)), ".",
                            cg_jwt_b64url_encode(p, c, strlen(c)), NULL);
    }
    free(h);
    free(c);
    if (input == NULL) {
        return NULL;
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
         EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input, strlen(input)) == 1;
    sig = ok ? apr_palloc(p, siglen) : NULL;
    ok = ok && EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, strlen(input)) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? apr_pstrcat(p, input, ".", cg_jwt_b64url_encode(p, sig, siglen), NULL) : NULL;
}
