/* cg_upstream: the gateway's own upstream client, for a location with
 * `ClaudeGatewayRoute On`.
 *
 * mod_proxy_http forwards to one upstream and relays whatever it answers. The
 * reference gateway tries the policy's upstreams in order and moves on when
 * one fails before answering, so a location that needs failover is served
 * here: libcurl (connections pooled per child through a curl share), the
 * status and headers of each attempt judged before a byte reaches the client,
 * then the body streamed through the output filters (the usage filter meters
 * it as it would a proxied answer). Per-child circuit breakers keep a failing
 * upstream out of the way for a while. */
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <curl/curl.h>

#include "cg_private.h"
#include "cg_body.h"
#include "cg_config.h"
#include "cg_handler.h"
#include "cg_route.h"
#include "cg_upstream.h"
#include "cg_util.h"

/* the body of an answer we may relay after all, kept up to this size */
#define CG_HELD_MAX (64 * 1024)

typedef struct cg_attempt_t {
    request_rec *r;
    const cg_upstream_decl_t *u;
    int status; /* 0: no answer (network error, timeout) */
    int headers_done;
    int committed; /* this answer is the client's */
    int client_gone;
    int stream; /* flush every piece (SSE) */
    apr_table_t *headers;
    char *held; /* a failed answer's body, kept in case it is relayed after all */
    apr_size_t held_len;
    apr_time_t ttfb_deadline;
} cg_attempt_t;

/* --- per-child state: the connection share and the breakers ------------- */

static CURLSH *cg_share;
static apr_thread_mutex_t *cg_share_locks[CURL_LOCK_DATA_LAST];
static apr_thread_mutex_t *cg_breaker_lock;
static apr_hash_t *cg_breakers; /* upstream name -> cg_breaker_t */
static apr_pool_t *cg_upstream_pool;

static void cg_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *u)
{
    (void)h;
    (void)access;
    (void)u;
    if (data < CURL_LOCK_DATA_LAST && cg_share_locks[data] != NULL) {
        apr_thread_mutex_lock(cg_share_locks[data]);
    }
}

static void cg_share_unlock(CURL *h, curl_lock_data data, void *u)
{
    (void)h;
    (void)u;
    if (data < CURL_LOCK_DATA_LAST && cg_share_locks[data] != NULL) {
        apr_thread_mutex_unlock(cg_share_locks[data]);
    }
}

static apr_status_t cg_share_cleanup(void *unused)
{
    (void)unused;
    if (cg_share != NULL) {
        curl_share_cleanup(cg_share);
        cg_share = NULL;
    }
    return APR_SUCCESS;
}

void cg_upstream_child_init(apr_pool_t *pchild, server_rec *s)
{
    int i;

    (void)s;
    cg_upstream_pool = pchild;
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        apr_thread_mutex_create(&cg_share_locks[i], APR_THREAD_MUTEX_DEFAULT, pchild);
    }
    apr_thread_mutex_create(&cg_breaker_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    cg_breakers = apr_hash_make(pchild);
    cg_share = curl_share_init();
    if (cg_share != NULL) {
        /* connections (and DNS, TLS sessions) reused across requests */
        curl_share_setopt(cg_share, CURLSHOPT_LOCKFUNC, cg_share_lock);
        curl_share_setopt(cg_share, CURLSHOPT_UNLOCKFUNC, cg_share_unlock);
        curl_share_setopt(cg_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(cg_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(cg_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        apr_pool_cleanup_register(pchild, NULL, cg_share_cleanup, apr_pool_cleanup_null);
    }
}

static cg_breaker_t *cg_breaker_of(const char *name)
{
    cg_breaker_t *b = apr_hash_get(cg_breakers, name, APR_HASH_KEY_STRING);

    if (b == NULL) {
        b = apr_pcalloc(cg_upstream_pool, sizeof(*b));
        apr_hash_set(cg_breakers, apr_pstrdup(cg_upstream_pool, name), APR_HASH_KEY_STRING, b);
    }
    return b;
}

static int cg_breaker_try(request_rec *r, const char *name)
{
    int ok, trial;

    if (cg_breakers == NULL) {
        return 1;
    }
    apr_thread_mutex_lock(cg_breaker_lock);
    ok = cg_breaker_allow(cg_breaker_of(name), apr_time_now(), &trial);
    apr_thread_mutex_unlock(cg_breaker_lock);
    if (trial) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      CG_LOGNO(0122) "upstream %s: circuit half-open, trying one request", name);
    }
    return ok;
}

static void cg_breaker_note(request_rec *r, const char *name, int ok)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);
    int changed;

    if (cg_breakers == NULL) {
        return;
    }
    apr_thread_mutex_lock(cg_breaker_lock);
    changed = cg_breaker_record(cg_breaker_of(name), ok, apr_time_now(),
                                cg_srv_breaker_failures(sc), cg_srv_breaker_cooldown(sc));
    apr_thread_mutex_unlock(cg_breaker_lock);
    if (changed > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0120) "upstream %s: circuit open after %d consecutive "
                                     "failures; skipped for %" APR_TIME_T_FMT " s",
                      name, cg_srv_breaker_failures(sc), apr_time_sec(cg_srv_breaker_cooldown(sc)));
    }
    else if (changed < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      CG_LOGNO(0121) "upstream %s: circuit closed, it answers again", name);
    }
}

/* --- one attempt ---------------------------------------------------------- */

static int cg_hop_by_hop(const char *k)
{
    return !strcasecmp(k, "connection") || !strcasecmp(k, "keep-alive") ||
           !strcasecmp(k, "transfer-encoding") || !strcasecmp(k, "content-length") ||
           !strcasecmp(k, "content-encoding") || !strcasecmp(k, "proxy-connection") ||
           !strcasecmp(k, "te") || !strcasecmp(k, "trailer") || !strcasecmp(k, "upgrade") ||
           !strcasecmp(k, "date") || !strcasecmp(k, "server");
}

/* Make this attempt's status and headers the client's. */
static void cg_attempt_commit(cg_attempt_t *a)
{
    request_rec *r = a->r;
    const apr_array_header_t *arr = apr_table_elts(a->headers);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i;

    a->committed = 1;
    r->status = a->status;
    for (i = 0; i < arr->nelts; i++) {
        if (!strcasecmp(e[i].key, "content-type")) {
            ap_set_content_type(r, apr_pstrdup(r->pool, e[i].val));
            a->stream = strncasecmp(e[i].val, "text/event-stream", 17) == 0;
        }
        else if (!cg_hop_by_hop(e[i].key)) {
            apr_table_addn(r->headers_out, e[i].key, e[i].val);
        }
    }
}

/* The status and headers are complete: relay them, or hold this answer back
 * and let the next upstream try. */
static void cg_attempt_decide(cg_attempt_t *a)
{
    if (!cg_route_fails_over(a->status)) {
        cg_attempt_commit(a);
    }
}

/* Providers this version speaks; the others are skipped (and reported at
 * start-up). */
static int cg_provider_supported(const cg_upstream_decl_t *u)
{
    return !strcmp(u->provider, "anthropic") || !strcmp(u->provider, "anthropicAws") ||
           !strcmp(u->provider, "foundry");
}

static size_t cg_on_header(char *buf, size_t size, size_t n, void *baton)
{
    cg_attempt_t *a = baton;
    size_t len = size * n, klen;
    const char *colon, *v, *end;

    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        const char *sp = memchr(buf, ' ', len);
        a->status = sp ? atoi(sp + 1) : 0;
        apr_table_clear(a->headers); /* a 100 Continue's headers are not the answer's */
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        if (a->status >= 200) {
            a->headers_done = 1;
            cg_attempt_decide(a);
        }
        return len;
    }
    colon = memchr(buf, ':', len);
    if (colon == NULL || colon == buf) {
        return len;
    }
    klen = (size_t)(colon - buf);
    v = colon + 1;
    end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
        end--;
    }
    apr_table_addn(a->headers, apr_pstrmemdup(a->r->pool, buf, klen),
                   apr_pstrmemdup(a->r->pool, v, (apr_size_t)(end - v)));
    return len;
}

static size_t cg_on_body(char *buf, size_t size, size_t n, void *baton)
{
    cg_attempt_t *a = baton;
    size_t len = size * n;

    if (a->committed) {
        if (ap_rwrite(buf, (int)len, a->r) < 0 || (a->stream && ap_rflush(a->r) < 0) ||
            a->r->connection->aborted) {
            a->client_gone = 1;
            return 0; /* stop reading the upstream */
        }
        return len;
    }
    if (a->held_len + len <= CG_HELD_MAX) {
        if (a->held == NULL) {
            a->held = apr_palloc(a->r->pool, CG_HELD_MAX);
        }
        memcpy(a->held + a->held_len, buf, len);
        a->held_len += len;
    }
    return len;
}

static int cg_on_progress(void *baton, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    cg_attempt_t *a = baton;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    /* time to first byte only: a long stream after that is fine */
    if (!a->headers_done && apr_time_now() > a->ttfb_deadline) {
        return 1;
    }
    return a->r->connection->aborted ? 1 : 0;
}

/* The request as this upstream takes it: URL, headers and body. */
static struct curl_slist *cg_attempt_headers(request_rec *r, const cg_upstream_decl_t *u,
                                             const cg_identity_t *id)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    struct curl_slist *h = NULL;
    const char *key;
    json_t *val;
    int i;

    for (i = 0; i < arr->nelts; i++) {
        /* headers_in was filtered to the forwardable set in fixups; the
         * credential and framing are this attempt's own */
        if (e[i].key == NULL || !strcasecmp(e[i].key, "host") ||
            !strcasecmp(e[i].key, "content-length") || !strcasecmp(e[i].key, "x-api-key") ||
            !strcasecmp(e[i].key, "authorization") || !strcasecmp(e[i].key, "expect")) {
            continue;
        }
        h = curl_slist_append(h, apr_pstrcat(r->pool, e[i].key, ": ", e[i].val, NULL));
    }
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    if (u->api_key != NULL) {
        h = curl_slist_append(
            h, apr_pstrcat(r->pool, !strcmp(u->provider, "foundry") ? "api-key" : "x-api-key", ": ",
                           u->api_key, NULL));
    }
    else if (u->oauth_token != NULL) {
        h = curl_slist_append(h,
                              apr_pstrcat(r->pool, "Authorization: Bearer ", u->oauth_token, NULL));
    }
    if (u->workspace_id != NULL) {
        h = curl_slist_append(
            h, apr_pstrcat(r->pool, "anthropic-workspace-id: ", u->workspace_id, NULL));
    }
    json_object_foreach(u->headers, key, val)
    {
        h = curl_slist_append(h, apr_pstrcat(r->pool, key, ": ", json_string_value(val), NULL));
    }
    if (u->forward_user_identity && id != NULL) {
        h = curl_slist_append(h, apr_pstrcat(r->pool, "x-claude-gateway-user-id: ", id->sub, NULL));
        if (id->email != NULL) {
            h = curl_slist_append(h,
                                  apr_pstrcat(r->pool, "x-litellm-end-user-id: ", id->email, NULL));
            h = curl_slist_append(
                h, apr_pstrcat(r->pool, "x-claude-gateway-user-email: ", id->email, NULL));
        }
    }
    return h;
}

static const char *cg_attempt_url(request_rec *r, const cg_upstream_decl_t *u)
{
    const char *path =
        strstr(r->uri, "/count_tokens") ? "/v1/messages/count_tokens" : "/v1/messages";
    const char *base = u->base_url;
    apr_size_t n = strlen(base);

    if (n > 0 && base[n - 1] == '/') {
        base = apr_pstrmemdup(r->pool, base, n - 1);
    }
    return apr_pstrcat(r->pool, base, path, r->args ? "?" : "", r->args ? r->args : "", NULL);
}

/* One upstream: returns the attempt, committed or not. */
static cg_attempt_t *cg_attempt(request_rec *r, cg_req_t *rq, const cg_upstream_decl_t *u,
                                const char *body, apr_size_t body_len)
{
    const cg_dir_conf_t *dc = cg_dir_get(r);
    cg_attempt_t *a = apr_pcalloc(r->pool, sizeof(*a));
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc;
    CURL *c;

    a->r = r;
    a->u = u;
    a->headers = apr_table_make(r->pool, 16);
    a->ttfb_deadline = apr_time_now() + apr_time_from_msec(cg_dir_upstream_timeout_ms(dc));
    c = curl_easy_init();
    if (c == NULL) {
        return a;
    }
    hdrs = cg_attempt_headers(r, u, rq->identity.sub ? &rq->identity : NULL);
    curl_easy_setopt(c, CURLOPT_URL, cg_attempt_url(r, u));
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, cg_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cg_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, cg_on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)cg_dir_upstream_timeout_ms(dc));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cg_share != NULL) {
        curl_easy_setopt(c, CURLOPT_SHARE, cg_share);
    }
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK && !a->committed) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CG_LOGNO(0123) "upstream %s: %s", u->name,
                      a->status == 0 && !a->headers_done && rc == CURLE_ABORTED_BY_CALLBACK
                          ? "no answer within the time-to-first-byte limit"
                          : (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
        a->status = a->headers_done ? a->status : 0;
    }
    else if (rc != CURLE_OK && !a->client_gone) {
        /* cut after the first byte: too late to fail over; the stream ends */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0124) "upstream %s broke off its answer: %s", u->name,
                      errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    return a;
}

/* Every upstream failed: the reference's choice of which failure to show. */
static int cg_relay_failure(request_rec *r, cg_attempt_t **tried, int n, int configured)
{
    int *statuses = apr_pcalloc(r->pool, sizeof(int) * (n ? n : 1));
    int i, pick;

    for (i = 0; i < n; i++) {
        statuses[i] = tried[i]->status;
    }
    pick = cg_route_pick(statuses, n);
    apr_table_setn(r->notes, "claude-decision", "upstream_failed");
    if (pick < 0) {
        cg_error_set(r, HTTP_BAD_GATEWAY, "api_error",
                     apr_psprintf(r->pool, "all upstreams failed (%d attempted)", configured));
        apr_table_setn(r->notes, "claude-decision", "upstream_failed");
        return cg_error_reply(r);
    }
    /* relayed as it came, as the reference relays the last 429 */
    cg_attempt_commit(tried[pick]);
    if (tried[pick]->held_len > 0) {
        ap_set_content_length(r, (apr_off_t)tried[pick]->held_len);
        ap_rwrite(tried[pick]->held, (int)tried[pick]->held_len, r);
    }
    return OK;
}

int cg_upstream_handler(request_rec *r)
{
    const cg_policy_t *pol = cg_srv_get(r->server)->policy;
    cg_req_t *rq = cg_req_get(r);
    const apr_array_header_t *groups = rq->identity.sub ? rq->identity.groups : NULL;
    cg_attempt_t **tried;
    int i, n = 0, any_group = 0, configured;

    cg_response_headers(r);
    if (pol == NULL || pol->upstreams->nelts == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0125) "ClaudeGatewayRoute On needs upstreams: in the policy file");
        cg_error_set(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
        return cg_error_reply(r);
    }
    configured = pol->upstreams->nelts;
    tried = apr_pcalloc(r->pool, sizeof(*tried) * (apr_size_t)configured);
    for (i = 0; i < configured; i++) {
        const cg_upstream_decl_t *u = &APR_ARRAY_IDX(pol->upstreams, i, cg_upstream_decl_t);
        const char *target, *body = rq->body;
        apr_size_t body_len = rq->body_len;
        cg_attempt_t *a;

        if (!cg_route_group_ok(u, groups)) {
            continue; /* not for this user's groups */
        }
        any_group = 1;
        target = cg_policy_upstream_model(pol, rq->model, u->name, u->provider);
        if (!cg_route_model_ok(u, rq->model) && (target == NULL || !cg_route_model_ok(u, target))) {
            continue; /* does not serve this model */
        }
        if (target == NULL || !cg_provider_supported(u)) {
            continue;
        }
        if (!cg_breaker_try(r, u->name)) {
            continue;
        }
        if (strcmp(target, rq->model) != 0) {
            body = cg_body_set_model(r->pool, rq->body, rq->body_len, target, &body_len);
            if (body == NULL) {
                continue;
            }
        }
        apr_table_setn(r->notes, "claude-upstream", u->name);
        a = cg_attempt(r, rq, u, body, body_len);
        tried[n++] = a;
        cg_breaker_note(r, u->name, !cg_route_fails_over(a->status));
        if (a->committed) {
            if (strcmp(target, rq->model) != 0) {
                apr_table_setn(r->notes, "claude-model-upstream", target);
            }
            return OK;
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      CG_LOGNO(0126) "upstream %s answered %d: trying the next one", u->name,
                      a->status);
    }
    if (!any_group) {
        cg_error_set(r, HTTP_BAD_REQUEST, "invalid_request_error",
                     "you aren't in a group that can use this gateway. Ask your administrator "
                     "to add you to one");
        return cg_error_reply(r);
    }
    return cg_relay_failure(r, tried, n, configured);
}
