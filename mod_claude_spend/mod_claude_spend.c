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

static APR_OPTIONAL_FN_TYPE(claude_gateway_identity) * cs_identity;
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

static int cs_log_transaction(request_rec *r)
{
    cs_req_t *rq = cs_req_get(r);

    if (!rq->finished && rq->parser != NULL) {
        /* the stream ended without EOS reaching us: bill what was seen */
        cs_usage_publish(r, rq);
    }
    return DECLINED;
}

static int cs_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    cs_identity = APR_RETRIEVE_OPTIONAL_FN(claude_gateway_identity);
    if (cs_identity == NULL) {
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
