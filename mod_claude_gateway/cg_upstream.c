/* cg_upstream: the gateway's own upstream client, for a location with
 * `ClaudeGatewayRoute On`.
 *
 * mod_proxy_http forwards to one upstream and relays whatever it answers. The
 * reference gateway tries the policy's upstreams in order and moves on when
 * one fails before answering, so a location that needs failover is served
 * here: libcurl (easy handles kept per child and reset between requests,
 * connections pooled per child through a curl share), the
 * status and headers of each attempt judged before a byte reaches the client,
 * then the body streamed through the output filters (the usage filter meters
 * it as it would a proxied answer). Per-child circuit breakers keep a failing
 * upstream out of the way for a while. */
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_uri.h>
#include <ap_mpm.h>
#include <curl/curl.h>

#include "cg_private.h"
#include "cg_body.h"
#include "cg_config.h"
#include "cg_handler.h"
#include "cg_route.h"
#include "cg_awschain.h"
#include "cg_azchain.h"
#include "cg_bedrock.h"
#include "cg_gcpchain.h"
#include "cg_provider.h"
#include "cg_sigv4.h"
#include "cg_vertex.h"
#include "cg_wif.h"
#include "cg_upstream.h"
#include "cg_util.h"

/* the signing name of Claude Platform on AWS */
#define CG_ANTHROPIC_AWS_SERVICE "aws-external-anthropic"

/* the body of an answer we may relay after all, kept up to this size */
#define CG_HELD_MAX (64 * 1024)

typedef struct cg_attempt_t {
    request_rec *r;
    const cg_upstream_decl_t *u;
    int status; /* 0: no answer (network error, timeout) */
    int headers_done;
    int committed; /* this answer is the client's */
    int client_gone;
    int stream;          /* flush every piece (SSE) */
    apr_time_t last_out; /* when the client last got bytes (keep-alive pings) */
    apr_time_t started;  /* when the attempt began */
    int at_boundary;     /* what the client got so far ends between SSE events */
    apr_table_t *headers;
    char *held; /* a failed answer's body, kept in case it is relayed after all */
    apr_size_t held_len;
    apr_time_t ttfb_deadline;
    cg_provider_e kind;
    int hold_answer;              /* judge the whole body first (cloud errors, count_tokens) */
    int bedrock_count;            /* a CountTokens answer to translate */
    int aws_chain;                /* signed with the default chain's credentials */
    int gcp_chain;                /* the application default credentials' token */
    int az_chain;                 /* a Microsoft Entra token */
    int wif;                      /* an Anthropic workload identity token */
    const char *role_session;     /* signed with this assumed role session's credentials */
    cg_bedrock_stream_t *bedrock; /* event-stream to SSE, on a streaming Bedrock answer */
} cg_attempt_t;

/* --- per-child state: the connection share, the handles, the breakers ---- */

static CURLSH *cg_share;
static apr_thread_mutex_t *cg_share_locks[CURL_LOCK_DATA_LAST];
static apr_thread_mutex_t *cg_breaker_lock;
static apr_hash_t *cg_breakers; /* upstream name -> cg_breaker_t */
static apr_pool_t *cg_upstream_pool;
static apr_thread_mutex_t *cg_vertex_lock;
static apr_hash_t *cg_vertex_creds; /* upstream name -> cg_vertex_cred_t */

/* Easy handles between requests, reset: creating one per request (and the
 * multi handle curl_easy_perform makes inside it, with its socketpair) cost
 * ~12 % of the router's CPU. At most one per worker thread is in use at a
 * time; the list holds up to twice the MPM's threads (mod_http2 runs
 * streams on workers of its own), a handle given back beyond that is closed. */
static apr_thread_mutex_t *cg_easy_lock;
static CURL **cg_easy_idle;
static int cg_easy_nidle, cg_easy_max;
static int cg_easy_closed; /* the child is exiting: handles given back are closed */

/* The share's connection cache limit. libcurl 7.88 checks it when a transfer
 * gives its connection back (Curl_conncache_return_conn, lib/conncache.c):
 * when the share holds more connections than the handle's CURLOPT_MAXCONNECTS
 * (in use and idle alike), the oldest idle one is closed. With the default of
 * 5 and 16 requests at once, one request in three to six opened a new
 * connection. */
static long cg_maxconnects;

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

/* A handle for one attempt: an idle one, or a new one joined to the share. */
static CURL *cg_easy_take(void)
{
    CURL *c = NULL;

    if (cg_easy_lock != NULL) {
        apr_thread_mutex_lock(cg_easy_lock);
        if (cg_easy_nidle > 0) {
            c = cg_easy_idle[--cg_easy_nidle];
        }
        apr_thread_mutex_unlock(cg_easy_lock);
    }
    if (c == NULL) {
        c = curl_easy_init();
        /* once: curl_easy_reset keeps the share (data->share is not one of
         * the options it clears) and the handle's own multi handle */
        if (c != NULL && cg_share != NULL) {
            curl_easy_setopt(c, CURLOPT_SHARE, cg_share);
        }
    }
    return c;
}

/* The attempt is over: nothing of it stays in the handle (curl_easy_reset
 * clears every option: URL, body, header list, callbacks and their data in
 * the request pool, error buffer, credentials), then back to the list. */
static void cg_easy_give(CURL *c)
{
    int kept = 0;

    curl_easy_reset(c);
    if (cg_easy_lock != NULL) {
        apr_thread_mutex_lock(cg_easy_lock);
        if (!cg_easy_closed && cg_easy_nidle < cg_easy_max) {
            cg_easy_idle[cg_easy_nidle++] = c;
            kept = 1;
        }
        apr_thread_mutex_unlock(cg_easy_lock);
    }
    if (!kept) {
        curl_easy_cleanup(c);
    }
}

/* Child exit: the handles first, since a share still used by one cannot be
 * cleaned up; the share's cache closes the pooled connections. */
static apr_status_t cg_upstream_cleanup(void *unused)
{
    (void)unused;
    if (cg_easy_lock != NULL) {
        apr_thread_mutex_lock(cg_easy_lock);
        cg_easy_closed = 1;
        while (cg_easy_nidle > 0) {
            curl_easy_cleanup(cg_easy_idle[--cg_easy_nidle]);
        }
        apr_thread_mutex_unlock(cg_easy_lock);
    }
    if (cg_share != NULL && curl_share_cleanup(cg_share) == CURLSHE_OK) {
        cg_share = NULL;
    }
    return APR_SUCCESS;
}

void cg_upstream_child_init(apr_pool_t *pchild, server_rec *s)
{
    int i, threads = 0;

    (void)s;
    cg_upstream_pool = pchild;
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        apr_thread_mutex_create(&cg_share_locks[i], APR_THREAD_MUTEX_DEFAULT, pchild);
    }
    apr_thread_mutex_create(&cg_breaker_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    apr_thread_mutex_create(&cg_vertex_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    cg_vertex_creds = apr_hash_make(pchild);
    cg_aws_chain_child_init(pchild);
    cg_gcp_chain_child_init(pchild);
    cg_az_chain_child_init(pchild);
    cg_wif_child_init(pchild);
    cg_breakers = apr_hash_make(pchild);
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) {
        threads = 1;
    }
    cg_easy_max = 2 * threads;
    cg_easy_nidle = 0;
    cg_easy_closed = 0;
    cg_easy_idle = apr_pcalloc(pchild, sizeof(*cg_easy_idle) * (apr_size_t)cg_easy_max);
    apr_thread_mutex_create(&cg_easy_lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    /* every thread's connection in use, and as many idle to a second
     * upstream (failover) or a second route */
    cg_maxconnects = 2L * threads < 5 ? 5 : 2L * threads;
    cg_share = curl_share_init();
    if (cg_share != NULL) {
        /* connections (and DNS, TLS sessions) reused across requests */
        curl_share_setopt(cg_share, CURLSHOPT_LOCKFUNC, cg_share_lock);
        curl_share_setopt(cg_share, CURLSHOPT_UNLOCKFUNC, cg_share_unlock);
        curl_share_setopt(cg_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(cg_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(cg_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    /* registered after the mutexes, so it runs before they are destroyed */
    apr_pool_cleanup_register(pchild, NULL, cg_upstream_cleanup, apr_pool_cleanup_null);
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
    a->last_out = apr_time_now();
    /* for the gateway's own metrics (cg_telemetry.c) */
    cg_note_set(r, "claude-upstream-ttfb-us",
                apr_psprintf(r->pool, "%" APR_TIME_T_FMT, a->last_out - a->started));
    a->at_boundary = 1;
    r->status = a->status;
    for (i = 0; i < arr->nelts; i++) {
        if (a->kind != CG_PROVIDER_ANTHROPIC && a->kind != CG_PROVIDER_ANTHROPIC_AWS &&
            strcasecmp(e[i].key, "content-type") != 0 && strcasecmp(e[i].key, "retry-after") != 0) {
            continue; /* a cloud's request ids and account headers stay with us */
        }
        if (!strcasecmp(e[i].key, "content-type") && a->bedrock != NULL) {
            ap_set_content_type(r, "text/event-stream; charset=utf-8");
            a->stream = 1;
        }
        else if (!strcasecmp(e[i].key, "content-type")) {
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
    if (cg_route_fails_over(a->status)) {
        return;
    }
    if (a->status >= 300 && a->kind != CG_PROVIDER_ANTHROPIC &&
        a->kind != CG_PROVIDER_ANTHROPIC_AWS) {
        a->hold_answer = 1; /* the error hygiene needs the whole body */
        return;
    }
    if (a->bedrock_count) {
        a->hold_answer = 1; /* CountTokens' answer is translated whole */
        return;
    }
    if (a->bedrock != NULL && a->status != 200) {
        a->bedrock = NULL; /* not an event stream */
    }
    cg_attempt_commit(a);
}

/* The decoded SSE of a Bedrock stream, to the client as it comes. */
static apr_status_t cg_bedrock_emit(void *baton, const char *data, apr_size_t len)
{
    cg_attempt_t *a = baton;

    if (ap_rwrite(data, (int)len, a->r) < 0 || ap_rflush(a->r) < 0 || a->r->connection->aborted) {
        a->client_gone = 1;
        return APR_ECONNABORTED;
    }
    a->last_out = apr_time_now();
    a->at_boundary = 1; /* the decoder emits whole frames */
    return APR_SUCCESS;
}

/* Providers this version speaks; the others are skipped (and reported at
 * start-up). */
static int cg_provider_supported(const cg_upstream_decl_t *u)
{
    return cg_provider_parse(u->provider) != CG_PROVIDER_UNKNOWN;
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

    if (a->committed && a->bedrock != NULL) {
        /* an exception or malformed frame ends the stream with an error
         * event; only a client gone stops the transfer */
        return cg_bedrock_stream_feed(a->bedrock, buf, len) != APR_SUCCESS && a->client_gone ? 0
                                                                                             : len;
    }
    if (a->committed) {
        a->last_out = apr_time_now();
        a->at_boundary = len >= 2 && buf[len - 1] == '\n' && buf[len - 2] == '\n';
        if (ap_rwrite(buf, (int)len, a->r) < 0 || (a->stream && ap_rflush(a->r) < 0) ||
            a->r->connection->aborted) {
            a->client_gone = 1;
            return 0; /* stop reading the upstream */
        }
        return len;
    }
    if (a->held_len + len > CG_HELD_MAX && a->hold_answer) {
        return 0; /* an answer too large to judge whole: give up on it */
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
    apr_time_t now = apr_time_now();
    int keepalive = cg_dir_sse_keepalive(cg_dir_get(a->r));

    /* time to first byte only: a long stream after that is fine */
    if (!a->headers_done && now > a->ttfb_deadline) {
        return 1;
    }
    /* a cloud stream gone quiet gets the reference's ping, between events
     * only, so load balancers do not cut it (anthropic sends its own) */
    if (a->committed && a->stream && keepalive > 0 && a->at_boundary &&
        a->kind != CG_PROVIDER_ANTHROPIC && a->kind != CG_PROVIDER_ANTHROPIC_AWS &&
        now - a->last_out >= apr_time_from_sec(keepalive)) {
        a->last_out = now;
        if (ap_rwrite(CG_SSE_PING, (int)strlen(CG_SSE_PING), a->r) < 0 || ap_rflush(a->r) < 0) {
            a->client_gone = 1;
            return 1;
        }
    }
    return a->r->connection->aborted ? 1 : 0;
}

/* The request as this upstream takes it: URL, headers and body. */
static struct curl_slist *cg_attempt_headers(request_rec *r, const cg_upstream_decl_t *u,
                                             const cg_identity_t *id, const char *bearer)
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
            !strcasecmp(e[i].key, "authorization") || !strcasecmp(e[i].key, "expect") ||
            !strcasecmp(e[i].key, "connection") || /* hop-by-hop: kept for Apache only */
            (bearer != NULL && !strcasecmp(e[i].key, "anthropic-beta"))) {
            continue;
        }
        h = curl_slist_append(h, apr_pstrcat(r->pool, e[i].key, ": ", e[i].val, NULL));
    }
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    if (bearer != NULL) {                /* a workload identity token, with the OAuth beta */
        h = curl_slist_append(h, apr_pstrcat(r->pool, "Authorization: Bearer ", bearer, NULL));
        h = curl_slist_append(
            h, apr_pstrcat(r->pool, "anthropic-beta: ",
                           cg_provider_beta_with(r->pool,
                                                 apr_table_get(r->headers_in, "anthropic-beta"),
                                                 CG_PROVIDER_OAUTH_BETA),
                           NULL));
    }
    else if (u->api_key != NULL) {
        h = curl_slist_append(h, apr_pstrcat(r->pool, "x-api-key: ", u->api_key, NULL));
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

/* --- cloud providers --------------------------------------------------------- */

typedef struct cg_vertex_cred_t {
    cg_vertex_sa_t *sa;
    char token[4096]; /* secret: never logged */
    apr_time_t expires;
} cg_vertex_cred_t;

/* An access token for a Vertex upstream: its static token, or one obtained
 * with the service account's JWT grant, cached per child until a minute
 * before it expires, or (auth {}) the application default credentials'. */
static const char *cg_vertex_token(request_rec *r, cg_attempt_t *a, const char **quota_project)
{
    const cg_upstream_decl_t *u = a->u;
    cg_vertex_cred_t *cred;
    const char *token = NULL, *err, *assertion, *form;
    apr_time_t now = apr_time_now(), expires;

    *quota_project = NULL;
    if (u->access_token != NULL) {
        return u->access_token;
    }
    if (u->service_account_json == NULL) {
        a->gcp_chain = 1;
        return cg_gcp_chain_token(r, &token, quota_project) ? token : NULL;
    }
    if (cg_vertex_lock == NULL) {
        return NULL;
    }
    apr_thread_mutex_lock(cg_vertex_lock);
    cred = apr_hash_get(cg_vertex_creds, u->name, APR_HASH_KEY_STRING);
    if (cred == NULL) {
        const char *json;
        cred = apr_pcalloc(cg_upstream_pool, sizeof(*cred));
        if (cg_secret_resolve(r->pool, apr_pstrcat(r->pool, "file:", u->service_account_json, NULL),
                              &json) != NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          CG_LOGNO(0128) "upstream %s: cannot read the service account file %s",
                          u->name, u->service_account_json);
        }
        else if ((err = cg_vertex_sa_parse(cg_upstream_pool, json, strlen(json), &cred->sa)) !=
                 NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          CG_LOGNO(0127) "upstream %s: service account %s: %s", u->name,
                          u->service_account_json, err);
        }
        apr_hash_set(cg_vertex_creds, apr_pstrdup(cg_upstream_pool, u->name), APR_HASH_KEY_STRING,
                     cred);
    }
    if (cred->sa != NULL && cred->token[0] && now < cred->expires - apr_time_from_sec(60)) {
        token = apr_pstrdup(r->pool, cred->token);
    }
    apr_thread_mutex_unlock(cg_vertex_lock);
    if (token != NULL || cred->sa == NULL) {
        return token;
    }
    /* fetched outside the lock: a slow token endpoint holds no one else up */
    assertion = cg_vertex_assertion(r->pool, cred->sa, now);
    form = assertion ? cg_vertex_token_request(r->pool, assertion) : NULL;
    err = form ? cg_gcp_exchange(r, cg_vertex_sa_token_uri(cred->sa), form, now, &token, &expires)
               : "signing the assertion failed";
    if (err != NULL || token == NULL || strlen(token) >= sizeof(cred->token)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0129) "upstream %s: no access token: %s", u->name,
                      err ? err : "token too long");
        return NULL;
    }
    apr_thread_mutex_lock(cg_vertex_lock);
    apr_cpystrn(cred->token, token, sizeof(cred->token));
    cred->expires = expires;
    apr_thread_mutex_unlock(cg_vertex_lock);
    return token;
}

/* A 401 from Vertex: the cached token is no good any more. */
static void cg_vertex_forget(const cg_upstream_decl_t *u)
{
    cg_vertex_cred_t *cred;

    if (cg_vertex_lock == NULL) {
        return;
    }
    apr_thread_mutex_lock(cg_vertex_lock);
    cred = apr_hash_get(cg_vertex_creds, u->name, APR_HASH_KEY_STRING);
    if (cred != NULL) {
        cred->token[0] = '\0';
    }
    apr_thread_mutex_unlock(cg_vertex_lock);
}

/* The role session of a request: the user's email or subject when the
 * upstream's assume_role asks for it, else the gateway's own. */
static const char *cg_role_session(request_rec *r, const cg_upstream_decl_t *u)
{
    const cg_identity_t *id = &cg_req_get(r)->identity;
    const char *want = NULL, *name;

    if (u->role_session != NULL && id->sub != NULL) {
        want = !strcmp(u->role_session, "email") ? id->email : id->sub;
    }
    name = cg_aws_session_name(r->pool, want);
    return name ? name : CG_AWS_SESSION_DEFAULT;
}

/* The AWS credentials an upstream signs with: its static keys, or (auth {})
 * the default chain's; with assume_role, the role's, assumed with those.
 * 0 when there are none. */
static int cg_aws_creds(request_rec *r, cg_attempt_t *a, cg_sigv4_credentials_t *creds)
{
    const cg_upstream_decl_t *u = a->u;
    cg_aws_creds_t base, role;
    int refused;

    memset(&base, 0, sizeof(base));
    if (u->aws_access_key_id != NULL) {
        base.access_key_id = u->aws_access_key_id;
        base.secret_access_key = u->aws_secret_access_key;
        base.session_token = u->aws_session_token;
    }
    else if (cg_aws_chain_get(r, u->region, &base)) {
        a->aws_chain = 1;
    }
    else {
        return 0;
    }
    if (u->role_arn != NULL) {
        a->role_session = cg_role_session(r, u);
        if (!cg_aws_assume_role(r, &base, u->region, u->role_arn, u->role_external_id,
                                a->role_session, u->name, &role, &refused)) {
            if (refused && a->aws_chain) {
                cg_aws_chain_forget(u->region); /* STS refused them: look again next time */
            }
            return 0;
        }
        base = role;
    }
    creds->access_key_id = base.access_key_id;
    creds->secret_access_key = base.secret_access_key;
    creds->session_token = base.session_token;
    return 1;
}

/* Claude Platform on AWS without an api_key: the Messages request as it is,
 * signed with SigV4 for the service aws-external-anthropic. The workspace
 * and the API version are signed with it, and the payload's hash is sent,
 * so none of them can be changed on the way. 0 when there are no
 * credentials or the request cannot be signed. */
static int cg_anthropic_aws_sign(request_rec *r, cg_attempt_t *a, const char *url, const char *body,
                                 apr_size_t len, struct curl_slist **hdrs)
{
    const cg_upstream_decl_t *u = a->u;
    const char *ctype = apr_table_get(r->headers_in, "content-type");
    const char *version = apr_table_get(r->headers_in, "anthropic-version");
    cg_sigv4_header_t signed_hdrs[4];
    cg_sigv4_credentials_t creds;
    cg_sigv4_request_t req;
    cg_sigv4_result_t out;
    apr_uri_t uri;
    int i, n = 0;

    if (!cg_aws_creds(r, a, &creds) || apr_uri_parse(r->pool, url, &uri) != APR_SUCCESS ||
        uri.hostinfo == NULL) {
        return 0;
    }
    signed_hdrs[n].name = "host";
    signed_hdrs[n++].value = uri.hostinfo;
    if (u->workspace_id != NULL) {
        signed_hdrs[n].name = "anthropic-workspace-id";
        signed_hdrs[n++].value = u->workspace_id;
    }
    if (ctype != NULL) {
        signed_hdrs[n].name = "content-type";
        signed_hdrs[n++].value = ctype;
    }
    if (version != NULL) {
        signed_hdrs[n].name = "anthropic-version";
        signed_hdrs[n++].value = version;
    }
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = uri.path ? uri.path : "/";
    req.query = uri.query;
    req.headers = signed_hdrs;
    req.nheaders = n;
    req.payload = body;
    req.payload_len = len;
    req.content_sha256_header = 1;
    if (cg_sigv4_sign(r->pool, &req, &creds, u->region, CG_ANTHROPIC_AWS_SERVICE,
                      cg_sigv4_amz_date(r->pool, apr_time_now()), &out) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < out.nset; i++) {
        *hdrs = curl_slist_append(
            *hdrs, apr_pstrcat(r->pool, out.set[i].name, ": ", out.set[i].value, NULL));
    }
    return 1;
}

/* A fresh suffix for a guardrail's input tags: a user who cannot guess it
 * cannot close the tag early to put text outside the guardrail's view. */
static const char *cg_guard_suffix(apr_pool_t *p)
{
    unsigned char raw[8];
    char *hex = apr_palloc(p, sizeof(raw) * 2 + 1);
    apr_size_t i;

    if (apr_generate_random_bytes(raw, sizeof(raw)) != APR_SUCCESS) {
        return cg_uuid4(p); /* as unguessable, with dashes */
    }
    for (i = 0; i < sizeof(raw); i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    return hex;
}

/* The request for a Bedrock or Vertex upstream: URL, translated body and
 * headers. 0 when this upstream cannot be used (no credentials). */
static int cg_cloud_prepare(request_rec *r, cg_attempt_t *a, const char *target, const char **url,
                            const char **body, apr_size_t *len, struct curl_slist **hdrs)
{
    const cg_upstream_decl_t *u = a->u;
    cg_req_t *rq = cg_req_get(r);
    const char *beta = apr_table_get(r->headers_in, "anthropic-beta");
    int count = strstr(r->uri, "/count_tokens") != NULL;
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");

    h = curl_slist_append(h, "Content-Type: application/json");
    if (a->kind == CG_PROVIDER_BEDROCK) {
        cg_bedrock_op_e op = count        ? CG_BEDROCK_COUNT_TOKENS
                             : rq->stream ? CG_BEDROCK_INVOKE_STREAM
                                          : CG_BEDROCK_INVOKE;
        const char *path = cg_bedrock_path(r->pool, target, op), *host;
        apr_uri_t uri;

        cg_sigv4_header_t signed_hdrs[6];
        int nsigned = 3, g;

        *body = count
                    ? cg_bedrock_count_tokens_body(r->pool, rq->body, rq->body_len, beta, len)
                    : cg_bedrock_body_tagged(r->pool, rq->body, rq->body_len, beta,
                                             u->guardrail_tagging ? cg_guard_suffix(r->pool) : NULL,
                                             len);
        if (path == NULL || *body == NULL ||
            apr_uri_parse(r->pool, u->base_url, &uri) != APR_SUCCESS || uri.hostinfo == NULL) {
            curl_slist_free_all(h);
            return 0;
        }
        host = uri.hostinfo;
        *url = apr_pstrcat(r->pool, uri.scheme, "://", host, path, NULL);
        h = curl_slist_append(h, op == CG_BEDROCK_INVOKE_STREAM
                                     ? "Accept: application/vnd.amazon.eventstream"
                                     : "Accept: application/json");
        if (u->guardrail_id != NULL && !count) { /* CountTokens takes no guardrail */
            signed_hdrs[nsigned].name = "X-Amzn-Bedrock-GuardrailIdentifier";
            signed_hdrs[nsigned++].value = u->guardrail_id;
            signed_hdrs[nsigned].name = "X-Amzn-Bedrock-GuardrailVersion";
            signed_hdrs[nsigned++].value = u->guardrail_version;
            if (u->guardrail_trace) {
                signed_hdrs[nsigned].name = "X-Amzn-Bedrock-Trace";
                signed_hdrs[nsigned++].value = "ENABLED";
            }
            for (g = 3; g < nsigned; g++) {
                h = curl_slist_append(
                    h, apr_pstrcat(r->pool, signed_hdrs[g].name, ": ", signed_hdrs[g].value, NULL));
            }
        }
        if (u->aws_bearer_token != NULL) {
            h = curl_slist_append(
                h, apr_pstrcat(r->pool, "Authorization: Bearer ", u->aws_bearer_token, NULL));
        }
        else {
            cg_sigv4_request_t req;
            cg_sigv4_credentials_t creds;
            cg_sigv4_result_t out;
            int i;

            if (!cg_aws_creds(r, a, &creds)) {
                curl_slist_free_all(h);
                return 0;
            }

            signed_hdrs[0].name = "host";
            signed_hdrs[0].value = host;
            signed_hdrs[1].name = "content-type";
            signed_hdrs[1].value = "application/json";
            signed_hdrs[2].name = "accept";
            signed_hdrs[2].value = op == CG_BEDROCK_INVOKE_STREAM
                                       ? "application/vnd.amazon.eventstream"
                                       : "application/json";
            memset(&req, 0, sizeof(req));
            req.method = "POST";
            req.path = path;
            req.headers = signed_hdrs;
            req.nheaders = nsigned;
            req.payload = *body;
            req.payload_len = *len;
            if (cg_sigv4_sign(r->pool, &req, &creds, u->region, CG_BEDROCK_SERVICE,
                              cg_sigv4_amz_date(r->pool, apr_time_now()), &out) != APR_SUCCESS) {
                curl_slist_free_all(h);
                return 0;
            }
            for (i = 0; i < out.nset; i++) {
                h = curl_slist_append(
                    h, apr_pstrcat(r->pool, out.set[i].name, ": ", out.set[i].value, NULL));
            }
        }
        a->bedrock_count = count;
        if (op == CG_BEDROCK_INVOKE_STREAM) {
            a->bedrock = cg_bedrock_stream_create(r->pool, 0, cg_bedrock_emit, a);
        }
    }
    else {
        cg_vertex_op_e op = count        ? CG_VERTEX_COUNT_TOKENS
                            : rq->stream ? CG_VERTEX_STREAM_RAW_PREDICT
                                         : CG_VERTEX_RAW_PREDICT;
        const char *quota, *token = cg_vertex_token(r, a, &quota);
        const char *vbeta = cg_vertex_beta_header(r->pool, beta);

        *url = cg_vertex_url(r->pool, u->base_url, u->region, u->project_id, target, op);
        *body = cg_vertex_body(r->pool, rq->body, rq->body_len, op, target, len);
        if (token == NULL || *url == NULL || *body == NULL) {
            curl_slist_free_all(h);
            return 0;
        }
        h = curl_slist_append(h, apr_pstrcat(r->pool, "Authorization: Bearer ", token, NULL));
        if (quota != NULL) { /* user credentials bill their quota project */
            h = curl_slist_append(h, apr_pstrcat(r->pool, "x-goog-user-project: ", quota, NULL));
        }
        if (vbeta != NULL) {
            h = curl_slist_append(h, apr_pstrcat(r->pool, "anthropic-beta: ", vbeta, NULL));
        }
    }
    *hdrs = h;
    return 1;
}

/* A held answer of a cloud upstream becomes the client's: the error hygiene
 * of the reference, or a CountTokens answer translated. */
static void cg_cloud_answer(request_rec *r, cg_attempt_t *a)
{
    const char *out = NULL;

    if (a->bedrock_count && a->status < 300) {
        out = cg_bedrock_count_tokens_answer(r->pool, a->held ? a->held : "", a->held_len);
        a->status = out ? 200 : 502;
        if (out == NULL) {
            out = cg_error_envelope(r->pool, "api_error",
                                    "upstream answered count_tokens "
                                    "unreadably",
                                    cg_req_get(r)->request_id);
        }
    }
    else {
        cg_provider_error_t e;
        cg_provider_error(r->pool, a->kind, a->status, a->held ? a->held : "", a->held_len, &e);
        if (!e.passthrough) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          CG_LOGNO(0134) "upstream %s answered %d: %s", a->u->name, a->status,
                          e.upstream_text ? e.upstream_text : "");
            out = cg_error_envelope(r->pool, e.type, e.message, cg_req_get(r)->request_id);
            a->status = e.status;
        }
    }
    apr_table_clear(a->headers);
    if (out != NULL) {
        apr_table_setn(a->headers, "content-type", "application/json");
        a->held = (char *)out;
        a->held_len = strlen(out);
    }
    cg_attempt_commit(a);
    ap_set_content_length(r, (apr_off_t)a->held_len);
    if (a->held_len > 0) {
        ap_rwrite(a->held, (int)a->held_len, r);
    }
}

/* One upstream: returns the attempt, committed or not. */
static cg_attempt_t *cg_attempt(request_rec *r, cg_req_t *rq, const cg_upstream_decl_t *u,
                                const char *target)
{
    const char *body = rq->body, *url;
    apr_size_t body_len = rq->body_len;
    const cg_dir_conf_t *dc = cg_dir_get(r);
    cg_attempt_t *a = apr_pcalloc(r->pool, sizeof(*a));
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE] = "";
    int prepared = 1;
    CURLcode rc;
    CURL *c;

    a->r = r;
    a->u = u;
    a->kind = cg_provider_parse(u->provider);
    a->headers = apr_table_make(r->pool, 16);
    a->started = apr_time_now();
    a->ttfb_deadline = a->started + apr_time_from_msec(cg_dir_upstream_timeout_ms(dc));
    c = cg_easy_take();
    if (c == NULL) {
        return a;
    }
    if (a->kind == CG_PROVIDER_BEDROCK || a->kind == CG_PROVIDER_VERTEX) {
        prepared = cg_cloud_prepare(r, a, target, &url, &body, &body_len, &hdrs);
    }
    else {
        if (strcmp(target, rq->model) != 0) {
            body = cg_body_set_model(r->pool, rq->body, rq->body_len, target, &body_len);
        }
        const char *wif = NULL;
        if (a->kind == CG_PROVIDER_ANTHROPIC && u->wif_rule != NULL) {
            a->wif = 1;
            prepared = cg_wif_token(r, u, &wif);
        }
        hdrs = cg_attempt_headers(r, u, rq->identity.sub ? &rq->identity : NULL, wif);
        url = cg_attempt_url(r, u);
        if (!prepared) {
            curl_slist_free_all(hdrs);
        }
        else if (a->kind == CG_PROVIDER_ANTHROPIC_AWS && u->api_key == NULL &&
                 u->oauth_token == NULL &&
                 !cg_anthropic_aws_sign(r, a, url, body, body_len, &hdrs)) {
            curl_slist_free_all(hdrs);
            prepared = 0;
        }
        else if (a->kind == CG_PROVIDER_FOUNDRY && u->use_azure_ad) {
            const char *token;
            a->az_chain = 1;
            if (cg_az_chain_token(r, &token)) {
                hdrs = curl_slist_append(
                    hdrs, apr_pstrcat(r->pool, "Authorization: Bearer ", token, NULL));
            }
            else {
                curl_slist_free_all(hdrs);
                prepared = 0;
            }
        }
    }
    if (!prepared) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0135) "upstream %s: no usable credentials or model id for "
                                     "%s; skipped",
                      u->name, target);
        cg_easy_give(c);
        a->status = 0;
        return a;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
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
    curl_easy_setopt(c, CURLOPT_MAXCONNECTS, cg_maxconnects);
    rc = curl_easy_perform(c);
    if (a->status == 401 && a->kind == CG_PROVIDER_VERTEX) {
        if (a->gcp_chain) {
            cg_gcp_chain_forget();
        }
        else {
            cg_vertex_forget(u);
        }
    }
    if (a->status == 401 && a->az_chain) {
        cg_az_chain_forget();
    }
    if (a->status == 401 && a->wif) {
        cg_wif_forget(u); /* expired or revoked: exchange again next time */
    }
    if (a->status == 403 && a->role_session != NULL) {
        /* the role's credentials, expired or revoked: assume it again next time */
        cg_aws_assume_forget(u->role_arn, u->role_external_id, a->role_session);
    }
    else if (a->status == 403 && a->aws_chain) {
        cg_aws_chain_forget(u->region); /* expired or revoked: look again next time */
    }
    if (a->hold_answer && !a->committed && (rc == CURLE_OK || a->held_len > 0)) {
        cg_cloud_answer(r, a);
        rc = CURLE_OK;
    }
    if (a->bedrock != NULL && a->committed && !a->client_gone &&
        cg_bedrock_stream_finish(a->bedrock) == APR_INCOMPLETE) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0136) "upstream %s: the event stream was cut short", u->name);
    }
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
    cg_easy_give(c); /* reset first: the handle no longer points at hdrs */
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
    cg_note_set(r, "claude-decision", "upstream_failed");
    if (pick < 0) {
        cg_error_set(r, HTTP_BAD_GATEWAY, "api_error",
                     apr_psprintf(r->pool, "all upstreams failed (%d attempted)", configured));
        cg_note_set(r, "claude-decision", "upstream_failed");
        return cg_error_reply(r);
    }
    /* relayed as it came, as the reference relays the last 429 (a cloud's
     * answer through the error hygiene) */
    if (tried[pick]->kind != CG_PROVIDER_ANTHROPIC &&
        tried[pick]->kind != CG_PROVIDER_ANTHROPIC_AWS) {
        cg_cloud_answer(r, tried[pick]);
        return OK;
    }
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
        const char *target;
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
        cg_note_set(r, "claude-upstream", u->name);
        a = cg_attempt(r, rq, u, target);
        tried[n++] = a;
        if (n > 1) {
            cg_note_set(r, "claude-failovers", apr_itoa(r->pool, n - 1));
        }
        cg_breaker_note(r, u->name, !cg_route_fails_over(a->status));
        if (a->committed) {
            if (strcmp(target, rq->model) != 0) {
                cg_note_set(r, "claude-model-upstream", target);
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
