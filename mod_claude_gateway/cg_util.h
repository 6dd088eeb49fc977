/* cg_util: small PURE helpers of mod_claude_gateway (APR and jansson only).
 *
 * Request ids, secret references, constant-time comparison and the JSON error
 * envelopes of the reference gateway. No httpd headers: unit-tested and used by
 * the fuzzers without a server. */
#ifndef CG_UTIL_H
#define CG_UTIL_H

#include <apr_pools.h>

/**
 * Whether a client-supplied request id may be echoed back (the reference's
 * rule: 1 to 64 characters of [A-Za-z0-9._-]).
 * @param id the candidate, may be NULL
 * @return non-zero when acceptable
 */
int cg_request_id_valid(const char *id);

/**
 * A random UUIDv4 in its canonical lower-case form.
 * @param p pool for the result
 * @return the id (owned by p), or NULL when the system has no randomness
 */
const char *cg_uuid4(apr_pool_t *p);

/**
 * Resolve a secret reference: "env:NAME" reads the environment variable,
 * "file:/path" reads the file (one trailing newline removed). Anything else is
 * refused so that a literal secret never ends up in httpd.conf.
 * @param p pool for the value and the error
 * @param ref the reference as written in the configuration
 * @param value receives the secret (owned by p); secret: never log it
 * @return NULL on success, else a message naming the reference (never the secret)
 */
const char *cg_secret_resolve(apr_pool_t *p, const char *ref, const char **value);

/**
 * Whether an access token from a token endpoint can be sent as a bearer:
 * printable ASCII without blanks, at most max bytes.
 * @return NULL when it can, else why not (never the token)
 */
const char *cg_bearer_check(const char *token, apr_size_t max);

/**
 * Read a whole small file (a credential file, a certificate).
 * @param max the largest size taken
 * @param out receives the bytes, NUL-terminated (they may hold NULs), owned by p
 * @param out_len receives their number
 * @return NULL on success, else a message naming the path
 */
const char *cg_file_read(apr_pool_t *p, const char *path, apr_size_t max, const char **out,
                         apr_size_t *out_len);

/**
 * Compare two secrets in time independent of where they differ.
 * @return non-zero when equal (both non-NULL, same length, same bytes)
 */
int cg_secret_equal(const char *a, const char *b);

/**
 * The Anthropic error envelope the reference uses on bearer paths:
 * {"type":"error","request_id":ID,"error":{"type":TYPE,"message":MSG}}.
 * @param p pool for the result
 * @param request_id may be NULL (then omitted)
 * @return compact JSON text owned by p
 */
const char *cg_error_envelope(apr_pool_t *p, const char *type, const char *message,
                              const char *request_id);

/**
 * The OAuth error body of the token endpoints: {"error":E[,"error_description":D]}.
 * @param description may be NULL
 * @return compact JSON text owned by p
 */
const char *cg_oauth_error(apr_pool_t *p, const char *error, const char *description);

/**
 * Whether a header may go to the upstream. Only what the Messages API needs
 * passes (the reference's list); credentials, cookies, identity and proxy
 * headers never do.
 * @param name header name, any case
 * @return non-zero to forward
 */
int cg_header_forwardable(const char *name);

/* apr_atoi64(s), the same answer for every string, without strtol's cost
 * for the figures our notes carry (at most 18 digits and an optional minus). */
apr_int64_t cg_atoi64(const char *s);

#endif
