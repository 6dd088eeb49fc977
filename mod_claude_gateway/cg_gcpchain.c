/* cg_gcpchain: where a Vertex upstream with auth {} gets its access token,
 * in google-auth's order (application default credentials):
 *   1. the file GOOGLE_APPLICATION_CREDENTIALS names: a service account key,
 *      gcloud's user credentials, or an external account (workload identity
 *      federation: a subject token from a file or URL exchanged at Google's
 *      STS, then, if named, a service account impersonated);
 *   2. gcloud's well-known file, application_default_credentials.json in
 *      CLOUDSDK_CONFIG, else in ~/.config/gcloud (`gcloud auth
 *      application-default login`);
 *   3. the metadata server of Compute Engine, GKE and Cloud Run, unless
 *      NO_GCE_CHECK is true; its host can be moved with GCE_METADATA_HOST
 *      (GKE's metadata proxy, the tests' fake).
 * As in google-auth, a file that is named or present but unusable ends the
 * search with its reason: falling through to the metadata server would
 * serve under another identity than the operator chose.
 *
 * The token is kept per child until 3 min 45 s before it expires, google-
 * auth's margin: less than the 5 minutes within which the metadata server
 * itself hands out a new token, so its answer is always fresh enough. One
 * request refreshes while the others go on with the current token as long
 * as it is valid. When nothing gives a token, the chain is not asked again
 * for five seconds (a host without metadata server would otherwise cost
 * every request a timeout), and the upstream is skipped like one that
 * cannot be reached. */
#include <apr_file_info.h>
#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>

#include <strings.h>

#include "cg_private.h"
#include "cg_fetch.h"
#include "cg_gcpchain.h"
#include "cg_tokcache.h"
#include "cg_util.h"
#include "cg_vertex.h"

#define CG_GCP_REFRESH apr_time_from_sec(225) /* before expiry: google-auth's 3 min 45 s */
#define CG_GCP_NEGATIVE apr_time_from_sec(5)  /* after nothing was found */
#define CG_GCP_METADATA_TIMEOUT_MS 3000L      /* google-auth's GCE_METADATA_TIMEOUT */
#define CG_GCP_TOKEN_TIMEOUT_MS 10000L        /* an OAuth token endpoint */

static cg_tokcache_t *cg_gcp_cache;

void cg_gcp_chain_child_init(apr_pool_t *pchild)
{
    cg_gcp_cache = cg_tokcache_create(pchild, CG_GCP_REFRESH, CG_GCP_NEGATIVE);
}

const char *cg_gcp_exchange(request_rec *r, const char *uri, const char *form, apr_time_t now,
                            const char **token, apr_time_t *expires)
{
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    cg_fetch_t f = {.method = "POST",
                    .url = uri,
                    .headers = h,
                    .form = form,
                    .timeout_ms = CG_GCP_TOKEN_TIMEOUT_MS};
    const char *why = NULL, *err;
    int ok = cg_fetch(r->pool, &f, &why);

    curl_slist_free_all(h);
    *token = NULL;
    if (!ok) {
        return why;
    }
    err = cg_vertex_token_parse(r->pool, f.body, f.len, now, token, expires);
    if (f.status != 200) {
        *token = NULL;
        /* an OAuth error answer says why; anything else, the status */
        return err != NULL && !strncmp(err, "the token endpoint refused", 26)
                   ? apr_psprintf(r->pool, "%s (%ld)", err, f.status)
                   : apr_psprintf(r->pool, "the token endpoint answered %ld", f.status);
    }
    return err;
}

/* An external account's token: its subject token (a file, or a URL) for a
 * federated token at STS, then, when it names a service account to
 * impersonate, that account's token from generateAccessToken. NULL or why not. */
static const char *cg_gcp_external(request_rec *r, const cg_vertex_adc_t *adc, apr_time_t now,
                                   const char **token, apr_time_t *expires)
{
    const char *raw, *subject, *err, *federated;
    struct curl_slist *h = NULL;
    cg_fetch_t f = {.method = "GET", .timeout_ms = CG_GCP_TOKEN_TIMEOUT_MS};
    apr_size_t len;
    int i;

    if (adc->source_file != NULL) {
        err =
            cg_secret_resolve(r->pool, apr_pstrcat(r->pool, "file:", adc->source_file, NULL), &raw);
        if (err != NULL) {
            return apr_pstrcat(r->pool, "subject token: ", err, NULL);
        }
        len = strlen(raw);
    }
    else {
        for (i = 0; i < adc->source_headers->nelts; i++) {
            h = curl_slist_append(h, APR_ARRAY_IDX(adc->source_headers, i, const char *));
        }
        f.url = adc->source_url;
        f.headers = h;
        i = cg_fetch(r->pool, &f, &err);
        curl_slist_free_all(h);
        if (!i || f.status != 200) {
            return i ? apr_psprintf(r->pool, "subject token: %s answered %ld", adc->source_url,
                                    f.status)
                     : apr_pstrcat(r->pool, "subject token: ", err, NULL);
        }
        raw = f.body;
        len = f.len;
    }
    if ((err = cg_vertex_subject_token(r->pool, adc, raw, len, &subject)) != NULL) {
        return err;
    }
    err = cg_gcp_exchange(r, adc->token_uri, cg_vertex_sts_request(r->pool, adc, subject), now,
                          &federated, expires);
    if (err != NULL) {
        return apr_pstrcat(r->pool, "STS: ", err, NULL);
    }
    if (adc->impersonation_url == NULL) {
        *token = federated;
        return NULL;
    }
    memset(&f, 0, sizeof(f));
    h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, apr_pstrcat(r->pool, "Authorization: Bearer ", federated, NULL));
    f.method = "POST";
    f.url = adc->impersonation_url;
    f.headers = h;
    f.form = CG_VERTEX_IMPERSONATION_BODY;
    f.timeout_ms = CG_GCP_TOKEN_TIMEOUT_MS;
    i = cg_fetch(r->pool, &f, &err);
    curl_slist_free_all(h);
    if (!i) {
        return apr_pstrcat(r->pool, "generateAccessToken: ", err, NULL);
    }
    err = cg_vertex_impersonation_parse(r->pool, f.body, f.len, token, expires);
    if (err != NULL || f.status != 200) {
        *token = NULL;
        return apr_psprintf(r->pool, "%s (%ld)", err ? err : "generateAccessToken failed",
                            f.status);
    }
    return NULL;
}

/* 1 and 2: a credentials file, exchanged at its token endpoint. */
static int cg_gcp_from_file(request_rec *r, const char *path, apr_time_t now, const char **token,
                            apr_time_t *expires, const char **quota, const char **why)
{
    const char *json, *form, *err;
    cg_vertex_adc_t adc;

    err = cg_secret_resolve(r->pool, apr_pstrcat(r->pool, "file:", path, NULL), &json);
    if (err == NULL) {
        err = cg_vertex_adc_parse(r->pool, json, strlen(json), &adc);
    }
    if (err == NULL && adc.audience != NULL) {
        err = cg_gcp_external(r, &adc, now, token, expires);
    }
    else if (err == NULL) {
        form = cg_vertex_adc_token_request(r->pool, &adc, now);
        err = form ? cg_gcp_exchange(r, adc.token_uri, form, now, token, expires)
                   : "signing the service account's assertion failed";
    }
    if (err != NULL) {
        *why = apr_psprintf(r->pool, "%s: %s", path, err);
        return 0;
    }
    *quota = adc.quota_project;
    return 1;
}

/* 3: the metadata server. */
static int cg_gcp_from_metadata(request_rec *r, apr_time_t now, const char **token,
                                apr_time_t *expires, const char **why)
{
    const char *host = cg_cred_env("GCE_METADATA_HOST"), *url, *err;
    struct curl_slist *h;
    cg_fetch_t f = {.method = "GET",
                    .timeout_ms = CG_GCP_METADATA_TIMEOUT_MS,
                    .direct = 1,
                    .capture = "Metadata-Flavor"};
    int ok;

    if (host == NULL) {
        host = cg_cred_env("GCE_METADATA_ROOT");
    }
    if ((url = cg_vertex_metadata_url(r->pool, host ? host : CG_VERTEX_METADATA_HOST)) == NULL) {
        *why = "metadata server: GCE_METADATA_HOST is not a host[:port]";
        return 0;
    }
    h = curl_slist_append(NULL, "Metadata-Flavor: Google");
    f.url = url;
    f.headers = h;
    ok = cg_fetch(r->pool, &f, why);
    curl_slist_free_all(h);
    if (!ok) {
        *why = apr_pstrcat(r->pool, "metadata server: ", *why, NULL);
        return 0;
    }
    /* whatever else answers at that address is not the metadata server */
    if (f.captured == NULL || strcmp(f.captured, "Google") != 0) {
        *why = apr_psprintf(
            r->pool, "metadata server: the answer (%ld) has no Metadata-Flavor: Google", f.status);
        return 0;
    }
    if (f.status != 200) {
        *why = apr_psprintf(r->pool, "metadata server: answered %ld", f.status);
        return 0;
    }
    if ((err = cg_vertex_token_parse(r->pool, f.body, f.len, now, token, expires)) != NULL) {
        *why = apr_pstrcat(r->pool, "metadata server: ", err, NULL);
        return 0;
    }
    return 1;
}

/* The whole chain, in order; *source names the one that answered, or *why
 * lists why each tried gave nothing. */
static int cg_gcp_resolve_r(request_rec *r, apr_time_t now, const char **token, apr_time_t *expires,
                            const char **quota, const char **source, const char **why)
{
    const char *path = cg_cred_env("GOOGLE_APPLICATION_CREDENTIALS"), *dir, *reasons, *w = NULL;
    const char *no_gce = cg_cred_env("NO_GCE_CHECK");
    apr_finfo_t fi;

    *quota = NULL;
    if (path != NULL) {
        *source = "file GOOGLE_APPLICATION_CREDENTIALS names";
        if (cg_gcp_from_file(r, path, now, token, expires, quota, &w)) {
            return 1;
        }
        *why = apr_pstrcat(r->pool, "GOOGLE_APPLICATION_CREDENTIALS ", w, NULL);
        return 0;
    }
    dir = cg_cred_env("CLOUDSDK_CONFIG");
    if (dir == NULL && (dir = cg_cred_home(r->pool)) != NULL) {
        dir = apr_pstrcat(r->pool, dir, "/.config/gcloud", NULL);
    }
    if (dir != NULL) {
        path = apr_pstrcat(r->pool, dir, "/application_default_credentials.json", NULL);
        if (apr_stat(&fi, path, APR_FINFO_TYPE, r->pool) == APR_SUCCESS) {
            *source = "gcloud credentials file";
            if (cg_gcp_from_file(r, path, now, token, expires, quota, &w)) {
                return 1;
            }
            *why = apr_pstrcat(r->pool, "gcloud credentials ", w, NULL);
            return 0;
        }
        reasons = apr_psprintf(r->pool, "no GOOGLE_APPLICATION_CREDENTIALS, no %s", path);
    }
    else {
        reasons = "no GOOGLE_APPLICATION_CREDENTIALS, no home directory for gcloud's file";
    }
    if (no_gce != NULL && (!strcasecmp(no_gce, "true") || !strcmp(no_gce, "1"))) {
        *why = apr_pstrcat(r->pool, reasons, "; metadata server: not asked (NO_GCE_CHECK)", NULL);
        return 0;
    }
    *source = "metadata server";
    if (cg_gcp_from_metadata(r, now, token, expires, &w)) {
        return 1;
    }
    *why = apr_pstrcat(r->pool, reasons, "; ", w, NULL);
    return 0;
}

static int cg_gcp_resolve(void *baton, apr_pool_t *p, apr_time_t now, cg_tokcache_value_t *out,
                          const char **why)
{
    (void)p; /* r->pool, the same pool */
    return cg_gcp_resolve_r(baton, now, &out->token, &out->expires, &out->extra, &out->source, why);
}

int cg_gcp_chain_token(request_rec *r, const char **token, const char **quota_project)
{
    cg_tokcache_value_t v;
    cg_tokcache_result_e res;
    const char *why = NULL;

    *token = *quota_project = NULL;
    if (cg_gcp_cache == NULL) {
        return 0;
    }
    res = cg_tokcache_get(cg_gcp_cache, r->pool, apr_time_now(), cg_gcp_resolve, r, &v, &why);
    switch (res) {
    case CG_TOKCACHE_NEW_SOURCE:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0146) "Google credentials from the %s",
                      v.source);
        break;
    case CG_TOKCACHE_KEPT:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0147) "Google credentials not refreshed (%s); using the current "
                                     "token until it expires",
                      why);
        break;
    case CG_TOKCACHE_FAILED:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0145) "Could not load Google application default credentials: %s",
                      why);
        return 0;
    case CG_TOKCACHE_PAUSED:
        return 0;
    default:
        break;
    }
    *token = v.token;
    *quota_project = v.extra;
    return 1;
}

void cg_gcp_chain_forget(void)
{
    if (cg_gcp_cache != NULL) {
        cg_tokcache_forget(cg_gcp_cache);
    }
}
