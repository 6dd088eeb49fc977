/* fuzz_sse_usage: cs_usage on arbitrary upstream bytes.
 *
 * The input is one answer body. It is parsed as SSE and as JSON, each whole,
 * split in two at a position taken from the first byte, and in small chunks
 * with a small cap (to reach the over-the-cap paths); the first byte is also
 * part of the body, so seeds are plain captures. Besides not crashing, the
 * parser must give the same result however the bytes are split, and its
 * results must be consistent. Each input gets its own APR subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "cs_usage.h"

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

static cs_usage_t fuzz_parse(apr_pool_t *p, cs_usage_kind_e kind, apr_size_t max, const char *buf,
                             size_t size, size_t split, size_t chunk)
{
    cs_usage_parser_t *up = cs_usage_parser_create(p, kind, max);
    cs_usage_t u;
    size_t off;

    if (chunk == 0) {
        cs_usage_parser_feed(up, buf, split);
        cs_usage_parser_feed(up, buf + split, size - split);
    }
    else {
        for (off = 0; off < size; off += chunk) {
            cs_usage_parser_feed(up, buf + off, size - off < chunk ? size - off : chunk);
        }
    }
    cs_usage_parser_finish(up, &u);
    return u;
}

static void fuzz_check(const cs_usage_t *u, size_t size)
{
    size_t i, n;

    if (u->input_tokens < 0 || u->output_tokens < 0 || u->cache_read_tokens < 0 ||
        u->cache_creation_tokens < 0 || u->text_chars < 0 || (apr_uint64_t)u->text_chars > size ||
        u->complete == u->truncated) {
        abort();
    }
    if (u->model != NULL) {
        n = strlen(u->model);
        if (n == 0 || n > 128) {
            abort();
        }
        for (i = 0; i < n; i++) {
            if ((unsigned char)u->model[i] < 0x21 || (unsigned char)u->model[i] > 0x7e) {
                abort();
            }
        }
    }
}

/* Splitting the same bytes differently must not change a thing. */
static void fuzz_same(const cs_usage_t *a, const cs_usage_t *b)
{
    if (a->input_tokens != b->input_tokens || a->output_tokens != b->output_tokens ||
        a->cache_read_tokens != b->cache_read_tokens ||
        a->cache_creation_tokens != b->cache_creation_tokens || a->text_chars != b->text_chars ||
        a->seen_usage != b->seen_usage || a->complete != b->complete ||
        a->error_event != b->error_event || a->truncated != b->truncated ||
        (a->model == NULL) != (b->model == NULL) ||
        (a->model != NULL && strcmp(a->model, b->model) != 0)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    apr_pool_t *p;
    size_t split, chunk;
    apr_size_t small;
    unsigned knob;
    cs_usage_kind_e kinds[2] = {CS_USAGE_SSE, CS_USAGE_JSON};
    int k;

    if (size == 0) {
        return 0;
    }
    knob = data[0];
    split = (size_t)knob * size / 255;
    chunk = knob % 13 + 1;
    small = 16 + (knob & 0x3f);
    apr_pool_create(&p, fuzz_pool);
    for (k = 0; k < 2; k++) {
        cs_usage_t whole = fuzz_parse(p, kinds[k], 0, buf, size, size, 0);
        cs_usage_t two = fuzz_parse(p, kinds[k], 0, buf, size, split, 0);
        cs_usage_t tiny = fuzz_parse(p, kinds[k], small, buf, size, 0, chunk);
        cs_usage_t tiny_whole = fuzz_parse(p, kinds[k], small, buf, size, size, 0);

        fuzz_check(&whole, size);
        fuzz_check(&tiny, size);
        fuzz_same(&whole, &two);
        fuzz_same(&tiny, &tiny_whole);
    }
    apr_pool_destroy(p);
    return 0;
}
