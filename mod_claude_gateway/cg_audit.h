/* cg_audit: the request's claude-* notes in one pass, and the claude_json
 * audit line (PURE: APR only, no httpd headers).
 *
 * mod_claude_gateway and mod_claude_spend publish what they decided and
 * metered as r->notes "claude-*". apr_table's per-key checksum covers only
 * the first four characters, all "clau", so every apr_table_get of one of
 * them compares against every note: cg_notes_read() reads them all in one
 * walk instead. cg_audit_json() renders the line the claude_json LogFormat of
 * conf/claude-gateway-log.conf printed as ~40 mod_log_config items: the same
 * fields in the same order with the same types, "-" where mod_log_config
 * printed one, but escaped as JSON so the line always parses. The glue
 * (cg_auditlog.c) fills the record from the request. */
#ifndef CG_AUDIT_H
#define CG_AUDIT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** Every claude-* note the two modules set; NULL when the note is absent. */
typedef struct cg_notes_t {
    const char *request_id;        /* claude-request-id */
    const char *admin_request_id;  /* claude-admin-request-id (admin API) */
    const char *user;              /* claude-user: the principal (sub, key:<id>) */
    const char *email;             /* claude-email */
    const char *groups;            /* claude-groups, comma-separated */
    const char *model;             /* claude-model: as the client asked */
    const char *model_served;      /* claude-model-served: as the answer said */
    const char *model_upstream;    /* claude-model-upstream: the provider's id */
    const char *upstream;          /* claude-upstream: the router's choice */
    const char *decision;          /* claude-decision: allowed, auth_failed ... */
    const char *reason;            /* claude-reason */
    const char *usage_in;          /* claude-usage-in */
    const char *usage_out;         /* claude-usage-out */
    const char *usage_cache_read;  /* claude-usage-cache-read */
    const char *usage_cache_write; /* claude-usage-cache-write */
    const char *usage_partial;     /* claude-usage-partial: "1" when cut short */
    const char *cost_micro_usd;    /* claude-cost-micro-usd */
    const char *failovers;         /* claude-failovers */
    const char *upstream_ttfb_us;  /* claude-upstream-ttfb-us */
    const char *max_tokens;        /* claude-max-tokens */
} cg_notes_t;

/** What one claude_json line holds: the notes and the request's own items,
 * each taken as the old LogFormat item took it (see cg_auditlog.c). */
typedef struct cg_audit_rec_t {
    cg_notes_t notes;      /* of the original request (%<{...}n) */
    apr_time_t time;       /* request start, printed in whole seconds (%{sec}t) */
    const char *client_ip; /* %a; NULL prints "-" */
    const char *method;    /* %m; NULL prints "-" */
    const char *path;      /* %U, the decoded path without the query; NULL prints "-" */
    int status;            /* %>s; 0 or less prints a bare - as mod_log_config did */
    apr_time_t latency_us; /* %D */
    apr_off_t bytes_out;   /* %B: body bytes sent, 0 when none */
} cg_audit_rec_t;

/**
 * Read every claude-* note of a table in one pass over its entries. Keys
 * match case-insensitively, as apr_table_get matches them; of a key present
 * twice the first entry wins, the one apr_table_get returns.
 * @param notes the table (r->notes), may be NULL
 * @param out receives the values (pointers into the table's entries); fields of
 *        absent notes are NULL
 */
void cg_notes_read(const apr_table_t *notes, cg_notes_t *out);

/**
 * Where a note goes in cg_notes_t, by its name exactly as the two modules
 * write it (lower case).
 * @return the field's slot in n, or NULL when name is none of the fields
 */
const char **cg_notes_slot(cg_notes_t *n, const char *name);

/**
 * The claude_json audit line, without the newline:
 * {"request_id":"..","time":N,"client":"..","user":"..","email":"..",
 *  "groups":"..","method":"..","path":"..","model":"..","model_served":"..",
 *  "status":N,"decision":"..","reason":"..","input_tokens":"..",
 *  "output_tokens":"..","cache_read_tokens":"..","cache_write_tokens":"..",
 *  "partial":"..","cost_micro_usd":"..","latency_us":N,"bytes_out":N}
 * Token counts and cost stay quoted strings, as the LogFormat printed them.
 * An absent note or string is "-"; an empty one is "". Strings are JSON
 * escaped: \" and \\, every control character (and DEL) as \u00xx, valid
 * UTF-8 as is, and each byte that does not belong to a well-formed UTF-8
 * sequence (RFC 3629: no overlong forms, surrogates or code points above
 * U+10FFFF) as \ufffd, the replacement character (claude-auditlog escapes
 * the same way).
 * @param p pool for the result
 * @param rec the record
 * @return the line, NUL-terminated, owned by p
 */
const char *cg_audit_json(apr_pool_t *p, const cg_audit_rec_t *rec);

#endif
