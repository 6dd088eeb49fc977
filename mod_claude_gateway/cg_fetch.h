/* cg_fetch: one small blocking HTTP request to a credential endpoint (the
 * AWS and Google metadata services, STS, OAuth token endpoints), with
 * libcurl (httpd glue). */
#ifndef CG_FETCH_H
#define CG_FETCH_H

#include <apr_pools.h>
#include <curl/curl.h>

/** Largest answer kept; a longer one fails the request. */
#define CG_FETCH_ANSWER_MAX (64 * 1024)

typedef struct cg_fetch_t {
    /* the request */
    const char *method;         /**< "GET", "PUT", "POST" */
    const char *url;            /**< may hold secrets in its query: never logged by us */
    struct curl_slist *headers; /**< or NULL; the caller frees it */
    const char *form;           /**< the body (POST), or NULL */
    long timeout_ms;            /**< for the whole exchange */
    int direct;                 /**< never through a proxy: link-local metadata services */
    const char *capture;        /**< an answer header whose value to keep, or NULL */
    /* the answer */
    long status;          /**< HTTP status, 0 when none came */
    const char *body;     /**< NUL-terminated */
    apr_size_t len;       /**< without the NUL */
    const char *captured; /**< the captured header's value, or NULL when absent */
} cg_fetch_t;

/**
 * Send f's request and wait for the answer.
 * @param p pool for the answer and messages
 * @param f the request in, the answer out
 * @param why receives the transport failure ("url: what curl said") on 0
 * @return 1 when an answer came (any status), 0 on a transport failure
 */
int cg_fetch(apr_pool_t *p, cg_fetch_t *f, const char **why);

/** A credential chain's environment variable: its value, or NULL when unset or empty. */
const char *cg_cred_env(const char *name);

/** The home directory the chains look in: $HOME, else the user's passwd entry (in p). */
const char *cg_cred_home(apr_pool_t *p);

#endif
