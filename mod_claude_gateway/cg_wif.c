/* cg_wif: Anthropic workload identity federation.
 *
 * An anthropic upstream with auth {federation_rule_id, organization_id,
 * identity_token_file, service_account_id?, workspace_id?} holds no API key:
 * the platform's OIDC token (a Kubernetes projected token, a CI job's
 * token), read from the file at each exchange because the platform rotates
 * it, is exchanged at Anthropic's token endpoint (RFC 7523 jwt-bearer, the
 * federation beta) for a short-lived access token, sent as a bearer with
 * the OAuth beta. As Anthropic's SDKs do, the exchange is refused over
 * plain HTTP except to loopback, and the token is renewed two minutes
 * before it expires (cg_tokcache.c: one request renews, the others go on). */
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <httpd.h>
#include <http_log.h>

#include "cg_private.h"
#include "cg_fetch.h"
#include "cg_provider.h"
#include "cg_tokcache.h"
#include "cg_util.h"
#include "cg_vertex.h"
#include "cg_wif.h"

#define CG_WIF_REFRESH apr_time_from_sec(120) /* the SDKs' advisory threshold */
#define CG_WIF_PAUSE apr_time_from_sec(5)     /* after a failed exchange */
#define CG_WIF_TIMEOUT_MS 10000L

static apr_pool_t *cg_wif_pool;
static apr_thread_mutex_t *cg_wif_lock;
static apr_hash_t *cg_wif_caches; /* upstream name -> cg_tokcache_t */

typedef struct cg_wif_ctx_t {
    request_rec *r;
    const cg_upstream_decl_t *u;
} cg_wif_ctx_t;

void cg_wif_child_init(apr_pool_t *pchild)
{
    cg_wif_pool = pchild;
    cg_wif_caches = apr_hash_make(pchild);
    if (apr_thread_mutex_create(&cg_wif_lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS) {
        cg_wif_lock = NULL;
    }
}

static cg_tokcache_t *cg_wif_cache(const cg_upstream_decl_t *u)
{
    cg_tokcache_t *c;

    if (cg_wif_lock == NULL) {
        return NULL;
    }
    apr_thread_mutex_lock(cg_wif_lock);
    c = apr_hash_get(cg_wif_caches, u->name, APR_HASH_KEY_STRING);
    if (c == NULL && (c = cg_tokcache_create(cg_wif_pool, CG_WIF_REFRESH, CG_WIF_PAUSE)) != NULL) {
        apr_hash_set(cg_wif_caches, apr_pstrdup(cg_wif_pool, u->name), APR_HASH_KEY_STRING, c);
    }
    apr_thread_mutex_unlock(cg_wif_lock);
    return c;
}

static int cg_wif_exchange(void *baton, apr_pool_t *p, apr_time_t now, cg_tokcache_value_t *out,
                           const char **why)
{
    const cg_wif_ctx_t *ctx = baton;
    const cg_upstream_decl_t *u = ctx->u;
    const char *assertion, *err, *base = u->base_url;
    struct curl_slist *h = NULL;
    cg_fetch_t f = {.method = "POST", .timeout_ms = CG_WIF_TIMEOUT_MS};
    apr_size_t n = strlen(base);
    int ok;

    if (!cg_provider_secure_endpoint(base)) {
        *why = "refusing to send the identity token to a non-https base_url";
        return 0;
    }
    if ((err = cg_secret_resolve(p, apr_pstrcat(p, "file:", u->wif_token_file, NULL),
                                 &assertion)) != NULL) {
        *why = apr_pstrcat(p, "identity token: ", err, NULL);
        return 0;
    }
    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    f.url = apr_psprintf(p, "%.*s/v1/oauth/token", (int)n, base);
    f.form = cg_provider_wif_request(p, assertion, u->wif_rule, u->wif_organization,
                                     u->wif_service_account, u->wif_workspace);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "anthropic-beta: " CG_PROVIDER_FEDERATION_BETA);
    f.headers = h;
    ok = f.form != NULL && cg_fetch(p, &f, why);
    curl_slist_free_all(h);
    if (!ok) {
        return 0;
    }
    /* RFC 6749's answer, as any OAuth token endpoint's */
    err = cg_vertex_token_parse(p, f.body, f.len, now, &out->token, &out->expires);
    if (f.status != 200) {
        *why = err != NULL && !strncmp(err, "the token endpoint refused", 26)
                   ? apr_psprintf(p, "%s (%ld)", err, f.status)
                   : apr_psprintf(p, "the token endpoint answered %ld", f.status);
        out->token = NULL;
        return 0;
    }
    if (err != NULL) {
        *why = err;
        return 0;
    }
    out->source = "token endpoint";
    return 1;
}

int cg_wif_token(request_rec *r, const cg_upstream_decl_t *u, const char **token)
{
    cg_tokcache_t *c = cg_wif_cache(u);
    cg_wif_ctx_t ctx = {r, u};
    cg_tokcache_value_t v;
    const char *why = NULL;

    *token = NULL;
    if (c == NULL) {
        return 0;
    }
    switch (cg_tokcache_get(c, r->pool, apr_time_now(), cg_wif_exchange, &ctx, &v, &why)) {
    case CG_TOKCACHE_NEW_SOURCE:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      CG_LOGNO(0154) "upstream %s: Anthropic workload identity token exchanged",
                      u->name);
        break;
    case CG_TOKCACHE_KEPT:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0155) "upstream %s: Anthropic workload identity token not renewed "
                                     "(%s); using the current one until it expires",
                      u->name, why);
        break;
    case CG_TOKCACHE_FAILED:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0153) "upstream %s: no Anthropic workload identity token: %s",
                      u->name, why);
        return 0;
    case CG_TOKCACHE_PAUSED:
        return 0;
    default:
        break;
    }
    *token = v.token;
    return 1;
}

void cg_wif_forget(const cg_upstream_decl_t *u)
{
    cg_tokcache_t *c = cg_wif_cache(u);

    if (c != NULL) {
        cg_tokcache_forget(c);
    }
}
