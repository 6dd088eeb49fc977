/* cg_jwt: the gateway's HS256 session tokens (PURE: APR + jansson + libcrypto).
 *
 * Minting and checking the compact JWS the reference gateway hands to Claude
 * Code after sign-in: header {"alg":"HS256","typ":"JWT","kid":...}, claims sub,
 * email, name, groups, aud, iat, exp, iss. Only HS256 exists here: no "none",
 * no RSA/EC, no algorithm taken from the token. Also the small crypto helpers
 * the gateway needs around it: base64url, random opaque tokens, SHA-256 hex
 * (device codes and refresh tokens are stored only as hashes).
 *
 * Not here: which claims a session gets (cg_handler), key configuration and
 * rotation policy (cg_config). Nothing here logs; nothing here ever puts token
 * bytes into a reason string, so reasons may be logged as they are. */
#ifndef CG_JWT_H
#define CG_JWT_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

/** Longest token accepted (and minted): a bearer header beyond this is abuse. */
#define CG_JWT_MAX_LEN 8192

/** A key's HMAC-SHA256 keyed once by cg_jwt_key_prepare(); opaque. */
typedef struct cg_jwt_mac_t cg_jwt_mac_t;

/** An HS256 key. */
typedef struct cg_jwt_key_t {
    const char *kid;             /* key id put in / matched against the header; may be NULL */
    const unsigned char *secret; /* secret: never logged */
    apr_size_t secret_len;       /* > 0; the reference requires at least 32 bytes */
    const cg_jwt_mac_t *mac;     /* NULL until cg_jwt_key_prepare(); then read-only */
} cg_jwt_key_t;

/** What verification expects of the claims. */
typedef struct cg_jwt_expect_t {
    const char *iss;    /* required issuer, or NULL not to check iss */
    const char *aud;    /* required audience (string claim or member of an array), or NULL */
    apr_time_t now;     /* the current time, apr_time_now() outside tests */
    apr_int64_t leeway; /* seconds of clock skew allowed on exp, nbf and iat */
} cg_jwt_expect_t;

/** Outcome of cg_jwt_verify(); each failure has its own code for logs and tests. */
typedef enum {
    CG_JWT_OK = 0,
    CG_JWT_MALFORMED,     /* not three base64url segments, too long, payload not an object */
    CG_JWT_BAD_HEADER,    /* header not a JSON object, bad typ/kid, crit present */
    CG_JWT_BAD_ALG,       /* alg is not exactly "HS256" (including "none") */
    CG_JWT_UNKNOWN_KID,   /* no configured key matches */
    CG_JWT_BAD_SIGNATURE, /* HMAC mismatch */
    CG_JWT_EXPIRED,       /* now >= exp + leeway */
    CG_JWT_NOT_YET_VALID, /* nbf or iat > now + leeway */
    CG_JWT_BAD_ISSUER,    /* iss missing or not the expected one */
    CG_JWT_BAD_AUDIENCE,  /* aud missing or not containing the expected one */
    CG_JWT_BAD_CLAIM      /* exp or sub missing, or a time claim not a number */
} cg_jwt_status_e;

/**
 * Encode bytes as base64url without padding (RFC 7515 §2).
 * @param p pool for the result
 * @param data the bytes; may be NULL when len is 0
 * @param len their number
 * @return a NUL-terminated string owned by p
 */
const char *cg_jwt_b64url_encode(apr_pool_t *p, const void *data, apr_size_t len);

/**
 * An RS256 JWS of a header and claims (the assertions a service account or
 * a certificate's service principal signs for an OAuth token endpoint).
 * RSASSA-PKCS1-v1_5 is deterministic: the same input gives the same token.
 * @param p pool for the result
 * @param key an RSA private key (an EVP_PKEY *)
 * @param header the JOSE header object (not consumed)
 * @param claims the claims object (not consumed)
 * @return the compact JWS owned by p (secret: never logged), or NULL if
 *         libcrypto fails
 */
const char *cg_jwt_sign_rs256(apr_pool_t *p, void *key, const json_t *header, const json_t *claims);

/**
 * Decode base64url without padding, strictly: any byte outside [A-Za-z0-9_-]
 * (including '=' and whitespace), an impossible length (4n+1) and non-zero
 * unused bits are refused, so each value has exactly one encoding.
 * @param p pool for the result
 * @param in the text; need not be NUL-terminated
 * @param inlen its length
 * @param out receives the bytes, owned by p, with a NUL after them
 * @param outlen receives their number
 * @return APR_SUCCESS, or APR_EINVAL (then *out is NULL)
 */
apr_status_t cg_jwt_b64url_decode(apr_pool_t *p, const char *in, apr_size_t inlen,
                                  unsigned char **out, apr_size_t *outlen);

/**
 * Do once what every signature with this key would otherwise redo: fetch
 * HMAC-SHA256 from libcrypto and key it (OpenSSL 3's one-shot HMAC() does
 * both per call), and encode the header cg_jwt_sign() puts in front of tokens
 * with this kid. Signing and verifying then only copy the keyed context, which
 * threads may do at the same time. A prepared key also remembers the last
 * tokens it verified (128 slots, tokens up to 2 KiB, guarded by a mutex): a
 * token byte for byte equal (compared whole, in constant time) to one that
 * passed is not decoded, HMACed or parsed again; its claims are still checked
 * against the time and want on every call. Revocation is the caller's and is
 * untouched. Without preparing, the key works the same, slower. Call before
 * threads use the key (post_config); a prepared key is left as is.
 * @param p pool whose cleanup frees it all and sets key->mac back to NULL: the
 *        pool that holds key, or one that does not outlive it
 * @param key the key; key->mac is set on success
 * @return APR_SUCCESS, APR_EINVAL for an empty key, APR_EGENERAL when
 *         libcrypto fails (key->mac stays NULL)
 */
apr_status_t cg_jwt_key_prepare(apr_pool_t *p, cg_jwt_key_t *key);

/**
 * Mint a token: header {"alg":"HS256","typ":"JWT","kid":key->kid} (kid left
 * out when NULL) and the claims as given, compact JSON.
 * @param p pool for the result
 * @param key the signing key (the first configured one)
 * @param claims a JSON object; not modified, not released
 * @return the compact token owned by p (secret: never logged), or NULL when
 *         claims is not an object, the key is empty, the token would pass
 *         CG_JWT_MAX_LEN, or libcrypto fails
 */
const char *cg_jwt_sign(apr_pool_t *p, const cg_jwt_key_t *key, const json_t *claims);

/**
 * Verify a token and its claims. The key is chosen by the header's kid; a
 * token without kid is checked with keys[0] (as the reference does: the first
 * key signs). The signature is checked before the payload is parsed, in
 * constant time. Then exp and sub must be present, exp/nbf/iat are checked
 * with the leeway, iss and aud against want.
 * @param p pool owning *claims
 * @param token the compact token, NUL-terminated (secret: never logged)
 * @param keys the configured keys, in order
 * @param nkeys their number
 * @param want what the claims must satisfy (required)
 * @param claims receives the payload object on CG_JWT_OK, else NULL; may be
 *        NULL. It is released by a cleanup on p: callers never json_decref it.
 *        It may be shared with other threads (a prepared key's cache): read only
 * @param reason receives a short static English reason (never token bytes);
 *        may be NULL
 * @return CG_JWT_OK or the first failure found
 */
cg_jwt_status_e cg_jwt_verify(apr_pool_t *p, const char *token, const cg_jwt_key_t *keys, int nkeys,
                              const cg_jwt_expect_t *want, json_t **claims, const char **reason);

/** What a session reads from a verified token's claims, found once per token. */
typedef struct cg_jwt_session_t {
    const json_t *claims; /* the payload object: as cg_jwt_verify()'s claims */
    const char *sub;      /* never NULL or empty */
    const char *email;    /* each: the claim when it is a string, else NULL */
    const char *name;
    const char *sid;
    const json_t *groups; /* the claim when it is an array (of anything), else NULL */
    int has_iat;          /* iat is a number: then iat holds it */
    double iat;
} cg_jwt_session_t;

/**
 * cg_jwt_verify() for a session token, giving the claims a session reads.
 * Verdict, reasons and checks (exp, nbf and iat against want->now on every
 * call) are cg_jwt_verify()'s; a token a prepared key's cache holds has these
 * read already, so a hit costs no claim lookups.
 * @param session receives the claims on CG_JWT_OK, else zeroes; its strings
 *        and JSON live in the claims object, which a cleanup on p releases
 *        (never json_decref them); read only, shared with other threads
 * @return as cg_jwt_verify()
 */
cg_jwt_status_e cg_jwt_verify_session(apr_pool_t *p, const char *token, const cg_jwt_key_t *keys,
                                      int nkeys, const cg_jwt_expect_t *want,
                                      cg_jwt_session_t *session, const char **reason);

/**
 * A short name for a status ("ok", "expired", ...), for logs and tests.
 * @return a static string
 */
const char *cg_jwt_status_name(cg_jwt_status_e status);

/**
 * Whether two buffers hold the same bytes, in a time that depends on n only:
 * a machine word at a time, no early exit, no branch on the contents. For
 * secrets (tokens), where CRYPTO_memcmp's byte loop was the cost.
 * @param a the first buffer; may be NULL when n is 0
 * @param b the second buffer; may be NULL when n is 0
 * @param n how many bytes to compare
 * @return 1 when equal (always for n == 0), else 0
 */
int cg_jwt_ct_equal(const void *a, const void *b, apr_size_t n);

/**
 * Random bytes from libcrypto's CSPRNG, base64url-encoded: refresh tokens,
 * device codes, CSRF values.
 * @param p pool for the result
 * @param nbytes how many random bytes (1 to 1024); 32 gives 43 characters
 * @return the string owned by p (secret: never logged), or NULL when nbytes is
 *         out of range or the CSPRNG fails
 */
const char *cg_jwt_random_b64url(apr_pool_t *p, apr_size_t nbytes);

/**
 * SHA-256 of some bytes, as 64 lower-case hex digits. The gateway stores and
 * looks up device codes and refresh tokens by this, never the values.
 * @param p pool for the result
 * @param data the bytes (for a C string, pass strlen(s)); may be NULL when len is 0
 * @param len their number
 * @return the hex string owned by p, or NULL if libcrypto fails
 */
const char *cg_jwt_sha256_hex(apr_pool_t *p, const void *data, apr_size_t len);

/**
 * The reference's key id for a secret: the first 16 hex digits of its SHA-256.
 * @param p pool for the result
 * @param secret the key bytes (secret: never logged)
 * @param len their number
 * @return 16 hex digits owned by p, or NULL if libcrypto fails
 */
const char *cg_jwt_kid(apr_pool_t *p, const unsigned char *secret, apr_size_t len);

#endif
