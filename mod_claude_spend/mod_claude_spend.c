/* mod_claude_spend: metering of Claude Code traffic through mod_claude_gateway.
 *
 *   ClaudeSpend On|Off   (dir) meter the Messages answers of this location
 *
 * Hooks: post_config checks that mod_claude_gateway is loaded (its optional
 * functions are this module's only link to it); fixups, ordered after the
 * gateway's, adds the CLAUDE_USAGE filter to admitted requests;
 * log_transaction publishes the usage of streams that never reached EOS
 * (client abort) so no request goes unrecorded; the handler serves the
 * spend admin API and /api/oauth/usage (cs_admin.c). */
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_thread_mutex.h>
#include <apr_optional.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "cs_private.h"
#include "cs_filter.h"
#include "cs_price.h"
#include "cs_admin.h"
#include "cs_admit.h"
#include "cs_period.h"
#include "cs_settle.h"
#include <libpq-fe.h>
#include <jansson.h>
#include <unixd.h>
#include <unistd.h>
#include <errno.h>

APR_OPTIONAL_FN_TYPE(claude_gateway_identity) * cs_identity;
APR_OPTIONAL_FN_TYPE(claude_gateway_request_id) * cs_request_id;
APR_OPTIONAL_FN_TYPE(claude_gateway_db_acquire) * cs_db_acquire;
APR_OPTIONAL_FN_TYPE(claude_gateway_db_release) * cs_db_release;
APR_OPTIONAL_FN_TYPE(claude_gateway_refuse) * cs_refuse_fn;
APR_OPTIONAL_FN_TYPE(claude_gateway_admin_auth) * cs_admin_auth_fn;
APR_OPTIONAL_FN_TYPE(claude_gateway_pricing) * cs_pricing_fn;
APR_OPTIONAL_FN_TYPE(claude_gateway_note_set) * cs_note_set;
APR_OPTIONAL_FN_TYPE(claude_gateway_note_get) * cs_note_get;

static int cs_price_compute(void *ctx, const char *model, cs_price_t *price,
                            apr_int64_t *multiplier_ppm)
{
    request_rec *r = ctx;
    claude_gateway_price_t site;

    cs_price_lookup(model, price);
    *multiplier_ppm = 1000000;
    if (cs_pricing_fn != NULL) {
        cs_pricing_fn(r, model, &site);
        *multiplier_ppm = site.multiplier_ppm;
        if (site.overridden) {
            price->input = site.input;
            price->output = site.output;
            price->cache_read = site.cache_read;
            price->cache_write = site.cache_write;
            price->known = 1;
        }
    }
    return price->known;
}

int cs_price_for(request_rec *r, const char *model, cs_price_t *price, apr_int64_t *multiplier_ppm)
{
    /* Besides the model, the site's price depends on r's location and its
     * "claude-model" note, both settled before our fixups: within the
     * initial request only the model varies, so the estimate's lookup
     * serves the cost's when the answer names the same model. */
    if (r->main == NULL && r->prev == NULL) {
        return cs_price_memo_get(&cs_req_get(r)->price_memo, model, cs_price_compute, r, price,
                                 multiplier_ppm);
    }
    return cs_price_compute(r, model, price, multiplier_ppm);
}

static ap_filter_rec_t *cs_usage_filter_handle;

static void *cs_dir_create(apr_pool_t *p, char *dir)
{
    cs_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    (void)dir;
    dc->enabled = CS_UNSET;
    return dc;
}

static void *cs_dir_merge(apr_pool_t *p, void *basev, void *addv)
{
    const cs_dir_conf_t *base = basev, *add = addv;
    cs_dir_conf_t *n = apr_pcalloc(p, sizeof(*n));

    n->enabled = add->enabled != CS_UNSET ? add->enabled : base->enabled;
    return n;
}

static int cs_dir_enabled(const request_rec *r)
{
    const cs_dir_conf_t *dc = ap_get_module_config(r->per_dir_config, &claude_spend_module);

    return dc->enabled == CS_UNSET ? 0 : dc->enabled;
}

static void *cs_srv_create(apr_pool_t *p, server_rec *s)
{
    cs_srv_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    (void)s;
    sc->group_mode_max = CS_UNSET;
    sc->fail_open = CS_UNSET;
    sc->reservation_ttl = CS_UNSET;
    sc->lease_requests = CS_UNSET;
    sc->lease_age = CS_UNSET;
    return sc;
}

const cs_srv_conf_t *cs_srv_get(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &claude_spend_module);
}

const char *cs_srv_group_mode(const cs_srv_conf_t *sc)
{
    return sc->group_mode_max == 1 ? "max" : "min";
}

int cs_srv_fail_open(const cs_srv_conf_t *sc)
{
    return sc->fail_open == 1;
}

int cs_srv_reservation_ttl(const cs_srv_conf_t *sc)
{
    return sc->reservation_ttl == CS_UNSET ? 900 : sc->reservation_ttl;
}

int cs_srv_lease_requests(const cs_srv_conf_t *sc)
{
    return sc->lease_requests == CS_UNSET ? 1024 : sc->lease_requests;
}

apr_interval_time_t cs_srv_lease_age(const cs_srv_conf_t *sc)
{
    return apr_time_from_sec(sc->lease_age == CS_UNSET ? 5 : sc->lease_age);
}

static void *cs_srv_merge(apr_pool_t *p, void *basev, void *addv)
{
    const cs_srv_conf_t *base = basev, *add = addv;
    cs_srv_conf_t *n = apr_pcalloc(p, sizeof(*n));

    n->journal = add->journal ? add->journal : base->journal;
    n->group_mode_max =
        add->group_mode_max != CS_UNSET ? add->group_mode_max : base->group_mode_max;
    n->fail_open = add->fail_open != CS_UNSET ? add->fail_open : base->fail_open;
    n->blocked_msg = add->blocked_msg ? add->blocked_msg : base->blocked_msg;
    n->reservation_ttl =
        add->reservation_ttl != CS_UNSET ? add->reservation_ttl : base->reservation_ttl;
    n->lease_requests =
        add->lease_requests != CS_UNSET ? add->lease_requests : base->lease_requests;
    n->lease_age = add->lease_age != CS_UNSET ? add->lease_age : base->lease_age;
    return n;
}

static const char *cs_set_journal(cmd_parms *cmd, void *dcv, const char *arg)
{
    cs_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_spend_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dcv;
    if (err != NULL) {
        return err;
    }
    sc->journal = ap_server_root_relative(cmd->pool, arg);
    return NULL;
}

static const char *cs_set_group_mode(cmd_parms *cmd, void *dcv, const char *arg)
{
    cs_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_spend_module);

    (void)dcv;
    if (strcasecmp(arg, "min") != 0 && strcasecmp(arg, "max") != 0) {
        return apr_psprintf(cmd->pool, "ClaudeSpendGroupLimitMode: '%s' is neither min nor max",
                            arg);
    }
    sc->group_mode_max = strcasecmp(arg, "max") == 0;
    return NULL;
}

static const char *cs_set_on_error(cmd_parms *cmd, void *dcv, const char *arg)
{
    cs_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_spend_module);

    (void)dcv;
    if (strcasecmp(arg, "open") != 0 && strcasecmp(arg, "closed") != 0) {
        return apr_psprintf(cmd->pool, "ClaudeSpendOnError: '%s' is neither open nor closed", arg);
    }
    sc->fail_open = strcasecmp(arg, "open") == 0;
    return NULL;
}

static const char *cs_set_blocked_msg(cmd_parms *cmd, void *dcv, const char *arg)
{
    cs_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_spend_module);

    (void)dcv;
    if (*arg == '\0' || strlen(arg) > 500) {
        return "ClaudeSpendBlockedMessage: give 1 to 500 characters";
    }
    sc->blocked_msg = arg;
    return NULL;
}

static const char *cs_set_reservation_ttl(cmd_parms *cmd, void *dcv, const char *arg)
{
    cs_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_spend_module);
    apr_int64_t v;
    char *end;

    (void)dcv;
    v = apr_strtoi64(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < 10 || v > 86400) {
        return apr_psprintf(cmd->pool,
                            "ClaudeSpendReservationTTL: '%s' is not a number of seconds "
                            "from 10 to 86400",
                            arg);
    }
    sc->reservation_ttl = (int)v;
    return NULL;
}

/* ClaudeSpendLease <requests> [<seconds>]: leases are per child, so only
 * the main server's setting counts. */
static const char *cs_set_lease(cmd_parms *cmd, void *dcv, const char *n, const char *age)
{
    cs_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_spend_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_int64_t v;
    char *end;

    (void)dcv;
    if (err != NULL) {
        return err;
    }
    v = apr_strtoi64(n, &end, 10);
    if (*n == '\0' || *end != '\0' || v < 1 || v > 1000000) {
        return apr_psprintf(
            cmd->pool, "ClaudeSpendLease: '%s' is not a number of requests from 1 to 1000000", n);
    }
    sc->lease_requests = (int)v;
    if (age != NULL) {
        v = apr_strtoi64(age, &end, 10);
        if (*age == '\0' || *end != '\0' || v < 1 || v > 3600) {
            return apr_psprintf(
                cmd->pool, "ClaudeSpendLease: '%s' is not a number of seconds from 1 to 3600", age);
        }
        sc->lease_age = (int)v;
    }
    return NULL;
}

static const char *cs_set_enabled(cmd_parms *cmd, void *dcv, int flag)
{
    cs_dir_conf_t *dc = dcv;

    (void)cmd;
    dc->enabled = flag;
    return NULL;
}

/* Models already warned about in this child: the warning comes once per id,
 * as the reference's does, not once per request. */
static apr_thread_mutex_t *cs_warn_mutex;
static apr_hash_t *cs_warned;
static apr_pool_t *cs_warn_pool;

static int cs_price_warn_first(const char *model)
{
    int first = 0;

    if (cs_warn_mutex == NULL) {
        return 1;
    }
    apr_thread_mutex_lock(cs_warn_mutex);
    /* bounded: a client cycling through made-up ids cannot grow it forever */
    if (apr_hash_get(cs_warned, model, APR_HASH_KEY_STRING) == NULL &&
        apr_hash_count(cs_warned) < 1024) {
        apr_hash_set(cs_warned, apr_pstrdup(cs_warn_pool, model), APR_HASH_KEY_STRING, "");
        first = 1;
    }
    apr_thread_mutex_unlock(cs_warn_mutex);
    return first;
}

apr_status_t cs_pool_create_shared(apr_pool_t **out, apr_pool_t *pchild, const char *tag,
                                   apr_size_t max_free)
{
    apr_allocator_t *allocator;
    apr_thread_mutex_t *mutex;
    apr_status_t rv;

    /* pchild's allocator has no mutex: a pool that more than one thread
     * uses, even one at a time, must not take memory from it while other
     * threads do (lost free-list nodes: a leak, or worse) */
    if ((rv = apr_allocator_create(&allocator)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_thread_mutex_create(&mutex, APR_THREAD_MUTEX_DEFAULT, pchild)) != APR_SUCCESS ||
        (rv = apr_pool_create_ex(out, pchild, NULL, allocator)) != APR_SUCCESS) {
        apr_allocator_destroy(allocator);
        return rv;
    }
    apr_allocator_mutex_set(allocator, mutex);
    apr_allocator_owner_set(allocator, *out);
    /* freed blocks beyond max_free go back to the heap */
    apr_allocator_max_free_set(allocator, max_free);
    apr_pool_tag(*out, tag);
    return APR_SUCCESS;
}

/* This child's pid, set in child_init: per-thread caches made in another
 * process (the parent, before the fork) are not this child's. */
static pid_t cs_child_pid;

static void cs_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    cs_child_pid = getpid();
    if (cs_pool_create_shared(&cs_warn_pool, pchild, "claude_spend_warned", 512 * 1024) !=
        APR_SUCCESS) {
        apr_pool_create(&cs_warn_pool, pchild);
    }
    cs_warned = apr_hash_make(cs_warn_pool);
    rv = apr_thread_mutex_create(&cs_warn_mutex, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, CS_LOGNO(0004) "price warning mutex");
        cs_warn_mutex = NULL;
    }
    cs_settle_child_init(pchild, s);
}

cs_req_t *cs_req_get(request_rec *r)
{
    cs_req_t *rq;

    while (r->main != NULL) {
        r = r->main;
    }
    while (r->prev != NULL) {
        r = r->prev;
    }
    rq = ap_get_module_config(r->request_config, &claude_spend_module);
    if (rq == NULL) {
        rq = apr_pcalloc(r->pool, sizeof(*rq));
        ap_set_module_config(r->request_config, &claude_spend_module, rq);
    }
    return rq;
}

const char *cs_req_model(request_rec *r, cs_req_t *rq)
{
    /* read once: cs_price_for asks for it several times */
    if (r->main != NULL || r->prev != NULL) {
        return cs_note_get(r, "claude-model"); /* another request's notes */
    }
    if (!rq->model_req_read) {
        rq->model_req = cs_note_get(r, "claude-model");
        rq->model_req_read = 1;
    }
    return rq->model_req;
}

void cs_usage_publish(request_rec *r, cs_req_t *rq)
{
    const cs_usage_t *u = &rq->usage;

    if (rq->finished || rq->parser == NULL) {
        return;
    }
    rq->finished = 1;
    cs_usage_parser_finish(rq->parser, &rq->usage);
    /* notes, so `LogFormat %{claude-usage-in}n` gives auditors the figures;
     * through the gateway, which keeps a copy for the audit line */
    cs_note_set(r, "claude-usage-in", apr_off_t_toa(r->pool, u->input_tokens));
    cs_note_set(r, "claude-usage-out", apr_off_t_toa(r->pool, u->output_tokens));
    cs_note_set(r, "claude-usage-cache-read", apr_off_t_toa(r->pool, u->cache_read_tokens));
    cs_note_set(r, "claude-usage-cache-write", apr_off_t_toa(r->pool, u->cache_creation_tokens));
    cs_note_set(r, "claude-usage-partial", u->complete ? "0" : "1");
    if (u->model != NULL) {
        cs_note_set(r, "claude-model-served", u->model);
    }
    {
        cs_price_t price;
        apr_int64_t ppm;
        /* priced by what was served; the requested id when the answer named none */
        cs_price_for(r, u->model ? u->model : cs_req_model(r, rq), &price, &ppm);
        rq->cost = cs_price_scale(cs_price_cost(&price, u->input_tokens, u->output_tokens,
                                                u->cache_read_tokens, u->cache_creation_tokens),
                                  ppm);
        if (!price.known && cs_price_warn_first(u->model ? u->model : "(none)")) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          CS_LOGNO(0220) "no list price for model %s: metered at the fallback "
                                         "rate ($5/$25 per MTok)",
                          u->model ? u->model : "(none)");
        }
        cs_note_set(r, "claude-cost-micro-usd", apr_off_t_toa(r->pool, rq->cost));
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "usage in=%" APR_INT64_T_FMT " out=%" APR_INT64_T_FMT " cr=%" APR_INT64_T_FMT
                  " cw=%" APR_INT64_T_FMT " complete=%d",
                  u->input_tokens, u->output_tokens, u->cache_read_tokens, u->cache_creation_tokens,
                  u->complete);
}

static int cs_fixups(request_rec *r)
{
    const cg_identity_t *id;
    const char *decision;

    if (!ap_is_initial_req(r) || !cs_dir_enabled(r)) {
        return DECLINED;
    }
    /* only what the gateway authenticated; the filter meters only 2xx
     * answers, so refusals cost nothing, and count_tokens is free */
    if ((id = cs_identity(r)) == NULL) {
        return DECLINED;
    }
    if (strstr(r->uri, "/count_tokens") != NULL) {
        return DECLINED;
    }
    /* a request the gateway refused is answered by it, not admitted here */
    decision = cs_note_get(r, "claude-decision");
    if (decision == NULL || strcmp(decision, "allowed") != 0) {
        return DECLINED;
    }
    if (cs_admit(r, cs_req_get(r), id) == OK) {
        return DECLINED; /* refused: the gateway's handler answers */
    }
    ap_add_output_filter_handle(cs_usage_filter_handle, NULL, r, r->connection);
    return DECLINED;
}

/* The day, ISO week and month keys of t, the periods spend is counted in;
 * every request of a second asks for the same, so each thread keeps the
 * last second's. */
void cs_period_keys(apr_pool_t *p, apr_time_t t, const char **keys)
{
    static __thread struct {
        pid_t pid;
        apr_time_t sec;
        char key[3][16];
    } last;
    apr_time_t sec = apr_time_sec(t);
    int i;

    if (last.pid != cs_child_pid || last.sec != sec || last.key[0][0] == '\0') {
        static const cs_period_e periods[] = {CS_PERIOD_DAILY, CS_PERIOD_WEEKLY, CS_PERIOD_MONTHLY};
        for (i = 0; i < 3; i++) {
            apr_cpystrn(last.key[i], cs_period_key(p, periods[i], t), sizeof(last.key[i]));
        }
        last.pid = cs_child_pid;
        last.sec = sec;
    }
    for (i = 0; i < 3; i++) {
        keys[i] = apr_pstrdup(p, last.key[i]);
    }
}

/* Random bytes for ids, from the kernel a few hundred at a time: ids need
 * to be unique, not secret, and one getrandom() per id was a system call
 * per request. Per thread, and never carried across a fork. */
static void cs_id_random(unsigned char *out, apr_size_t n)
{
    static __thread struct {
        pid_t pid;
        apr_size_t left;
        unsigned char buf[320];
    } pool;

    if (pool.pid != cs_child_pid || pool.left < n) {
        if (apr_generate_random_bytes(pool.buf, sizeof(pool.buf)) != APR_SUCCESS) {
            apr_generate_random_bytes(out, n);
            return;
        }
        pool.pid = cs_child_pid;
        pool.left = sizeof(pool.buf);
    }
    pool.left -= n;
    memcpy(out, pool.buf + pool.left, n);
    memset(pool.buf + pool.left, 0, n);
}

/* A random id per ledger row, so a replayed journal line is inserted once;
 * it also names the request's reservation or lease.
 * Time first, then random: ids made later sort later, so the ledger's
 * unique index grows at its right edge instead of being written all over
 * (which after every checkpoint costs a full page image in the WAL per
 * row). 13 hex digits of microseconds since the epoch, then 76 random bits:
 * unique without coordination between children and nodes. */
const char *cs_new_id(apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[10];
    char *out = apr_palloc(p, 33);
    apr_uint64_t t = (apr_uint64_t)apr_time_now();
    int i;

    for (i = 12; i >= 0; i--) {
        out[i] = hex[t & 0xf];
        t >>= 4;
    }
    cs_id_random(b, sizeof(b));
    for (i = 0; i < 19; i++) {
        unsigned char v = b[i / 2];
        out[13 + i] = hex[i % 2 ? v & 0xf : v >> 4];
    }
    out[32] = '\0';
    return out;
}

/* Set for every server in post_config (cs_journal_defaults): a request never
 * allocates from pconf, which is neither per request nor thread-safe. */
static const char *cs_journal_path(server_rec *s)
{
    const cs_srv_conf_t *sc = ap_get_module_config(s->module_config, &claude_spend_module);

    return sc->journal;
}

static void cs_journal_defaults(apr_pool_t *pconf, server_rec *s)
{
    const char *def = ap_server_root_relative(pconf, "logs/claude-spend.journal");

    for (; s != NULL; s = s->next) {
        cs_srv_conf_t *sc = ap_get_module_config(s->module_config, &claude_spend_module);
        if (sc->journal == NULL) {
            sc->journal = def;
        }
    }
}

/* The groups as a JSON array of strings, in one allocation. Group names
 * are plain; bytes that would break the JSON become '_' whatever. */
static const char *cs_groups_json(apr_pool_t *p, const apr_array_header_t *groups)
{
    int i, n = groups != NULL ? groups->nelts : 0;
    apr_size_t len = 3; /* "[", "]", NUL */
    char *out, *d;

    for (i = 0; i < n; i++) {
        len += strlen(APR_ARRAY_IDX(groups, i, const char *)) + 3; /* quotes and a comma */
    }
    out = d = apr_palloc(p, len);
    *d++ = '[';
    for (i = 0; i < n; i++) {
        const char *g = APR_ARRAY_IDX(groups, i, const char *);
        if (i) {
            *d++ = ',';
        }
        *d++ = '"';
        for (; *g; g++) {
            *d++ = (*g == '"' || *g == '\\' || (unsigned char)*g < 0x20) ? '_' : *g;
        }
        *d++ = '"';
    }
    *d++ = ']';
    *d = '\0';
    return out;
}

/* The append-only ledger row, queued for this child's writer (cs_settle.c):
 * the request never waits for the database. */
static void cs_ledger_write(request_rec *r, cs_req_t *rq)
{
    const cg_identity_t *id = cs_identity(r);
    const cs_usage_t *u = &rq->usage;
    const char *v[CS_ROW_NV], *up;

    if (id == NULL) {
        return;
    }
    v[CS_COL_ENTRY] = rq->entry_id ? rq->entry_id : cs_new_id(r->pool);
    v[CS_COL_REQUEST] = cs_request_id(r);
    v[CS_COL_SUB] = id->sub;
    v[CS_COL_EMAIL] = id->email;
    v[CS_COL_GROUPS] = cs_groups_json(r->pool, id->groups);
    v[CS_COL_MODEL_REQ] = cs_req_model(r, rq);
    v[CS_COL_MODEL_SRV] = u->model;
    up = cs_note_get(r, "claude-upstream"); /* the gateway's router: by name */
    if (up == NULL) {
        up = r->filename && strncmp(r->filename, "proxy:", 6) == 0 ? r->filename + 6 : NULL;
    }
    if (up != NULL) {
        /* the upstream's origin, not the path or query */
        const char *slash = strstr(up, "://");
        slash = slash ? strchr(slash + 3, '/') : NULL;
        up = slash ? apr_pstrmemdup(r->pool, up, (apr_size_t)(slash - up)) : up;
    }
    v[CS_COL_UPSTREAM] = up;
    v[CS_COL_STATUS] = apr_itoa(r->pool, r->status);
    v[CS_COL_IN] = apr_off_t_toa(r->pool, u->input_tokens);
    v[CS_COL_OUT] = apr_off_t_toa(r->pool, u->output_tokens);
    v[CS_COL_CACHE_READ] = apr_off_t_toa(r->pool, u->cache_read_tokens);
    v[CS_COL_CACHE_WRITE] = apr_off_t_toa(r->pool, u->cache_creation_tokens);
    v[CS_COL_COST] = apr_off_t_toa(r->pool, rq->cost);
    v[CS_COL_PARTIAL] = u->complete ? "f" : "t";
    if (rq->period_keys[0] != NULL) {
        /* admission's: the same request_time (an internal redirect copies it) */
        memcpy(v + CS_COL_DAY, rq->period_keys, sizeof(rq->period_keys));
    }
    else {
        cs_period_keys(r->pool, r->request_time, v + CS_COL_DAY);
    }
    v[CS_COL_AT_US] = apr_off_t_toa(r->pool, (apr_off_t)r->request_time);
    v[CS_COL_LEASE] = rq->take.lease_id;
    v[CS_COL_HELD] = rq->take.lease_id ? apr_off_t_toa(r->pool, (apr_off_t)rq->take.held) : NULL;
    cs_settle_row(r, v);
}

static int cs_log_transaction(request_rec *r)
{
    cs_req_t *rq = cs_req_get(r);

    if (!rq->finished && rq->parser != NULL) {
        /* the stream ended without EOS reaching us: bill what was seen */
        cs_usage_publish(r, rq);
    }
    if (rq->finished) {
        cs_ledger_write(r, rq); /* settles its hold on the lease too */
    }
    else if (rq->reserved) {
        /* nothing to meter (an upstream error, a client gone before the
         * answer): the hold goes back at once rather than at expiry */
        cs_settle_return(r, rq->take.lease_id, rq->take.held);
    }
    /* the hold on the lease itself ends with r->pool (cs_admit.c) */
    return DECLINED;
}

static int cs_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    cs_identity = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_identity);
    cs_request_id = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_request_id);
    cs_db_acquire = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_db_acquire);
    cs_db_release = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_db_release);
    cs_refuse_fn = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_refuse);
    cs_admin_auth_fn = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_admin_auth);
    cs_pricing_fn = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_pricing);
    cs_note_set = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_note_set);
    cs_note_get = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_note_get);
    cs_journal_defaults(pconf, s);
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        /* made here, by root, and handed to the user the children run as */
        const char *path = cs_journal_path(s);
        apr_file_t *f;
        apr_status_t rv =
            apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE,
                          APR_FPROT_UREAD | APR_FPROT_UWRITE, ptemp);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         CS_LOGNO(0002) "cannot create the spend journal %s", path);
            return !OK;
        }
        apr_file_close(f);
        if (geteuid() == 0 && chown(path, ap_unixd_config.user_id, -1) != 0) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, APR_FROM_OS_ERROR(errno), s,
                         CS_LOGNO(0003) "cannot hand the spend journal %s to the server user",
                         path);
            return !OK;
        }
        /* the children's spool files: rows queued for the ledger writer */
        path = cs_settle_spool_dir(ptemp, s);
        rv = apr_dir_make(path, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE, ptemp);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         CS_LOGNO(0005) "cannot create the spool directory %s", path);
            return !OK;
        }
        if (geteuid() == 0 && chown(path, ap_unixd_config.user_id, -1) != 0) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, APR_FROM_OS_ERROR(errno), s,
                         CS_LOGNO(0006) "cannot hand the spool directory %s to the server user",
                         path);
            return !OK;
        }
    }
    if (cs_identity == NULL || cs_request_id == NULL || cs_db_acquire == NULL ||
        cs_db_release == NULL || cs_refuse_fn == NULL || cs_admin_auth_fn == NULL ||
        cs_note_set == NULL || cs_note_get == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     CS_LOGNO(0001) "mod_claude_spend needs mod_claude_gateway: LoadModule "
                                    "claude_gateway_module before claude_spend_module");
        return !OK;
    }
    return OK;
}

static void cs_register_hooks(apr_pool_t *p)
{
    /* policy (the gateway's fixups) decides before we meter */
    static const char *const after_gateway[] = {"mod_claude_gateway.c", NULL};

    (void)p;
    ap_hook_post_config(cs_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(cs_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(cs_fixups, after_gateway, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(cs_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(cs_admin_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* before mod_deflate (AP_FTYPE_CONTENT_SET) so we read plain bytes */
    cs_usage_filter_handle =
        ap_register_output_filter(CS_USAGE_FILTER, cs_usage_filter, NULL, AP_FTYPE_CONTENT_SET - 1);
}

/* clang-format off */
static const command_rec cs_cmds[] = {
    AP_INIT_FLAG("ClaudeSpend", cs_set_enabled, NULL, ACCESS_CONF | RSRC_CONF,
                 "On to meter token usage of the Messages answers here; default Off"),
    AP_INIT_TAKE1("ClaudeSpendGroupLimitMode", cs_set_group_mode, NULL, RSRC_CONF,
                  "min (default) or max: how several group caps of one period combine"),
    AP_INIT_TAKE1("ClaudeSpendOnError", cs_set_on_error, NULL, RSRC_CONF,
                  "closed (default): refuse when the caps cannot be read; open: let requests "
                  "through"),
    AP_INIT_TAKE1("ClaudeSpendBlockedMessage", cs_set_blocked_msg, NULL, RSRC_CONF,
                  "the message of the spend-cap 429, e.g. where to ask for more"),
    AP_INIT_TAKE1("ClaudeSpendReservationTTL", cs_set_reservation_ttl, NULL, RSRC_CONF,
                  "seconds a request's reserved estimate holds if it never settles (900)"),
    AP_INIT_TAKE12("ClaudeSpendLease", cs_set_lease, NULL, RSRC_CONF,
                   "requests' estimates one lease covers at most (1024; 1: a reservation per "
                   "request) and seconds a lease is used (5)"),
    AP_INIT_TAKE1("ClaudeSpendJournal", cs_set_journal, NULL, RSRC_CONF,
                  "file for ledger rows the database cannot take, replayed when it can; default "
                  "logs/claude-spend.journal"),
    {NULL}
};

/* the one symbol httpd looks up: visible despite -fvisibility=hidden */
__attribute__((visibility("default"))) module AP_MODULE_DECLARE_DATA claude_spend_module = {
    STANDARD20_MODULE_STUFF,
    cs_dir_create,
    cs_dir_merge,
    cs_srv_create,
    cs_srv_merge,
    cs_cmds,
    cs_register_hooks,
    0
};
/* clang-format on */
