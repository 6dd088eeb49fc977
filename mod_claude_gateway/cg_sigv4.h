/* cg_sigv4: AWS Signature Version 4 for the Bedrock upstream (PURE: APR + libcrypto).
 *
 * Builds the canonical request, the string to sign, the signing key and the
 * Authorization header value of a request the gateway is about to send, as AWS
 * documents it for services other than S3: the path as sent on the request
 * line is normalized (empty and dot segments removed) and URI-encoded once
 * more, so a Bedrock model id "anthropic.claude-x-v1:0", sent as
 * "/model/anthropic.claude-x-v1%3A0/invoke", is signed as ".../claude-x-v1%253A0/...";
 * the query is decoded, re-encoded strictly and sorted; header names are
 * lower-cased, values trimmed with inner runs of spaces folded, and sorted.
 *
 * Not here: where credentials come from (configuration, the environment),
 * sending the request, or checking a signature someone else made. Nothing here
 * logs; the secret key and session token never appear in any output except the
 * x-amz-security-token header value the caller asked for. */
#ifndef CG_SIGV4_H
#define CG_SIGV4_H

#include <apr_pools.h>
#include <apr_time.h>

/** One request header: name in any case, value as it will be sent. */
typedef struct cg_sigv4_header_t {
    const char *name;
    const char *value;
} cg_sigv4_header_t;

/** AWS credentials. */
typedef struct cg_sigv4_credentials_t {
    const char *access_key_id;     /* AKIA…/ASIA… */
    const char *secret_access_key; /* secret: never logged */
    const char *session_token;     /* secret: never logged; NULL without temporary credentials */
} cg_sigv4_credentials_t;

/** The request to sign. */
typedef struct cg_sigv4_request_t {
    const char *method; /* "POST" */
    const char *path;   /* the path exactly as on the request line (already percent-encoded) */
    const char *query;  /* the query as sent, without '?', or NULL */
    /* Every header the caller sends and wants signed; "host" is required. Do not
     * list x-amz-date, x-amz-security-token or x-amz-content-sha256: sign adds them. */
    const cg_sigv4_header_t *headers;
    int nheaders;
    const void *payload; /* the body; may be NULL when payload_len is 0 */
    apr_size_t payload_len;
    int content_sha256_header; /* non-zero: also send and sign x-amz-content-sha256 */
} cg_sigv4_request_t;

/** What signing produced, all owned by the pool given to cg_sigv4_sign(). */
typedef struct cg_sigv4_result_t {
    const char *canonical_request; /* for debugging a mismatch (holds no secret) */
    const char *string_to_sign;
    const char *signed_headers;   /* "host;x-amz-date" */
    const char *payload_hash;     /* hex SHA-256 of the payload */
    const char *signature;        /* 64 hex digits */
    const char *authorization;    /* the Authorization header value */
    const cg_sigv4_header_t *set; /* headers to add to the request: x-amz-date, */
    int nset; /* [x-amz-security-token], [x-amz-content-sha256], authorization */
} cg_sigv4_result_t;

/**
 * The x-amz-date form of a time: "YYYYMMDDTHHMMSSZ" in UTC.
 * @param p pool for the result
 * @param t the time (apr_time_now() outside tests)
 * @return 16 characters owned by p
 */
const char *cg_sigv4_amz_date(apr_pool_t *p, apr_time_t t);

/**
 * URI-encode as AWS does: every byte except A-Z a-z 0-9 - . _ ~ becomes %XX
 * (upper-case hex); '/' is kept when keep_slash is non-zero.
 * @param p pool for the result
 * @param s the bytes to encode, NUL-terminated
 * @param keep_slash non-zero to leave '/' as it is (for whole paths)
 * @return the encoded string owned by p
 */
const char *cg_sigv4_uri_encode(apr_pool_t *p, const char *s, int keep_slash);

/**
 * The signing key: HMAC chain over "AWS4"+secret, date, region, service, "aws4_request".
 * @param secret_access_key secret: never logged
 * @param date "YYYYMMDD"
 * @param region e.g. "us-east-1"
 * @param service e.g. "bedrock"
 * @param key receives the 32-byte key
 * @return APR_SUCCESS, or APR_EINVAL on a NULL argument, a secret over 512 bytes or a
 *         libcrypto failure
 */
apr_status_t cg_sigv4_signing_key(const char *secret_access_key, const char *date,
                                  const char *region, const char *service, unsigned char key[32]);

/**
 * Sign a request.
 * @param p pool for everything in *out
 * @param req the request (method, encoded path, query, headers with host, payload)
 * @param creds the credentials (access key id and secret required)
 * @param region the AWS region, e.g. "us-east-1"
 * @param service the signing name, "bedrock" for Bedrock runtime
 * @param amz_date the request time as cg_sigv4_amz_date() gives it
 * @param out receives the result
 * @return APR_SUCCESS; APR_EINVAL when a required field is missing or empty, there is
 *         no host header, amz_date is not of the form YYYYMMDDTHHMMSSZ, a header name or
 *         value holds a control character, or libcrypto fails
 */
apr_status_t cg_sigv4_sign(apr_pool_t *p, const cg_sigv4_request_t *req,
                           const cg_sigv4_credentials_t *creds, const char *region,
                           const char *service, const char *amz_date, cg_sigv4_result_t *out);

#endif
