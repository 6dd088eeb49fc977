/* cg_vertex: the Google Cloud Vertex AI upstream (PURE: APR + jansson + libcrypto).
 *
 * Request side: the Messages body loses "model" (it is in the URL) and the
 * request "tags", and gains "anthropic_version": "vertex-2023-10-16"; the
 * anthropic-beta header stays a header (without the request-tags beta); the
 * URL is {base}/v1/projects/{project}/locations/{region}/publishers/anthropic/
 * models/{model}:rawPredict or :streamRawPredict, the base being
 * https://{region}-aiplatform.googleapis.com, or https://aiplatform.googleapis.com
 * for the "global" region. Answers are the Messages API's JSON and SSE as they
 * are. Credentials: a service account's signed JWT assertion (RS256) exchanged
 * at its token_uri for an access token, sent as Authorization: Bearer; or,
 * for application default credentials, gcloud's user credentials (a refresh
 * token) or the metadata server's token.
 *
 * Not here: sending the token requests, caching the token until it expires,
 * where ADC files are looked for (cg_gcpchain.c). */
#ifndef CG_VERTEX_H
#define CG_VERTEX_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** The version Vertex's Anthropic models take in the body. */
#define CG_VERTEX_ANTHROPIC_VERSION "vertex-2023-10-16"
/** The OAuth scope the assertion asks for. */
#define CG_VERTEX_SCOPE "https://www.googleapis.com/auth/cloud-platform"
/** Google's token endpoint, when a service account names none. */
#define CG_VERTEX_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
/** Lifetime asked for in an assertion (Google's maximum). */
#define CG_VERTEX_ASSERTION_TTL 3600

/** The prediction methods. */
typedef enum {
    CG_VERTEX_RAW_PREDICT,        /* {model}:rawPredict (JSON answer) */
    CG_VERTEX_STREAM_RAW_PREDICT, /* {model}:streamRawPredict (SSE answer; "stream": true) */
    CG_VERTEX_COUNT_TOKENS        /* count-tokens:rawPredict (the model goes in the body) */
} cg_vertex_op_e;

/**
 * The URL of a prediction method.
 * @param p pool for the result
 * @param base_url a configured base_url (Private Service Connect, tests) without
 *        trailing '/', or NULL for Google's host of the region
 * @param region e.g. "us-east5", or "global"
 * @param project the project id
 * @param model the Vertex model id, e.g. "claude-sonnet-4-5@20250929" (ignored for
 *        CG_VERTEX_COUNT_TOKENS)
 * @param op the method
 * @return the URL owned by p, or NULL when region, project or model is empty or holds
 *         characters no such id has
 */
const char *cg_vertex_url(apr_pool_t *p, const char *base_url, const char *region,
                          const char *project, const char *model, cg_vertex_op_e op);

/**
 * Translate a Messages body for Vertex: "model" removed (set to model for
 * CG_VERTEX_COUNT_TOKENS, which takes it in the body), "tags" removed,
 * "anthropic_version" set; every other field kept, "stream" included.
 * @param p pool for the result
 * @param buf the client's body (already accepted by cg_body_check)
 * @param len its length
 * @param op the method the body is for
 * @param model the Vertex model id (used for CG_VERTEX_COUNT_TOKENS only)
 * @param out_len receives the new length
 * @return compact JSON owned by p, or NULL when buf is not a JSON object
 */
const char *cg_vertex_body(apr_pool_t *p, const char *buf, apr_size_t len, cg_vertex_op_e op,
                           const char *model, apr_size_t *out_len);

/**
 * The anthropic-beta header to send Vertex: the client's values without the
 * request-tags beta (Vertex refuses it).
 * @return the value owned by p, or NULL when nothing is left (send no header)
 */
const char *cg_vertex_beta_header(apr_pool_t *p, const char *anthropic_beta);

/** A parsed service account (opaque: it holds the private key). */
typedef struct cg_vertex_sa_t cg_vertex_sa_t;

/**
 * Parse a service-account key file's JSON ("type": "service_account", with
 * private_key (PEM, RSA), client_email, token_uri, private_key_id, project_id).
 * @param p pool owning the result; the key is freed by a cleanup on it
 * @param json the file's contents (secret: never logged)
 * @param len their length
 * @param sa receives the account
 * @return NULL on success, else a message naming what is wrong (never key bytes)
 */
const char *cg_vertex_sa_parse(apr_pool_t *p, const char *json, apr_size_t len,
                               cg_vertex_sa_t **sa);

/** The account's client_email. */
const char *cg_vertex_sa_email(const cg_vertex_sa_t *sa);
/** The account's token_uri (CG_VERTEX_DEFAULT_TOKEN_URI when the file names none). */
const char *cg_vertex_sa_token_uri(const cg_vertex_sa_t *sa);
/** The account's project_id, or NULL. */
const char *cg_vertex_sa_project(const cg_vertex_sa_t *sa);

/**
 * The signed JWT assertion for the token exchange: header {"alg":"RS256",
 * "kid":private_key_id,"typ":"JWT"} (sorted, as PyJWT and google-auth write it), claims {iss:
 * client_email, scope: CG_VERTEX_SCOPE, aud: token_uri, iat: now, exp: now + 3600}.
 * @param p pool for the result
 * @param sa the account
 * @param now the time (apr_time_now() outside tests)
 * @return the compact JWS owned by p (secret: never logged), or NULL if libcrypto fails
 */
const char *cg_vertex_assertion(apr_pool_t *p, const cg_vertex_sa_t *sa, apr_time_t now);

/**
 * The token request's form body (POST to the token_uri, content-type
 * application/x-www-form-urlencoded): the JWT-bearer grant and the assertion.
 * @return the body owned by p (secret: never logged)
 */
const char *cg_vertex_token_request(apr_pool_t *p, const char *assertion);

/**
 * Read the token endpoint's answer {"access_token","expires_in","token_type"}.
 * @param p pool for the results
 * @param buf the answer body
 * @param len its length
 * @param now the time the request was sent
 * @param token receives the access token (secret: never logged)
 * @param expires receives when it expires (now + expires_in)
 * @return NULL on success, else a message for the log ("invalid_grant: ..." when
 *         the endpoint refused); the token never appears in it
 */
const char *cg_vertex_token_parse(apr_pool_t *p, const char *buf, apr_size_t len, apr_time_t now,
                                  const char **token, apr_time_t *expires);

/** Application default credentials read from a file: GOOGLE_APPLICATION_CREDENTIALS
 * or gcloud's application_default_credentials.json. */
typedef struct cg_vertex_adc_t {
    cg_vertex_sa_t *sa;        /**< "service_account": the account; else NULL */
    const char *client_id;     /**< "authorized_user": the OAuth client */
    const char *client_secret; /**< "authorized_user" (secret: never logged) */
    const char *refresh_token; /**< "authorized_user" (secret: never logged) */
    const char *token_uri;     /**< where either kind is exchanged for an access token */
    const char *quota_project; /**< quota_project_id (sent as x-goog-user-project), or NULL */
    /* "external_account" (workload identity federation); token_uri is its STS */
    const char *audience;               /**< the workload identity pool provider */
    const char *subject_token_type;     /**< e.g. urn:ietf:params:oauth:token-type:jwt */
    const char *impersonation_url;      /**< a generateAccessToken URL, or NULL */
    const char *source_file;            /**< where the subject token is read, or NULL */
    const char *source_url;             /**< where it is fetched (GET), or NULL */
    apr_array_header_t *source_headers; /**< const char * "Name: value" for source_url */
    const char *source_field;           /**< the json format's field, NULL: the text itself */
} cg_vertex_adc_t;

/**
 * Parse an application default credentials file. "service_account",
 * "authorized_user" and "external_account" with a file or URL credential
 * source are understood; AWS- and executable-sourced external accounts and
 * the impersonated kinds are refused by name.
 * @param p pool owning the results (the private key is freed by a cleanup on it)
 * @param json the file's contents (secret: never logged)
 * @param len their length
 * @param adc receives the credentials
 * @return NULL on success, else a message naming what is wrong (never a secret)
 */
const char *cg_vertex_adc_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                cg_vertex_adc_t *adc);

/**
 * The form body to POST to adc->token_uri: the JWT-bearer grant for a
 * service account, the refresh_token grant for user credentials.
 * @return the body owned by p (secret: never logged), or NULL if signing fails
 */
const char *cg_vertex_adc_token_request(apr_pool_t *p, const cg_vertex_adc_t *adc, apr_time_t now);

/**
 * The subject token of an external account from what its source gave: the
 * text trimmed, or the json format's field.
 * @return NULL with *token (secret), else what is wrong (never the token)
 */
const char *cg_vertex_subject_token(apr_pool_t *p, const cg_vertex_adc_t *adc, const char *raw,
                                    apr_size_t len, const char **token);

/**
 * The token exchange form to POST to an external account's STS (token_uri):
 * the subject token for an access token with the cloud-platform scope.
 * @return the body owned by p (secret: never logged)
 */
const char *cg_vertex_sts_request(apr_pool_t *p, const cg_vertex_adc_t *adc,
                                  const char *subject_token);

/** The JSON body of a generateAccessToken request: cloud-platform, an hour. */
#define CG_VERTEX_IMPERSONATION_BODY                                                               \
    "{\"scope\":[\"https://www.googleapis.com/auth/cloud-platform\"],\"lifetime\":\"3600s\"}"

/**
 * Read generateAccessToken's answer {"accessToken", "expireTime": RFC 3339}, or
 * its Google error {"error": {"code", "message", "status"}}.
 * @return NULL with *token and *expires, else a message for the log (never the token)
 */
const char *cg_vertex_impersonation_parse(apr_pool_t *p, const char *buf, apr_size_t len,
                                          const char **token, apr_time_t *expires);

/** The metadata server's host when GCE_METADATA_HOST and GCE_METADATA_ROOT are unset. */
#define CG_VERTEX_METADATA_HOST "metadata.google.internal"

/**
 * The metadata server's URL for the default service account's token, with
 * the cloud-platform scope.
 * @param host host[:port] (GCE_METADATA_HOST), without scheme
 * @return the URL owned by p, or NULL when host is empty or not a host[:port]
 */
const char *cg_vertex_metadata_url(apr_pool_t *p, const char *host);

#endif
