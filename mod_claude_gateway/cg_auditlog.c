/* cg_auditlog: glue of the claude_json audit item, see cg_auditlog.h.
 *
 * mod_log_config looks format items up in a hash it makes when it registers
 * its hooks and fills in its own pre_config; LogFormat parses its string when
 * the directive is read, after every pre_config. So the item is registered in
 * pre_config, once per configuration generation (the hash lives in pconf),
 * the way mod_ssl registers %{..}c and %{..}x. */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <mod_log_config.h>

#include "cg_private.h"
#include "cg_auditlog.h"

/* mod_log_config keeps the pointer as the hash key: static storage */
static char cg_auditlog_tag[] = CG_AUDITLOG_TAG;

/* The old LogFormat's items, each read from the request it read it from:
 * mod_log_config hands an item the final request of an internal redirect
 * chain (r->next) unless the item or its "<" asks for the original (r->prev).
 * %<{...}n, %U and %D took the original, %{sec}t, %a, %m, %>s and %B the
 * final one. Both ends are found here, so "%<^CJ" or "%>^CJ" print the same. */
static const char *cg_auditlog_item(request_rec *r, char *arg)
{
    request_rec *orig = r;
    const request_rec *last = r;
    cg_audit_rec_t rec;

    (void)arg;
    while (orig->prev != NULL) {
        orig = orig->prev;
    }
    while (last->next != NULL) {
        last = last->next;
    }
    cg_notes_get_all(orig, &rec.notes);
    rec.time = last->request_time;
    rec.client_ip = last->useragent_ip;
    rec.method = last->method;
    rec.path = orig->uri;
    rec.status = last->status;
    /* mod_log_config's %D keeps its end time in its private request state;
     * this reads the clock itself, a few microseconds later */
    rec.latency_us = apr_time_now() - orig->request_time;
    rec.bytes_out = last->sent_bodyct ? last->bytes_sent : 0;
    return cg_audit_json(r->pool, &rec);
}

static int cg_auditlog_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    APR_OPTIONAL_FN_TYPE(ap_register_log_handler) * reg;

    (void)plog;
    (void)ptemp;
    reg = APR_RETRIEVE_OPTIONAL_FN(ap_register_log_handler);
    if (reg != NULL) { /* NULL: mod_log_config is not loaded, no access logs */
        /* 0: the final request by default, as %>s; both ends are walked anyway */
        reg(pconf, cg_auditlog_tag, cg_auditlog_item, 0);
    }
    return OK;
}

void cg_auditlog_register_hooks(apr_pool_t *p)
{
    /* its pre_config (REALLY_FIRST) registers the standard items: ours after */
    static const char *const after_log_config[] = {"mod_log_config.c", NULL};

    (void)p;
    ap_hook_pre_config(cg_auditlog_pre_config, after_log_config, NULL, APR_HOOK_MIDDLE);
}
