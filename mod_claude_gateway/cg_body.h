/* cg_body: validation of a Messages API request body (PURE: APR only).
 *
 * The gateway reads the body once, checks it here, and replays the original
 * bytes to the upstream. The messages are the reference gateway's, so clients
 * see the same errors whichever gateway they talk to. The check is a scanner
 * that accepts exactly what jansson 2.14's json_loadb() with
 * JSON_REJECT_DUPLICATES accepts, without building a tree. */
#ifndef CG_BODY_H
#define CG_BODY_H

#include <apr_pools.h>

/** What the gateway needs to know of a valid body. */
typedef struct cg_body_info_t {
    const char *model;    /* the requested model, owned by the pool given to cg_body_check */
    int stream;           /* "stream": true */
    long long max_tokens; /* "max_tokens" when a non-negative integer, else -1 */
} cg_body_info_t;

/**
 * Check a Messages API request body.
 * Rejects invalid JSON anywhere in the body (including duplicate keys at any
 * depth, which would let our parse and the upstream's disagree about the
 * model), then a non-object body, a missing or non-string model.
 * @param p pool for info->model (and short-lived scratch for bodies with big
 *        objects)
 * @param buf the body bytes (need not be NUL-terminated)
 * @param len their length
 * @param info receives the model, stream and max_tokens when valid, is left
 *        alone otherwise; may be NULL
 * @return NULL when valid, else the client-facing message (static or owned by p)
 */
const char *cg_body_check(apr_pool_t *p, const char *buf, apr_size_t len, cg_body_info_t *info);

/**
 * The body with its top-level "model" value replaced, every other byte kept.
 * @param p pool for the result
 * @param buf a body cg_body_check accepted
 * @param len its length
 * @param model the new model id, written as json_dumps() would quote it
 * @param out_len receives the new length
 * @return the new body (NUL-terminated), or NULL if buf has no model key or
 *         model is not valid UTF-8
 */
const char *cg_body_set_model(apr_pool_t *p, const char *buf, apr_size_t len, const char *model,
                              apr_size_t *out_len);

#endif
