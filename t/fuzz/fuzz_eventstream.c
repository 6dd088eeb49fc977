/* fuzz_eventstream: cg_bedrock's event-stream decoder on arbitrary upstream bytes.
 *
 * The input is one InvokeModelWithResponseStream body; the first byte is also
 * the knob choosing a split point, a chunk size and a message cap, so seeds
 * are plain captures. The bytes are decoded whole, split in two, and in small
 * chunks; each way must give the same SSE text and the same final status (a
 * split can never change what the client sees), and every emitted frame must
 * be one well-formed SSE event: "event: <name>\ndata: <one line>\n\n". Each
 * input gets its own APR subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "cg_bedrock.h"

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

typedef struct {
    apr_pool_t *p;
    char *text;
    size_t len, cap;
    unsigned frames;
} fuzz_sink_t;

static void fuzz_frame_check(const char *f, apr_size_t n)
{
    const char *nl, *data;

    if (n < 17 || strncmp(f, "event: ", 7) != 0 || f[n - 1] != '\n' || f[n - 2] != '\n') {
        abort();
    }
    nl = memchr(f, '\n', n);
    data = nl + 1;
    if (nl == f + 7 || (size_t)(f + n - data) < 8 || strncmp(data, "data: ", 6) != 0) {
        abort();
    }
    /* exactly three line feeds: after the name, after the data, the blank line */
    if (memchr(data, '\n', (size_t)(f + n - data)) != f + n - 2 || memchr(f, '\r', n) != NULL) {
        abort();
    }
}

static apr_status_t fuzz_emit(void *baton, const char *data, apr_size_t len)
{
    fuzz_sink_t *s = baton;

    fuzz_frame_check(data, len);
    if (s->len + len > s->cap) {
        size_t cap = (s->cap ? s->cap * 2 : 1024);
        char *n;

        while (cap < s->len + len) {
            cap *= 2;
        }
        n = apr_palloc(s->p, cap);
        if (s->len) {
            memcpy(n, s->text, s->len);
        }
        s->text = n;
        s->cap = cap;
    }
    memcpy(s->text + s->len, data, len);
    s->len += len;
    s->frames++;
    return APR_SUCCESS;
}

typedef struct {
    fuzz_sink_t sink;
    apr_status_t feed, finish;
    apr_size_t events;
} fuzz_run_t;

static void fuzz_decode(apr_pool_t *p, apr_size_t max, const char *buf, size_t size, size_t split,
                        size_t chunk, fuzz_run_t *r)
{
    cg_bedrock_stream_t *d;
    size_t off;

    memset(r, 0, sizeof(*r));
    r->sink.p = p;
    d = cg_bedrock_stream_create(p, max, fuzz_emit, &r->sink);
    if (chunk == 0) {
        r->feed = cg_bedrock_stream_feed(d, buf, split);
        if (r->feed == APR_SUCCESS) {
            r->feed = cg_bedrock_stream_feed(d, buf + split, size - split);
        }
    }
    else {
        for (off = 0; off < size && r->feed == APR_SUCCESS; off += chunk) {
            r->feed = cg_bedrock_stream_feed(d, buf + off, size - off < chunk ? size - off : chunk);
        }
    }
    r->finish = cg_bedrock_stream_finish(d);
    r->events = cg_bedrock_stream_events(d);
    /* an error text exactly when the stream ended in an error */
    if ((cg_bedrock_stream_error(d) != NULL) != (r->feed == APR_EOF || r->feed == APR_EINVAL)) {
        abort();
    }
    if (r->events > r->sink.frames) {
        abort();
    }
}

static void fuzz_same(const fuzz_run_t *a, const fuzz_run_t *b)
{
    if (a->feed != b->feed || a->finish != b->finish || a->events != b->events ||
        a->sink.len != b->sink.len || a->sink.frames != b->sink.frames ||
        (a->sink.len && memcmp(a->sink.text, b->sink.text, a->sink.len) != 0)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    apr_pool_t *p;
    fuzz_run_t whole, two, tiny, small_whole, small_tiny;
    unsigned knob;
    size_t split, chunk;
    apr_size_t small;

    if (size == 0) {
        return 0;
    }
    knob = data[0];
    split = (size_t)knob * size / 255;
    chunk = knob % 13 + 1;
    small = 16 + (apr_size_t)(knob & 0x7f) * 4;
    apr_pool_create(&p, fuzz_pool);
    fuzz_decode(p, 0, buf, size, size, 0, &whole);
    fuzz_decode(p, 0, buf, size, split, 0, &two);
    fuzz_decode(p, 0, buf, size, 0, chunk, &tiny);
    fuzz_same(&whole, &two);
    fuzz_same(&whole, &tiny);
    fuzz_decode(p, small, buf, size, size, 0, &small_whole);
    fuzz_decode(p, small, buf, size, 0, 1, &small_tiny);
    fuzz_same(&small_whole, &small_tiny);
    apr_pool_destroy(p);
    return 0;
}
