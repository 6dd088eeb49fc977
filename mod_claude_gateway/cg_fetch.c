/* cg_fetch: small blocking requests to credential endpoints.
 *
 * The credential chains run on a request's thread, once in a while: a fresh
 * curl easy handle per request is cheap next to the endpoint's round trip,
 * and keeps these exchanges out of the upstream client's connection pool. */
#include <apr_strings.h>
#include <apr_tables.h>

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#include "cg_fetch.h"

typedef struct cg_fetch_ctx_t {
    apr_pool_t *p;
    cg_fetch_t *f;
    apr_array_header_t *answer;
} cg_fetch_ctx_t;

static size_t cg_fetch_body(char *buf, size_t size, size_t n, void *baton)
{
    cg_fetch_ctx_t *ctx = baton;
    size_t len = size * n;

    if ((size_t)ctx->answer->nelts + len > CG_FETCH_ANSWER_MAX) {
        return 0; /* too long: abort the transfer */
    }
    apr_array_cat(ctx->answer,
                  &(apr_array_header_t){.elt_size = 1, .nelts = (int)len, .elts = buf});
    return len;
}

static size_t cg_fetch_header(char *buf, size_t size, size_t n, void *baton)
{
    cg_fetch_ctx_t *ctx = baton;
    size_t len = size * n, name = strlen(ctx->f->capture);
    const char *v, *end = buf + len;

    if (len > name && buf[name] == ':' && strncasecmp(buf, ctx->f->capture, name) == 0) {
        for (v = buf + name + 1; v < end && (*v == ' ' || *v == '\t'); v++) {
        }
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
            end--;
        }
        ctx->f->captured = apr_pstrmemdup(ctx->p, v, (apr_size_t)(end - v));
    }
    return len;
}

int cg_fetch(apr_pool_t *p, cg_fetch_t *f, const char **why)
{
    cg_fetch_ctx_t ctx = {p, f, apr_array_make(p, 1024, 1)};
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    CURLcode rc;

    f->status = 0;
    f->body = NULL;
    f->len = 0;
    f->captured = NULL;
    if (c == NULL) {
        *why = "curl_easy_init failed";
        return 0;
    }
    curl_easy_setopt(c, CURLOPT_URL, f->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, f->method);
    if (f->form != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, f->form);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cg_fetch_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
    if (f->capture != NULL) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, cg_fetch_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &ctx);
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, f->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (f->direct) {
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    }
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
    }
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        /* the URL without its query: a query may carry a secret */
        *why = apr_psprintf(p, "%.*s: %s", (int)strcspn(f->url, "?"), f->url,
                            errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return 0;
    }
    *(char *)apr_array_push(ctx.answer) = '\0';
    f->body = ctx.answer->elts;
    f->len = (apr_size_t)ctx.answer->nelts - 1;
    return 1;
}

const char *cg_cred_env(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? v : NULL;
}

const char *cg_cred_home(apr_pool_t *p)
{
    const char *home = cg_cred_env("HOME");
    struct passwd pw, *res = NULL;
    char buf[1024];

    if (home != NULL) {
        return home;
    }
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res != NULL &&
        pw.pw_dir != NULL) {
        return apr_pstrdup(p, pw.pw_dir);
    }
    return NULL;
}
