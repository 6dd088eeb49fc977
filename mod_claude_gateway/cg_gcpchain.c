/* cg_gcpchain: where a Vertex upstream with auth {} gets its access token,
 * in google-auth's order (application default credentials):
 *   1. the file GOOGLE_APPLICATION_CREDENTIALS names: a service account key
 *      or gcloud's user credentials;
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
#include <apr_thread_mutex.h>
#include <httpd.h>
#include <http_log.h>

#include <pwd.h>
#include <strings.h>
#include <unistd.h>

#include "cg_private.h"
#include "cg_fetch.h"
#include "cg_gcpchain.h"
#include "cg_util.h"
#include "cg_vertex.h"

#define CG_GCP_REFRESH apr_time_from_sec(225) /* before expiry: google-auth's 3 min 45 s */
#define CG_GCP_NEGATIVE apr_time_from_sec(5)  /* after nothing was found */
#define CG_GCP_METADATA_TIMEOUT_MS 3000L      /* google-auth's GCE_METADATA_TIMEOUT */
#define CG_GCP_TOKEN_TIMEOUT_MS 10000L        /* an OAuth token endpoint */

typedef struct cg_gcp_state_t {
    apr_pool_t *pool; /* the token's strings; replaced with them */
    const char *token;
    const char *quota_project;
    apr_time_t expires;
    const char *source; /* a string constant */
    apr_time_t negative_until;
    int fetching;
} cg_gcp_state_t;

static apr_pool_t *cg_gcp_pool;
static apr_thread_mutex_t *cg_gcp_lock;
static cg_gcp_state_t cg_gcp;

void cg_gcp_chain_child_init(apr_pool_t *pchild)
{
    cg_gcp_pool = pchild;
    memset(&cg_gcp, 0, sizeof(cg_gcp));
    if (apr_thread_mutex_create(&cg_gcp_lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS) {
        cg_gcp_lock = NULL;
    }
}

static const char *cg_gcp_env(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? v : NULL;
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

static const char *cg_gcp_home(apr_pool_t *p)
{
    const char *home = cg_gcp_env("HOME");
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
    if (err == NULL) {
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
    const char *host = cg_gcp_env("GCE_METADATA_HOST"), *url, *err;
    struct curl_slist *h;
    cg_fetch_t f = {.method = "GET",
                    .timeout_ms = CG_GCP_METADATA_TIMEOUT_MS,
                    .direct = 1,
                    .capture = "Metadata-Flavor"};
    int ok;

    if (host == NULL) {
        host = cg_gcp_env("GCE_METADATA_ROOT");
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
static int cg_gcp_resolve(request_rec *r, apr_time_t now, const char **token, apr_time_t *expires,
                          const char **quota, const char **source, const char **why)
{
    const char *path = cg_gcp_env("GOOGLE_APPLICATION_CREDENTIALS"), *dir, *reasons, *w = NULL;
    const char *no_gce = cg_gcp_env("NO_GCE_CHECK");
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
    dir = cg_gcp_env("CLOUDSDK_CONFIG");
    if (dir == NULL && (dir = cg_gcp_home(r->pool)) != NULL) {
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

int cg_gcp_chain_token(request_rec *r, const char **token, const char **quota_project)
{
    apr_time_t now = apr_time_now(), expires = 0;
    const char *got = NULL, *quota = NULL, *source = NULL, *why = NULL;
    apr_pool_t *np;
    int ok, usable;

    *token = *quota_project = NULL;
    if (cg_gcp_lock == NULL) {
        return 0;
    }
    apr_thread_mutex_lock(cg_gcp_lock);
    usable = cg_gcp.token != NULL && now < cg_gcp.expires;
    if (usable &&
        (now < cg_gcp.expires - CG_GCP_REFRESH || cg_gcp.fetching || now < cg_gcp.negative_until)) {
        *token = apr_pstrdup(r->pool, cg_gcp.token);
        *quota_project = cg_gcp.quota_project ? apr_pstrdup(r->pool, cg_gcp.quota_project) : NULL;
        apr_thread_mutex_unlock(cg_gcp_lock);
        return 1;
    }
    if (!usable && now < cg_gcp.negative_until) {
        apr_thread_mutex_unlock(cg_gcp_lock);
        return 0; /* looked a moment ago and found nothing */
    }
    cg_gcp.fetching = 1;
    apr_thread_mutex_unlock(cg_gcp_lock);

    /* outside the lock: a slow endpoint holds up only the requests that
     * have nothing to go on */
    ok = cg_gcp_resolve(r, now, &got, &expires, &quota, &source, &why);

    apr_thread_mutex_lock(cg_gcp_lock);
    cg_gcp.fetching = 0;
    if (ok && apr_pool_create(&np, cg_gcp_pool) == APR_SUCCESS) {
        if (cg_gcp.pool != NULL) {
            apr_pool_destroy(cg_gcp.pool); /* readers copied under the lock */
        }
        cg_gcp.pool = np;
        cg_gcp.token = apr_pstrdup(np, got);
        cg_gcp.quota_project = quota ? apr_pstrdup(np, quota) : NULL;
        cg_gcp.expires = expires;
        cg_gcp.negative_until = 0;
        if (cg_gcp.source == NULL || strcmp(cg_gcp.source, source) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          CG_LOGNO(0146) "Google credentials from the %s", source);
        }
        cg_gcp.source = source;
        *token = got;
        *quota_project = quota;
    }
    else if (ok) {
        ok = 0; /* out of memory: as good as nothing found */
    }
    else if (cg_gcp.token != NULL && now < cg_gcp.expires) {
        /* a refresh failed: the current token is still good for a while */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0147) "Google credentials not refreshed (%s); using the current "
                                     "token until it expires",
                      why);
        cg_gcp.negative_until = now + CG_GCP_NEGATIVE; /* not again at once */
        *token = apr_pstrdup(r->pool, cg_gcp.token);
        *quota_project = cg_gcp.quota_project ? apr_pstrdup(r->pool, cg_gcp.quota_project) : NULL;
        ok = 1;
    }
    else {
        cg_gcp.token = NULL;
        cg_gcp.negative_until = now + CG_GCP_NEGATIVE;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0145) "Could not load Google application default credentials: %s",
                      why);
    }
    apr_thread_mutex_unlock(cg_gcp_lock);
    return ok;
}

void cg_gcp_chain_forget(void)
{
    if (cg_gcp_lock == NULL) {
        return;
    }
    apr_thread_mutex_lock(cg_gcp_lock);
    if (cg_gcp.token != NULL) {
        cg_gcp.expires = apr_time_now(); /* no longer fresh nor usable: fetched anew */
    }
    apr_thread_mutex_unlock(cg_gcp_lock);
}
