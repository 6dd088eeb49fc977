/* Unit tests of cs_usage: the SSE and JSON usage parser. The streams are the
 * reference captures (21: a streamed answer, 20: a plain one), fed whole, a
 * byte at a time and split at every position, with each line ending SSE
 * allows; then the ways an upstream can misbehave. */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "unit.h"

#include "cs_usage.h"

/* capture 21, the body as the upstream sent it */
static const char cap21[] =
    "event: message_start\n"
    "data: "
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_up1_2\",\"type\":\"message\",\"role\":"
    "\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,"
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":2000,\"cache_creation_input_tokens\":0,"
    "\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: "
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":"
    "\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\":\"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: "
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
    "\"Hello\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: "
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" "
    "from up1\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: "
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":800}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

/* capture 20, the body */
static const char cap20[] =
    "{\"id\":\"msg_up1_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-"
    "5-20250929\",\"content\":[{\"type\":\"text\",\"text\":\"Hello from "
    "up1\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":1000,"
    "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":500}}";

#define CAP21_MODEL "claude-sonnet-4-5-20250929"

/* Parse len bytes in chunks of `chunk` (0: all at once). */
static cs_usage_t parse(cs_usage_kind_e kind, apr_size_t max, const char *data, apr_size_t len,
                        apr_size_t chunk)
{
    cs_usage_parser_t *up = cs_usage_parser_create(unit_pool, kind, max);
    cs_usage_t u;
    apr_size_t off;

    if (chunk == 0) {
        chunk = len ? len : 1;
    }
    for (off = 0; off < len; off += chunk) {
        cs_usage_parser_feed(up, data + off, len - off < chunk ? len - off : chunk);
    }
    cs_usage_parser_finish(up, &u);
    return u;
}

static cs_usage_t parse_split(cs_usage_kind_e kind, const char *data, apr_size_t len, apr_size_t at)
{
    cs_usage_parser_t *up = cs_usage_parser_create(unit_pool, kind, 0);
    cs_usage_t u;

    cs_usage_parser_feed(up, data, at);
    cs_usage_parser_feed(up, data + at, len - at);
    cs_usage_parser_finish(up, &u);
    return u;
}

static cs_usage_t sse(const char *s)
{
    return parse(CS_USAGE_SSE, 0, s, strlen(s), 0);
}

static cs_usage_t json(const char *s)
{
    return parse(CS_USAGE_JSON, 0, s, strlen(s), 0);
}

/* The text with every LF replaced by `eol`. */
static const char *with_eol(const char *s, const char *eol)
{
    const char *out = "";
    const char *nl;

    while ((nl = strchr(s, '\n')) != NULL) {
        out = apr_pstrcat(unit_pool, out, apr_pstrndup(unit_pool, s, (apr_size_t)(nl - s)), eol,
                          NULL);
        s = nl + 1;
    }
    return apr_pstrcat(unit_pool, out, s, NULL);
}

static void assert_cap21(const cs_usage_t *u)
{
    ck_assert_int_eq(u->input_tokens, 2000);
    ck_assert_int_eq(u->output_tokens, 800);
    ck_assert_int_eq(u->cache_read_tokens, 0);
    ck_assert_int_eq(u->cache_creation_tokens, 0);
    ck_assert_int_eq(u->text_chars, 14); /* "Hello" + " from up1" */
    ck_assert_ptr_nonnull(u->model);
    ck_assert_str_eq(u->model, CAP21_MODEL);
    ck_assert_int_eq(u->seen_usage, 1);
    ck_assert_int_eq(u->complete, 1);
    ck_assert_int_eq(u->truncated, 0);
    ck_assert_int_eq(u->error_event, 0);
}

START_TEST(test_sse_capture_whole)
{
    cs_usage_t u = parse(CS_USAGE_SSE, 0, cap21, strlen(cap21), 0);

    assert_cap21(&u);
}
END_TEST

START_TEST(test_sse_capture_byte_by_byte)
{
    cs_usage_t u = parse(CS_USAGE_SSE, 0, cap21, strlen(cap21), 1);

    assert_cap21(&u);
}
END_TEST

START_TEST(test_sse_capture_every_split)
{
    apr_size_t len = strlen(cap21), at;

    for (at = 0; at <= len; at++) {
        cs_usage_t u = parse_split(CS_USAGE_SSE, cap21, len, at);
        assert_cap21(&u);
    }
}
END_TEST

START_TEST(test_sse_crlf_and_cr)
{
    static const char *eols[] = {"\r\n", "\r"};
    size_t i;

    for (i = 0; i < 2; i++) {
        const char *s = with_eol(cap21, eols[i]);
        apr_size_t len = strlen(s), at;
        cs_usage_t u = parse(CS_USAGE_SSE, 0, s, len, 0);

        assert_cap21(&u);
        u = parse(CS_USAGE_SSE, 0, s, len, 1);
        assert_cap21(&u);
        /* includes every split between a CR and its LF */
        for (at = 0; at <= len; at++) {
            u = parse_split(CS_USAGE_SSE, s, len, at);
            assert_cap21(&u);
        }
    }
}
END_TEST

START_TEST(test_sse_mixed_eols_and_odd_chunks)
{
    /* every line end SSE allows, in one stream, fed in chunks of 1 to 13 */
    const char *s =
        "event: message_start\r\n"
        "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\r"
        "\n\n"
        "event: message_delta\n"
        "data: {\"usage\":{\"output_tokens\":3}}\r\r"
        "event: message_stop\r\ndata: {}\n\r\n";
    apr_size_t chunk;

    for (chunk = 1; chunk <= 13; chunk++) {
        cs_usage_t u = parse(CS_USAGE_SSE, 0, s, strlen(s), chunk);
        ck_assert_int_eq(u.input_tokens, 5);
        ck_assert_int_eq(u.output_tokens, 3);
        ck_assert_int_eq(u.complete, 1);
    }
}
END_TEST

START_TEST(test_sse_output_cumulative)
{
    cs_usage_t u = sse("event: message_delta\ndata: {\"usage\":{\"output_tokens\":10}}\n\n"
                       "event: message_delta\ndata: {\"usage\":{\"output_tokens\":800}}\n\n"
                       "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");

    ck_assert_int_eq(u.output_tokens, 800); /* the last, not 810 */
    ck_assert_int_eq(u.complete, 1);
}
END_TEST

START_TEST(test_sse_delta_with_input_tokens)
{
    /* newer APIs repeat (and may correct) input and cache counts at the end */
    cs_usage_t u = sse("event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                       "{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":1,"
                       "\"output_tokens\":1}}}\n\n"
                       "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":"
                       "{\"input_tokens\":12,\"cache_creation_input_tokens\":7,"
                       "\"cache_read_input_tokens\":null,\"output_tokens\":30}}\n\n");

    ck_assert_int_eq(u.input_tokens, 12);
    ck_assert_int_eq(u.cache_creation_tokens, 7);
    ck_assert_int_eq(u.cache_read_tokens, 1); /* null does not erase */
    ck_assert_int_eq(u.output_tokens, 30);
}
END_TEST

START_TEST(test_sse_truncated)
{
    /* cut after the first content delta: no message_delta, no message_stop */
    const char *cut =
        strstr(cap21, "event: content_block_delta\ndata: {\"type\":\"content_block_delta"
                      "\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" ");
    cs_usage_t u;

    ck_assert_ptr_nonnull(cut);
    u = parse(CS_USAGE_SSE, 0, cap21, (apr_size_t)(cut - cap21), 0);
    ck_assert_int_eq(u.input_tokens, 2000);
    ck_assert_int_eq(u.output_tokens, 1); /* message_start's placeholder */
    ck_assert_int_eq(u.text_chars, 5);
    ck_assert_int_eq(u.seen_usage, 1);
    ck_assert_int_eq(u.complete, 0);
    ck_assert_int_eq(u.truncated, 1);
}
END_TEST

START_TEST(test_sse_cut_without_blank_line)
{
    const char *s = "event: message_delta\ndata: {\"usage\":{\"output_tokens\":42}}";
    cs_usage_t u;

    /* the last data line arrived whole but its blank line never did */
    u = sse(s);
    ck_assert_int_eq(u.output_tokens, 42);
    ck_assert_int_eq(u.truncated, 1);
    /* cut inside the JSON: nothing taken from it */
    u = parse(CS_USAGE_SSE, 0, s, strlen(s) - 3, 0);
    ck_assert_int_eq(u.output_tokens, 0);
    ck_assert_int_eq(u.seen_usage, 0);
}
END_TEST

START_TEST(test_sse_error_event)
{
    cs_usage_t u = sse("event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                       "{\"usage\":{\"input_tokens\":9}}}\n\n"
                       "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                       "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");

    ck_assert_int_eq(u.error_event, 1);
    ck_assert_int_eq(u.input_tokens, 9);
    ck_assert_int_eq(u.complete, 0);
    ck_assert_int_eq(u.truncated, 1);
    /* without an event field, the payload's type says it */
    u = sse("data: {\"type\":\"error\",\"error\":{}}\n\n");
    ck_assert_int_eq(u.error_event, 1);
}
END_TEST

START_TEST(test_sse_oversized_line_dropped)
{
    apr_size_t max = 256, chunk;
    char pad[1000];
    const char *s;

    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    s = apr_pstrcat(
        unit_pool,
        /* a comment over the cap: harmless, its event still counts */
        "event: message_start\n:", pad, "\n",
        "data: {\"message\":{\"usage\":{\"input_tokens\":7}}}\n\n",
        "event: message_delta\ndata: {\"usage\":{\"output_tokens\":42}}\n\n",
        /* a single data line over the cap: the event has no data left */
        "event: message_delta\ndata: {\"usage\":{\"output_tokens\":999},\"pad\":\"", pad, "\"}\n\n",
        /* a field name over the cap: its whole event is dropped */
        pad, ": 1\nevent: message_delta\ndata: {\"usage\":{\"output_tokens\":5}}\n\n",
        /* a middle data line over the cap: what is left would parse, wrongly */
        "event: message_delta\ndata: {\"usage\":{\"output_tokens\":998},\ndata: \"p\":\"", pad,
        "\",\ndata: \"x\":1}\n\n",
        /* and the stream goes on */
        "event: message_start\ndata: {\"message\":{\"model\":\"m-2\"}}\n\n",
        "event: message_stop\ndata: {}\n\n", NULL);
    for (chunk = 0; chunk <= 300; chunk += chunk < 3 ? 1 : 97) {
        cs_usage_t u = parse(CS_USAGE_SSE, max, s, strlen(s), chunk);
        ck_assert_int_eq(u.output_tokens, 42);
        ck_assert_int_eq(u.input_tokens, 7);
        ck_assert_str_eq(u.model, "m-2");
        ck_assert_int_eq(u.complete, 1);
    }
}
END_TEST

START_TEST(test_sse_line_at_cap_kept)
{
    /* a line of exactly max bytes is kept; one more and it is dropped */
    const char *line = "data: {\"usage\":{\"output_tokens\":77}}";
    apr_size_t n = strlen(line);
    const char *s = apr_pstrcat(unit_pool, "event: message_delta\n", line, "\n\n", NULL);
    cs_usage_t u;

    u = parse(CS_USAGE_SSE, n, s, strlen(s), 1);
    ck_assert_int_eq(u.output_tokens, 77);
    u = parse(CS_USAGE_SSE, n - 1, s, strlen(s), 1);
    ck_assert_int_eq(u.output_tokens, 0);
    u = parse(CS_USAGE_SSE, n - 1, s, strlen(s), 0);
    ck_assert_int_eq(u.output_tokens, 0);
}
END_TEST

START_TEST(test_sse_event_data_over_cap)
{
    /* each line fits the cap of 40, the joined data of the second event does
     * not: what was kept of it would parse, but half an event is no event */
    const char *s = "event: message_delta\ndata: {\"usage\":{\"output_tokens\":4}}\n\n"
                    "event: message_delta\ndata: {\"usage\":{\"output_tokens\":9}}\n"
                    "data: 12345678901234567890\n\n";
    cs_usage_t u = parse(CS_USAGE_SSE, 40, s, strlen(s), 0);

    ck_assert_int_eq(u.output_tokens, 4);
    u = parse(CS_USAGE_SSE, 40, s, strlen(s), 1);
    ck_assert_int_eq(u.output_tokens, 4);
}
END_TEST

START_TEST(test_sse_multiline_data)
{
    /* data lines are joined with LF, which JSON takes as whitespace */
    cs_usage_t u = sse("event: message_delta\ndata: {\"type\":\"message_delta\",\n"
                       "data: \"usage\":{\"output_tokens\":\ndata: 7}}\n\n");

    ck_assert_int_eq(u.output_tokens, 7);
    /* a data line breaking a string does not parse */
    u = sse("event: message_start\ndata: {\"message\":{\"model\":\"clau\ndata: de\"}}\n\n");
    ck_assert_ptr_null(u.model);
}
END_TEST

START_TEST(test_sse_field_syntax)
{
    /* no space after the colon; extra spaces are part of the value */
    cs_usage_t u =
        sse("event:message_start\ndata:{\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n"
            "event:  message_delta\ndata: {\"usage\":{\"output_tokens\":99}}\n\n"
            ": a comment\nid: 1\nretry: 10\nevent: message_delta\n"
            "data: {\"usage\":{\"output_tokens\":8}}\n\n"
            "event\ndata: {\"type\":\"message_stop\"}\n\n");

    ck_assert_int_eq(u.input_tokens, 3);
    ck_assert_int_eq(u.output_tokens, 8);
    ck_assert_int_eq(u.complete, 1); /* "event" alone: unnamed, the type decides */
}
END_TEST

START_TEST(test_sse_events_without_name_or_data)
{
    cs_usage_t u;

    /* the payload's type when there is no event field */
    u = sse("data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":4}}}\n\n"
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":6}}\n\n"
            "data: {\"type\":\"message_stop\"}\n\n");
    ck_assert_int_eq(u.input_tokens, 4);
    ck_assert_int_eq(u.output_tokens, 6);
    ck_assert_int_eq(u.complete, 1);
    /* an event without data is not dispatched, and its name does not leak
     * into the next event */
    u = sse("event: message_stop\n\ndata: {\"usage\":{\"output_tokens\":6}}\n\n");
    ck_assert_int_eq(u.complete, 0);
    ck_assert_int_eq(u.output_tokens, 0);
    /* a named event the parser skips (ping) is not read for its type */
    u = sse("event: ping\ndata: {\"type\":\"message_stop\"}\n\n");
    ck_assert_int_eq(u.complete, 0);
}
END_TEST

START_TEST(test_sse_text_and_thinking_chars)
{
    /* code points, not bytes: é is 2 bytes, the emoji 4 (escaped in JSON) */
    cs_usage_t u = sse("event: content_block_delta\ndata: {\"delta\":{\"type\":\"thinking_delta\","
                       "\"thinking\":\"h\xc3\xa9llo\"}}\n\n"
                       "event: content_block_delta\ndata: {\"delta\":{\"type\":\"text_delta\","
                       "\"text\":\"\\ud83d\\ude00!\"}}\n\n"
                       "event: content_block_delta\ndata: {\"delta\":{\"type\":"
                       "\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n"
                       "event: content_block_delta\ndata: {\"delta\":{\"type\":\"text_delta\","
                       "\"text\":5}}\n\n");

    ck_assert_int_eq(u.text_chars, 5 + 2);
    ck_assert_int_eq(u.seen_usage, 0);
}
END_TEST

START_TEST(test_sse_compact_deltas_counted_without_a_parse)
{
    /* the API's own compact form takes the fast path; its count must be the
     * parse's: escapes, a surrogate pair, UTF-8, thinking */
#define CBD "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"
    cs_usage_t u =
        sse(CBD "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\n\\\"\\u00e9\\ud83d\\ude00"
                "\xc3\xa9\"}}\n\n" CBD
                "12,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\n\n");

    ck_assert_int_eq(u.text_chars, 6 + 2);
    /* what jansson refuses counts nothing, fast path or not: a bad escape,
     * \u0000, a lone surrogate, invalid UTF-8, a leading zero, a raw tab */
    u = sse(CBD "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\x\"}}\n\n" CBD
                "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\u0000\"}}\n\n" CBD
                "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\udc00\"}}\n\n" CBD
                "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xc0\xaf\"}}\n\n" CBD
                "01,\"delta\":{\"type\":\"text_delta\",\"text\":\"abc\"}}\n\n" CBD
                "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\tb\"}}\n\n");
    ck_assert_int_eq(u.text_chars, 0);
    /* other shapes are parsed: spaces, a later duplicate type, more keys */
    u = sse(CBD " 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"abc\"}}\n\n" CBD
                "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"abc\",\"type\":\"x\"}}\n\n" CBD
                "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"de\"},\"extra\":1}\n\n");
    ck_assert_int_eq(u.text_chars, 3 + 0 + 2);
#undef CBD
}
END_TEST

START_TEST(test_sse_bom)
{
    const char *s = apr_pstrcat(unit_pool, "\xEF\xBB\xBF", cap21, NULL);
    cs_usage_t u = parse(CS_USAGE_SSE, 0, s, strlen(s), 1);

    assert_cap21(&u);
}
END_TEST

START_TEST(test_sse_bad_values_ignored)
{
    cs_usage_t u = sse("event: message_start\ndata: {\"message\":{\"model\":\"bad\\nmodel\","
                       "\"usage\":{\"input_tokens\":-5,\"output_tokens\":1.5,"
                       "\"cache_read_input_tokens\":\"7\"}}}\n\n"
                       "event: message_delta\ndata: {\"usage\":{\"output_tokens\":10}}\n\n"
                       "event: message_delta\ndata: {\"usage\":{\"output_tokens\":-1}}\n\n"
                       "event: message_delta\ndata: [1,2]\n\n"
                       "event: message_delta\ndata: {\"usage\":[1]}\n\n");

    ck_assert_int_eq(u.input_tokens, 0);
    ck_assert_int_eq(u.cache_read_tokens, 0);
    ck_assert_int_eq(u.output_tokens, 10);
    ck_assert_ptr_null(u.model); /* a control character: not logged */
}
END_TEST

START_TEST(test_sse_garbage)
{
    /* random bytes, NULs, lone CRs, endless lines: no crash, nothing counted */
    char buf[20000];
    apr_uint32_t x = 12345;
    apr_size_t i, chunk;

    for (i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (char)(x >> 16);
    }
    for (chunk = 0; chunk < 40; chunk += 7) {
        cs_usage_t u = parse(CS_USAGE_SSE, 64, buf, sizeof(buf), chunk);
        ck_assert_int_eq(u.complete, 0);
        ck_assert_int_eq(u.truncated, 1);
        u = parse(CS_USAGE_JSON, 0, buf, sizeof(buf), chunk);
        ck_assert_int_eq(u.complete, 0);
        ck_assert_int_eq(u.seen_usage, 0);
    }
}
END_TEST

START_TEST(test_finish_idempotent)
{
    cs_usage_parser_t *up = cs_usage_parser_create(unit_pool, CS_USAGE_SSE, 0);
    const char *more = "event: message_delta\ndata: {\"usage\":{\"output_tokens\":1}}\n\n";
    cs_usage_t a, b;

    cs_usage_parser_feed(up, cap21, strlen(cap21));
    cs_usage_parser_finish(up, &a);
    /* bytes after the end change nothing */
    cs_usage_parser_feed(up, more, strlen(more));
    cs_usage_parser_finish(up, &b);
    ck_assert_int_eq(a.output_tokens, b.output_tokens);
    ck_assert_ptr_eq(a.model, b.model);
    assert_cap21(&a);
    assert_cap21(&b);
    cs_usage_parser_feed(up, NULL, 0);
    cs_usage_parser_finish(NULL, &a);
    ck_assert_int_eq(a.truncated, 1);
}
END_TEST

START_TEST(test_json_body)
{
    apr_size_t len = strlen(cap20), chunk;

    for (chunk = 0; chunk <= 7; chunk++) {
        cs_usage_t u = parse(CS_USAGE_JSON, 0, cap20, len, chunk);
        ck_assert_int_eq(u.input_tokens, 1000);
        ck_assert_int_eq(u.output_tokens, 500);
        ck_assert_int_eq(u.cache_read_tokens, 0);
        ck_assert_int_eq(u.text_chars, 14);
        ck_assert_str_eq(u.model, CAP21_MODEL);
        ck_assert_int_eq(u.seen_usage, 1);
        ck_assert_int_eq(u.complete, 1);
        ck_assert_int_eq(u.truncated, 0);
    }
}
END_TEST

START_TEST(test_json_body_across_blocks)
{
    /* a body larger than the parser's 16 KiB blocks, fed in odd pieces */
    const char *head = "{\"model\":\"m-1\",\"content\":[{\"type\":\"text\",\"text\":\"";
    const char *tail = "\"}],\"usage\":{\"input_tokens\":3,\"output_tokens\":4,"
                       "\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":6}}";
    apr_size_t n = 40000, len;
    char *body = apr_palloc(unit_pool, strlen(head) + n + strlen(tail) + 1);
    cs_usage_t u;

    strcpy(body, head);
    memset(body + strlen(head), 'a', n);
    strcpy(body + strlen(head) + n, tail);
    len = strlen(body);
    u = parse(CS_USAGE_JSON, 0, body, len, 4099);
    ck_assert_int_eq(u.complete, 1);
    ck_assert_int_eq(u.text_chars, (apr_int64_t)n);
    ck_assert_int_eq(u.cache_read_tokens, 5);
    ck_assert_int_eq(u.cache_creation_tokens, 6);
    /* the cap is on the whole body: exactly at it parses, one byte under not */
    u = parse(CS_USAGE_JSON, len, body, len, 1000);
    ck_assert_int_eq(u.complete, 1);
    u = parse(CS_USAGE_JSON, len - 1, body, len, 1000);
    ck_assert_int_eq(u.complete, 0);
}
END_TEST

START_TEST(test_json_over_limit)
{
    cs_usage_t u = parse(CS_USAGE_JSON, 64, cap20, strlen(cap20), 10);

    ck_assert_int_eq(u.complete, 0);
    ck_assert_int_eq(u.truncated, 1);
    ck_assert_int_eq(u.seen_usage, 0);
    ck_assert_int_eq(u.input_tokens, 0);
}
END_TEST

START_TEST(test_json_without_usage_or_broken)
{
    cs_usage_t u;

    u = json("{\"model\":\"m\"}");
    ck_assert_int_eq(u.complete, 0);
    ck_assert_str_eq(u.model, "m");
    u = parse(CS_USAGE_JSON, 0, cap20, strlen(cap20) - 1, 0); /* cut */
    ck_assert_int_eq(u.complete, 0);
    ck_assert_int_eq(u.truncated, 1);
    u = json("[{\"usage\":{}}]");
    ck_assert_int_eq(u.complete, 0);
    u = json("");
    ck_assert_int_eq(u.complete, 0);
    u = json("{\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}");
    ck_assert_int_eq(u.error_event, 1);
    ck_assert_int_eq(u.complete, 0);
}
END_TEST

/* --- the JSON scanner: exactly what jansson made of the body ------------- */

START_TEST(test_json_last_key_wins)
{
    /* json_object_get sees the last of duplicated keys, at every level */
    cs_usage_t u = json(
        "{\"usage\":{\"input_tokens\":5,\"output_tokens\":7},\"model\":\"a\","
        "\"content\":[{\"type\":\"text\",\"text\":\"xx\"}],"
        "\"usage\":{\"output_tokens\":3,\"input_tokens\":null,\"input_tokens\":9},"
        "\"model\":\"claude-x\",\"type\":\"message\","
        "\"content\":[{\"text\":\"abc\",\"type\":\"text\",\"text\":\"\\u00e9\\ud83d\\ude00z\"},"
        "{\"type\":\"thinking\",\"thinking\":\"hm\"},{\"type\":\"tool_use\",\"text\":\"no\"},"
        "{\"thinking\":\"not this\",\"type\":\"text\"},\"text\",7]}");

    ck_assert_int_eq(u.input_tokens, 9);
    ck_assert_int_eq(u.output_tokens, 3);
    ck_assert_str_eq(u.model, "claude-x");
    ck_assert_int_eq(u.text_chars, 5); /* é, 😀, z and "hm" */
    ck_assert_int_eq(u.complete, 1);
    ck_assert_int_eq(u.error_event, 0);
    u = json("{\"usage\":{\"input_tokens\":5},\"usage\":null,\"model\":\"m\",\"model\":7}");
    ck_assert_int_eq(u.seen_usage, 0);
    ck_assert_int_eq(u.complete, 0);
    ck_assert_int_eq(u.input_tokens, 0);
    ck_assert_ptr_null(u.model);
    u = json("{\"usage\":{\"input_tokens\":5,\"input_tokens\":-1},\"type\":\"error\","
             "\"type\":\"message\"}");
    ck_assert_int_eq(u.complete, 1);
    ck_assert_int_eq(u.input_tokens, 0);
    ck_assert_int_eq(u.error_event, 0);
}
END_TEST

START_TEST(test_json_escapes_and_strings)
{
    /* keys and values compare decoded; "usage" inside strings or deeper
     * objects is not the usage */
    cs_usage_t u =
        json("{\"\\u0075sage\":{\"input\\u005ftokens\":11,\"output_tokens\":-1,"
             "\"cache_read_input_tokens\":2.0,\"cache_creation_input_tokens\":1e2},"
             "\"mod\\u0065l\":\"claude\\/x\",\"type\":\"\\u0065rror\",\"content\":\"usage\"}");

    ck_assert_int_eq(u.input_tokens, 11);
    ck_assert_int_eq(u.output_tokens, 0);
    ck_assert_int_eq(u.cache_read_tokens, 0);     /* 2.0 is a real */
    ck_assert_int_eq(u.cache_creation_tokens, 0); /* so is 1e2 */
    ck_assert_str_eq(u.model, "claude/x");
    ck_assert_int_eq(u.error_event, 1);
    ck_assert_int_eq(u.text_chars, 0);
    u = json(
        "{\"id\":\"msg\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"{\\\"usage\\\":{\\\"input_tokens\\\":999}}\\n\\t\"}],\"usage\":{\"input_tokens\":1,"
        "\"output_tokens\":2,\"nested\":{\"input_tokens\":77,\"usage\":{\"output_tokens\":5}}},"
        "\"x\":[true,false,null,-0,0.5e-3,12345678901234567890.0,{}, [], \"\"]}");
    ck_assert_int_eq(u.input_tokens, 1);
    ck_assert_int_eq(u.output_tokens, 2);
    ck_assert_int_eq(u.text_chars, 32);
    ck_assert_int_eq(u.complete, 1);
    /* models: 1 to 128 printable ASCII characters, after decoding */
    u = json(
        apr_pstrcat(unit_pool, "{\"model\":\"", apr_psprintf(unit_pool, "%0128d", 0), "\"}", NULL));
    ck_assert_uint_eq(strlen(u.model), 128);
    u = json(
        apr_pstrcat(unit_pool, "{\"model\":\"", apr_psprintf(unit_pool, "%0129d", 0), "\"}", NULL));
    ck_assert_ptr_null(u.model);
    ck_assert_ptr_null(json("{\"model\":\"a b\"}").model);
    ck_assert_ptr_null(json("{\"model\":\"caf\\u00e9\"}").model);
    ck_assert_ptr_null(json("{\"model\":\"caf\xc3\xa9\"}").model);
    ck_assert_ptr_null(json("{\"model\":\"\"}").model);
    ck_assert_str_eq(json("{\"model\":\"\\u0041\"}").model, "A");
}
END_TEST

START_TEST(test_json_long_keys_and_runs)
{
    /* keys are kept up to 32 bytes and compared whole: a longer one that
     * begins like ours is not ours, and a run of plain bytes split by an
     * escape is put back together */
    cs_usage_t u =
        json("{\"usage\":{\"input_tokens\":3,\"input_tokens_and_a_much_longer_tail\":9,"
             "\"cache_creation_input_tokens_x\":8,\"cache_creation_inp\\u0075t_tokens\":4},"
             "\"modelmodelmodelmodelmodelmodelmodel\":\"no\","
             "\"model\":\"claude-\\u0068aiku-4-5-20251001-and-a-name-past-32-bytes\"}");

    ck_assert_int_eq(u.input_tokens, 3);
    ck_assert_int_eq(u.cache_creation_tokens, 4);
    ck_assert_str_eq(u.model, "claude-haiku-4-5-20251001-and-a-name-past-32-bytes");
    /* the text's characters: plain runs, escapes and UTF-8 alike */
    u = json("{\"content\":[{\"type\":\"text\",\"text\":\"ab\\ncd\xc3\xa9"
             "f\\u00e9g\"}],\"usage\":{}}");
    ck_assert_int_eq(u.text_chars, 9);
}
END_TEST

START_TEST(test_json_numbers)
{
    cs_usage_t u;

    u = json("{\"usage\":{\"input_tokens\":9223372036854775807,"
             "\"output_tokens\":-9223372036854775808,\"cache_read_input_tokens\":-0}}");
    ck_assert_int_eq(u.complete, 1);
    ck_assert_int_eq(u.input_tokens, APR_INT64_MAX);
    ck_assert_int_eq(u.output_tokens, 0);
    /* beyond json_int_t, or a real beyond double: jansson refuses the body */
    ck_assert_int_eq(json("{\"usage\":{\"input_tokens\":9223372036854775808}}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"n\":-9223372036854775809}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"n\":100000000000000000000}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"f\":1.7976931348623159e308}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"f\":-1e309}").complete, 0);
    /* the largest double, and an underflow to 0, are fine */
    ck_assert_int_eq(json("{\"usage\":{},\"f\":-1.7976931348623157e308,\"g\":1e-400}").complete, 1);
    ck_assert_int_eq(json("{\"usage\":{},\"f\":0.1E+2,\"g\":0e0}").complete, 1);
    /* JSON's number syntax */
    ck_assert_int_eq(json("{\"usage\":{},\"n\":01}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"n\":-}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"n\":1.}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"n\":1e}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"n\":.5}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"n\":+1}").complete, 0);
    ck_assert_int_eq(json("{\"usage\":{},\"n\":1.5.3}").complete, 0);
}
END_TEST

START_TEST(test_json_refused)
{
    /* whatever jansson refuses gives nothing at all */
    static const char *const bad[] = {
        "{\"usage\":{}} x",
        "{\"usage\":{}}}",
        "{\"usage\":{},}",
        "{\"usage\":{\"a\":[1,]}}",
        "{\"usage\":{},\"a\":nulll}",
        "{\"usage\":{},\"a\":True}",
        "{\"usage\":{},\"a\":nul}",
        "{\"usage\":{},\"z\":\"a\\u0000b\"}",
        "{\"usage\":{},\"a\\u0000\":1}",
        "{\"usage\":{},\"z\":\"\\ud800x\"}",
        "{\"usage\":{},\"z\":\"\\udc00\"}",
        "{\"usage\":{},\"z\":\"\\ud800\\u0041\"}",
        "{\"usage\":{},\"z\":\"\\x\"}",
        "{\"usage\":{},\"z\":\"\\u12g4\"}",
        "{\"usage\":{},\"z\":\"tab\there\"}",
        "{\"usage\":{},\"z\":\"\xe0\x80\x80\"}",
        "{\"usage\":{},\"z\":\"\xed\xa0\x80\"}",
        "{\"usage\":{},\"z\":\"\xc3\"}",
        "{\"usage\":{},\"z\":\"\xf4\x90\x80\x80\"}",
        "{\"usage\":{},\xc3\xa9:1}",
        "{\"usage\":{} \"a\":1}",
        "{\"usage\"{}}",
        "{'usage':{}}",
        "{\"usage\":{}",
        "{\"usage\":{},\"z\":\"open",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cs_usage_t u = json(bad[i]);
        ck_assert_msg(u.complete == 0 && u.seen_usage == 0, "accepted: %s", bad[i]);
    }
    /* but whitespace around, and UTF-8 in strings, are fine */
    ck_assert_int_eq(json(" \t\r\n{ \"usage\" : { } , \"z\" : \"\xf0\x9f\x98\x80\" } \n").complete,
                     1);
}
END_TEST

START_TEST(test_json_depth)
{
    /* jansson counts every value, the top-level object as 1, and refuses
     * past JSON_PARSER_MAX_DEPTH */
    int d;

    for (d = JSON_PARSER_MAX_DEPTH - 3; d <= JSON_PARSER_MAX_DEPTH; d++) {
        char *body = apr_palloc(unit_pool, (apr_size_t)d * 2 + 64);
        char *w = body;
        cs_usage_t u;

        w += sprintf(w, "{\"usage\":{\"input_tokens\":4},\"d\":");
        memset(w, '[', (apr_size_t)d - 1);
        w += d - 1;
        *w++ = '1'; /* at depth d + 1 */
        memset(w, ']', (apr_size_t)d - 1);
        w += d - 1;
        strcpy(w, "}");
        u = json(body);
        ck_assert_int_eq(u.complete, d + 1 <= JSON_PARSER_MAX_DEPTH);
    }
}
END_TEST

START_TEST(test_json_tokens_across_blocks)
{
    /* a number, a string escape and a key cut by the 16 KiB block boundary */
    static const char *const tails[] = {"1.5e3", "\"\\u00e9\"", "12345"};
    size_t i, k;

    for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        for (k = 0; k < 6; k++) {
            const char *head = "{\"usage\":{\"input_tokens\":1},\"pad\":\"";
            apr_size_t pad = 16384 - strlen(head) - 7 + k;
            char *body = apr_palloc(unit_pool, 16384 + 64);
            cs_usage_t u;

            strcpy(body, head);
            memset(body + strlen(head), 'a', pad);
            sprintf(body + strlen(head) + pad, "\",\"f\":%s}", tails[i]);
            u = parse(CS_USAGE_JSON, 0, body, strlen(body), 0);
            ck_assert_int_eq(u.complete, 1);
            ck_assert_int_eq(u.input_tokens, 1);
            sprintf(body + strlen(head) + pad, "\",\"f\":%s}", "2e308");
            u = parse(CS_USAGE_JSON, 0, body, strlen(body), 0);
            ck_assert_int_eq(u.complete, 0);
        }
    }
}
END_TEST

START_TEST(test_json_nul_after_token)
{
    /* jansson skips one NUL byte right after a number or a literal (an
     * artefact of its stream_unget); a NUL anywhere else refuses the body */
    static const char one[] =
        "{\"usage\":{\"input_tokens\":3\0,\"a\":[true\0,null\0]},\"f\":1.5\0}";
    static const char two[] = "{\"usage\":{\"input_tokens\":3\0\0}}";
    static const char str[] = "{\"usage\":{\"input_tokens\":3},\"s\":\"a\0\"}";
    static const char gap[] = "{\"usage\":{\"input_tokens\":3},\0\"s\":1}";
    cs_usage_t u;

    u = parse(CS_USAGE_JSON, 0, one, sizeof(one) - 1, 0);
    ck_assert_int_eq(u.complete, 1);
    ck_assert_int_eq(u.input_tokens, 3);
    ck_assert_int_eq(parse(CS_USAGE_JSON, 0, two, sizeof(two) - 1, 0).complete, 0);
    ck_assert_int_eq(parse(CS_USAGE_JSON, 0, str, sizeof(str) - 1, 0).complete, 0);
    ck_assert_int_eq(parse(CS_USAGE_JSON, 0, gap, sizeof(gap) - 1, 0).complete, 0);
}
END_TEST

Suite *unit_suite_cs_usage(void)
{
    Suite *s = suite_create("cs_usage");
    TCase *sse_tc = tcase_create("sse");
    TCase *json_tc = tcase_create("json");

    tcase_add_checked_fixture(sse_tc, unit_setup, unit_teardown);
    tcase_set_timeout(sse_tc, 60); /* the split loops, under valgrind */
    tcase_add_test(sse_tc, test_sse_capture_whole);
    tcase_add_test(sse_tc, test_sse_capture_byte_by_byte);
    tcase_add_test(sse_tc, test_sse_capture_every_split);
    tcase_add_test(sse_tc, test_sse_crlf_and_cr);
    tcase_add_test(sse_tc, test_sse_mixed_eols_and_odd_chunks);
    tcase_add_test(sse_tc, test_sse_output_cumulative);
    tcase_add_test(sse_tc, test_sse_delta_with_input_tokens);
    tcase_add_test(sse_tc, test_sse_truncated);
    tcase_add_test(sse_tc, test_sse_cut_without_blank_line);
    tcase_add_test(sse_tc, test_sse_error_event);
    tcase_add_test(sse_tc, test_sse_oversized_line_dropped);
    tcase_add_test(sse_tc, test_sse_line_at_cap_kept);
    tcase_add_test(sse_tc, test_sse_event_data_over_cap);
    tcase_add_test(sse_tc, test_sse_multiline_data);
    tcase_add_test(sse_tc, test_sse_field_syntax);
    tcase_add_test(sse_tc, test_sse_events_without_name_or_data);
    tcase_add_test(sse_tc, test_sse_text_and_thinking_chars);
    tcase_add_test(sse_tc, test_sse_compact_deltas_counted_without_a_parse);
    tcase_add_test(sse_tc, test_sse_bom);
    tcase_add_test(sse_tc, test_sse_bad_values_ignored);
    tcase_add_test(sse_tc, test_sse_garbage);
    tcase_add_test(sse_tc, test_finish_idempotent);
    suite_add_tcase(s, sse_tc);

    tcase_add_checked_fixture(json_tc, unit_setup, unit_teardown);
    tcase_add_test(json_tc, test_json_body);
    tcase_add_test(json_tc, test_json_body_across_blocks);
    tcase_add_test(json_tc, test_json_over_limit);
    tcase_add_test(json_tc, test_json_without_usage_or_broken);
    tcase_add_test(json_tc, test_json_last_key_wins);
    tcase_add_test(json_tc, test_json_escapes_and_strings);
    tcase_add_test(json_tc, test_json_long_keys_and_runs);
    tcase_add_test(json_tc, test_json_numbers);
    tcase_add_test(json_tc, test_json_refused);
    tcase_add_test(json_tc, test_json_depth);
    tcase_add_test(json_tc, test_json_tokens_across_blocks);
    tcase_add_test(json_tc, test_json_nul_after_token);
    suite_add_tcase(s, json_tc);
    return s;
}
