/* mod_claude_spend: metering of Claude Code traffic through mod_claude_gateway.
 *
 *   ClaudeSpend On|Off   (dir) meter the Messages answers of this location
 *
 * Hooks: post_config checks that mod_claude_gateway is loaded (its optional
 * functions are this module's only link to it); fixups, ordered after the
 * gateway's, adds the CLAUDE_USAGE filter to admitted requests;
 * log_transaction publishes the usage of streams that never reached EOS
 * (client abort) so no request goes unrecorded. */
#include <apr_strings.h>
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
#include <libpq-fe.h>

static APR_OPTIONAL_FN_TYPE(claude_gateway_identity) * cs_identity;
static APR_OPTIONAL_FN_TYPE(claude_gateway_request_id) * cs_request_id;
static APR_OPTIONAL_FN_TYPE(claude_gateway_db_acquire) * cs_db_acquire;
static APR_OPTIONAL_FN_TYPE(claude_gateway_db_release) * cs_db_release;
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

static const char *cs_set_enabled(cmd_parms *cmd, void *dcv, int flag)
{
    cs_dir_conf_t *dc = dcv;

    (void)cmd;
    dc->enabled = flag;
    return NULL;
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
        /* priced by what was served; the requested id when the answer named none */
        cs_price_lookup(u->model ? u->model : apr_table_get(r->notes, "claude-model"), &price);
        rq->cost = cs_price_cost(&price, u->input_tokens, u->output_tokens, u->cache_read_tokens,
                                 u->cache_creation_tokens);
        if (!price.known) {
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
    ap_add_output_filter_handle(cs_usage_filter_handle, NULL, r, r->connection);
    return DECLINED;
}

/* The append-only ledger row. One short statement on a pooled connection,
 * after the answer went out: never a connection held across a stream. */
static void cs_ledger_write(request_rec *r, const cs_req_t *rq)
{
    const cg_identity_t *id = cs_identity(r);
    const cs_usage_t *u = &rq->usage;
    struct pg_conn *conn;
    PGresult *res;
    const char *params[14];
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
    params[0] = cs_request_id(r);
    params[1] = id->sub;
    params[2] = id->email;
    params[3] = groups;
    params[4] = apr_table_get(r->notes, "claude-model");
    params[5] = u->model;
    params[6] = r->filename && strncmp(r->filename, "proxy:", 6) == 0 ? r->filename + 6 : NULL;
    params[7] = apr_itoa(r->pool, r->status);
    params[8] = apr_off_t_toa(r->pool, u->input_tokens);
    params[9] = apr_off_t_toa(r->pool, u->output_tokens);
    params[10] = apr_off_t_toa(r->pool, u->cache_read_tokens);
    params[11] = apr_off_t_toa(r->pool, u->cache_creation_tokens);
    params[12] = apr_off_t_toa(r->pool, rq->cost);
    params[13] = u->complete ? "f" : "t";
    if (params[6] != NULL) {
        /* the upstream's origin, not the path or query */
        const char *slash = strstr(params[6], "://");
        slash = slash ? strchr(slash + 3, '/') : NULL;
        params[6] =
            slash ? apr_pstrmemdup(r->pool, params[6], (apr_size_t)(slash - params[6])) : params[6];
    }
    rv = cs_db_acquire(r->server, &conn);
    if (rv == APR_ENOTIMPL) {
        return; /* no ClaudeGatewayDatabase: metering ends in the access log */
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      CS_LOGNO(0301) "ledger unreachable: request %s of %s not recorded", params[0],
                      id->sub);
        return;
    }
    res = PQexecParams((PGconn *)conn,
                       "INSERT INTO claude_ledger (request_id, sub, email, groups, "
                       "model_requested, model_served, upstream, status, input_tokens, "
                       "output_tokens, cache_read_tokens, cache_write_tokens, cost_micro_usd, "
                       "partial) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, "
                       "$12, $13, $14)",
                       14, NULL, params, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CS_LOGNO(0302) "ledger row of request %s not written: %s", params[0],
                      PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    }
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
        cs_ledger_write(r, rq);
    }
    return DECLINED;
}

static int cs_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    cs_identity = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_identity);
    cs_request_id = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_request_id);
    cs_db_acquire = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_db_acquire);
    cs_db_release = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_db_release);
    if (cs_identity == NULL || cs_request_id == NULL || cs_db_acquire == NULL ||
        cs_db_release == NULL) {
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
    ap_hook_fixups(cs_fixups, after_gateway, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(cs_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
    /* before mod_deflate (AP_FTYPE_CONTENT_SET) so we read plain bytes */
    cs_usage_filter_handle =
        ap_register_output_filter(CS_USAGE_FILTER, cs_usage_filter, NULL, AP_FTYPE_CONTENT_SET - 1);
}

/* clang-format off */
static const command_rec cs_cmds[] = {
    AP_INIT_FLAG("ClaudeSpend", cs_set_enabled, NULL, ACCESS_CONF | RSRC_CONF,
                 "On to meter token usage of the Messages answers here; default Off"),
    {NULL}
};

/* the one symbol httpd looks up: visible despite -fvisibility=hidden */
__attribute__((visibility("default"))) module AP_MODULE_DECLARE_DATA claude_spend_module = {
    STANDARD20_MODULE_STUFF,
    cs_dir_create,
    cs_dir_merge,
    NULL,
    NULL,
    cs_cmds,
    cs_register_hooks,
    0
};
/* clang-format on */
