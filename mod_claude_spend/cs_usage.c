/* cs_usage: token usage observed in a Messages API answer, see cs_usage.h.
 *
 * SSE follows the WHATWG event-stream rules (CR, LF or CRLF line ends, `field:
 * value` with one optional space, data lines joined by LF, dispatch at the blank
 * line, comments start with a colon) but JSON-parses only the few events that
 * carry usage or text. A JSON body is kept in fixed blocks, so a body fed a byte
 * at a time costs no more than one fed whole, and parsed once at the end.
 * Everything here reads untrusted upstream bytes: each buffer has a cap, and a
 * line or body beyond it is dropped rather than grown. */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "cs_usage.h"

/* A JSON body is kept in blocks of this size (or the cap, if smaller). */
#define CS_JSON_BLOCK ((apr_size_t)16 * 1024)
/* First size of the SSE line and data buffers; they double up to the cap. */
#define CS_SSE_BUF_MIN ((apr_size_t)512)
/* A served model name longer than this, or with bytes other than printable
 * ASCII, is not recorded: it goes to r->notes and the access log. */
#define CS_MODEL_MAX 128

/* The SSE events we act on; every other name is CS_EV_OTHER. */
typedef enum {
    CS_EV_NONE, /* no event field: the spec's "message", we look at data.type */
    CS_EV_OTHER,
    CS_EV_MESSAGE_START,
    CS_EV_MESSAGE_DELTA,
    CS_EV_CONTENT_BLOCK_DELTA,
    CS_EV_MESSAGE_STOP,
    CS_EV_ERROR
} cs_event_e;

/* A growable byte buffer in the parser's pool, never larger than its cap. */
typedef struct cs_buf_t {
    char *data;
    apr_size_t len;
    apr_size_t cap;
} cs_buf_t;

/* One block of a kept JSON body. */
typedef struct cs_block_t {
    struct cs_block_t *next;
    apr_size_t len;
    char *data;
} cs_block_t;

/* Reading position of json_load_callback over the blocks. */
typedef struct cs_json_cursor_t {
    const cs_block_t *block;
    apr_size_t off;
} cs_json_cursor_t;

struct cs_usage_parser_t {
    apr_pool_t *pool;
    cs_usage_kind_e kind;
    apr_size_t max;
    cs_usage_t u;
    int finished;

    /* SSE */
    cs_buf_t line;    /* carry: the start of a line whose end has not arrived */
    cs_buf_t data;    /* data of the current event, lines joined by LF */
    int skipping;     /* inside a line longer than max: discard to its end */
    int skip_comment; /* ... and that line is a comment, which taints nothing */
    int after_cr;     /* the last line ended in CR: an LF next is part of it */
    int first_line;   /* a byte order mark may open the stream */
    cs_event_e event; /* from the last event field of the current event */
    int has_data;     /* the current event has a data field */
    int tainted;      /* a line of the current event was dropped: skip it */

    /* JSON */
    cs_block_t *head;
    cs_block_t *tail;
    apr_size_t total;
    int overflow; /* the body passed max: it will not be parsed */
};

cs_usage_parser_t *cs_usage_parser_create(apr_pool_t *p, cs_usage_kind_e kind, apr_size_t max_bytes)
{
    cs_usage_parser_t *up = apr_pcalloc(p, sizeof(*up));

    up->pool = p;
    up->kind = kind;
    if (max_bytes == 0) {
        max_bytes = kind == CS_USAGE_SSE ? CS_USAGE_SSE_MAX_DEFAULT : CS_USAGE_JSON_MAX_DEFAULT;
    }
    up->max = max_bytes;
    up->first_line = 1;
    up->event = CS_EV_NONE;
    return up;
}

/* Append to b; 0 (and b unchanged) when the result would pass max. Growth
 * doubles, so what the pool holds stays under twice the cap. */
static int cs_buf_append(apr_pool_t *p, cs_buf_t *b, const char *s, apr_size_t n, apr_size_t max)
{
    if (n > max || b->len > max - n) {
        return 0;
    }
    if (b->len + n > b->cap) {
        apr_size_t cap = b->cap ? b->cap : CS_SSE_BUF_MIN;
        char *nd;

        while (cap < b->len + n && cap <= max / 2) {
            cap *= 2;
        }
        if (cap < b->len + n || cap > max) {
            cap = max;
        }
        nd = apr_palloc(p, cap);
        if (b->len > 0) {
            memcpy(nd, b->data, b->len);
        }
        b->data = nd;
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    }
    return 1;
}

/* Characters as the reference counts them for its estimate: UTF-8 code points
 * (jansson has validated the string, so lead bytes are exactly the non-10xxxxxx). */
static apr_int64_t cs_utf8_chars(const char *s, size_t n)
{
    apr_int64_t count = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            count++;
        }
    }
    return count;
}

static void cs_count_string(cs_usage_parser_t *up, const json_t *v)
{
    if (json_is_string(v)) {
        up->u.text_chars += cs_utf8_chars(json_string_value(v), json_string_length(v));
    }
}

/* Take a token count when it is a non-negative integer; anything else (null,
 * a float, a string, a negative number) leaves the last good value alone. */
static void cs_take(apr_int64_t *dst, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *dst = (apr_int64_t)json_integer_value(v);
    }
}

static void cs_take_model(cs_usage_parser_t *up, const json_t *v)
{
    const char *s;
    size_t n, i;

    if (!json_is_string(v)) {
        return;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > CS_MODEL_MAX) {
        return;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            return;
        }
    }
    up->u.model = apr_pstrmemdup(up->pool, s, n);
}

static void cs_take_usage(cs_usage_parser_t *up, const json_t *usage, int with_output)
{
    if (!json_is_object(usage)) {
        return;
    }
    up->u.seen_usage = 1;
    cs_take(&up->u.input_tokens, usage, "input_tokens");
    cs_take(&up->u.cache_creation_tokens, usage, "cache_creation_input_tokens");
    cs_take(&up->u.cache_read_tokens, usage, "cache_read_input_tokens");
    if (with_output) {
        cs_take(&up->u.output_tokens, usage, "output_tokens");
    }
}

static cs_event_e cs_event_of(const char *s, apr_size_t n)
{
    static const struct {
        const char *name;
        cs_event_e ev;
    } names[] = {{"message_start", CS_EV_MESSAGE_START},
                 {"message_delta", CS_EV_MESSAGE_DELTA},
                 {"content_block_delta", CS_EV_CONTENT_BLOCK_DELTA},
                 {"message_stop", CS_EV_MESSAGE_STOP},
                 {"error", CS_EV_ERROR}};
    size_t i;

    if (n == 0) {
        return CS_EV_NONE; /* an empty event field means the default type */
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i].name) == n && memcmp(names[i].name, s, n) == 0) {
            return names[i].ev;
        }
    }
    return CS_EV_OTHER;
}

static void cs_sse_event(cs_usage_parser_t *up, cs_event_e ev, const char *data, apr_size_t len)
{
    json_t *root;
    json_error_t jerr;

    /* these two need no JSON: the event name says it all */
    if (ev == CS_EV_MESSAGE_STOP) {
        up->u.complete = 1;
        return;
    }
    if (ev == CS_EV_ERROR) {
        up->u.error_event = 1;
        return;
    }
    if (ev == CS_EV_OTHER) {
        return; /* ping, content_block_start ...: not worth a parse */
    }
    root = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    if (ev == CS_EV_NONE) {
        /* no event field: the payload's own type says what it is */
        const json_t *type = json_object_get(root, "type");
        ev = json_is_string(type) ? cs_event_of(json_string_value(type), json_string_length(type))
                                  : CS_EV_OTHER;
    }
    switch (ev) {
    case CS_EV_MESSAGE_START: {
        const json_t *msg = json_object_get(root, "message");
        if (json_is_object(msg)) {
            cs_take_model(up, json_object_get(msg, "model"));
            cs_take_usage(up, json_object_get(msg, "usage"), 1);
        }
        break;
    }
    case CS_EV_MESSAGE_DELTA:
        /* output_tokens here is the running total: the last one wins */
        cs_take_usage(up, json_object_get(root, "usage"), 1);
        break;
    case CS_EV_CONTENT_BLOCK_DELTA: {
        const json_t *delta = json_object_get(root, "delta");
        const char *type = json_string_value(json_object_get(delta, "type"));
        if (type != NULL && strcmp(type, "text_delta") == 0) {
            cs_count_string(up, json_object_get(delta, "text"));
        }
        else if (type != NULL && strcmp(type, "thinking_delta") == 0) {
            cs_count_string(up, json_object_get(delta, "thinking"));
        }
        break;
    }
    case CS_EV_MESSAGE_STOP:
        up->u.complete = 1;
        break;
    case CS_EV_ERROR:
        up->u.error_event = 1;
        break;
    default:
        break;
    }
    json_decref(root);
}

/* The blank line: act on the event, then start a new one. As the spec says,
 * an event without data is not dispatched. */
static void cs_sse_dispatch(cs_usage_parser_t *up)
{
    if (up->has_data && !up->tainted && up->data.len > 0) {
        cs_sse_event(up, up->event, up->data.data, up->data.len);
    }
    up->event = CS_EV_NONE;
    up->data.len = 0;
    up->has_data = 0;
    up->tainted = 0;
}

/* One complete line, without its end. */
static void cs_sse_line(cs_usage_parser_t *up, const char *line, apr_size_t n)
{
    const char *colon, *value;
    apr_size_t flen, vlen;

    if (up->first_line) {
        up->first_line = 0;
        if (n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3;
            n -= 3;
        }
    }
    if (n == 0) {
        cs_sse_dispatch(up);
        return;
    }
    if (line[0] == ':') {
        return; /* comment: keep-alives */
    }
    colon = memchr(line, ':', n);
    if (colon != NULL) {
        flen = (apr_size_t)(colon - line);
        value = colon + 1;
        vlen = n - flen - 1;
        if (vlen > 0 && *value == ' ') {
            value++;
            vlen--;
        }
    }
    else {
        flen = n; /* a field name alone has an empty value */
        value = line + n;
        vlen = 0;
    }
    if (flen == 5 && memcmp(line, "event", 5) == 0) {
        up->event = cs_event_of(value, vlen);
    }
    else if (flen == 4 && memcmp(line, "data", 4) == 0) {
        if ((up->has_data && !cs_buf_append(up->pool, &up->data, "\n", 1, up->max)) ||
            !cs_buf_append(up->pool, &up->data, value, vlen, up->max)) {
            up->tainted = 1; /* the event's data passed the cap: half a JSON is no JSON */
        }
        up->has_data = 1;
    }
    /* id and retry mean nothing to metering */
}

/* A line longer than the cap ended. Unless it was a comment, its event lost a
 * field and is not trusted; the events after it are unaffected. */
static void cs_sse_dropped(cs_usage_parser_t *up)
{
    up->skipping = 0;
    up->first_line = 0;
    if (!up->skip_comment) {
        up->tainted = 1;
    }
}

/* Keep the start of a line until its end arrives, or start skipping it. */
static void cs_sse_carry(cs_usage_parser_t *up, const char *s, apr_size_t n)
{
    if (up->skipping) {
        return;
    }
    if (!cs_buf_append(up->pool, &up->line, s, n, up->max)) {
        up->skipping = 1;
        up->skip_comment = (up->line.len > 0 ? up->line.data[0] : s[0]) == ':';
        up->line.len = 0;
    }
}

static void cs_sse_feed(cs_usage_parser_t *up, const char *data, apr_size_t len)
{
    apr_size_t pos = 0;

    while (pos < len) {
        const char *s = data + pos;
        apr_size_t rest = len - pos, n;

        if (up->after_cr) {
            up->after_cr = 0;
            if (*s == '\n') { /* the LF of a CRLF split across feeds */
                pos++;
                continue;
            }
        }
        for (n = 0; n < rest && s[n] != '\n' && s[n] != '\r'; n++) {
            /* find the end of the line, if it is in this feed */
        }
        if (n == rest) {
            cs_sse_carry(up, s, n);
            return;
        }
        if (up->skipping) {
            cs_sse_dropped(up);
        }
        else if (up->line.len == 0) {
            /* the usual case: the whole line is in this feed, no copy */
            if (n > up->max) {
                up->skip_comment = s[0] == ':';
                cs_sse_dropped(up);
            }
            else {
                cs_sse_line(up, s, n);
            }
        }
        else {
            cs_sse_carry(up, s, n);
            if (up->skipping) {
                cs_sse_dropped(up);
            }
            else {
                cs_sse_line(up, up->line.data, up->line.len);
                up->line.len = 0;
            }
        }
        up->after_cr = s[n] == '\r';
        pos += n + 1;
    }
}

static void cs_json_feed(cs_usage_parser_t *up, const char *data, apr_size_t len)
{
    if (up->overflow) {
        return;
    }
    if (len > up->max - up->total) {
        up->overflow = 1; /* no use keeping any of it now */
        up->head = up->tail = NULL;
        return;
    }
    up->total += len;
    while (len > 0) {
        cs_block_t *b = up->tail;
        apr_size_t bsize = up->max < CS_JSON_BLOCK ? up->max : CS_JSON_BLOCK;
        apr_size_t n;

        if (b == NULL || b->len == bsize) {
            b = apr_palloc(up->pool, sizeof(*b));
            b->next = NULL;
            b->len = 0;
            b->data = apr_palloc(up->pool, bsize);
            if (up->tail != NULL) {
                up->tail->next = b;
            }
            else {
                up->head = b;
            }
            up->tail = b;
        }
        n = bsize - b->len < len ? bsize - b->len : len;
        memcpy(b->data + b->len, data, n);
        b->len += n;
        data += n;
        len -= n;
    }
}

static size_t cs_json_read(void *buffer, size_t buflen, void *arg)
{
    cs_json_cursor_t *cur = arg;
    size_t n;

    while (cur->block != NULL && cur->off == cur->block->len) {
        cur->block = cur->block->next;
        cur->off = 0;
    }
    if (cur->block == NULL) {
        return 0;
    }
    n = cur->block->len - cur->off;
    if (n > buflen) {
        n = buflen;
    }
    memcpy(buffer, cur->block->data + cur->off, n);
    cur->off += n;
    return n;
}

static void cs_json_finish(cs_usage_parser_t *up)
{
    cs_json_cursor_t cur;
    json_error_t jerr;
    json_t *root;
    const json_t *content, *type;
    size_t i;

    if (up->overflow || up->head == NULL) {
        return;
    }
    cur.block = up->head;
    cur.off = 0;
    root = json_load_callback(cs_json_read, &cur, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    type = json_object_get(root, "type");
    if (json_is_string(type) && strcmp(json_string_value(type), "error") == 0) {
        up->u.error_event = 1;
    }
    cs_take_model(up, json_object_get(root, "model"));
    if (json_is_object(json_object_get(root, "usage"))) {
        cs_take_usage(up, json_object_get(root, "usage"), 1);
        up->u.complete = 1;
    }
    content = json_object_get(root, "content");
    for (i = 0; i < json_array_size(content); i++) {
        const json_t *item = json_array_get(content, i);
        const char *t = json_string_value(json_object_get(item, "type"));
        if (t != NULL && strcmp(t, "text") == 0) {
            cs_count_string(up, json_object_get(item, "text"));
        }
        else if (t != NULL && strcmp(t, "thinking") == 0) {
            cs_count_string(up, json_object_get(item, "thinking"));
        }
    }
    json_decref(root);
}

void cs_usage_parser_feed(cs_usage_parser_t *up, const char *data, apr_size_t len)
{
    if (up == NULL || data == NULL || len == 0 || up->finished) {
        return;
    }
    if (up->kind == CS_USAGE_SSE) {
        cs_sse_feed(up, data, len);
    }
    else {
        cs_json_feed(up, data, len);
    }
}

void cs_usage_parser_finish(cs_usage_parser_t *up, cs_usage_t *out)
{
    if (up == NULL) {
        memset(out, 0, sizeof(*out));
        out->truncated = 1;
        return;
    }
    if (!up->finished) {
        up->finished = 1;
        if (up->kind == CS_USAGE_SSE) {
            /* the stream stopped: read what it left, complete JSON or nothing */
            if (up->skipping) {
                cs_sse_dropped(up);
            }
            else if (up->line.len > 0) {
                cs_sse_line(up, up->line.data, up->line.len);
                up->line.len = 0;
            }
            cs_sse_dispatch(up);
        }
        else {
            cs_json_finish(up);
        }
        up->u.truncated = !up->u.complete;
    }
    *out = up->u;
}
