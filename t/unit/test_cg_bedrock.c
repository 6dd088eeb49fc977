/* Unit tests for cg_bedrock: the InvokeModel body, paths, CountTokens, and the
 * event-stream decoder fed whole, one byte at a time, corrupted and cut.
 * Messages are built here with a bitwise CRC-32 (not the decoder's table), and
 * two were produced by Python (zlib.crc32, base64) to pin the framing. */
#include <string.h>

#include <jansson.h>

#include "unit.h"
#include "cg_bedrock.h"

/* ---- building event-stream messages ----------------------------------------------- */

static apr_uint32_t crc32_bitwise(const unsigned char *b, apr_size_t n)
{
    apr_uint32_t c = 0xFFFFFFFFu;
    apr_size_t i;
    int k;

    for (i = 0; i < n; i++) {
        c ^= b[i];
        for (k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
        }
    }
    return ~c;
}

static void put32(unsigned char *b, apr_uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

typedef struct {
    unsigned char data[16384];
    apr_size_t len;
} es_buf_t;

/* Append one message; headers are "name=value" string headers. */
static void es_add(es_buf_t *out, const char *const *headers, int nh, const char *payload)
{
    unsigned char *m = out->data + out->len, *h = m + 12;
    apr_size_t hl = 0, pl = strlen(payload), total;
    int i;

    for (i = 0; i < nh; i++) {
        const char *eq = strchr(headers[i], '=');
        apr_size_t nl = (apr_size_t)(eq - headers[i]), vl = strlen(eq + 1);

        h[hl++] = (unsigned char)nl;
        memcpy(h + hl, headers[i], nl);
        hl += nl;
        h[hl++] = 7;
        h[hl++] = (unsigned char)(vl >> 8);
        h[hl++] = (unsigned char)vl;
        memcpy(h + hl, eq + 1, vl);
        hl += vl;
    }
    total = 16 + hl + pl;
    ck_assert_uint_lt(out->len + total, sizeof(out->data));
    put32(m, (apr_uint32_t)total);
    put32(m + 4, (apr_uint32_t)hl);
    put32(m + 8, crc32_bitwise(m, 8));
    memcpy(h + hl, payload, pl);
    put32(m + total - 4, crc32_bitwise(m, total - 4));
    out->len += total;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void es_chunk(es_buf_t *out, const char *event_json)
{
    static const char *const hs[] = {":event-type=chunk", ":content-type=application/json",
                                     ":message-type=event"};
    char payload[8192], *o;
    const unsigned char *in = (const unsigned char *)event_json;
    apr_size_t n = strlen(event_json), i;

    o = payload + sprintf(payload, "{\"bytes\":\"");
    for (i = 0; i < n; i += 3) {
        apr_uint32_t v = (apr_uint32_t)in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) |
                         (i + 2 < n ? in[i + 2] : 0);

        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    strcpy(o, "\",\"p\":\"abcdefghij\"}");
    es_add(out, hs, 3, payload);
}

static void es_exception(es_buf_t *out, const char *type, const char *payload)
{
    char h0[128];
    const char *hs[3] = {h0, ":content-type=application/json", ":message-type=exception"};

    snprintf(h0, sizeof(h0), ":exception-type=%s", type);
    es_add(out, hs, 3, payload);
}

static const char *const EVENTS[] = {
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_bdrk_01\",\"type\":\"message\","
    "\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],"
    "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
    "\"output_tokens\":1}}}",
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}",
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Hello \\u00e9\\n\"}}",
    "{\"type\":\"content_block_stop\",\"index\":0}",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":7}}",
    "{\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":12,"
    "\"outputTokenCount\":7,\"invocationLatency\":500,\"firstByteLatency\":200}}",
};
#define NEVENTS (int)(sizeof(EVENTS) / sizeof(EVENTS[0]))

/* ---- collecting what the decoder emits ------------------------------------------------ */

typedef struct {
    char text[32768];
    apr_size_t len;
    int frames;
    int fail_at; /* emit fails on this frame number (1-based), 0 never */
} sink_t;

static apr_status_t sink_emit(void *baton, const char *data, apr_size_t len)
{
    sink_t *s = baton;

    s->frames++;
    if (s->fail_at != 0 && s->frames == s->fail_at) {
        return APR_ECONNABORTED;
    }
    ck_assert_uint_lt(s->len + len, sizeof(s->text));
    memcpy(s->text + s->len, data, len);
    s->len += len;
    s->text[s->len] = '\0';
    return APR_SUCCESS;
}

static apr_status_t feed_all(cg_bedrock_stream_t *d, const es_buf_t *b, apr_size_t step)
{
    apr_size_t off;
    apr_status_t rv = APR_SUCCESS;

    for (off = 0; off < b->len && rv == APR_SUCCESS; off += step) {
        rv = cg_bedrock_stream_feed(d, (const char *)b->data + off,
                                    b->len - off < step ? b->len - off : step);
    }
    return rv;
}

static es_buf_t stream_buf;

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(body_translation)
{
    const char *in = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":8,\"stream\":true,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tags\":{\"t\":\"g\"},"
                     "\"safeguards\":{\"x\":1},\"temperature\":0.5}";
    apr_size_t len;
    const char *out;

    out = cg_bedrock_body(unit_pool, in, strlen(in),
                          "claude-code-20250219, request-tags-2026-08-21,oauth-2025-04-20", &len);
    ck_assert_str_eq(out, "{\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                          "\"safeguards\":{\"x\":1},\"temperature\":0.5,"
                          "\"anthropic_version\":\"bedrock-2023-05-31\","
                          "\"anthropic_beta\":[\"claude-code-20250219\",\"oauth-2025-04-20\"]}");
    ck_assert_uint_eq(len, strlen(out));
    /* no betas: no anthropic_beta; a client's anthropic_version is replaced */
    in = "{\"model\":\"m\",\"anthropic_version\":\"x\"}";
    out = cg_bedrock_body(unit_pool, in, strlen(in), NULL, &len);
    ck_assert_str_eq(out, "{\"anthropic_version\":\"bedrock-2023-05-31\"}");
    /* a body array is kept and merged with the header, without repeats */
    in = "{\"model\":\"m\",\"anthropic_beta\":[\"a\",\"request-tags-2026-08-21\",\"b\"]}";
    out = cg_bedrock_body(unit_pool, in, strlen(in), "b,c", &len);
    ck_assert_str_eq(out, "{\"anthropic_beta\":[\"a\",\"b\",\"c\"],"
                          "\"anthropic_version\":\"bedrock-2023-05-31\"}");
    ck_assert_ptr_null(cg_bedrock_body(unit_pool, "[]", 2, NULL, &len));
    ck_assert_ptr_null(cg_bedrock_body(unit_pool, "{\"a\":1,\"a\":1}", 13, NULL, &len));
}
END_TEST

START_TEST(guardrail_input_tags)
{
    const char *in = "{\"model\":\"m\",\"max_tokens\":8,\"system\":\"sys\",\"messages\":["
                     "{\"role\":\"user\",\"content\":\"old\"},"
                     "{\"role\":\"assistant\",\"content\":\"a\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
                     "\"tool_use_id\":\"t\",\"content\":\"r\"},{\"type\":\"text\","
                     "\"text\":\"new\"}]}]}";
    apr_size_t n;
    const char *out = cg_bedrock_body_tagged(unit_pool, in, strlen(in), NULL, "s1", &n);

    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(strstr(out, "\"messages\":[{\"role\":\"user\",\"content\":\"old\"}"));
    ck_assert_ptr_nonnull(strstr(out, "{\"type\":\"tool_result\",\"tool_use_id\":\"t\","
                                      "\"content\":\"r\"},{\"type\":\"text\",\"text\":\"<"
                                      "amazon-bedrock-guardrails-guardContent_s1>new</"
                                      "amazon-bedrock-guardrails-guardContent_s1>\"}"));
    ck_assert_ptr_nonnull(strstr(out, "\"amazon-bedrock-guardrailConfig\":{\"tagSuffix\":\"s1\"}"));
    ck_assert_ptr_null(strstr(out, "_s1>sys"));
    /* no suffix: the plain translation */
    ck_assert_str_eq(cg_bedrock_body_tagged(unit_pool, in, strlen(in), NULL, NULL, &n),
                     cg_bedrock_body(unit_pool, in, strlen(in), NULL, &n));
    /* nothing to tag: no config either */
    in = "{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":"
         "[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":\"r\"}]}]}";
    out = cg_bedrock_body_tagged(unit_pool, in, strlen(in), NULL, "s1", &n);
    ck_assert_ptr_null(strstr(out, "guardrail"));
}
END_TEST

START_TEST(paths_and_host)
{
    ck_assert_str_eq(cg_bedrock_path(unit_pool, "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                                     CG_BEDROCK_INVOKE),
                     "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke");
    ck_assert_str_eq(cg_bedrock_path(unit_pool, "anthropic.claude-haiku-4-5-20251001-v1:0",
                                     CG_BEDROCK_INVOKE_STREAM),
                     "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/"
                     "invoke-with-response-stream");
    ck_assert_str_eq(cg_bedrock_path(unit_pool,
                                     "arn:aws:bedrock:eu-west-1:123456789012:"
                                     "application-inference-profile/abc123",
                                     CG_BEDROCK_COUNT_TOKENS),
                     "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3A"
                     "application-inference-profile%2Fabc123/count-tokens");
    ck_assert_ptr_null(cg_bedrock_path(unit_pool, "", CG_BEDROCK_INVOKE));
    ck_assert_str_eq(cg_bedrock_host(unit_pool, "eu-central-1"),
                     "bedrock-runtime.eu-central-1.amazonaws.com");
    ck_assert_ptr_null(cg_bedrock_host(unit_pool, "evil.com/"));
    ck_assert_ptr_null(cg_bedrock_host(unit_pool, NULL));
}
END_TEST

START_TEST(count_tokens)
{
    const char *in = "{\"model\":\"claude-haiku-4-5\",\"messages\":[{\"role\":\"user\","
                     "\"content\":\"hi\"}],\"tools\":[],\"thinking\":{\"type\":\"enabled\","
                     "\"budget_tokens\":1024}}";
    const char *out;
    apr_size_t len;
    json_t *j;
    const char *body;

    out = cg_bedrock_count_tokens_body(unit_pool, in, strlen(in), "claude-code-20250219", &len);
    ck_assert_ptr_nonnull(out);
    j = json_loads(out, 0, NULL);
    body = json_string_value(
        json_object_get(json_object_get(json_object_get(j, "input"), "invokeModel"), "body"));
    ck_assert_ptr_nonnull(body);
    /* base64 of the invoke body (computed with Python's base64 and json) */
    ck_assert_str_eq(body, "eyJtZXNzYWdlcyI6W3sicm9sZSI6InVzZXIiLCJjb250ZW50IjoiaGkifV0sInRoaW5r"
                           "aW5nIjp7InR5cGUiOiJlbmFibGVkIiwiYnVkZ2V0X3Rva2VucyI6MTAyNH0sImFudGhy"
                           "b3BpY192ZXJzaW9uIjoiYmVkcm9jay0yMDIzLTA1LTMxIiwiYW50aHJvcGljX2JldGEi"
                           "OlsiY2xhdWRlLWNvZGUtMjAyNTAyMTkiXSwibWF4X3Rva2VucyI6MTAyNX0=");
    json_decref(j);
    ck_assert_str_eq(cg_bedrock_count_tokens_answer(unit_pool, "{\"inputTokens\":42}", 18),
                     "{\"input_tokens\":42}");
    ck_assert_ptr_null(cg_bedrock_count_tokens_answer(unit_pool, "{\"inputTokens\":\"4\"}", 19));
    ck_assert_ptr_null(cg_bedrock_count_tokens_answer(unit_pool, "nope", 4));
}
END_TEST

static void build_stream(void)
{
    int i;

    stream_buf.len = 0;
    for (i = 0; i < NEVENTS; i++) {
        es_chunk(&stream_buf, EVENTS[i]);
    }
}

static const char *expected_sse(void)
{
    static char want[16384];
    apr_size_t n = 0;
    int i;

    for (i = 0; i < NEVENTS; i++) {
        json_t *j = json_loads(EVENTS[i], 0, NULL);

        n += (apr_size_t)snprintf(want + n, sizeof(want) - n, "event: %s\ndata: %s\n\n",
                                  json_string_value(json_object_get(j, "type")), EVENTS[i]);
        json_decref(j);
    }
    return want;
}

START_TEST(stream_whole_and_bytewise)
{
    static sink_t whole, bytes, odd;
    cg_bedrock_stream_t *d;
    apr_size_t steps[] = {7, 13, 64, 4096};
    apr_size_t i;

    build_stream();
    memset(&whole, 0, sizeof(whole));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &whole);
    ck_assert_int_eq(feed_all(d, &stream_buf, stream_buf.len), APR_SUCCESS);
    ck_assert_int_eq(cg_bedrock_stream_finish(d), APR_SUCCESS);
    ck_assert_str_eq(whole.text, expected_sse());
    ck_assert_int_eq(whole.frames, NEVENTS);
    ck_assert_uint_eq(cg_bedrock_stream_events(d), NEVENTS);
    ck_assert_ptr_null(cg_bedrock_stream_error(d));

    memset(&bytes, 0, sizeof(bytes));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &bytes);
    ck_assert_int_eq(feed_all(d, &stream_buf, 1), APR_SUCCESS);
    ck_assert_str_eq(bytes.text, whole.text);
    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        memset(&odd, 0, sizeof(odd));
        d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &odd);
        ck_assert_int_eq(feed_all(d, &stream_buf, steps[i]), APR_SUCCESS);
        ck_assert_str_eq(odd.text, whole.text);
    }
}
END_TEST

static void hex_to(es_buf_t *b, const char *hex)
{
    b->len = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned int v;

        ck_assert_int_eq(sscanf(hex, "%2x", &v), 1);
        b->data[b->len++] = (unsigned char)v;
    }
}

START_TEST(python_vectors)
{
    static sink_t s;
    static es_buf_t b;
    cg_bedrock_stream_t *d;

    /* zlib.crc32-framed chunk {"bytes": base64('{"type":"ping"}')}, then a
     * throttlingException, both from Python */
    hex_to(&b, "0000007c0000004bb80e4abf0b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e7"
               "42d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d7479706507"
               "00056576656e747b226279746573223a202265794a306558426c496a6f6963476c755a794a39227d"
               "10c0faf4"
               "000000b30000006108f0fc630f3a657863657074696f6e2d747970650700137468726f74746c696e"
               "67457863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a"
               "736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d657373616765223a"
               "2022546f6f206d616e792072657175657374732c20706c656173652077616974206265666f726520"
               "747279696e6720616761696e2e227d6b650cc2"
               /* AWS's empty message vector: never reached, the exception ended the stream */
               "000000100000000005c248eb7d98c8ff");
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, b.len), APR_EOF);
    ck_assert_str_eq(s.text, "event: ping\ndata: {\"type\":\"ping\"}\n\n"
                             "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                             "\"rate_limit_error\",\"message\":\"upstream rate limit exceeded\"}}"
                             "\n\n");
    ck_assert_str_eq(cg_bedrock_stream_error(d), "throttlingException: Too many requests, please "
                                                 "wait before trying again.");
    /* the empty message alone: a valid message that carries nothing */
    hex_to(&b, "000000100000000005c248eb7d98c8ff");
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, 1), APR_EINVAL); /* no :message-type */
    ck_assert_ptr_nonnull(strstr(s.text, "\"api_error\""));
}
END_TEST

START_TEST(exceptions_mid_stream)
{
    static sink_t s;
    static es_buf_t b;
    cg_bedrock_stream_t *d;

    b.len = 0;
    es_chunk(&b, EVENTS[0]);
    es_exception(&b, "validationException", "{\"message\":\"Input is too long.\"}");
    es_chunk(&b, EVENTS[1]);
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, 5), APR_EOF);
    ck_assert_int_eq(s.frames, 2);
    ck_assert_ptr_nonnull(strstr(s.text, "event: error\ndata: {\"type\":\"error\",\"error\":"
                                         "{\"type\":\"invalid_request_error\",\"message\":"
                                         "\"Input is too long.\"}}\n\n"));
    ck_assert_int_eq(cg_bedrock_stream_feed(d, "xyz", 3), APR_EOF);
    ck_assert_int_eq(cg_bedrock_stream_finish(d), APR_SUCCESS);

    /* the model's own failure keeps its status: 529 is overloaded_error */
    b.len = 0;
    es_exception(&b, "modelStreamErrorException",
                 "{\"message\":\"Model stream error in account 123\",\"originalStatusCode\":529,"
                 "\"originalMessage\":\"Overloaded\"}");
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, b.len), APR_EOF);
    ck_assert_str_eq(s.text, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                             "\"overloaded_error\",\"message\":\"upstream overloaded\"}}\n\n");
    ck_assert_ptr_nonnull(strstr(cg_bedrock_stream_error(d), "account 123"));

    b.len = 0;
    es_exception(&b, "internalServerException", "{}");
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, 3), APR_EOF);
    ck_assert_ptr_nonnull(strstr(s.text, "\"api_error\",\"message\":\"upstream error\""));
}
END_TEST

START_TEST(corruption_and_truncation)
{
    static sink_t s;
    static es_buf_t b;
    cg_bedrock_stream_t *d;
    apr_size_t first;

    /* a flipped payload byte in the second message: first event out, then the error */
    b.len = 0;
    es_chunk(&b, EVENTS[0]);
    first = b.len;
    es_chunk(&b, EVENTS[1]);
    b.data[first + 60] ^= 0x01;
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, 1), APR_EINVAL);
    ck_assert_int_eq(s.frames, 2);
    ck_assert_ptr_nonnull(strstr(s.text, "event: message_start\n"));
    ck_assert_ptr_nonnull(strstr(s.text,
                                 "event: error\ndata: {\"type\":\"error\",\"error\":"
                                 "{\"type\":\"api_error\",\"message\":\"upstream error\"}}"));
    ck_assert_str_eq(cg_bedrock_stream_error(d), "malformed event stream: message CRC mismatch");
    ck_assert_int_eq(cg_bedrock_stream_feed(d, (const char *)b.data, b.len), APR_EINVAL);
    ck_assert_int_eq(s.frames, 2);

    /* a prelude that lies: its CRC catches it before the length is trusted */
    b.len = 0;
    es_chunk(&b, EVENTS[3]);
    b.data[1] = 0x7f;
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, b.len), APR_EINVAL);
    ck_assert_str_eq(cg_bedrock_stream_error(d), "malformed event stream: prelude CRC mismatch");

    /* over the cap */
    b.len = 0;
    es_chunk(&b, EVENTS[0]);
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 64, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, b.len), APR_EINVAL);
    ck_assert_str_eq(cg_bedrock_stream_error(d),
                     "malformed event stream: impossible message or header length");

    /* a chunk whose bytes are not an Anthropic event */
    b.len = 0;
    es_chunk(&b, "[1,2]");
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, b.len), APR_EINVAL);
    b.len = 0;
    es_chunk(&b, "{\"type\":\"bad\\ntype\"}");
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, b.len), APR_EINVAL);

    /* cut in the middle of a message: nothing emitted for it, finish says so */
    build_stream();
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(cg_bedrock_stream_feed(d, (const char *)stream_buf.data, first + 20),
                     APR_SUCCESS);
    ck_assert_int_eq(s.frames, 1);
    ck_assert_int_eq(cg_bedrock_stream_finish(d), APR_INCOMPLETE);
}
END_TEST

START_TEST(pretty_event_and_emit_failure)
{
    static sink_t s;
    static es_buf_t b;
    cg_bedrock_stream_t *d;

    /* an event JSON spread over lines is re-serialised onto one data line */
    b.len = 0;
    es_chunk(&b, "{\n  \"type\": \"content_block_stop\",\n  \"index\": 0\n}");
    memset(&s, 0, sizeof(s));
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &b, b.len), APR_SUCCESS);
    ck_assert_str_eq(
        s.text, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}"
                "\n\n");

    /* the sink failing (client gone) stops the decoder with its status */
    build_stream();
    memset(&s, 0, sizeof(s));
    s.fail_at = 2;
    d = cg_bedrock_stream_create(unit_pool, 0, sink_emit, &s);
    ck_assert_int_eq(feed_all(d, &stream_buf, 1), APR_ECONNABORTED);
    ck_assert_int_eq(cg_bedrock_stream_feed(d, "x", 1), APR_ECONNABORTED);
    ck_assert_int_eq(s.frames, 2);
}
END_TEST

Suite *unit_suite_cg_bedrock(void)
{
    Suite *s = suite_create("cg_bedrock");
    TCase *tc = tcase_create("bedrock");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, body_translation);
    tcase_add_test(tc, guardrail_input_tags);
    tcase_add_test(tc, paths_and_host);
    tcase_add_test(tc, count_tokens);
    tcase_add_test(tc, stream_whole_and_bytewise);
    tcase_add_test(tc, python_vectors);
    tcase_add_test(tc, exceptions_mid_stream);
    tcase_add_test(tc, corruption_and_truncation);
    tcase_add_test(tc, pretty_event_and_emit_failure);
    suite_add_tcase(s, tc);
    return s;
}
