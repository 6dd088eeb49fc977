/* cg_awschain: where a Bedrock upstream with auth {} gets its credentials,
 * in the AWS SDKs' order:
 *   1. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN);
 *   2. AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN: STS
 *      AssumeRoleWithWebIdentity (EKS service accounts);
 *   3. the profile (AWS_PROFILE, else "default") in the shared credentials
 *      file, then in the config file;
 *   4. the container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
 *      _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]): ECS tasks,
 *      EKS Pod Identity;
 *   5. the EC2 instance metadata service, IMDSv2 (a session token first),
 *      falling back to IMDSv1 unless AWS_EC2_METADATA_V1_DISABLED is true.
 * The endpoints can be moved the SDKs' way (AWS_ENDPOINT_URL_STS,
 * AWS_ENDPOINT_URL, AWS_EC2_METADATA_SERVICE_ENDPOINT), which is also how
 * the tests point them at fakes.
 *
 * Like the reference, credentials are resolved on the first request, not at
 * start-up. They are kept per child and region; a refresh is fetched by one
 * request while the others go on with the old credentials as long as those
 * are valid. When no source gives any, the chain is not asked again for five
 * seconds (a host without metadata service would otherwise cost every request
 * a timeout), and the upstream is skipped like one that cannot be reached.
 *
 * An upstream's assume_role is taken with STS AssumeRole, signed with the
 * base credentials (static or from the chain); the role's credentials are
 * kept per role session: with session_name: email each user has their own,
 * so CloudTrail names who asked. */
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_uri.h>
#include <httpd.h>
#include <http_log.h>
#include <curl/curl.h>

#include "cg_private.h"
#include "cg_awschain.h"
#include "cg_fetch.h"
#include "cg_sigv4.h"
#include "cg_util.h"

#define CG_AWS_REFRESH apr_time_from_sec(300) /* before expiry; static ones: every */
#define CG_AWS_NEGATIVE apr_time_from_sec(5)  /* after nothing was found */
#define CG_AWS_IMDS_TIMEOUT_MS 1000L          /* per metadata request, as the SDKs */
#define CG_AWS_HTTP_TIMEOUT_MS 5000L          /* container endpoint and STS */
#define CG_AWS_IMDS_DEFAULT "http://169.254.169.254"
#define CG_AWS_ECS_HOST "http://169.254.170.2"

typedef struct cg_aws_entry_t {
    apr_pool_t *pool; /* the creds' strings; replaced with them */
    cg_aws_creds_t creds;
    int have;
    const char *source;
    apr_time_t fetched;
    apr_time_t negative_until;
    int fetching;
} cg_aws_entry_t;

static apr_pool_t *cg_aws_pool;
static apr_thread_mutex_t *cg_aws_lock;
static apr_hash_t *cg_aws_entries; /* region -> cg_aws_entry_t */
static apr_hash_t *cg_aws_roles;   /* role "\n" external id "\n" session -> cg_aws_role_t */

#define CG_AWS_ROLES_SWEEP 1024 /* entries before the expired ones are dropped */

typedef struct cg_aws_role_t {
    apr_pool_t *pool; /* the creds' strings and the key */
    cg_aws_creds_t creds;
} cg_aws_role_t;

void cg_aws_chain_child_init(apr_pool_t *pchild)
{
    cg_aws_pool = pchild;
    cg_aws_entries = apr_hash_make(pchild);
    cg_aws_roles = apr_hash_make(pchild);
    if (apr_thread_mutex_create(&cg_aws_lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS) {
        cg_aws_lock = NULL;
    }
}

static int cg_aws_env_true(const char *name)
{
    const char *v = cg_cred_env(name);

    return v != NULL && strcasecmp(v, "true") == 0;
}

/* One request; the answer's body NUL-terminated in *body. 0 on a transport
 * failure, with *why. direct: a link-local endpoint, never through a proxy
 * (STS may need the site's proxy). */
static int cg_aws_http(request_rec *r, const char *method, const char *url, struct curl_slist *hdrs,
                       const char *form, long timeout_ms, int direct, long *status,
                       const char **body, apr_size_t *len, const char **why)
{
    cg_fetch_t f = {.method = method,
                    .url = url,
                    .headers = hdrs,
                    .form = form,
                    .timeout_ms = timeout_ms,
                    .direct = direct};
    int ok = cg_fetch(r->pool, &f, why);

    *status = f.status;
    *body = f.body;
    *len = f.len;
    return ok;
}

/* 1: web identity. */
static int cg_aws_from_web_identity(request_rec *r, const char *region, cg_aws_creds_t *out,
                                    const char **why)
{
    const char *file = cg_cred_env("AWS_WEB_IDENTITY_TOKEN_FILE"),
               *arn = cg_cred_env("AWS_ROLE_ARN");
    const char *session = cg_cred_env("AWS_ROLE_SESSION_NAME"), *token, *endpoint, *form, *body;
    const char *sts_region = cg_cred_env("AWS_REGION");
    struct curl_slist *h;
    apr_size_t len;
    long status;
    int ok;

    if (file == NULL || arn == NULL) {
        *why = NULL;
        return 0;
    }
    if ((*why = cg_secret_resolve(r->pool, apr_pstrcat(r->pool, "file:", file, NULL), &token)) !=
        NULL) {
        *why = apr_pstrcat(r->pool, "web identity: ", *why, NULL);
        return 0;
    }
    if (sts_region == NULL) {
        sts_region = cg_cred_env("AWS_DEFAULT_REGION");
    }
    if (sts_region == NULL) {
        sts_region = region;
    }
    endpoint = cg_cred_env("AWS_ENDPOINT_URL_STS");
    if (endpoint == NULL) {
        endpoint = cg_cred_env("AWS_ENDPOINT_URL");
    }
    if (endpoint == NULL) {
        endpoint = apr_psprintf(r->pool, "https://sts.%s.amazonaws.com", sts_region);
    }
    form = apr_pstrcat(r->pool, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=",
                       cg_sigv4_uri_encode(r->pool, arn, 0), "&RoleSessionName=",
                       cg_sigv4_uri_encode(r->pool, session ? session : "mod_claude", 0),
                       "&WebIdentityToken=", cg_sigv4_uri_encode(r->pool, token, 0), NULL);
    h = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    h = curl_slist_append(h, "Accept: application/xml");
    ok = cg_aws_http(r, "POST", apr_pstrcat(r->pool, endpoint, "/", NULL), h, form,
                     CG_AWS_HTTP_TIMEOUT_MS, 0, &status, &body, &len, why);
    curl_slist_free_all(h);
    if (!ok) {
        *why = apr_pstrcat(r->pool, "web identity: ", *why, NULL);
        return 0;
    }
    if (!cg_aws_sts_creds(r->pool, body, len, out, why)) {
        *why = apr_psprintf(r->pool, "web identity: STS answered %ld: %s", status, *why);
        return 0;
    }
    return 1;
}

/* 3: the shared files. */
static int cg_aws_from_files(request_rec *r, cg_aws_creds_t *out, const char **why)
{
    const char *profile = cg_cred_env("AWS_PROFILE"), *home = cg_cred_home(r->pool);
    const char *paths[2], *reasons = NULL;
    int i;

    if (profile == NULL) {
        profile = "default";
    }
    paths[0] = cg_cred_env("AWS_SHARED_CREDENTIALS_FILE");
    paths[1] = cg_cred_env("AWS_CONFIG_FILE");
    if (paths[0] == NULL && home != NULL) {
        paths[0] = apr_pstrcat(r->pool, home, "/.aws/credentials", NULL);
    }
    if (paths[1] == NULL && home != NULL) {
        paths[1] = apr_pstrcat(r->pool, home, "/.aws/config", NULL);
    }
    for (i = 0; i < 2; i++) {
        apr_size_t len = 0;
        const char *text, *w = NULL;

        if (paths[i] == NULL || cg_file_read(r->pool, paths[i], 1024 * 1024, &text, &len) != NULL) {
            continue;
        }
        if (cg_aws_ini_creds(r->pool, text, len, profile, i == 1, out, &w)) {
            return 1;
        }
        reasons = apr_psprintf(r->pool, "%s%s%s: %s", reasons ? reasons : "", reasons ? "; " : "",
                               paths[i], w);
    }
    *why = reasons;
    return 0;
}

/* Whether a full container URI may be asked over plain HTTP: loopback, or
 * the ECS and EKS link-local addresses, as the SDKs allow. */
static int cg_aws_container_host_ok(const char *uri)
{
    static const char *const ok[] = {
        "http://127.",          "http://localhost:",     "http://localhost/",    "http://[::1]",
        "http://169.254.170.2", "http://169.254.170.23", "http://[fd00:ec2::23]"};
    apr_size_t i;

    if (!strncasecmp(uri, "https://", 8)) {
        return 1;
    }
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!strncasecmp(uri, ok[i], strlen(ok[i]))) {
            return 1;
        }
    }
    return 0;
}

/* 4: the container endpoint. */
static int cg_aws_from_container(request_rec *r, cg_aws_creds_t *out, const char **why)
{
    const char *rel = cg_cred_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = cg_cred_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *tfile = cg_cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *auth = cg_cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN"), *url, *body;
    struct curl_slist *h = NULL;
    apr_size_t len;
    long status;
    int ok;

    *why = NULL;
    if (rel != NULL) {
        url = apr_pstrcat(r->pool, CG_AWS_ECS_HOST, rel[0] == '/' ? "" : "/", rel, NULL);
    }
    else if (full != NULL) {
        if (!cg_aws_container_host_ok(full)) {
            *why = "container: AWS_CONTAINER_CREDENTIALS_FULL_URI is plain HTTP to a host that "
                   "is neither loopback nor the ECS/EKS endpoint";
            return 0;
        }
        url = full;
    }
    else {
        return 0;
    }
    if (tfile != NULL &&
        (*why = cg_secret_resolve(r->pool, apr_pstrcat(r->pool, "file:", tfile, NULL), &auth)) !=
            NULL) {
        *why = apr_pstrcat(r->pool, "container: ", *why, NULL);
        return 0;
    }
    if (auth != NULL) {
        if (strpbrk(auth, "\r\n") != NULL) {
            *why = "container: the authorization token holds a line break";
            return 0;
        }
        h = curl_slist_append(h, apr_pstrcat(r->pool, "Authorization: ", auth, NULL));
    }
    ok = cg_aws_http(r, "GET", url, h, NULL, CG_AWS_HTTP_TIMEOUT_MS, 1, &status, &body, &len, why);
    curl_slist_free_all(h);
    if (!ok) {
        *why = apr_pstrcat(r->pool, "container: ", *why, NULL);
        return 0;
    }
    if (status != 200) {
        *why = apr_psprintf(r->pool, "container: the endpoint answered %ld", status);
        return 0;
    }
    if (!cg_aws_json_creds(r->pool, body, len, out, why)) {
        *why = apr_pstrcat(r->pool, "container: ", *why, NULL);
        return 0;
    }
    return 1;
}

/* 5: the instance metadata service. */
static int cg_aws_from_imds(request_rec *r, cg_aws_creds_t *out, const char **why)
{
    const char *base = cg_cred_env("AWS_EC2_METADATA_SERVICE_ENDPOINT"), *token = NULL, *body,
               *role;
    struct curl_slist *h;
    apr_size_t len, n;
    long status;
    int ok;

    *why = NULL;
    if (cg_aws_env_true("AWS_EC2_METADATA_DISABLED")) {
        return 0;
    }
    if (base == NULL) {
        base = CG_AWS_IMDS_DEFAULT;
    }
    n = strlen(base);
    if (n > 0 && base[n - 1] == '/') {
        base = apr_pstrmemdup(r->pool, base, n - 1);
    }
    h = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
    ok = cg_aws_http(r, "PUT", apr_pstrcat(r->pool, base, "/latest/api/token", NULL), h, NULL,
                     CG_AWS_IMDS_TIMEOUT_MS, 1, &status, &body, &len, why);
    curl_slist_free_all(h);
    if (ok && status == 200 && len > 0 && len < 1024 && strpbrk(body, "\r\n") == NULL) {
        token = body;
    }
    else if (cg_aws_env_true("AWS_EC2_METADATA_V1_DISABLED")) {
        *why =
            apr_psprintf(r->pool, "instance metadata: no IMDSv2 token (%s) and IMDSv1 is disabled",
                         ok ? apr_psprintf(r->pool, "answer %ld", status) : *why);
        return 0;
    }
    /* else IMDSv1: a token's answer is sent with an IP hop limit (1 by
     * default) that a container's extra hop exceeds, so the PUT times out
     * where plain GETs are answered (the reference's known failure) */
    h = token ? curl_slist_append(NULL,
                                  apr_pstrcat(r->pool, "X-aws-ec2-metadata-token: ", token, NULL))
              : NULL;
    ok = cg_aws_http(
        r, "GET", apr_pstrcat(r->pool, base, "/latest/meta-data/iam/security-credentials/", NULL),
        h, NULL, CG_AWS_IMDS_TIMEOUT_MS, 1, &status, &body, &len, why);
    if (ok && status == 200 && (role = cg_aws_imds_role(r->pool, body, len)) != NULL) {
        ok = cg_aws_http(r, "GET",
                         apr_pstrcat(r->pool, base, "/latest/meta-data/iam/security-credentials/",
                                     cg_sigv4_uri_encode(r->pool, role, 0), NULL),
                         h, NULL, CG_AWS_IMDS_TIMEOUT_MS, 1, &status, &body, &len, why);
        curl_slist_free_all(h);
        if (ok && status == 200) {
            if (cg_aws_json_creds(r->pool, body, len, out, why)) {
                return 1;
            }
            *why = apr_pstrcat(r->pool, "instance metadata: ", *why, NULL);
            return 0;
        }
    }
    else {
        curl_slist_free_all(h);
    }
    *why = ok ? apr_psprintf(r->pool, "instance metadata: no role (%ld)", status)
              : apr_pstrcat(r->pool, "instance metadata: ", *why, NULL);
    return 0;
}

/* The whole chain, in order; *source names the one that answered, or *why
 * lists why each tried gave nothing. */
static int cg_aws_resolve(request_rec *r, const char *region, cg_aws_creds_t *out,
                          const char **source, const char **why)
{
    const char *id = cg_cred_env("AWS_ACCESS_KEY_ID"),
               *secret = cg_cred_env("AWS_SECRET_ACCESS_KEY");
    const char *reasons = NULL, *w = NULL;

    memset(out, 0, sizeof(*out));
    if (id != NULL && secret != NULL) {
        out->access_key_id = id;
        out->secret_access_key = secret;
        out->session_token = cg_cred_env("AWS_SESSION_TOKEN");
        *source = "environment";
        return 1;
    }
    if (id != NULL || secret != NULL) {
        reasons = "environment: only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set";
    }
#define CG_AWS_TRY(fn, name, ...)                                                                  \
    do {                                                                                           \
        if (fn(__VA_ARGS__, out, &w)) {                                                            \
            *source = name;                                                                        \
            return 1;                                                                              \
        }                                                                                          \
        if (w != NULL) {                                                                           \
            reasons = reasons ? apr_pstrcat(r->pool, reasons, "; ", w, NULL) : w;                  \
        }                                                                                          \
        w = NULL;                                                                                  \
    } while (0)
    CG_AWS_TRY(cg_aws_from_web_identity, "web identity", r, region);
    CG_AWS_TRY(cg_aws_from_files, "shared files", r);
    CG_AWS_TRY(cg_aws_from_container, "container", r);
    CG_AWS_TRY(cg_aws_from_imds, "instance metadata", r);
#undef CG_AWS_TRY
    *why = reasons ? reasons : "no source configured";
    return 0;
}

static int cg_aws_fresh(const cg_aws_entry_t *e, apr_time_t now)
{
    if (!e->have) {
        return 0;
    }
    return e->creds.expires ? now < e->creds.expires - CG_AWS_REFRESH
                            : now - e->fetched < CG_AWS_REFRESH && now >= e->fetched;
}

static int cg_aws_usable(const cg_aws_entry_t *e, apr_time_t now)
{
    return e->have && (e->creds.expires == 0 || now < e->creds.expires);
}

static void cg_aws_copy(apr_pool_t *p, const cg_aws_creds_t *in, cg_aws_creds_t *out)
{
    out->access_key_id = apr_pstrdup(p, in->access_key_id);
    out->secret_access_key = apr_pstrdup(p, in->secret_access_key);
    out->session_token = in->session_token ? apr_pstrdup(p, in->session_token) : NULL;
    out->expires = in->expires;
}

int cg_aws_chain_get(request_rec *r, const char *region, cg_aws_creds_t *out)
{
    apr_time_t now = apr_time_now();
    cg_aws_entry_t *e;
    cg_aws_creds_t got;
    const char *source = NULL, *why = NULL;
    apr_pool_t *np;
    int ok;

    if (cg_aws_lock == NULL) {
        return 0;
    }
    if (region == NULL) {
        region = "us-east-1";
    }
    apr_thread_mutex_lock(cg_aws_lock);
    e = apr_hash_get(cg_aws_entries, region, APR_HASH_KEY_STRING);
    if (e == NULL) {
        e = apr_pcalloc(cg_aws_pool, sizeof(*e));
        apr_hash_set(cg_aws_entries, apr_pstrdup(cg_aws_pool, region), APR_HASH_KEY_STRING, e);
    }
    if (cg_aws_fresh(e, now) || (e->fetching && cg_aws_usable(e, now))) {
        cg_aws_copy(r->pool, &e->creds, out);
        apr_thread_mutex_unlock(cg_aws_lock);
        return 1;
    }
    if (!e->have && now < e->negative_until) {
        apr_thread_mutex_unlock(cg_aws_lock);
        return 0; /* looked a moment ago and found nothing */
    }
    e->fetching = 1;
    apr_thread_mutex_unlock(cg_aws_lock);

    /* outside the lock: a slow endpoint holds up only the requests that
     * have nothing to go on */
    ok = cg_aws_resolve(r, region, &got, &source, &why);

    apr_thread_mutex_lock(cg_aws_lock);
    e->fetching = 0;
    if (ok) {
        if (apr_pool_create(&np, cg_aws_pool) == APR_SUCCESS) {
            cg_aws_copy(np, &got, &e->creds);
            if (e->pool != NULL) {
                apr_pool_destroy(e->pool); /* readers copied under the lock */
            }
            e->pool = np;
            e->have = 1;
            e->fetched = now;
            e->negative_until = 0;
        }
        if (e->source == NULL || strcmp(e->source, source) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          CG_LOGNO(0143) "AWS credentials for %s from the %s", region, source);
        }
        e->source = source; /* a string constant */
        cg_aws_copy(r->pool, &got, out);
    }
    else if (cg_aws_usable(e, now)) {
        /* a refresh failed: the old credentials are still good for a while */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0144) "AWS credentials for %s not refreshed (%s); using the "
                                     "current ones until they expire",
                      region, why);
        e->fetched = now; /* not again at once */
        cg_aws_copy(r->pool, &e->creds, out);
        ok = 1;
    }
    else {
        e->have = 0;
        e->negative_until = now + CG_AWS_NEGATIVE;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0142) "Could not load AWS credentials from any provider for %s: "
                                     "%s",
                      region, why);
    }
    apr_thread_mutex_unlock(cg_aws_lock);
    return ok;
}

void cg_aws_chain_forget(const char *region)
{
    cg_aws_entry_t *e;

    if (cg_aws_lock == NULL) {
        return;
    }
    apr_thread_mutex_lock(cg_aws_lock);
    e = apr_hash_get(cg_aws_entries, region ? region : "us-east-1", APR_HASH_KEY_STRING);
    if (e != NULL) {
        e->fetched = 0; /* static ones: looked up again; expiring ones: see below */
        if (e->creds.expires != 0) {
            e->creds.expires = apr_time_now() + 1; /* stale, usable only while refreshing */
        }
    }
    apr_thread_mutex_unlock(cg_aws_lock);
}

static const char *cg_aws_role_key(apr_pool_t *p, const char *role_arn, const char *external_id,
                                   const char *session)
{
    return apr_pstrcat(p, role_arn, "\n", external_id ? external_id : "", "\n", session, NULL);
}

/* STS AssumeRole, signed with the base credentials. */
static int cg_aws_sts_assume(request_rec *r, const cg_aws_creds_t *base, const char *region,
                             const char *role_arn, const char *external_id, const char *session,
                             cg_aws_creds_t *out, long *status, const char **why)
{
    const char *endpoint = cg_cred_env("AWS_ENDPOINT_URL_STS"), *form, *body;
    cg_sigv4_header_t hdrs[2] = {{"host", NULL},
                                 {"content-type", "application/x-www-form-urlencoded"}};
    cg_sigv4_credentials_t creds = {base->access_key_id, base->secret_access_key,
                                    base->session_token};
    cg_sigv4_request_t req;
    cg_sigv4_result_t signed_req;
    struct curl_slist *h = NULL;
    apr_size_t len;
    apr_uri_t uri;
    int i, ok;

    if (endpoint == NULL) {
        endpoint = cg_cred_env("AWS_ENDPOINT_URL");
    }
    if (endpoint == NULL) {
        endpoint = apr_psprintf(r->pool, "https://sts.%s.amazonaws.com", region);
    }
    if (apr_uri_parse(r->pool, endpoint, &uri) != APR_SUCCESS || uri.hostinfo == NULL) {
        *why = "the STS endpoint is not a URL";
        return 0;
    }
    form = cg_aws_assume_role_form(r->pool, role_arn, external_id, session);
    hdrs[0].value = uri.hostinfo;
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = "/";
    req.headers = hdrs;
    req.nheaders = 2;
    req.payload = form;
    req.payload_len = strlen(form);
    if (cg_sigv4_sign(r->pool, &req, &creds, region, "sts",
                      cg_sigv4_amz_date(r->pool, apr_time_now()), &signed_req) != APR_SUCCESS) {
        *why = "the request could not be signed";
        return 0;
    }
    h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
    h = curl_slist_append(h, "Accept: application/xml");
    for (i = 0; i < signed_req.nset; i++) {
        h = curl_slist_append(
            h, apr_pstrcat(r->pool, signed_req.set[i].name, ": ", signed_req.set[i].value, NULL));
    }
    ok = cg_aws_http(r, "POST", apr_pstrcat(r->pool, uri.scheme, "://", uri.hostinfo, "/", NULL), h,
                     form, CG_AWS_HTTP_TIMEOUT_MS, 0, status, &body, &len, why);
    curl_slist_free_all(h);
    if (!ok) {
        return 0;
    }
    if (!cg_aws_sts_creds(r->pool, body, len, out, why)) {
        *why = apr_psprintf(r->pool, "STS answered %ld: %s", *status, *why);
        return 0;
    }
    return 1;
}

/* Drop the entries whose credentials have expired, when there are many
 * (one per user with session_name). Under the lock. */
static void cg_aws_roles_sweep(apr_pool_t *p, apr_time_t now)
{
    apr_hash_index_t *hi;

    if (apr_hash_count(cg_aws_roles) < CG_AWS_ROLES_SWEEP) {
        return;
    }
    for (hi = apr_hash_first(p, cg_aws_roles); hi; hi = apr_hash_next(hi)) {
        const void *key;
        void *val;
        apr_hash_this(hi, &key, NULL, &val);
        if (((cg_aws_role_t *)val)->creds.expires <= now) {
            apr_hash_set(cg_aws_roles, key, APR_HASH_KEY_STRING, NULL);
            apr_pool_destroy(((cg_aws_role_t *)val)->pool);
        }
    }
}

int cg_aws_assume_role(request_rec *r, const cg_aws_creds_t *base, const char *region,
                       const char *role_arn, const char *external_id, const char *session,
                       const char *upstream, cg_aws_creds_t *out, int *base_refused)
{
    const char *key = cg_aws_role_key(r->pool, role_arn, external_id, session), *why = NULL;
    apr_time_t now = apr_time_now();
    cg_aws_creds_t got;
    cg_aws_role_t *e;
    long status = 0;
    apr_pool_t *np;
    int ok, have = 0;

    *base_refused = 0;
    if (cg_aws_lock == NULL) {
        return 0;
    }
    apr_thread_mutex_lock(cg_aws_lock);
    e = apr_hash_get(cg_aws_roles, key, APR_HASH_KEY_STRING);
    if (e != NULL && now < e->creds.expires - CG_AWS_REFRESH) {
        cg_aws_copy(r->pool, &e->creds, out);
        apr_thread_mutex_unlock(cg_aws_lock);
        return 1;
    }
    apr_thread_mutex_unlock(cg_aws_lock);

    /* outside the lock; two requests of the same session may both ask, once */
    memset(&got, 0, sizeof(got));
    ok = cg_aws_sts_assume(r, base, region, role_arn, external_id, session, &got, &status, &why);

    apr_thread_mutex_lock(cg_aws_lock);
    e = apr_hash_get(cg_aws_roles, key, APR_HASH_KEY_STRING);
    if (ok && apr_pool_create(&np, cg_aws_pool) == APR_SUCCESS) {
        if (e != NULL) {
            apr_hash_set(cg_aws_roles, key, APR_HASH_KEY_STRING, NULL);
            apr_pool_destroy(e->pool); /* readers copied under the lock */
        }
        cg_aws_roles_sweep(r->pool, now);
        e = apr_pcalloc(np, sizeof(*e));
        e->pool = np;
        cg_aws_copy(np, &got, &e->creds);
        apr_hash_set(cg_aws_roles, apr_pstrdup(np, key), APR_HASH_KEY_STRING, e);
        cg_aws_copy(r->pool, &got, out);
        have = 1;
    }
    else if (e != NULL && now < e->creds.expires) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0152) "AssumeRole %s for upstream %s not refreshed (%s); using "
                                     "the current credentials until they expire",
                      role_arn, upstream, why ? why : "out of memory");
        cg_aws_copy(r->pool, &e->creds, out);
        have = 1;
    }
    apr_thread_mutex_unlock(cg_aws_lock);
    if (!have) {
        *base_refused = status == 403;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0151) "AssumeRole %s for upstream %s failed: %s", role_arn, upstream,
                      why ? why : "out of memory");
    }
    return have;
}

void cg_aws_assume_forget(const char *role_arn, const char *external_id, const char *session)
{
    apr_pool_t *p;
    cg_aws_role_t *e;

    if (cg_aws_lock == NULL || apr_pool_create(&p, cg_aws_pool) != APR_SUCCESS) {
        return;
    }
    apr_thread_mutex_lock(cg_aws_lock);
    e = apr_hash_get(cg_aws_roles, cg_aws_role_key(p, role_arn, external_id, session),
                     APR_HASH_KEY_STRING);
    if (e != NULL) {
        e->creds.expires = 0; /* assumed again by the next request */
    }
    apr_thread_mutex_unlock(cg_aws_lock);
    apr_pool_destroy(p);
}
