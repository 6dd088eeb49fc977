/* cg_telemetry: OTLP ingest and relay, and the gateway's own metrics; see
 * cg_telemetry.h.
 *
 * Threads and memory. A request thread reads the export into a pool of its
 * own (unmanaged: its own allocator, so creating and destroying it touches
 * nothing shared), hands the pool to the queue and answers 200. The queue is
 * a ring under one mutex, bounded in exports and in bytes; a full queue drops
 * and counts. The background thread (one per child, started in child_init,
 * joined by a pre-cleanup of pchild) owns everything it pops: it stamps the
 * export, starts one libcurl transfer per destination that takes the signal
 * and destroys the pool when the last transfer ends. It never blocks on a
 * collector: transfers run in a curl multi handle, which request threads
 * wake with curl_multi_wakeup after a push.
 *
 * The own metrics aggregate (cg_metrics) of each telemetry configuration is
 * filled by log_transaction under a mutex and swapped for a fresh one at
 * each interval; the old one is encoded outside the lock. */
#include <pthread.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_network_io.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <curl/curl.h>

#include "cg_private.h"
#include "cg_audit.h"
#include "cg_config.h"
#include "cg_handler.h"
#include "cg_metrics.h"
#include "cg_otlp.h"
#include "cg_policy.h"
#include "cg_telemetry.h"
#include "cg_util.h"

#define CG_TEL_UNSET (-1)
/* memory the queued and in-flight exports of one child may hold */
#define CG_TEL_MAX_BYTES ((apr_size_t)64 * 1024 * 1024)
/* series of the own metrics per interval and configuration */
#define CG_TEL_MAX_SERIES 5000
/* how often drop counts are logged, at most */
#define CG_TEL_REPORT_EVERY apr_time_from_sec(10)
/* the final flush of the own metrics at child exit */
#define CG_TEL_FINAL_TIMEOUT_MS 1000L

struct cg_tel_conf_t {
    int queue_max;        /* exports waiting per child */
    int transfers_max;    /* transfers in flight per child */
    int timeout_ms;       /* per transfer */
    int breaker_failures; /* consecutive failures that open a destination's breaker */
    int breaker_seconds;  /* how long it stays open */
    int interval;         /* own metrics export, seconds; 0: off */
};

enum {
    CG_DROP_QUEUE_FULL,
    CG_DROP_UNPARSABLE,
    CG_DROP_UNSUPPORTED,
    CG_DROP_BREAKER_OPEN,
    CG_DROP_FAILED,
    CG_DROP_N
};
static const char *const cg_drop_names[CG_DROP_N] = {"queue_full", "unparsable", "unsupported",
                                                     "breaker_open", "failed"};

/* a destination as one child sees it; only the background thread touches it */
typedef struct cg_tel_dest_t {
    const cg_telemetry_dest_t *conf;
    int failures;          /* consecutive */
    int open;              /* the breaker is open */
    int probing;           /* a transfer is testing an open breaker */
    apr_time_t open_until; /* skipped until then */
} cg_tel_dest_t;

/* one telemetry: section (shared by every server whose policy has it) */
typedef struct cg_tel_sink_t {
    const cg_telemetry_t *tel;
    cg_tel_dest_t *dests;
    int ndests;
    int metrics;                  /* some destination takes metrics: own metrics are kept */
    apr_array_header_t *resource; /* cg_otlp_kv_t: the own metrics' resource */
    /* own metrics, guarded by mlock */
    apr_thread_mutex_t *mlock;
    apr_pool_t *mpool; /* unmanaged */
    cg_metrics_t *m;
    /* drops since the last export and since the last log line, guarded by
     * cg_tel.lock */
    apr_uint64_t drops[CG_DROP_N];
    apr_uint64_t unreported[CG_DROP_N];
} cg_tel_sink_t;

/* an export on its way; owns its pool */
typedef struct cg_tel_item_t {
    apr_pool_t *pool; /* unmanaged; everything below lives in it */
    cg_tel_sink_t *sink;
    cg_otlp_signal_e sig;
    int own; /* the gateway's own metrics: encoded by us, nothing to stamp */
    const char *content_type;
    const char *content_encoding;
    const char *body;
    apr_size_t len;
    apr_size_t charge; /* bytes counted against CG_TEL_MAX_BYTES */
    cg_otlp_identity_t id;
    const char *request_id; /* for log lines */
    int refs;               /* transfers still running */
} cg_tel_item_t;

typedef struct cg_tel_xfer_t {
    struct cg_tel_xfer_t *prev, *next; /* the transfers in flight */
    CURL *h;
    struct curl_slist *hdrs;
    cg_tel_item_t *item;
    cg_tel_dest_t *dest;
    char err[CURL_ERROR_SIZE];
} cg_tel_xfer_t;

/* The per-child state. */
static struct {
    server_rec *s;
    const cg_tel_conf_t *conf;
    apr_pool_t *pool;  /* child-lifetime structures, set up in child_init */
    apr_hash_t *sinks; /* const cg_telemetry_t * -> cg_tel_sink_t */
    const char *instance;
    /* the queue, guarded by lock */
    apr_thread_mutex_t *lock;
    cg_tel_item_t **ring;
    int head, count;
    apr_size_t bytes;
    int stopping;
    int running;
    CURLM *multi; /* created before the thread; wakeups under lock */
    apr_thread_t *thread;
    /* the background thread's own */
    cg_tel_xfer_t *xfers; /* in flight */
    int transfers;
    int unparsable_logged;
} cg_tel;

/* --- configuration ------------------------------------------------------ */

static cg_tel_conf_t *cg_tel_conf_of(cmd_parms *cmd)
{
    cg_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_gateway_module);

    if (sc->tel == NULL) {
        sc->tel = apr_palloc(cmd->pool, sizeof(*sc->tel));
        sc->tel->queue_max = sc->tel->transfers_max = sc->tel->timeout_ms = CG_TEL_UNSET;
        sc->tel->breaker_failures = sc->tel->breaker_seconds = CG_TEL_UNSET;
        sc->tel->interval = CG_TEL_UNSET;
    }
    return sc->tel;
}

static const char *cg_tel_int(cmd_parms *cmd, const char *arg, int lo, int hi, int *out)
{
    apr_int64_t v;
    char *end;

    v = apr_strtoi64(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < lo || v > hi) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number between %d and %d", cmd->cmd->name,
                            arg, lo, hi);
    }
    *out = (int)v;
    return NULL;
}

const char *cg_telemetry_set_queue(cmd_parms *cmd, void *dc, const char *exports,
                                   const char *transfers)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    cg_tel_conf_t *c;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    c = cg_tel_conf_of(cmd);
    if ((err = cg_tel_int(cmd, exports, 1, 100000, &c->queue_max)) != NULL) {
        return err;
    }
    return transfers ? cg_tel_int(cmd, transfers, 1, 1024, &c->transfers_max) : NULL;
}

const char *cg_telemetry_set_timeout(cmd_parms *cmd, void *dc, const char *ms)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    return err ? err : cg_tel_int(cmd, ms, 100, 600000, &cg_tel_conf_of(cmd)->timeout_ms);
}

const char *cg_telemetry_set_breaker(cmd_parms *cmd, void *dc, const char *failures,
                                     const char *seconds)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    cg_tel_conf_t *c;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    c = cg_tel_conf_of(cmd);
    if ((err = cg_tel_int(cmd, failures, 1, 1000, &c->breaker_failures)) != NULL) {
        return err;
    }
    return cg_tel_int(cmd, seconds, 1, 86400, &c->breaker_seconds);
}

const char *cg_telemetry_set_interval(cmd_parms *cmd, void *dc, const char *seconds)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (strcasecmp(seconds, "off") == 0) {
        cg_tel_conf_of(cmd)->interval = 0;
        return NULL;
    }
    return cg_tel_int(cmd, seconds, 1, 86400, &cg_tel_conf_of(cmd)->interval);
}

/* the defaults, in one place: the reference's 10 s timeout and 5 failures
 * for 30 s breaker; OpenTelemetry's 60 s metric export interval */
static int cg_tel_get(int v, int def)
{
    return v == CG_TEL_UNSET ? def : v;
}

static cg_tel_conf_t cg_tel_effective(const cg_tel_conf_t *c)
{
    cg_tel_conf_t e;

    e.queue_max = cg_tel_get(c ? c->queue_max : CG_TEL_UNSET, 256);
    e.transfers_max = cg_tel_get(c ? c->transfers_max : CG_TEL_UNSET, 16);
    e.timeout_ms = cg_tel_get(c ? c->timeout_ms : CG_TEL_UNSET, 10000);
    e.breaker_failures = cg_tel_get(c ? c->breaker_failures : CG_TEL_UNSET, 5);
    e.breaker_seconds = cg_tel_get(c ? c->breaker_seconds : CG_TEL_UNSET, 30);
    e.interval = cg_tel_get(c ? c->interval : CG_TEL_UNSET, 60);
    return e;
}

/* --- the managed settings' OTEL env ------------------------------------- */

/* The policy is compiled in its directive handler, which may run before
 * ClaudeGatewayPublicURL; by check_config both are known (and `apachectl
 * -t` runs it too). Servers sharing a policy and a URL share the result. */
static int cg_tel_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s)
{
    apr_hash_t *done = apr_hash_make(ptemp);

    (void)plog;
    for (; s != NULL; s = s->next) {
        cg_srv_conf_t *sc = ap_get_module_config(s->module_config, &claude_gateway_module);
        const cg_policy_t *served;
        const char *key;

        if (sc->policy == NULL || sc->policy->telemetry == NULL ||
            sc->policy->telemetry->dests->nelts == 0) {
            continue;
        }
        if (sc->public_url == NULL) {
            if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                             CG_LOGNO(0710) "%s: telemetry is forwarded, but without "
                                            "ClaudeGatewayPublicURL the managed settings do not "
                                            "point clients at it",
                             sc->policy->file);
            }
            continue;
        }
        key = apr_psprintf(ptemp, "%pp %s", (const void *)sc->policy, sc->public_url);
        served = apr_hash_get(done, key, APR_HASH_KEY_STRING);
        if (served == NULL) {
            served = cg_policy_with_telemetry_env(pconf, sc->policy, sc->public_url);
            apr_hash_set(done, key, APR_HASH_KEY_STRING, served);
        }
        sc->policy = served;
    }
    return OK;
}

/* --- the queue ------------------------------------------------------------ */

static cg_tel_sink_t *cg_tel_sink_of(server_rec *s)
{
    const cg_policy_t *pol = cg_srv_get(s)->policy;
    const cg_telemetry_t *tel = pol ? pol->telemetry : NULL;

    if (tel == NULL || cg_tel.sinks == NULL) {
        return NULL;
    }
    return apr_hash_get(cg_tel.sinks, &tel, sizeof(tel));
}

static void cg_tel_item_free(cg_tel_item_t *it)
{
    apr_thread_mutex_lock(cg_tel.lock);
    cg_tel.bytes -= it->charge;
    apr_thread_mutex_unlock(cg_tel.lock);
    apr_pool_destroy(it->pool);
}

/* From any thread: the item is the queue's on success, the caller's to
 * free otherwise. */
static int cg_tel_push(cg_tel_item_t *it)
{
    int ok = 0;

    apr_thread_mutex_lock(cg_tel.lock);
    if (cg_tel.running && !cg_tel.stopping && cg_tel.count < cg_tel.conf->queue_max &&
        cg_tel.bytes + it->charge <= CG_TEL_MAX_BYTES) {
        cg_tel.ring[(cg_tel.head + cg_tel.count) % cg_tel.conf->queue_max] = it;
        cg_tel.count++;
        cg_tel.bytes += it->charge;
        curl_multi_wakeup(cg_tel.multi);
        ok = 1;
    }
    else {
        it->sink->drops[CG_DROP_QUEUE_FULL]++;
        it->sink->unreported[CG_DROP_QUEUE_FULL]++;
    }
    apr_thread_mutex_unlock(cg_tel.lock);
    return ok;
}

static void cg_tel_count_drop(cg_tel_sink_t *sink, int reason)
{
    apr_thread_mutex_lock(cg_tel.lock);
    sink->drops[reason]++;
    sink->unreported[reason]++;
    apr_thread_mutex_unlock(cg_tel.lock);
}

/* --- the ingest handler ----------------------------------------------------- */

static int cg_tel_text(request_rec *r, int status, const char *text)
{
    r->status = status;
    ap_set_content_type(r, "text/plain;charset=utf-8");
    ap_set_content_length(r, (apr_off_t)strlen(text));
    if (!r->header_only) {
        ap_rputs(text, r);
    }
    return OK;
}

/* The body into p, bounded by max; NULL when it is too large or the read
 * fails (*status says which answer to give). */
static const char *cg_tel_read(request_rec *r, apr_pool_t *p, apr_off_t max, apr_size_t *len,
                               int *status)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t declared = -1;
    apr_bucket_brigade *bb;
    apr_size_t cap, used = 0;
    char *buf;
    int eos = 0;

    *status = HTTP_BAD_REQUEST;
    if (cl != NULL && !ap_parse_strict_length(&declared, cl)) {
        return NULL;
    }
    if (declared > max) {
        *status = HTTP_REQUEST_ENTITY_TOO_LARGE;
        return NULL;
    }
    cap = declared >= 0 ? (apr_size_t)declared + 1 : 8192;
    buf = apr_palloc(p, cap);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!eos) {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            *status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            return NULL;
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            if (apr_bucket_read(b, &data, &n, APR_BLOCK_READ) != APR_SUCCESS) {
                return NULL;
            }
            if ((apr_off_t)(used + n) > max) {
                *status = HTTP_REQUEST_ENTITY_TOO_LARGE;
                return NULL;
            }
            if (used + n + 1 > cap) {
                char *grown;
                while (used + n + 1 > cap) {
                    cap *= 2;
                }
                grown = apr_palloc(p, cap);
                memcpy(grown, buf, used);
                buf = grown;
            }
            memcpy(buf + used, data, n);
            used += n;
        }
        apr_brigade_cleanup(bb);
    }
    *len = used;
    return buf;
}

static int cg_tel_wanted(const cg_tel_sink_t *sink, cg_otlp_signal_e sig)
{
    int i;

    for (i = 0; sink != NULL && i < sink->ndests; i++) {
        const cg_telemetry_dest_t *d = sink->dests[i].conf;
        if ((sig == CG_OTLP_METRICS && d->metrics) || (sig == CG_OTLP_LOGS && d->logs) ||
            (sig == CG_OTLP_TRACES && d->traces)) {
            return 1;
        }
    }
    return 0;
}

/* POST /v1/{metrics,logs,traces}: 200 with an empty body as soon as the
 * export is read (capture 29), whatever becomes of it afterwards. */
static int cg_telemetry_handler(request_rec *r)
{
    const cg_req_t *rq;
    cg_tel_sink_t *sink;
    cg_tel_item_t *it;
    apr_pool_t *p;
    const char *body;
    apr_size_t len = 0;
    int sig, status;

    if (r->handler == NULL || strcmp(r->handler, CG_HANDLER_TELEMETRY) != 0) {
        return DECLINED;
    }
    rq = cg_req_get(r);
    cg_response_headers(r);
    sig = cg_otlp_signal_of_path(r->uri);
    if (r->method_number != M_POST || sig < 0) {
        if (ap_discard_request_body(r) != OK) {
            r->connection->keepalive = AP_CONN_CLOSE;
        }
        cg_note_set(r, "claude-decision", "not_found");
        return cg_tel_text(r, HTTP_NOT_FOUND, "not found");
    }
    if (rq->identity.sub == NULL) {
        /* the location lacks AuthType claude-session: never relay anonymously */
        if (ap_discard_request_body(r) != OK) {
            r->connection->keepalive = AP_CONN_CLOSE;
        }
        cg_note_set(r, "claude-decision", "auth_failed");
        cg_note_set(r, "claude-reason", "no session");
        return cg_reply_json(
            r, HTTP_UNAUTHORIZED,
            cg_error_envelope(r->pool, "authentication_error", "invalid token", rq->request_id), 0);
    }
    sink = cg_tel_sink_of(r->server);
    cg_note_set(r, "claude-reason", cg_otlp_signal_name((cg_otlp_signal_e)sig));
    if (!cg_tel.running || !cg_tel_wanted(sink, (cg_otlp_signal_e)sig)) {
        /* accepted and discarded, as the reference does without a destination */
        if (ap_discard_request_body(r) != OK) {
            r->connection->keepalive = AP_CONN_CLOSE;
        }
        cg_note_set(r, "claude-decision", "telemetry_discarded");
        r->status = HTTP_OK;
        ap_set_content_length(r, 0);
        return OK;
    }
    if (apr_pool_create_unmanaged_ex(&p, NULL, NULL) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    body = cg_tel_read(r, p, cg_dir_max_body(cg_dir_get(r)), &len, &status);
    if (body == NULL) {
        apr_pool_destroy(p);
        r->connection->keepalive = AP_CONN_CLOSE;
        cg_note_set(r, "claude-decision",
                    status == HTTP_REQUEST_ENTITY_TOO_LARGE ? "too_large" : "invalid_request");
        return cg_tel_text(r, status,
                           status == HTTP_REQUEST_ENTITY_TOO_LARGE ? "payload too large"
                                                                   : "bad request");
    }
    it = apr_pcalloc(p, sizeof(*it));
    it->pool = p;
    it->sink = sink;
    it->sig = (cg_otlp_signal_e)sig;
    it->body = body;
    it->len = len;
    it->charge = len + 1024;
    it->content_type = apr_pstrdup(p, apr_table_get(r->headers_in, "Content-Type"));
    it->content_encoding = apr_pstrdup(p, apr_table_get(r->headers_in, "Content-Encoding"));
    it->id.user_id = apr_pstrdup(p, rq->identity.sub);
    it->id.email = apr_pstrdup(p, rq->identity.email);
    it->id.groups = rq->identity.groups ? apr_array_pstrcat(p, rq->identity.groups, ',') : "";
    it->id.source =
        apr_pstrcat(p, "mod_claude-", rq->identity.source ? rq->identity.source : "session", NULL);
    it->request_id = apr_pstrdup(p, rq->request_id);
    if (cg_tel_push(it)) {
        cg_note_set(r, "claude-decision", "telemetry_accepted");
    }
    else {
        apr_pool_destroy(p);
        cg_note_set(r, "claude-decision", "telemetry_dropped");
    }
    r->status = HTTP_OK;
    ap_set_content_length(r, 0);
    return OK;
}

/* --- own metrics: log_transaction ----------------------------------------- */

static apr_int64_t cg_tel_note_int(const char *v)
{
    return v != NULL && *v != '\0' ? cg_atoi64(v) : -1;
}

/* Adds the request to the aggregate: no I/O, one short lock. */
static int cg_tel_log_transaction(request_rec *r)
{
    cg_tel_sink_t *sink;
    const cg_req_t *rq;
    const cg_dir_conf_t *dc;
    const request_rec *last = r;
    cg_metrics_req_t mr;
    cg_notes_t n;

    if (!cg_tel.running || (sink = cg_tel_sink_of(r->server)) == NULL || sink->mlock == NULL ||
        (rq = cg_req_find(r)) == NULL) {
        return DECLINED;
    }
    while (last->next != NULL) {
        last = last->next;
    }
    dc = cg_dir_get(r);
    cg_notes_get_all(r, &n);
    memset(&mr, 0, sizeof(mr));
    mr.status = last->status;
    mr.model = n.model_served != NULL ? n.model_served : n.model;
    mr.upstream = n.upstream; /* the router's choice */
    if (mr.upstream == NULL) {
        mr.upstream = cg_dir_enabled(dc) ? cg_dir_upstream_name(dc) : NULL;
    }
    mr.failovers = (int)cg_tel_note_int(n.failovers);
    mr.ttfb = cg_tel_note_int(n.upstream_ttfb_us);
    mr.decision = n.decision;
    mr.user_id = rq->identity.sub;
    mr.user_email = rq->identity.email;
    mr.input_tokens = cg_tel_note_int(n.usage_in);
    mr.output_tokens = cg_tel_note_int(n.usage_out);
    mr.cache_read_tokens = cg_tel_note_int(n.usage_cache_read);
    mr.cache_write_tokens = cg_tel_note_int(n.usage_cache_write);
    mr.cost_micro_usd = cg_tel_note_int(n.cost_micro_usd);
    mr.duration = apr_time_now() - r->request_time;
    apr_thread_mutex_lock(sink->mlock);
    if (sink->m != NULL) { /* NULL: no metrics destination, or the child is ending */
        cg_metrics_record(sink->m, &mr);
    }
    apr_thread_mutex_unlock(sink->mlock);
    return DECLINED;
}

/* --- the background thread ---------------------------------------------- */

static size_t cg_tel_discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static int cg_tel_dest_takes(const cg_tel_dest_t *d, cg_otlp_signal_e sig)
{
    return sig == CG_OTLP_METRICS ? d->conf->metrics
           : sig == CG_OTLP_LOGS  ? d->conf->logs
                                  : d->conf->traces;
}

static CURL *cg_tel_easy(cg_tel_xfer_t *x, const char *url, long timeout_ms)
{
    const cg_tel_item_t *it = x->item;
    CURL *h = curl_easy_init();
    int i;

    if (h == NULL) {
        return NULL;
    }
    x->hdrs = curl_slist_append(NULL, apr_pstrcat(it->pool, "Content-Type: ",
                                                  it->content_type && *it->content_type
                                                      ? it->content_type
                                                      : "application/x-protobuf",
                                                  NULL));
    if (it->content_encoding != NULL && *it->content_encoding != '\0') {
        x->hdrs = curl_slist_append(
            x->hdrs, apr_pstrcat(it->pool, "Content-Encoding: ", it->content_encoding, NULL));
    }
    x->hdrs = curl_slist_append(x->hdrs, "Expect:"); /* no 100-continue round trip */
    for (i = 0; i < x->dest->conf->headers->nelts; i++) {
        /* secret: the configured headers are never logged */
        x->hdrs = curl_slist_append(x->hdrs, APR_ARRAY_IDX(x->dest->conf->headers, i, char *));
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, it->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mod_claude/" CG_VERSION);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threaded MPM: no SIGALRM */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cg_tel_discard);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    x->h = h;
    return h;
}

static void cg_tel_xfer_free(cg_tel_xfer_t *x)
{
    cg_tel_item_t *it = x->item;

    if (x->prev != NULL) {
        x->prev->next = x->next;
    }
    else {
        cg_tel.xfers = x->next;
    }
    if (x->next != NULL) {
        x->next->prev = x->prev;
    }
    curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    cg_tel.transfers--;
    if (--it->refs == 0) {
        cg_tel_item_free(it); /* x lives in its pool */
    }
}

/* A destination's result feeds its breaker. */
static void cg_tel_dest_result(cg_tel_dest_t *d, int ok, const char *what)
{
    const cg_tel_conf_t *c = cg_tel.conf;

    d->probing = 0;
    if (ok) {
        if (d->open) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, cg_tel.s,
                         CG_LOGNO(0704) "%s: delivering again", d->conf->label);
        }
        d->open = 0;
        d->failures = 0;
        return;
    }
    d->failures++;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, cg_tel.s, "%s: %s", d->conf->label, what);
    if (d->failures >= c->breaker_failures) {
        if (!d->open) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cg_tel.s,
                         CG_LOGNO(0703) "%s: %d failures in a row (last: %s); skipped for %d s",
                         d->conf->label, d->failures, what, c->breaker_seconds);
        }
        d->open = 1;
        d->open_until = apr_time_now() + apr_time_from_sec(c->breaker_seconds);
    }
}

/* Whether a destination may be tried now; an open breaker lets one probe
 * through once its time is up. */
static int cg_tel_dest_ready(cg_tel_dest_t *d)
{
    if (!d->open) {
        return 1;
    }
    if (d->probing || apr_time_now() < d->open_until) {
        return 0;
    }
    d->probing = 1;
    return 1;
}

/* One transfer per destination that takes the signal; the item is freed by
 * the last one to end (or here, when none starts). */
static void cg_tel_start(cg_tel_item_t *it)
{
    cg_tel_sink_t *sink = it->sink;
    int i;

    if (!it->own) {
        const char *out, *why;
        apr_size_t out_len;
        apr_status_t rv = cg_otlp_stamp(it->pool, it->sig, cg_otlp_format_of(it->content_type),
                                        it->content_encoding, it->body, it->len, CG_TEL_MAX_BYTES,
                                        &it->id, &out, &out_len, &why);
        if (rv != APR_SUCCESS) {
            /* never forwarded unstamped; said once per child, then counted */
            if (!cg_tel.unparsable_logged) {
                cg_tel.unparsable_logged = 1;
                ap_log_error(APLOG_MARK, APLOG_WARNING, rv, cg_tel.s,
                             CG_LOGNO(0702) "telemetry: a %s export of %s (request %s) was "
                                            "dropped: %s; later ones are only counted (CG0701)",
                             cg_otlp_signal_name(it->sig), it->id.user_id, it->request_id, why);
            }
            cg_tel_count_drop(sink, rv == APR_ENOTIMPL ? CG_DROP_UNSUPPORTED : CG_DROP_UNPARSABLE);
            cg_tel_item_free(it);
            return;
        }
        it->body = out;
        it->len = out_len;
    }
    for (i = 0; i < sink->ndests; i++) {
        cg_tel_dest_t *d = &sink->dests[i];
        cg_tel_xfer_t *x;

        if (!cg_tel_dest_takes(d, it->sig)) {
            continue;
        }
        if (!cg_tel_dest_ready(d)) {
            cg_tel_count_drop(sink, CG_DROP_BREAKER_OPEN);
            continue;
        }
        x = apr_pcalloc(it->pool, sizeof(*x));
        x->item = it;
        x->dest = d;
        if (cg_tel_easy(
                x, apr_pstrcat(it->pool, d->conf->url, "/v1/", cg_otlp_signal_name(it->sig), NULL),
                cg_tel.conf->timeout_ms) == NULL ||
            curl_multi_add_handle(cg_tel.multi, x->h) != CURLM_OK) {
            if (x->h != NULL) {
                curl_easy_cleanup(x->h);
            }
            curl_slist_free_all(x->hdrs);
            d->probing = 0;
            cg_tel_count_drop(sink, CG_DROP_FAILED);
            continue;
        }
        it->refs++;
        cg_tel.transfers++;
        x->next = cg_tel.xfers;
        if (x->next != NULL) {
            x->next->prev = x;
        }
        cg_tel.xfers = x;
    }
    if (it->refs == 0) {
        cg_tel_item_free(it);
    }
}

static void cg_tel_reap(void)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(cg_tel.multi, &left)) != NULL) {
        cg_tel_xfer_t *x = NULL;
        long status = 0;
        const char *what;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(cg_tel.multi, msg->easy_handle);
        if (msg->data.result != CURLE_OK) {
            what = x->err[0] ? apr_pstrdup(x->item->pool, x->err)
                             : curl_easy_strerror(msg->data.result);
        }
        else {
            what = apr_psprintf(x->item->pool, "HTTP %ld", status);
        }
        if (msg->data.result != CURLE_OK || status < 200 || status > 299) {
            cg_tel_count_drop(x->item->sink, CG_DROP_FAILED);
            cg_tel_dest_result(x->dest, 0, what);
        }
        else {
            cg_tel_dest_result(x->dest, 1, what);
        }
        cg_tel_xfer_free(x);
    }
}

/* Swap a sink's aggregate for a fresh one and send the old one; the drops
 * counted since the last export go in first. */
static void cg_tel_export(cg_tel_sink_t *sink, apr_time_t now, int final)
{
    apr_uint64_t drops[CG_DROP_N];
    apr_pool_t *old_pool, *new_pool = NULL;
    cg_metrics_t *old;
    cg_tel_item_t *it;
    const char *out;
    apr_size_t out_len;
    int i;

    apr_thread_mutex_lock(cg_tel.lock);
    memcpy(drops, sink->drops, sizeof(drops));
    memset(sink->drops, 0, sizeof(sink->drops));
    apr_thread_mutex_unlock(cg_tel.lock);
    if (!final && apr_pool_create_unmanaged_ex(&new_pool, NULL, NULL) != APR_SUCCESS) {
        return;
    }
    apr_thread_mutex_lock(sink->mlock);
    for (i = 0; i < CG_DROP_N; i++) {
        if (drops[i] > 0) {
            cg_metrics_dropped(sink->m, cg_drop_names[i], drops[i]);
        }
    }
    old = sink->m;
    old_pool = sink->mpool;
    if (cg_metrics_series(old) == 0 && !final) {
        apr_thread_mutex_unlock(sink->mlock);
        apr_pool_destroy(new_pool);
        return;
    }
    if (!final) {
        sink->mpool = new_pool;
        sink->m = cg_metrics_create(new_pool, now, CG_TEL_MAX_SERIES);
    }
    else {
        sink->mpool = NULL;
        sink->m = NULL;
    }
    apr_thread_mutex_unlock(sink->mlock);
    if (cg_metrics_overflow(old) > 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cg_tel.s,
                     CG_LOGNO(0705) "telemetry: %" APR_UINT64_T_FMT " series over the limit of "
                                    "%d were not counted this interval",
                     cg_metrics_overflow(old), CG_TEL_MAX_SERIES);
    }
    if (cg_metrics_series(old) == 0 ||
        cg_metrics_encode(old_pool, old, now, sink->resource, &out, &out_len) != APR_SUCCESS) {
        apr_pool_destroy(old_pool);
        return;
    }
    it = apr_pcalloc(old_pool, sizeof(*it));
    it->pool = old_pool;
    it->sink = sink;
    it->sig = CG_OTLP_METRICS;
    it->own = 1;
    it->content_type = "application/x-protobuf";
    it->body = out;
    it->len = out_len;
    if (!final) {
        cg_tel_start(it);
        return;
    }
    /* child exit: one short synchronous try per destination, then done */
    for (i = 0; i < sink->ndests; i++) {
        cg_tel_xfer_t x;
        if (!sink->dests[i].conf->metrics || sink->dests[i].open) {
            continue;
        }
        memset(&x, 0, sizeof(x));
        x.item = it;
        x.dest = &sink->dests[i];
        if (cg_tel_easy(&x, apr_pstrcat(old_pool, x.dest->conf->url, "/v1/metrics", NULL),
                        CG_TEL_FINAL_TIMEOUT_MS) != NULL) {
            curl_easy_perform(x.h);
            curl_easy_cleanup(x.h);
        }
        curl_slist_free_all(x.hdrs);
    }
    apr_pool_destroy(old_pool);
}

/* At most every CG_TEL_REPORT_EVERY: what was dropped since the last line. */
static void cg_tel_report(void)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, cg_tel.sinks); hi; hi = apr_hash_next(hi)) {
        cg_tel_sink_t *sink = apr_hash_this_val(hi);
        apr_uint64_t d[CG_DROP_N], total = 0;
        int i;

        apr_thread_mutex_lock(cg_tel.lock);
        for (i = 0; i < CG_DROP_N; i++) {
            d[i] = sink->unreported[i];
            sink->unreported[i] = 0;
            total += d[i];
        }
        apr_thread_mutex_unlock(cg_tel.lock);
        if (total > 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cg_tel.s,
                         CG_LOGNO(0701) "telemetry: %" APR_UINT64_T_FMT " exports or deliveries "
                                        "dropped (queue full %" APR_UINT64_T_FMT
                                        ", unparsable %" APR_UINT64_T_FMT
                                        ", unsupported %" APR_UINT64_T_FMT
                                        ", destination skipped %" APR_UINT64_T_FMT
                                        ", delivery failed %" APR_UINT64_T_FMT ")",
                         total, d[CG_DROP_QUEUE_FULL], d[CG_DROP_UNPARSABLE],
                         d[CG_DROP_UNSUPPORTED], d[CG_DROP_BREAKER_OPEN], d[CG_DROP_FAILED]);
        }
    }
}

static void *APR_THREAD_FUNC cg_tel_run(apr_thread_t *thread, void *data)
{
    const cg_tel_conf_t *c = cg_tel.conf;
    apr_time_t now = apr_time_now();
    apr_time_t next_export = now + apr_time_from_sec(c->interval ? c->interval : 1);
    apr_time_t next_report = now + CG_TEL_REPORT_EVERY;
    apr_hash_index_t *hi;
    int running;

    (void)data;
    /* named for top -H, perf and gdb: the child's one telemetry exporter */
#ifdef __linux__
    pthread_setname_np(pthread_self(), "claude-otlp");
#endif
    for (;;) {
        int stop, wait_ms = 1000;
        cg_tel_item_t *it;

        apr_thread_mutex_lock(cg_tel.lock);
        while (!(stop = cg_tel.stopping) && cg_tel.count > 0 &&
               cg_tel.transfers < c->transfers_max) {
            it = cg_tel.ring[cg_tel.head];
            cg_tel.head = (cg_tel.head + 1) % c->queue_max;
            cg_tel.count--;
            apr_thread_mutex_unlock(cg_tel.lock);
            cg_tel_start(it);
            apr_thread_mutex_lock(cg_tel.lock);
        }
        apr_thread_mutex_unlock(cg_tel.lock);
        if (stop) {
            break;
        }
        now = apr_time_now();
        if (c->interval > 0 && now >= next_export) {
            for (hi = apr_hash_first(NULL, cg_tel.sinks); hi; hi = apr_hash_next(hi)) {
                cg_tel_sink_t *sink = apr_hash_this_val(hi);
                if (sink->m != NULL) {
                    cg_tel_export(sink, now, 0);
                }
            }
            next_export = now + apr_time_from_sec(c->interval);
        }
        if (now >= next_report) {
            cg_tel_report();
            next_report = now + CG_TEL_REPORT_EVERY;
        }
        curl_multi_perform(cg_tel.multi, &running);
        cg_tel_reap();
        if (c->interval > 0 && next_export - now < apr_time_from_msec(wait_ms)) {
            wait_ms = (int)apr_time_as_msec(next_export - now) + 1;
        }
        curl_multi_poll(cg_tel.multi, NULL, 0, wait_ms, NULL);
    }
    /* stopping: what is in flight or queued is abandoned, not waited for */
    while (cg_tel.xfers != NULL) {
        curl_multi_remove_handle(cg_tel.multi, cg_tel.xfers->h);
        cg_tel_xfer_free(cg_tel.xfers);
    }
    apr_thread_mutex_lock(cg_tel.lock);
    while (cg_tel.count > 0) {
        cg_tel_item_t *it;
        it = cg_tel.ring[cg_tel.head];
        cg_tel.head = (cg_tel.head + 1) % c->queue_max;
        cg_tel.count--;
        apr_thread_mutex_unlock(cg_tel.lock);
        cg_tel_item_free(it);
        apr_thread_mutex_lock(cg_tel.lock);
    }
    apr_thread_mutex_unlock(cg_tel.lock);
    cg_tel_report();
    for (hi = apr_hash_first(NULL, cg_tel.sinks); hi; hi = apr_hash_next(hi)) {
        cg_tel_sink_t *sink = apr_hash_this_val(hi);
        if (sink->m != NULL) {
            cg_tel_export(sink, apr_time_now(), 1);
        }
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* --- child lifecycle ------------------------------------------------------ */

/* A pre-cleanup of pchild: runs before its subpools go, so the thread is
 * joined while everything it uses still exists. */
static apr_status_t cg_tel_child_exit(void *unused)
{
    apr_status_t rv;

    (void)unused;
    if (!cg_tel.running) {
        return APR_SUCCESS;
    }
    apr_thread_mutex_lock(cg_tel.lock);
    cg_tel.stopping = 1;
    curl_multi_wakeup(cg_tel.multi);
    apr_thread_mutex_unlock(cg_tel.lock);
    apr_thread_join(&rv, cg_tel.thread);
    curl_multi_cleanup(cg_tel.multi);
    cg_tel.multi = NULL;
    cg_tel.running = 0;
    return APR_SUCCESS;
}

static cg_tel_sink_t *cg_tel_sink_make(apr_pool_t *p, const cg_telemetry_t *tel)
{
    cg_tel_sink_t *sink = apr_pcalloc(p, sizeof(*sink));
    cg_otlp_kv_t *kv;
    char host[APRMAXHOSTLEN + 1];
    int i;

    sink->tel = tel;
    sink->ndests = tel->dests->nelts;
    sink->dests = apr_pcalloc(p, sizeof(*sink->dests) * (apr_size_t)(sink->ndests + 1));
    for (i = 0; i < sink->ndests; i++) {
        sink->dests[i].conf = &APR_ARRAY_IDX(tel->dests, i, cg_telemetry_dest_t);
        sink->metrics |= sink->dests[i].conf->metrics;
    }
    sink->resource = apr_array_make(p, 4, sizeof(cg_otlp_kv_t));
    kv = apr_array_push(sink->resource);
    kv->key = "service.name";
    kv->value = "mod_claude";
    kv = apr_array_push(sink->resource);
    kv->key = "service.version";
    kv->value = CG_VERSION;
    kv = apr_array_push(sink->resource);
    kv->key = "service.instance.id";
    kv->value = cg_tel.instance;
    if (apr_gethostname(host, sizeof(host), p) == APR_SUCCESS) {
        kv = apr_array_push(sink->resource);
        kv->key = "host.name";
        kv->value = apr_pstrdup(p, host);
    }
    for (i = 0; i < tel->resource_attributes->nelts; i++) {
        const cg_policy_kv_t *ra = &APR_ARRAY_IDX(tel->resource_attributes, i, cg_policy_kv_t);
        kv = apr_array_push(sink->resource);
        kv->key = ra->key;
        kv->value = ra->value;
    }
    return sink;
}

static apr_status_t cg_tel_sink_cleanup(void *data)
{
    cg_tel_sink_t *sink = data;

    /* after the join: nobody else holds the aggregate */
    if (sink->mpool != NULL) {
        apr_pool_destroy(sink->mpool);
        sink->mpool = NULL;
        sink->m = NULL;
    }
    return APR_SUCCESS;
}

static void cg_tel_child_init(apr_pool_t *pchild, server_rec *s)
{
    static cg_tel_conf_t conf;
    server_rec *v;
    apr_status_t rv;
    char host[APRMAXHOSTLEN + 1];

    memset(&cg_tel, 0, sizeof(cg_tel));
    conf = cg_tel_effective(cg_srv_get(s)->tel);
    cg_tel.conf = &conf;
    cg_tel.s = s;
    apr_pool_create(&cg_tel.pool, pchild);
    apr_pool_tag(cg_tel.pool, "claude_telemetry");
    cg_tel.sinks = apr_hash_make(cg_tel.pool);
    if (apr_gethostname(host, sizeof(host), cg_tel.pool) != APR_SUCCESS) {
        apr_cpystrn(host, "localhost", sizeof(host));
    }
    /* unique per child: pid numbers come back, the random part does not */
    cg_tel.instance = apr_psprintf(cg_tel.pool, "%s:%" APR_PID_T_FMT ":%.8s", host, getpid(),
                                   cg_uuid4(cg_tel.pool));
    for (v = s; v != NULL; v = v->next) {
        const cg_policy_t *pol = cg_srv_get(v)->policy;
        const cg_telemetry_t *tel = pol ? pol->telemetry : NULL;
        cg_tel_sink_t *sink;

        if (tel == NULL || tel->dests->nelts == 0 ||
            apr_hash_get(cg_tel.sinks, &tel, sizeof(tel)) != NULL) {
            continue;
        }
        sink = cg_tel_sink_make(cg_tel.pool, tel);
        if (apr_thread_mutex_create(&sink->mlock, APR_THREAD_MUTEX_DEFAULT, cg_tel.pool) !=
            APR_SUCCESS) {
            continue;
        }
        if (sink->metrics && conf.interval > 0 &&
            apr_pool_create_unmanaged_ex(&sink->mpool, NULL, NULL) == APR_SUCCESS) {
            sink->m = cg_metrics_create(sink->mpool, apr_time_now(), CG_TEL_MAX_SERIES);
            apr_pool_cleanup_register(cg_tel.pool, sink, cg_tel_sink_cleanup,
                                      apr_pool_cleanup_null);
        }
        apr_hash_set(cg_tel.sinks, apr_pmemdup(cg_tel.pool, &tel, sizeof(tel)), sizeof(tel), sink);
    }
    if (apr_hash_count(cg_tel.sinks) == 0) {
        return; /* no destination anywhere: no thread */
    }
    cg_tel.ring = apr_pcalloc(cg_tel.pool, sizeof(*cg_tel.ring) * (apr_size_t)conf.queue_max);
    if ((rv = apr_thread_mutex_create(&cg_tel.lock, APR_THREAD_MUTEX_DEFAULT, cg_tel.pool)) !=
            APR_SUCCESS ||
        (cg_tel.multi = curl_multi_init()) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CG_LOGNO(0700) "telemetry: cannot set up the relay; exports are discarded");
        return;
    }
    /* the connections the multi handle keeps are the child's: one per
     * destination is plenty at telemetry rates */
    curl_multi_setopt(cg_tel.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conf.transfers_max);
    cg_tel.running = 1;
    rv = apr_thread_create(&cg_tel.thread, NULL, cg_tel_run, NULL, cg_tel.pool);
    if (rv != APR_SUCCESS) {
        cg_tel.running = 0;
        curl_multi_cleanup(cg_tel.multi);
        cg_tel.multi = NULL;
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CG_LOGNO(0706) "telemetry: cannot start the relay thread; exports are "
                                    "discarded");
        return;
    }
    apr_pool_pre_cleanup_register(pchild, NULL, cg_tel_child_exit);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "telemetry relay running as %s (%u configurations)",
                 cg_tel.instance, apr_hash_count(cg_tel.sinks));
}

void cg_telemetry_register_hooks(apr_pool_t *p)
{
    /* the usage notes are complete once mod_claude_spend has logged */
    static const char *const after_spend[] = {"mod_claude_spend.c", NULL};

    (void)p;
    ap_hook_check_config(cg_tel_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(cg_tel_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(cg_telemetry_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(cg_tel_log_transaction, after_spend, NULL, APR_HOOK_MIDDLE);
}
