/* cg_auditlog: the claude_json audit line as one mod_log_config item (glue).
 *
 *   LogFormat "%^CJ" claude_json
 *
 * The line is rendered by cg_audit_json() (PURE, cg_audit.c); this file only
 * registers the item with mod_log_config and fills its record from the
 * request. Without mod_log_config nothing is registered and nothing else
 * changes. */
#ifndef CG_AUDITLOG_H
#define CG_AUDITLOG_H

#include <apr_pools.h>

/** The mod_log_config format item: %^CJ. */
#define CG_AUDITLOG_TAG "^CJ"

/**
 * Hook the item's registration into pre_config (call from register_hooks).
 * @param p the pool register_hooks gets
 */
void cg_auditlog_register_hooks(apr_pool_t *p);

#endif
