/* fuzz_provider_body: the provider translations and answer readers on arbitrary bytes.
 *
 * One input is used as everything the provider layer reads from outside: a
 * client's Messages body (translated for Bedrock, its CountTokens, and
 * Vertex), a cloud upstream's error body (the error hygiene), a CountTokens
 * answer and a token endpoint answer. The first byte also picks the status
 * and the anthropic-beta header, so seeds are plain bodies. Besides not
 * crashing: a translated body must be a JSON object that has the provider's
 * anthropic_version and none of model, stream or tags (Bedrock) or model and
 * tags (Vertex); an error keeps its status and always has a type and a message;
 * a token read as valid can go into a header. Each input gets its own subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <jansson.h>

#include "cg_bedrock.h"
#include "cg_provider.h"
#include "cg_vertex.h"

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

static void fuzz_body_check(const char *out, apr_size_t len, const char *version, int vertex)
{
    json_t *j;
    const json_t *betas;
    size_t i;

    if (out == NULL) {
        return;
    }
    if (strlen(out) != len) {
        abort();
    }
    j = json_loadb(out, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "anthropic_version")) ||
        strcmp(json_string_value(json_object_get(j, "anthropic_version")), version) != 0 ||
        json_object_get(j, "model") != NULL || json_object_get(j, "tags") != NULL ||
        (!vertex && json_object_get(j, "stream") != NULL)) {
        abort();
    }
    betas = json_object_get(j, "anthropic_beta");
    for (i = 0; !vertex && json_is_array(betas) && i < json_array_size(betas); i++) {
        const json_t *b = json_array_get(betas, i);

        if (json_is_string(b) && strcmp(json_string_value(b), CG_PROVIDER_REQUEST_TAGS_BETA) == 0) {
            abort();
        }
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {400, 401, 403, 404, 408, 413, 429, 500, 501, 503, 529, 418};
    static const char *const betas[] = {NULL, "claude-code-20250219",
                                        "request-tags-2026-08-21, a,a,,b", " , "};
    static const cg_provider_e providers[] = {CG_PROVIDER_BEDROCK, CG_PROVIDER_VERTEX,
                                              CG_PROVIDER_FOUNDRY, CG_PROVIDER_ANTHROPIC};
    const char *buf = (const char *)data, *out, *tok;
    apr_pool_t *p;
    apr_size_t len = 0;
    apr_time_t exp;
    cg_provider_error_t e;
    unsigned knob;
    int status;

    if (size == 0) {
        return 0;
    }
    knob = data[0];
    status = statuses[knob % (sizeof(statuses) / sizeof(statuses[0]))];
    apr_pool_create(&p, fuzz_pool);

    out = cg_bedrock_body(p, buf, size, betas[knob % 4], &len);
    fuzz_body_check(out, len, CG_BEDROCK_ANTHROPIC_VERSION, 0);
    out = cg_bedrock_count_tokens_body(p, buf, size, betas[(knob >> 2) % 4], &len);
    if (out != NULL && strlen(out) != len) {
        abort();
    }
    out = cg_vertex_body(p, buf, size, (cg_vertex_op_e)(knob % 2), NULL, &len);
    fuzz_body_check(out, len, CG_VERTEX_ANTHROPIC_VERSION, 1);

    cg_provider_error(p, providers[(knob >> 4) % 4], status, buf, size, &e);
    if (e.status != status || (!e.passthrough && (e.type == NULL || *e.type == '\0' ||
                                                  e.message == NULL || *e.message == '\0'))) {
        abort();
    }
    if (cg_provider_error_message(status, buf[size - 1] == '\0' ? buf : NULL) == NULL) {
        abort();
    }

    out = cg_bedrock_count_tokens_answer(p, buf, size);
    if (out != NULL && strncmp(out, "{\"input_tokens\":", 16) != 0) {
        abort();
    }
    if (cg_vertex_token_parse(p, buf, size, 0, &tok, &exp) == NULL) {
        const char *c;

        if (tok == NULL || *tok == '\0' || exp <= 0) {
            abort();
        }
        for (c = tok; *c; c++) {
            if (*c < 0x21 || *c > 0x7e) {
                abort();
            }
        }
    }
    apr_pool_destroy(p);
    return 0;
}
