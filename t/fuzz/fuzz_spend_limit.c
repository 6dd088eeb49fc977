/* fuzz_spend_limit: cs_limits_parse on arbitrary admin API bodies.
 *
 * The POST body of /v1/organizations/spend_limits comes from an admin, but
 * it is still untrusted text. Besides not crashing: a refusal has a message;
 * an accepted body names a known scope and period, an amount of 1 to 18
 * digits or none, a scope id only where the scope has one, and a pooled
 * budget only on a monthly group limit; the objects built from it dump. Each
 * input gets its own APR subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "cs_limits.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

static int fuzz_one_of(const char *s, const char *a, const char *b, const char *c)
{
    return s != NULL && (strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    cs_limit_input_t in;
    cs_limit_row_t row;
    const char *err;

    apr_pool_create(&p, fuzz_pool);
    err = cs_limits_parse(p, (const char *)data, size, &in);
    if (err != NULL) {
        if (err[0] == '\0') {
            abort();
        }
        apr_pool_destroy(p);
        return 0;
    }
    if (!fuzz_one_of(in.scope_type, "user", "rbac_group", "organization") ||
        !fuzz_one_of(in.period, "daily", "weekly", "monthly") || in.scope_id == NULL ||
        (strcmp(in.scope_type, "organization") == 0) != (in.scope_id[0] == '\0') ||
        strlen(in.scope_id) > 256 || (in.amount != NULL && !cs_limits_amount_valid(in.amount))) {
        abort();
    }
    if (in.pooled &&
        (strcmp(in.scope_type, "rbac_group") != 0 || strcmp(in.period, "monthly") != 0 ||
         !cs_limits_amount_valid(in.pooled_amount))) {
        abort();
    }
    memset(&row, 0, sizeof(row));
    row.id = "spl_00000000000000000000000000000000";
    row.scope_type = in.scope_type;
    row.scope_id = in.scope_id;
    row.period = in.period;
    row.amount = in.amount;
    row.currency = "USD";
    row.pooled = in.pooled;
    row.pooled_amount = in.pooled_amount;
    row.pooled_paused = in.pooled_paused;
    row.created_at = row.updated_at = "2026-11-23T16:38:22.614Z";
    if (strcmp(cs_limits_dump(p, cs_limits_object_json(&row)), "null") == 0 ||
        strcmp(cs_limits_dump(p, cs_limits_audit_json(&row)), "null") == 0) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
