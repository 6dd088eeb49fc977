/* fuzz_messages_body: cg_body_check on arbitrary request bodies.
 *
 * The body a client POSTs to /v1/messages is the gateway's most exposed
 * input. Besides not crashing: a body accepted must yield a model, a NUL-free
 * non-empty string, and the check must not depend on whether info is asked
 * for; an accepted body's model can be replaced without touching anything
 * else. And every answer must be jansson's: cg_body_check is a scanner that
 * replaced json_loadb(JSON_REJECT_DUPLICATES), so the old jansson check runs
 * beside it as the oracle, and any difference in the verdict, the message or
 * the model, stream and max_tokens aborts. Each input gets its own APR
 * subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <jansson.h>

#include "cg_body.h"
#include "body_oracle.h"

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

/* cg_body_check and the oracle agree on everything; returns the answer */
static const char *fuzz_check_as_jansson(apr_pool_t *p, const char *buf, apr_size_t len,
                                         cg_body_info_t *info)
{
    cg_body_info_t want = {NULL, -1, -2};
    const char *err = cg_body_check(p, buf, len, info);
    const char *oracle = body_oracle_check(p, buf, len, &want);

    if ((err == NULL) != (oracle == NULL) || (err != NULL && strcmp(err, oracle) != 0)) {
        abort();
    }
    if (err == NULL && (strcmp(info->model, want.model) != 0 || info->stream != want.stream ||
                        info->max_tokens != want.max_tokens)) {
        abort();
    }
    return err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    cg_body_info_t info = {NULL, -1, -2};
    const char *err, *err2;

    apr_pool_create(&p, fuzz_pool);
    err = fuzz_check_as_jansson(p, (const char *)data, size, &info);
    err2 = cg_body_check(p, (const char *)data, size, NULL);
    if ((err == NULL) != (err2 == NULL)) {
        abort();
    }
    if (err == NULL && (info.model == NULL || info.model[0] == '\0' ||
                        (info.stream != 0 && info.stream != 1) || info.max_tokens < -1)) {
        abort();
    }
    if (err != NULL && (err[0] == '\0' || info.model != NULL || info.max_tokens != -2)) {
        abort(); /* a refusal leaves info alone */
    }
    if (err == NULL) {
        /* the model can always be swapped, and only the model changes */
        cg_body_info_t again = {NULL, -1, -2};
        apr_size_t len;
        const char *swapped =
            cg_body_set_model(p, (const char *)data, size, "claude-x-\"quoted\"", &len);
        if (swapped == NULL || fuzz_check_as_jansson(p, swapped, len, &again) != NULL ||
            strcmp(again.model, "claude-x-\"quoted\"") != 0 || again.stream != info.stream ||
            again.max_tokens != info.max_tokens) {
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
