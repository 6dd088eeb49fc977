/* notes_names.h: every claude-* note with the cg_notes_t field that
 * cg_notes_read puts it in, written out independently of cg_audit.c so the
 * unit tests and fuzz_audit_json can hold the one-pass read against
 * apr_table_get. */
#ifndef NOTES_NAMES_H
#define NOTES_NAMES_H

#include <stddef.h>

#include <apr.h>

#include "cg_audit.h"

static const struct {
    const char *name;
    apr_size_t off;
} notes_names[] = {
    {"claude-request-id", offsetof(cg_notes_t, request_id)},
    {"claude-admin-request-id", offsetof(cg_notes_t, admin_request_id)},
    {"claude-user", offsetof(cg_notes_t, user)},
    {"claude-email", offsetof(cg_notes_t, email)},
    {"claude-groups", offsetof(cg_notes_t, groups)},
    {"claude-model", offsetof(cg_notes_t, model)},
    {"claude-model-served", offsetof(cg_notes_t, model_served)},
    {"claude-model-upstream", offsetof(cg_notes_t, model_upstream)},
    {"claude-upstream", offsetof(cg_notes_t, upstream)},
    {"claude-decision", offsetof(cg_notes_t, decision)},
    {"claude-reason", offsetof(cg_notes_t, reason)},
    {"claude-usage-in", offsetof(cg_notes_t, usage_in)},
    {"claude-usage-out", offsetof(cg_notes_t, usage_out)},
    {"claude-usage-cache-read", offsetof(cg_notes_t, usage_cache_read)},
    {"claude-usage-cache-write", offsetof(cg_notes_t, usage_cache_write)},
    {"claude-usage-partial", offsetof(cg_notes_t, usage_partial)},
    {"claude-cost-micro-usd", offsetof(cg_notes_t, cost_micro_usd)},
    {"claude-failovers", offsetof(cg_notes_t, failovers)},
    {"claude-upstream-ttfb-us", offsetof(cg_notes_t, upstream_ttfb_us)},
    {"claude-max-tokens", offsetof(cg_notes_t, max_tokens)},
};

#endif
