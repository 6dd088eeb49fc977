/* fuzz_audit_json: cg_notes_read and cg_audit_json on arbitrary notes.
 *
 * The input is cut into values at 0x1e. The first three are the client
 * address, method and path; the rest are key, value pairs added to a notes
 * table as they come (so keys repeat and vary in case). cg_notes_read must
 * agree with apr_table_get on every claude-* name, and the line must be one
 * line that parses back with jansson into the 21 fields, each string the
 * very value wherever that value is valid UTF-8, "-" where it is absent.
 * Each input gets its own APR subpool. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "cg_audit.h"
#include "notes_names.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_VALUES 64

static apr_pool_t *fuzz_pool;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&fuzz_pool, NULL);
    return 0;
}

/* The string field key of the line holds s ("-" when NULL) wherever s is
 * valid UTF-8 (jansson refuses to make a string of anything else). */
static void fuzz_check_string(const json_t *j, const char *key, const char *s)
{
    json_t *got = json_object_get(j, key), *want = json_string(s ? s : "-");

    if (!json_is_string(got)) {
        abort();
    }
    if (want != NULL && strcmp(json_string_value(want), json_string_value(got)) != 0) {
        abort();
    }
    json_decref(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *values[FUZZ_MAX_VALUES];
    apr_table_t *notes;
    cg_audit_rec_t rec;
    char *copy;
    const char *line;
    size_t start = 0, i;
    json_t *j;
    int n = 0, k;

    apr_pool_create(&p, fuzz_pool);
    /* values are C strings: a NUL ends one early, as in the server */
    copy = apr_pstrmemdup(p, (const char *)data, size);
    for (i = 0; i <= size && n < FUZZ_MAX_VALUES; i++) {
        if (i == size || copy[i] == 0x1e) {
            copy[i] = '\0';
            values[n++] = copy + start;
            start = i + 1;
        }
    }
    notes = apr_table_make(p, 8);
    for (k = 3; k + 1 < n; k += 2) {
        apr_table_addn(notes, values[k], values[k + 1]);
    }
    memset(&rec, 0, sizeof(rec));
    cg_notes_read(notes, &rec.notes);
    for (i = 0; i < sizeof(notes_names) / sizeof(notes_names[0]); i++) {
        const char *got = *(const char *const *)((const char *)&rec.notes + notes_names[i].off);

        if (got != apr_table_get(notes, notes_names[i].name)) {
            abort();
        }
    }
    rec.client_ip = n > 0 ? values[0] : NULL;
    rec.method = n > 1 ? values[1] : NULL;
    rec.path = n > 2 ? values[2] : NULL;
    rec.time = (apr_time_t)size * APR_USEC_PER_SEC;
    rec.status = (int)size - 3; /* 0 and less print a bare - */
    rec.latency_us = (apr_time_t)size;
    rec.bytes_out = (apr_off_t)size;
    line = cg_audit_json(p, &rec);
    if (strchr(line, '\n') != NULL || strchr(line, '\r') != NULL) {
        abort();
    }
    j = json_loads(line, 0, NULL);
    if (rec.status <= 0) { /* as mod_log_config printed it: no JSON then */
        if (j != NULL || strstr(line, ",\"status\":-,") == NULL) {
            abort();
        }
        apr_pool_destroy(p);
        return 0;
    }
    if (!json_is_object(j) || json_object_size(j) != 21 ||
        json_integer_value(json_object_get(j, "status")) != rec.status) {
        abort();
    }
    fuzz_check_string(j, "client", rec.client_ip);
    fuzz_check_string(j, "method", rec.method);
    fuzz_check_string(j, "path", rec.path);
    fuzz_check_string(j, "request_id", rec.notes.request_id);
    fuzz_check_string(j, "user", rec.notes.user);
    fuzz_check_string(j, "email", rec.notes.email);
    fuzz_check_string(j, "groups", rec.notes.groups);
    fuzz_check_string(j, "model", rec.notes.model);
    fuzz_check_string(j, "model_served", rec.notes.model_served);
    fuzz_check_string(j, "decision", rec.notes.decision);
    fuzz_check_string(j, "reason", rec.notes.reason);
    fuzz_check_string(j, "input_tokens", rec.notes.usage_in);
    fuzz_check_string(j, "output_tokens", rec.notes.usage_out);
    fuzz_check_string(j, "cache_read_tokens", rec.notes.usage_cache_read);
    fuzz_check_string(j, "cache_write_tokens", rec.notes.usage_cache_write);
    fuzz_check_string(j, "partial", rec.notes.usage_partial);
    fuzz_check_string(j, "cost_micro_usd", rec.notes.cost_micro_usd);
    json_decref(j);
    apr_pool_destroy(p);
    return 0;
}
