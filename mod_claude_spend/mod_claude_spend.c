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

int cs_price_for(request_rec *r, const char *model, cs_price_t *price, apr_int64_t *multiplier_ppm)
{
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

static void cs_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    apr_pool_create(&cs_warn_pool, pchild);
    cs_warned = apr_hash_make(cs_warn_pool);
    rv = apr_thread_mutex_create(&cs_warn_mutex, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, CS_LOGNO(0004) "price warning mutex");
        cs_warn_mutex = NULL;
    }
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

void cs_usage_publish(request_rec *r, cs_req_t *rq)
{
    const cs_usage_t *u = &rq->usage;

    if (rq->finished || rq->parser == NULL) {
        return;
    }
    rq->finished = 1;
    cs_usage_parser_finish(rq->parser, &rq->usage);
    /* notes, so `LogFormat %{claude-usage-in}n` gives auditors the figures */
    apr_table_setn(r->notes, "claude-usage-in", apr_off_t_toa(r->pool, u->input_tokens));
    apr_table_setn(r->notes, "claude-usage-out", apr_off_t_toa(r->pool, u->output_tokens));
    apr_table_setn(r->notes, "claude-usage-cache-read",
                   apr_off_t_toa(r->pool, u->cache_read_tokens));
    apr_table_setn(r->notes, "claude-usage-cache-write",
                   apr_off_t_toa(r->pool, u->cache_creation_tokens));
    apr_table_setn(r->notes, "claude-usage-partial", u->complete ? "0" : "1");
    if (u->model != NULL) {
        apr_table_setn(r->notes, "claude-model-served", u->model);
    }
    {
        cs_price_t price;
        apr_int64_t ppm;
        /* priced by what was served; the requested id when the answer named none */
        cs_price_for(r, u->model ? u->model : apr_table_get(r->notes, "claude-model"), &price,
                     &ppm);
        rq->cost = cs_price_scale(cs_price_cost(&price, u->input_tokens, u->output_tokens,
                                                u->cache_read_tokens, u->cache_creation_tokens),
                                  ppm);
        if (!price.known && cs_price_warn_first(u->model ? u->model : "(none)")) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          CS_LOGNO(0220) "no list price for model %s: metered at the fallback "
                                         "rate ($5/$25 per MTok)",
                          u->model ? u->model : "(none)");
        }
        apr_table_setn(r->notes, "claude-cost-micro-usd", apr_off_t_toa(r->pool, rq->cost));
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "usage in=%" APR_INT64_T_FMT " out=%" APR_INT64_T_FMT " cr=%" APR_INT64_T_FMT
                  " cw=%" APR_INT64_T_FMT " complete=%d",
                  u->input_tokens, u->output_tokens, u->cache_read_tokens, u->cache_creation_tokens,
                  u->complete);
}

static int cs_fixups(request_rec *r)
{
    const char *decision;

    if (!ap_is_initial_req(r) || !cs_dir_enabled(r)) {
        return DECLINED;
    }
    /* only what the gateway authenticated; the filter meters only 2xx
     * answers, so refusals cost nothing, and count_tokens is free */
    if (cs_identity(r) == NULL) {
        return DECLINED;
    }
    if (strstr(r->uri, "/count_tokens") != NULL) {
        return DECLINED;
    }
    /* a request the gateway refused is answered by it, not admitted here */
    decision = apr_table_get(r->notes, "claude-decision");
    if (decision == NULL || strcmp(decision, "allowed") != 0) {
        return DECLINED;
    }
    if (cs_admit(r, cs_req_get(r), cs_identity(r)) == OK) {
        return DECLINED; /* refused: the gateway's handler answers */
    }
    ap_add_output_filter_handle(cs_usage_filter_handle, NULL, r, r->connection);
    return DECLINED;
}

/* The ledger row and, only when it is new, the period totals, the
 * principal's last-seen identity and the end of the request's reservation:
 * one statement, so totals and rows never disagree and a replayed journal
 * line (same entry id) changes nothing. */
#define CS_LEDGER_INSERT                                                                           \
    "WITH ins AS (INSERT INTO claude_ledger (entry_id, request_id, sub, email, groups, "           \
    "model_requested, model_served, upstream, status, input_tokens, output_tokens, "               \
    "cache_read_tokens, cache_write_tokens, cost_micro_usd, partial) VALUES ($1, $2, $3, $4, "     \
    "$5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (entry_id) DO NOTHING "  \
    "RETURNING sub, cost_micro_usd), "                                                             \
    "tot AS (INSERT INTO claude_spend AS s (principal, period_key, micro_usd) "                    \
    "SELECT ins.sub, k.key, ins.cost_micro_usd FROM ins, unnest(ARRAY[$16, $17, $18]::text[]) "    \
    "AS k(key) ON CONFLICT (principal, period_key) DO UPDATE SET micro_usd = s.micro_usd + "       \
    "EXCLUDED.micro_usd, updated_at = now() RETURNING 1), "                                        \
    "who AS (INSERT INTO claude_principals AS w (principal, email, groups) "                       \
    "SELECT ins.sub, $4, $5::jsonb FROM ins ON CONFLICT (principal) DO UPDATE SET "                \
    "email = EXCLUDED.email, groups = EXCLUDED.groups, updated_at = now() RETURNING 1), "          \
    "held AS (DELETE FROM claude_reservations WHERE request_id = $1 RETURNING 1) "                 \
    "SELECT count(*) FROM ins"
#define CS_LEDGER_NPARAMS 18
/* journal lines written before the totals existed carry 15 values */
#define CS_LEDGER_NPARAMS_V1 15

/* A random id per ledger row, so a replayed journal line is inserted once;
 * it also names the request's reservation. */
/* The day, ISO week and month keys of t, the periods spend is counted in. */
static void cs_period_keys(apr_pool_t *p, apr_time_t t, const char **keys)
{
    keys[0] = cs_period_key(p, CS_PERIOD_DAILY, t);
    keys[1] = cs_period_key(p, CS_PERIOD_WEEKLY, t);
    keys[2] = cs_period_key(p, CS_PERIOD_MONTHLY, t);
}

const char *cs_new_id(apr_pool_t *p)
{
    unsigned char b[16];
    char *hex = apr_palloc(p, sizeof(b) * 2 + 1);
    apr_size_t i;

    apr_generate_random_bytes(b, sizeof(b));
    for (i = 0; i < sizeof(b); i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", b[i]);
    }
    return hex;
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

/* A row the database could not take goes to the journal, one JSON array per
 * line, under an exclusive lock shared by every child. */
static apr_status_t cs_journal_append(request_rec *r, const char *const *params)
{
    apr_file_t *f;
    apr_status_t rv;
    json_t *row = json_array();
    char *line;
    apr_size_t len;
    int i;

    for (i = 0; i < CS_LEDGER_NPARAMS; i++) {
        json_array_append_new(row, params[i] ? json_string(params[i]) : json_null());
    }
    line = json_dumps(row, JSON_COMPACT);
    json_decref(row);
    if (line == NULL) {
        return APR_ENOMEM;
    }
    rv = apr_file_open(&f, cs_journal_path(r->server),
                       APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, r->pool);
    if (rv == APR_SUCCESS) {
        apr_file_lock(f, APR_FLOCK_EXCLUSIVE);
        len = strlen(line);
        rv = apr_file_write_full(f, line, len, NULL);
        if (rv == APR_SUCCESS) {
            rv = apr_file_write_full(f, "\n", 1, NULL);
        }
        apr_file_flush(f);
        apr_file_unlock(f);
        apr_file_close(f);
    }
    free(line);
    return rv;
}

/* Replay the journal into the ledger once the database answers again; the
 * entry ids make a replay that is interrupted and repeated harmless. */
static void cs_journal_replay(request_rec *r, struct pg_conn *conn)
{
    const char *path = cs_journal_path(r->server);
    apr_finfo_t fi;
    apr_file_t *f;
    char buf[16384];
    int replayed = 0, ok = 1;

    if (apr_stat(&fi, path, APR_FINFO_SIZE, r->pool) != APR_SUCCESS || fi.size == 0) {
        return; /* the common case: one stat per metered request */
    }
    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_WRITE, APR_OS_DEFAULT, r->pool) !=
        APR_SUCCESS) {
        return;
    }
    apr_file_lock(f, APR_FLOCK_EXCLUSIVE);
    while (ok && apr_file_gets(buf, sizeof(buf), f) == APR_SUCCESS) {
        json_t *row = json_loads(buf, 0, NULL);
        const char *params[CS_LEDGER_NPARAMS];
        PGresult *res;
        int i;

        if (!json_is_array(row) || (json_array_size(row) != CS_LEDGER_NPARAMS &&
                                    json_array_size(row) != CS_LEDGER_NPARAMS_V1)) {
            json_decref(row);
            continue; /* a torn line from a crash: its row was never acknowledged */
        }
        for (i = 0; i < CS_LEDGER_NPARAMS; i++) {
            json_t *v = json_array_get(row, (size_t)i);
            params[i] = json_is_string(v) ? apr_pstrdup(r->pool, json_string_value(v)) : NULL;
        }
        if (json_array_size(row) == CS_LEDGER_NPARAMS_V1) {
            cs_period_keys(r->pool, apr_time_now(), params + CS_LEDGER_NPARAMS_V1);
        }
        json_decref(row);
        res = PQexecParams((PGconn *)conn, CS_LEDGER_INSERT, CS_LEDGER_NPARAMS, NULL, params, NULL,
                           NULL, 0);
        ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
        replayed += ok;
    }
    if (ok) {
        apr_file_trunc(f, 0);
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      CS_LOGNO(0304) "%d journaled ledger rows replayed", replayed);
    }
    apr_file_unlock(f);
    apr_file_close(f);
}

/* The append-only ledger row. One short statement on a pooled connection,
 * after the answer went out: never a connection held across a stream. */
static void cs_ledger_write(request_rec *r, const cs_req_t *rq)
{
    const cg_identity_t *id = cs_identity(r);
    const cs_usage_t *u = &rq->usage;
    struct pg_conn *conn;
    PGresult *res;
    const char *params[CS_LEDGER_NPARAMS], **p = params + 1;
    apr_status_t rv;
    int i, ok;
    char *groups;

    if (id == NULL) {
        return;
    }
    groups = apr_pstrdup(r->pool, "[");
    for (i = 0; id->groups != NULL && i < id->groups->nelts; i++) {
        char *g = apr_pstrdup(r->pool, APR_ARRAY_IDX(id->groups, i, const char *));
        char *q;
        for (q = g; *q; q++) { /* group names are plain; keep the JSON valid whatever */
            if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20) {
                *q = '_';
            }
        }
        groups = apr_pstrcat(r->pool, groups, i ? "," : "", "\"", g, "\"", NULL);
    }
    groups = apr_pstrcat(r->pool, groups, "]", NULL);
    params[0] = rq->entry_id ? rq->entry_id : cs_new_id(r->pool);
    p[0] = cs_request_id(r);
    p[1] = id->sub;
    p[2] = id->email;
    p[3] = groups;
    p[4] = apr_table_get(r->notes, "claude-model");
    p[5] = u->model;
    p[6] = r->filename && strncmp(r->filename, "proxy:", 6) == 0 ? r->filename + 6 : NULL;
    if (apr_table_get(r->notes, "claude-upstream") != NULL) {
        p[6] = apr_table_get(r->notes, "claude-upstream"); /* the gateway's router: by name */
    }
    p[7] = apr_itoa(r->pool, r->status);
    p[8] = apr_off_t_toa(r->pool, u->input_tokens);
    p[9] = apr_off_t_toa(r->pool, u->output_tokens);
    p[10] = apr_off_t_toa(r->pool, u->cache_read_tokens);
    p[11] = apr_off_t_toa(r->pool, u->cache_creation_tokens);
    p[12] = apr_off_t_toa(r->pool, rq->cost);
    p[13] = u->complete ? "f" : "t";
    cs_period_keys(r->pool, r->request_time, params + CS_LEDGER_NPARAMS_V1);
    if (p[6] != NULL) {
        /* the upstream's origin, not the path or query */
        const char *slash = strstr(p[6], "://");
        slash = slash ? strchr(slash + 3, '/') : NULL;
        p[6] = slash ? apr_pstrmemdup(r->pool, p[6], (apr_size_t)(slash - p[6])) : p[6];
    }
    rv = cs_db_acquire(r->server, &conn);
    if (rv == APR_ENOTIMPL) {
        return; /* no ClaudeGatewayDatabase: metering ends in the access log */
    }
    ok = 0;
    if (rv == APR_SUCCESS) {
        res = PQexecParams((PGconn *)conn, CS_LEDGER_INSERT, CS_LEDGER_NPARAMS, NULL, params, NULL,
                           NULL, 0);
        ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        if (!ok) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          CS_LOGNO(0302) "ledger row of request %s refused: %s", p[0],
                          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                              ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                              : PQerrorMessage((PGconn *)conn));
        }
        PQclear(res);
        if (ok) {
            cs_journal_replay(r, conn);
        }
        cs_db_release(r->server, conn, !ok);
    }
    if (ok) {
        return;
    }
    rv = cs_journal_append(r, params);
    if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CS_LOGNO(0303) "ledger unreachable: request %s journaled for replay", p[0]);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_CRIT, rv, r,
                      CS_LOGNO(0301) "ledger and journal unavailable: request %s of %s lost", p[0],
                      id->sub);
    }
}

/* An admitted request that produced nothing to meter (an upstream error, a
 * client gone before the answer) gives its hold back at once rather than at
 * expiry. If the database does not answer, expiry does it. */
static void cs_reservation_release(request_rec *r, const cs_req_t *rq)
{
    struct pg_conn *conn;
    PGresult *res;
    const char *params[1];
    int ok;

    if (cs_db_acquire(r->server, &conn) != APR_SUCCESS) {
        return;
    }
    params[0] = rq->entry_id;
    res = PQexecParams((PGconn *)conn, "DELETE FROM claude_reservations WHERE request_id = $1", 1,
                       NULL, params, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    cs_db_release(r->server, conn, !ok);
}

static int cs_log_transaction(request_rec *r)
{
    cs_req_t *rq = cs_req_get(r);

    if (!rq->finished && rq->parser != NULL) {
        /* the stream ended without EOS reaching us: bill what was seen */
        cs_usage_publish(r, rq);
    }
    if (rq->finished) {
        cs_ledger_write(r, rq); /* settles the reservation too */
    }
    else if (rq->reserved) {
        cs_reservation_release(r, rq);
    }
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
    }
    if (cs_identity == NULL || cs_request_id == NULL || cs_db_acquire == NULL ||
        cs_db_release == NULL || cs_refuse_fn == NULL || cs_admin_auth_fn == NULL) {
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
