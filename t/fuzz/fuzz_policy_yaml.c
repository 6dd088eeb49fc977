/* fuzz_policy_yaml: cg_yaml_parse and cg_policy_compile on arbitrary files.
 *
 * The policy file is admin input, but it is parsed in the parent at every
 * restart, so a crash there takes the server down. Besides not crashing: a
 * compiled policy must answer settings lookups, and its checksums must be
 * stable (the same canonical JSON twice). Each input gets its own subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include "cg_yaml.h"
#include "cg_policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static apr_pool_t *fuzz_pool;

static const char *fuzz_env(void *baton, const char *name)
{
    (void)baton;
    return strcmp(name, "DEFINED") == 0 ? "value" : NULL;
}

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
    json_t *root = NULL;
    cg_policy_t *pol = NULL;
    const char *err;

    apr_pool_create(&p, fuzz_pool);
    err = cg_yaml_parse(p, (const char *)data, size, "fuzz.yaml", fuzz_env, NULL, &root);
    if ((err == NULL) == (root == NULL)) {
        abort();
    }
    if (err == NULL) {
        err = cg_policy_compile(p, root, "fuzz.yaml", &pol);
        json_decref(root);
        if ((err == NULL) == (pol == NULL)) {
            abort();
        }
    }
    if (pol != NULL) {
        apr_array_header_t *groups = apr_array_make(p, 2, sizeof(char *));
        const cg_settings_t *s;
        json_t *list;

        APR_ARRAY_PUSH(groups, const char *) = "eng";
        s = cg_policy_settings(pol, p, "dev@example.com", groups);
        if (s != NULL && strcmp(s->checksum, cg_json_checksum(p, s->doc)) != 0) {
            abort();
        }
        cg_policy_model_allowed(s, "claude-sonnet-4-5[1m]");
        cg_policy_upstream_model(pol, "claude-sonnet-4-5", "anthropic", "anthropic");
        list = cg_policy_models_list(pol, s);
        json_decref(list);
    }
    apr_pool_destroy(p);
    return 0;
}
