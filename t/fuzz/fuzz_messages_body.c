/* fuzz_messages_body: cg_body_check on arbitrary request bodies.
 *
 * The body a client POSTs to /v1/messages is the gateway's most exposed
 * input. Besides not crashing: a body accepted must yield a model, a NUL-free
 * non-empty string, and the check must not depend on whether info is asked
 * for; an accepted body's model can be replaced without touching anything
 * else. Each input gets its own APR subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "cg_body.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    cg_body_info_t info = {NULL, -1};
    const char *err, *err2;

    apr_pool_create(&p, fuzz_pool);
    err = cg_body_check(p, (const char *)data, size, &info);
    err2 = cg_body_check(p, (const char *)data, size, NULL);
    if ((err == NULL) != (err2 == NULL)) {
        abort();
    }
    if (err == NULL &&
        (info.model == NULL || info.model[0] == '\0' || (info.stream != 0 && info.stream != 1))) {
        abort();
    }
    if (err != NULL && err[0] == '\0') {
        abort();
    }
    if (err == NULL) {
        /* the model can always be swapped, and only the model changes */
        cg_body_info_t again = {NULL, -1};
        apr_size_t len;
        const char *swapped =
            cg_body_set_model(p, (const char *)data, size, "claude-x-\"quoted\"", &len);
        if (swapped == NULL || cg_body_check(p, swapped, len, &again) != NULL ||
            strcmp(again.model, "claude-x-\"quoted\"") != 0 || again.stream != info.stream) {
            abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
