/* fuzz_sse_usage: cs_usage on arbitrary upstream bytes.
 *
 * The input is one answer body. It is parsed as SSE and as JSON, each whole,
 * split in two at a position taken from the first byte, and in small chunks
 * with a small cap (to reach the over-the-cap paths); the first byte is also
 * part of the body, so seeds are plain captures. Besides not crashing, the
 * parser must give the same result however the bytes are split, and its
 * results must be consistent. A JSON body must also give exactly what jansson
 * makes of it (fuzz_json_oracle: the tree-building parser cs_usage had before
 * its scanner), byte for byte the same acceptance. Each input gets its own APR
 * subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <jansson.h>

#include "cs_usage.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
/* The JSON body as cs_usage read it with jansson, the reference for its
 * scanner: json_loadb with flags 0, then the top-level type, model, usage and
 * content as json_object_get sees them. */
static void fuzz_json_take(apr_int64_t *dst, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *dst = (apr_int64_t)json_integer_value(v);
    }
}

static apr_int64_t fuzz_json_chars(const json_t *v)
{
    apr_int64_t n = 0;
    size_t i;

    for (i = 0; json_is_string(v) && i < json_string_length(v); i++) {
        n += ((unsigned char)json_string_value(v)[i] & 0xC0) != 0x80;
    }
    return n;
}

static cs_usage_t fuzz_json_oracle(apr_pool_t *p, const char *buf, size_t size)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, size, 0, &jerr);
    const json_t *v, *content, *usage;
    cs_usage_t u;
    size_t i, n;

    memset(&u, 0, sizeof(u));
    if (json_is_object(root)) {
        v = json_object_get(root, "type");
        u.error_event = json_is_string(v) && strcmp(json_string_value(v), "error") == 0;
        v = json_object_get(root, "model");
        if (json_is_string(v) && (n = json_string_length(v)) > 0 && n <= 128) {
            for (i = 0; i < n && json_string_value(v)[i] >= 0x21 && json_string_value(v)[i] <= 0x7e;
                 i++) {
            }
            u.model = i == n ? apr_pstrmemdup(p, json_string_value(v), n) : NULL;
        }
        usage = json_object_get(root, "usage");
        if (json_is_object(usage)) {
            u.seen_usage = u.complete = 1;
            fuzz_json_take(&u.input_tokens, usage, "input_tokens");
            fuzz_json_take(&u.output_tokens, usage, "output_tokens");
            fuzz_json_take(&u.cache_read_tokens, usage, "cache_read_input_tokens");
            fuzz_json_take(&u.cache_creation_tokens, usage, "cache_creation_input_tokens");
        }
        content = json_object_get(root, "content");
        for (i = 0; i < json_array_size(content); i++) {
            const json_t *item = json_array_get(content, i);
            const char *t = json_string_value(json_object_get(item, "type"));
            if (t != NULL && strcmp(t, "text") == 0) {
                u.text_chars += fuzz_json_chars(json_object_get(item, "text"));
            }
            else if (t != NULL && strcmp(t, "thinking") == 0) {
                u.text_chars += fuzz_json_chars(json_object_get(item, "thinking"));
            }
        }
    }
    json_decref(root);
    u.truncated = !u.complete;
    return u;
}

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

/* The input as the string of a text delta in the API's compact form (line
 * ends taken out, so it stays one data line): what the parser counts must
 * be what jansson makes of the same event, whether the fast path takes it
 * or not. */
static void fuzz_delta(apr_pool_t *p, const char *in, size_t n)
{
    static const char pre[] = "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                              "\"text_delta\",\"text\":\"";
    char *json = apr_palloc(p, sizeof(pre) + n + 4), *d;
    const char *sse;
    cs_usage_parser_t *up;
    cs_usage_t got;
    json_t *root;
    apr_int64_t want = 0;
    size_t i;

    memcpy(json, pre, sizeof(pre) - 1);
    d = json + sizeof(pre) - 1;
    for (i = 0; i < n; i++) {
        if (in[i] != '\r' && in[i] != '\n' && in[i] != '\0') {
            *d++ = in[i];
        }
    }
    memcpy(d, "\"}}", 4);
    d += 3;
    root = json_loadb(json, (size_t)(d - json), 0, NULL);
    if (json_is_object(root)) {
        /* as the parser reads a delta: its type picks the field */
        const json_t *delta = json_object_get(root, "delta");
        const char *type = json_string_value(json_object_get(delta, "type"));
        if (type != NULL && strcmp(type, "text_delta") == 0) {
            want = fuzz_json_chars(json_object_get(delta, "text"));
        }
        else if (type != NULL && strcmp(type, "thinking_delta") == 0) {
            want = fuzz_json_chars(json_object_get(delta, "thinking"));
        }
    }
    json_decref(root);
    sse = apr_pstrcat(p, "event: content_block_delta\ndata: ",
                      apr_pstrmemdup(p, json, (apr_size_t)(d - json)), "\n\n", NULL);
    up = cs_usage_parser_create(p, CS_USAGE_SSE, 0);
    cs_usage_parser_feed(up, sse, strlen(sse));
    cs_usage_parser_finish(up, &got);
    if (got.text_chars != want) {
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
        if (kinds[k] == CS_USAGE_JSON) {
            cs_usage_t want = fuzz_json_oracle(p, buf, size);
            fuzz_same(&whole, &want);
        }
    }
    fuzz_delta(p, buf + 1, size - 1);
    apr_pool_destroy(p);
    return 0;
}
