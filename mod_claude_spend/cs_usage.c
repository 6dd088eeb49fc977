/* cs_usage: token usage observed in a Messages API answer, see cs_usage.h.
 *
 * SSE follows the WHATWG event-stream rules (CR, LF or CRLF line ends, `field:
 * value` with one optional space, data lines joined by LF, dispatch at the blank
 * line, comments start with a colon) but JSON-parses only the few events that
 * carry usage or text. A JSON body is kept in fixed blocks, so a body fed a byte
 * at a time costs no more than one fed whole, and parsed once at the end.
 * Everything here reads untrusted upstream bytes: each buffer has a cap, and a
 * line or body beyond it is dropped rather than grown. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "cs_usage.h"
#include "cs_journal.h"

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

static int cs_hex4(const char *p)
{
    int v = 0, i;

    for (i = 0; i < 4; i++) {
        int c = (unsigned char)p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= c - '0';
        }
        else if (c >= 'a' && c <= 'f') {
            v |= c - 'a' + 10;
        }
        else if (c >= 'A' && c <= 'F') {
            v |= c - 'A' + 10;
        }
        else {
            return -1;
        }
    }
    return v;
}

/* A text delta in the exact compact form the API streams,
 *   {"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"..."}}
 * (or thinking_delta / "thinking"), is counted without building a tree: the
 * code points of the string, as cs_count_string would count them. Anything
 * else, or a string jansson would refuse, gives -1 and is parsed. Most of an
 * SSE stream is these events. */
static apr_int64_t cs_delta_chars_fast(const char *data, apr_size_t len)
{
    static const char pre[] = "{\"type\":\"content_block_delta\",\"index\":";
    static const char text[] = ",\"delta\":{\"type\":\"text_delta\",\"text\":\"";
    static const char thinking[] = ",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"";
    const char *p = data, *end = data + len;
    apr_int64_t chars = 0;
    int digits = 0;

    if (len < sizeof(pre) - 1 || memcmp(p, pre, sizeof(pre) - 1) != 0) {
        return -1;
    }
    p += sizeof(pre) - 1;
    if (p >= end || *p < '0' || *p > '9' ||
        (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')) {
        return -1; /* no digits, or a leading zero */
    }
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 18) {
            return -1; /* jansson refuses integers beyond 64 bits */
        }
        p++;
    }
    if ((apr_size_t)(end - p) >= sizeof(text) - 1 && memcmp(p, text, sizeof(text) - 1) == 0) {
        p += sizeof(text) - 1;
    }
    else if ((apr_size_t)(end - p) >= sizeof(thinking) - 1 &&
             memcmp(p, thinking, sizeof(thinking) - 1) == 0) {
        p += sizeof(thinking) - 1;
    }
    else {
        return -1;
    }
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c == '\\') {
            int v, lo;
            if (end - p < 2) {
                return -1;
            }
            if (strchr("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0') {
                p += 2;
            }
            else if (p[1] != 'u' || end - p < 6 || (v = cs_hex4(p + 2)) <= 0) {
                return -1; /* a bad escape, or \u0000, which jansson refuses */
            }
            else if (v >= 0xdc00 && v <= 0xdfff) {
                return -1; /* a lone low surrogate */
            }
            else if (v >= 0xd800 && v <= 0xdbff) {
                if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || (lo = cs_hex4(p + 8)) < 0xdc00 ||
                    lo > 0xdfff) {
                    return -1;
                }
                p += 12;
            }
            else {
                p += 6;
            }
        }
        else if (c < 0x20) {
            return -1;
        }
        else if (c < 0x80) {
            p++;
        }
        else {
            apr_size_t n = cs_utf8_len((const unsigned char *)p, (apr_size_t)(end - p));
            if (n == 0) {
                return -1;
            }
            p += n;
        }
        chars++;
    }
    if (end - p != 3 || memcmp(p, "\"}}", 3) != 0) {
        return -1;
    }
    return chars;
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
    if (ev == CS_EV_CONTENT_BLOCK_DELTA) {
        apr_int64_t n = cs_delta_chars_fast(data, len);
        if (n >= 0) {
            up->u.text_chars += n;
            return;
        }
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

/* --- the JSON body: a scan, not a tree --------------------------------------
 *
 * A non-streaming answer is read once, byte by byte across the blocks, by a
 * recursive descent that accepts exactly what jansson's json_load_callback()
 * with flags 0 accepts (load.c: an object or array at the top, strict UTF-8,
 * no raw control characters, the nine escapes, \u with paired surrogates and
 * never \u0000, integers within json_int_t, reals that do not overflow strtod,
 * JSON_PARSER_MAX_DEPTH, nothing but whitespace after) and takes what
 * cs_json_finish used to take from the tree: the top-level "type", "model",
 * "usage" and "content", each from its last occurrence as json_object_get()
 * sees a duplicated key, and nothing at all from a body that does not parse.
 * No allocation but the model string (and a real number's text). The fuzz
 * target fuzz_sse_usage holds the jansson version as its oracle. */

/* Longest key or short string value compared: longer ones never match. */
#define CS_SCAN_SHORT 32

typedef struct cs_scan_t {
    const cs_block_t *block; /* the block being read */
    const char *p, *end;     /* position in it */
    cs_usage_parser_t *up;
    cs_buf_t num; /* a real number's text, for strtod */
} cs_scan_t;

/* A string as far as we look at it: ASCII bytes as decoded, anything else as
 * one 0xFF (which no key, type or model accepts). A plain string is read in
 * place in the body; any other is decoded into buf, up to cap bytes kept. */
typedef struct cs_str_t {
    char *buf;
    apr_size_t cap;
    const char *str;   /* its bytes: in the body, or buf */
    apr_size_t avail;  /* how many of them str holds: len, or at most cap */
    apr_size_t len;    /* decoded length in that sense, even past cap */
    apr_int64_t chars; /* code points */
} cs_str_t;

/* What one "usage" value gave: the fields of cs_take_usage. */
typedef struct cs_scan_usage_t {
    int is_object;
    int has[4]; /* the last occurrence of the key was a non-negative integer */
    apr_int64_t v[4];
} cs_scan_usage_t;

static const char *const cs_usage_keys[4] = {
    "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"};
static const apr_size_t cs_usage_key_lens[4] = {
    sizeof("input_tokens") - 1, sizeof("output_tokens") - 1, sizeof("cache_read_input_tokens") - 1,
    sizeof("cache_creation_input_tokens") - 1};

/* The next byte past the end of a block, or -1 at the end of the body. */
static int cs_scan_get_next(cs_scan_t *s)
{
    while (s->p == s->end) {
        if (s->block->next == NULL) {
            return -1; /* s->block stays the last one */
        }
        s->block = s->block->next;
        s->p = s->block->data;
        s->end = s->p + s->block->len;
    }
    return (unsigned char)*s->p++;
}

/* The next byte (0-255), or -1 at the end of the body; inline, as the scan
 * takes most bytes through here and a block ends once in 16 KiB. */
static inline int cs_scan_get(cs_scan_t *s)
{
    return s->p != s->end ? (unsigned char)*s->p++ : cs_scan_get_next(s);
}

/* Give back the byte just read (never -1); it is in the current block. */
static void cs_scan_unget(cs_scan_t *s)
{
    s->p--;
}

/* The byte c that ended a number or a literal is given back, except the end
 * and a NUL: jansson drops one NUL there (stream_unget leaves a 0 in its
 * buffer, which its next read takes for "empty"), so "1\0}" is "1}" to it. */
static void cs_scan_end_token(cs_scan_t *s, int c)
{
    if (c > 0) {
        cs_scan_unget(s);
    }
}

static inline int cs_scan_ws(cs_scan_t *s)
{
    int c;

    do {
        c = cs_scan_get(s);
    } while (c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r'));
    return c;
}

static int cs_scan_hex4(cs_scan_t *s)
{
    int i, c, v = 0;

    for (i = 0; i < 4; i++) {
        c = cs_scan_get(s);
        if (c >= '0' && c <= '9') {
            v = v * 16 + (c - '0');
        }
        else if (c >= 'a' && c <= 'f') {
            v = v * 16 + (c - 'a' + 10);
        }
        else if (c >= 'A' && c <= 'F') {
            v = v * 16 + (c - 'A' + 10);
        }
        else {
            return -1;
        }
    }
    return v;
}

static void cs_str_put(cs_str_t *out, int byte)
{
    if (out != NULL) {
        if (out->len < out->cap) {
            out->buf[out->len] = (char)byte;
        }
        out->len++;
    }
}

/* Bytes a string holds as they are, one code point each: ASCII from 0x20,
 * but the quote and the backslash. */
static const unsigned char cs_scan_plain[256] = {
    [0x20 ... 0x21] = 1, /* then 0x22, the quote */
    [0x23 ... 0x5b] = 1, /* then 0x5c, the backslash */
    [0x5d ... 0x7f] = 1,
};

#define CS_ONES ((apr_uint64_t)0x0101010101010101ULL)
#define CS_HIGHS ((apr_uint64_t)0x8080808080808080ULL)

/* The end of the run of plain bytes from q (at most end), eight bytes a
 * step: the high bit of a byte in m is set when the byte is below 0x20 or
 * from 0x80, or is a quote or a backslash. A borrow only runs up from a byte
 * so found, so the first byte flagged is the first special one: on a
 * little-endian machine its lowest set bit. Texts are most of a large
 * answer, and most strings end within their first word. */
static inline const char *cs_scan_run(const char *q, const char *end)
{
    while (end - q >= 8) {
        apr_uint64_t v, x, y, m;

        memcpy(&v, q, 8);
        x = v ^ (CS_ONES * '"');
        y = v ^ (CS_ONES * '\\');
        m = (v | ((v - CS_ONES * 0x20) & ~v) | ((x - CS_ONES) & ~x) | ((y - CS_ONES) & ~y)) &
            CS_HIGHS;
        if (m != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return q + (__builtin_ctzll(m) >> 3);
#else
            break;
#endif
        }
        q += 8;
    }
    while (q < end && cs_scan_plain[(unsigned char)*q]) {
        q++;
    }
    return q;
}

static int cs_scan_string_slow(cs_scan_t *s, cs_str_t *out);

/* The rest of a string whose opening quote was read; 0 when invalid. Most
 * strings (every key of an answer) are plain up to their quote within the
 * block: they are read in place, with no copy. */
static int cs_scan_string(cs_scan_t *s, cs_str_t *out)
{
    const char *start = s->p;
    const char *q = cs_scan_run(start, s->end);

    if (q != s->end && *q == '"') {
        s->p = q + 1;
        if (out != NULL) {
            out->str = start;
            out->avail = out->len = (apr_size_t)(q - start);
            out->chars = (apr_int64_t)out->len;
        }
        return 1;
    }
    if (out != NULL) {
        out->str = out->buf;
        out->len = 0;
        out->chars = 0;
    }
    if (!cs_scan_string_slow(s, out)) {
        return 0;
    }
    if (out != NULL) {
        out->avail = out->len < out->cap ? out->len : out->cap;
    }
    return 1;
}

/* A string the fast path could not take, read from its start (s->p) byte by
 * byte, but for its plain runs; out has str, len and chars set. */
static int cs_scan_string_slow(cs_scan_t *s, cs_str_t *out)
{
    int c, n, i, v;
    apr_int32_t cp;

    for (;;) {
        /* what the byte-by-byte path below does with each byte of a plain
         * run: a code point put as is */
        const char *q = cs_scan_run(s->p, s->end);

        if (out != NULL && q > s->p) {
            apr_size_t run = (apr_size_t)(q - s->p);
            if (out->len < out->cap) {
                memcpy(out->buf + out->len, s->p,
                       run < out->cap - out->len ? run : out->cap - out->len);
            }
            out->chars += (apr_int64_t)run;
            out->len += run;
        }
        s->p = q;
        c = cs_scan_get(s);
        if (c == '"') {
            return 1;
        }
        if (c < 0x20) {
            return 0; /* the end (-1) or a raw control character */
        }
        if (out != NULL) {
            out->chars++;
        }
        if (c == '\\') {
            c = cs_scan_get(s);
            switch (c) {
            case '"':
            case '\\':
            case '/':
                cs_str_put(out, c);
                break;
            case 'b':
                cs_str_put(out, '\b');
                break;
            case 'f':
                cs_str_put(out, '\f');
                break;
            case 'n':
                cs_str_put(out, '\n');
                break;
            case 'r':
                cs_str_put(out, '\r');
                break;
            case 't':
                cs_str_put(out, '\t');
                break;
            case 'u':
                if ((v = cs_scan_hex4(s)) < 0 || v == 0 || (v >= 0xDC00 && v <= 0xDFFF)) {
                    return 0; /* \u0000 is refused in keys and values alike */
                }
                if (v >= 0xD800 && v <= 0xDBFF) {
                    int lo;
                    if (cs_scan_get(s) != '\\' || cs_scan_get(s) != 'u' ||
                        (lo = cs_scan_hex4(s)) < 0xDC00 || lo > 0xDFFF) {
                        return 0;
                    }
                }
                cs_str_put(out, v < 0x80 ? v : 0xFF);
                break;
            default:
                return 0;
            }
            continue;
        }
        if (c < 0x80) {
            cs_str_put(out, c);
            continue;
        }
        /* strict UTF-8, as jansson's utf8_check_first/utf8_check_full */
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
        }
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
        }
        else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
        }
        else {
            return 0;
        }
        for (i = 1; i < n; i++) {
            c = cs_scan_get(s);
            if (c < 0x80 || c > 0xBF) {
                return 0;
            }
            cp = (cp << 6) | (c & 0x3F);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (n == 3 && cp < 0x800) ||
            (n == 4 && cp < 0x10000)) {
            return 0;
        }
        cs_str_put(out, 0xFF);
    }
}

/* Whether a real number, from the byte at (sb, sp) to the current position,
 * passes jansson's jsonp_strtod(): the text with the locale's decimal point,
 * strtod, and only an overflow to +-HUGE_VAL refused. Reals are rare in
 * answers; this is the one place that copies bytes. */
static int cs_real_fits(cs_scan_t *s, const cs_block_t *sb, const char *sp)
{
    const char *point = localeconv()->decimal_point;
    char *dot, *end;
    double d;

    s->num.len = 0;
    while (sb != s->block || sp != s->p) {
        if (sp == sb->data + sb->len) {
            sb = sb->next;
            sp = sb->data;
            continue;
        }
        if (!cs_buf_append(s->up->pool, &s->num, sp, 1, s->up->max)) {
            return 0; /* cannot be: the text is part of a body within max */
        }
        sp++;
    }
    if (!cs_buf_append(s->up->pool, &s->num, "", 1, s->up->max + 1)) {
        return 0;
    }
    if (*point != '.' && (dot = strchr(s->num.data, '.')) != NULL) {
        *dot = *point;
    }
    errno = 0;
    d = strtod(s->num.data, &end);
    return !((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE);
}

/* A number whose first byte c was just read. *is_int and *v say what jansson
 * makes of it (an integer token, strtoll's value); 0 when invalid or out of
 * range, as jansson refuses the whole body then. */
static int cs_scan_number(cs_scan_t *s, int c, int *is_int, apr_int64_t *v)
{
    const cs_block_t *sb = s->block;
    const char *sp = s->p - 1;
    apr_uint64_t mag = 0;
    int neg = 0, digits = 0;

    *is_int = 0;
    *v = 0;
    if (c == '-') {
        neg = 1;
        c = cs_scan_get(s);
    }
    if (c == '0') {
        c = cs_scan_get(s);
        if (c >= '0' && c <= '9') {
            return 0; /* no leading zeros */
        }
    }
    else if (c >= '1' && c <= '9') {
        do {
            if (++digits <= 19) {
                mag = mag * 10 + (apr_uint64_t)(c - '0');
            }
            c = cs_scan_get(s);
        } while (c >= '0' && c <= '9');
    }
    else {
        return 0;
    }
    if (c != '.' && c != 'e' && c != 'E') {
        cs_scan_end_token(s, c);
        /* strtoll's range, -2^63 .. 2^63-1; 19 digits fit in 64 bits */
        if (digits > 19 || mag > (apr_uint64_t)APR_INT64_MAX + (apr_uint64_t)neg) {
            return 0;
        }
        *is_int = 1;
        *v = !neg                                ? (apr_int64_t)mag
             : mag > (apr_uint64_t)APR_INT64_MAX ? APR_INT64_MIN
                                                 : -(apr_int64_t)mag;
        return 1;
    }
    if (c == '.') {
        c = cs_scan_get(s);
        if (c < '0' || c > '9') {
            return 0;
        }
        do {
            c = cs_scan_get(s);
        } while (c >= '0' && c <= '9');
    }
    if (c == 'e' || c == 'E') {
        c = cs_scan_get(s);
        if (c == '+' || c == '-') {
            c = cs_scan_get(s);
        }
        if (c < '0' || c > '9') {
            return 0;
        }
        do {
            c = cs_scan_get(s);
        } while (c >= '0' && c <= '9');
    }
    cs_scan_end_token(s, c);
    return cs_real_fits(s, sb, sp);
}

/* true, false or null, whose first byte c was read: jansson reads the whole
 * run of letters, so "nullx" is not null. */
static int cs_scan_literal(cs_scan_t *s, int c)
{
    char word[6];
    apr_size_t n = 0;

    while ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        if (n == sizeof(word)) {
            return 0;
        }
        word[n++] = (char)c;
        c = cs_scan_get(s);
    }
    cs_scan_end_token(s, c);
    return (n == 4 && (memcmp(word, "true", 4) == 0 || memcmp(word, "null", 4) == 0)) ||
           (n == 5 && memcmp(word, "false", 5) == 0);
}

static int cs_scan_value(cs_scan_t *s, int c, int depth);

/* The members of an object whose '{' was read, values ignored. */
static int cs_scan_object_any(cs_scan_t *s, int depth)
{
    int c = cs_scan_ws(s);

    if (c == '}') {
        return 1;
    }
    for (;;) {
        if (c != '"' || !cs_scan_string(s, NULL) || cs_scan_ws(s) != ':' ||
            !cs_scan_value(s, cs_scan_ws(s), depth + 1)) {
            return 0;
        }
        c = cs_scan_ws(s);
        if (c == '}') {
            return 1;
        }
        if (c != ',') {
            return 0;
        }
        c = cs_scan_ws(s);
    }
}

/* The elements of an array whose '[' was read; each goes to elem (with the
 * first byte of the value and its depth), or is ignored when elem is NULL. */
typedef int (*cs_scan_elem_fn)(cs_scan_t *s, void *ctx, int c, int depth);

static int cs_scan_array(cs_scan_t *s, int depth, cs_scan_elem_fn elem, void *ctx)
{
    int c = cs_scan_ws(s);

    if (c == ']') {
        return 1;
    }
    for (;;) {
        if (!(elem != NULL ? elem(s, ctx, c, depth + 1) : cs_scan_value(s, c, depth + 1))) {
            return 0;
        }
        c = cs_scan_ws(s);
        if (c == ']') {
            return 1;
        }
        if (c != ',') {
            return 0;
        }
        c = cs_scan_ws(s);
    }
}

/* Any value, whose first byte (after whitespace) is c, at depth (the top
 * level is 1: jansson counts every value, scalars too). */
static int cs_scan_value(cs_scan_t *s, int c, int depth)
{
    int is_int;
    apr_int64_t v;

    if (depth > JSON_PARSER_MAX_DEPTH) {
        return 0;
    }
    switch (c) {
    case '{':
        return cs_scan_object_any(s, depth);
    case '[':
        return cs_scan_array(s, depth, NULL, NULL);
    case '"':
        return cs_scan_string(s, NULL);
    case 't':
    case 'f':
    case 'n':
        return cs_scan_literal(s, c);
    default:
        return (c == '-' || (c >= '0' && c <= '9')) && cs_scan_number(s, c, &is_int, &v);
    }
}

/* The members of an object whose '{' was read, each key decoded (as far as
 * CS_SCAN_SHORT) and handed to member with the value's first byte. */
typedef int (*cs_scan_member_fn)(cs_scan_t *s, void *ctx, const cs_str_t *key, int c, int depth);

static int cs_scan_object(cs_scan_t *s, int depth, cs_scan_member_fn member, void *ctx)
{
    char buf[CS_SCAN_SHORT];
    cs_str_t key;
    int c = cs_scan_ws(s);

    if (c == '}') {
        return 1;
    }
    key.buf = buf;
    key.cap = sizeof(buf);
    for (;;) {
        if (c != '"' || !cs_scan_string(s, &key) || cs_scan_ws(s) != ':' ||
            !member(s, ctx, &key, cs_scan_ws(s), depth + 1)) {
            return 0;
        }
        c = cs_scan_ws(s);
        if (c == '}') {
            return 1;
        }
        if (c != ',') {
            return 0;
        }
        c = cs_scan_ws(s);
    }
}

static inline int cs_str_eq(const cs_str_t *str, const char *lit, apr_size_t n)
{
    return str->len == n && n <= str->avail && memcmp(str->str, lit, n) == 0;
}

/* lit a string literal: its length is a constant */
#define CS_STR_IS(str, lit) cs_str_eq((str), (lit), sizeof(lit) - 1)

/* A string value decoded into buf (cap bytes), or not a string (0, and the
 * value is scanned all the same). */
static int cs_scan_short(cs_scan_t *s, int c, int depth, char *buf, apr_size_t cap, cs_str_t *out,
                         int *ok)
{
    out->buf = buf;
    out->cap = cap;
    if (c != '"') {
        out->str = buf;
        out->avail = out->len = 0;
        *ok = 0;
        return cs_scan_value(s, c, depth);
    }
    *ok = 1;
    return cs_scan_string(s, out);
}

/* One content block: its type, and the characters of its text and thinking
 * strings (-1: not a string), each from the last occurrence of the key. */
typedef struct cs_scan_item_t {
    int kind; /* 1 text, 2 thinking, 0 anything else */
    apr_int64_t text;
    apr_int64_t thinking;
} cs_scan_item_t;

static int cs_scan_item_member(cs_scan_t *s, void *ctx, const cs_str_t *key, int c, int depth)
{
    cs_scan_item_t *item = ctx;
    char buf[CS_SCAN_SHORT];
    cs_str_t str;
    apr_int64_t *chars = NULL;
    int ok;

    if (CS_STR_IS(key, "type")) {
        if (!cs_scan_short(s, c, depth, buf, sizeof(buf), &str, &ok)) {
            return 0;
        }
        item->kind = !ok ? 0 : CS_STR_IS(&str, "text") ? 1 : CS_STR_IS(&str, "thinking") ? 2 : 0;
        return 1;
    }
    if (CS_STR_IS(key, "text")) {
        chars = &item->text;
    }
    else if (CS_STR_IS(key, "thinking")) {
        chars = &item->thinking;
    }
    if (chars == NULL) {
        return cs_scan_value(s, c, depth);
    }
    if (!cs_scan_short(s, c, depth, NULL, 0, &str, &ok)) {
        return 0;
    }
    *chars = ok ? str.chars : -1;
    return 1;
}

static int cs_scan_content_elem(cs_scan_t *s, void *ctx, int c, int depth)
{
    apr_int64_t *sum = ctx;
    cs_scan_item_t item;

    if (c != '{') {
        return cs_scan_value(s, c, depth);
    }
    item.kind = 0;
    item.text = item.thinking = -1;
    if (!cs_scan_object(s, depth, cs_scan_item_member, &item)) {
        return 0;
    }
    if (item.kind == 1 && item.text >= 0) {
        *sum += item.text;
    }
    else if (item.kind == 2 && item.thinking >= 0) {
        *sum += item.thinking;
    }
    return 1;
}

static int cs_scan_usage_member(cs_scan_t *s, void *ctx, const cs_str_t *key, int c, int depth)
{
    cs_scan_usage_t *usage = ctx;
    int k, is_int;
    apr_int64_t v;

    /* which of ours, if any: the four lengths differ, so one comparison */
    switch (key->len) {
    case sizeof("input_tokens") - 1:
        k = 0;
        break;
    case sizeof("output_tokens") - 1:
        k = 1;
        break;
    case sizeof("cache_read_input_tokens") - 1:
        k = 2;
        break;
    case sizeof("cache_creation_input_tokens") - 1:
        k = 3;
        break;
    default:
        k = 4;
        break;
    }
    if (k == 4 || !cs_str_eq(key, cs_usage_keys[k], cs_usage_key_lens[k])) {
        return cs_scan_value(s, c, depth);
    }
    usage->has[k] = 0;
    if (c != '-' && (c < '0' || c > '9')) {
        return cs_scan_value(s, c, depth);
    }
    if (!cs_scan_number(s, c, &is_int, &v)) {
        return 0;
    }
    usage->has[k] = is_int && v >= 0;
    usage->v[k] = v;
    return 1;
}

/* What the top-level object gave, each key's last occurrence. */
typedef struct cs_scan_root_t {
    int type_error;
    int model_ok;
    char model[CS_MODEL_MAX]; /* a model that had to be decoded */
    const char *model_str;
    apr_size_t model_len;
    cs_scan_usage_t usage;
    apr_int64_t content_chars;
} cs_scan_root_t;

static int cs_scan_root_member(cs_scan_t *s, void *ctx, const cs_str_t *key, int c, int depth)
{
    cs_scan_root_t *root = ctx;
    char buf[CS_SCAN_SHORT];
    cs_str_t str;
    apr_size_t i;
    int ok, model_ok;

    if (CS_STR_IS(key, "type")) {
        if (!cs_scan_short(s, c, depth, buf, sizeof(buf), &str, &ok)) {
            return 0;
        }
        root->type_error = ok && CS_STR_IS(&str, "error");
        return 1;
    }
    if (CS_STR_IS(key, "model")) {
        if (!cs_scan_short(s, c, depth, root->model, sizeof(root->model), &str, &ok)) {
            return 0;
        }
        /* what cs_take_model accepts */
        model_ok = ok && str.len > 0 && str.len <= CS_MODEL_MAX && str.avail == str.len;
        for (i = 0; model_ok && i < str.len; i++) {
            unsigned char b = (unsigned char)str.str[i];
            model_ok = b >= 0x21 && b <= 0x7e;
        }
        root->model_ok = model_ok;
        root->model_str = str.str; /* in the body, or model */
        root->model_len = str.len;
        return 1;
    }
    if (CS_STR_IS(key, "usage")) {
        memset(&root->usage, 0, sizeof(root->usage));
        if (c != '{') {
            return cs_scan_value(s, c, depth);
        }
        root->usage.is_object = 1;
        return cs_scan_object(s, depth, cs_scan_usage_member, &root->usage);
    }
    if (CS_STR_IS(key, "content")) {
        root->content_chars = 0;
        if (c != '[') {
            return cs_scan_value(s, c, depth);
        }
        return cs_scan_array(s, depth, cs_scan_content_elem, &root->content_chars);
    }
    return cs_scan_value(s, c, depth);
}

static void cs_json_finish(cs_usage_parser_t *up)
{
    apr_int64_t *const fields[4] = {&up->u.input_tokens, &up->u.output_tokens,
                                    &up->u.cache_read_tokens, &up->u.cache_creation_tokens};
    cs_scan_root_t root;
    cs_scan_t s;
    int k;

    if (up->overflow || up->head == NULL) {
        return;
    }
    memset(&s, 0, sizeof(s));
    s.block = up->head;
    s.p = up->head->data;
    s.end = s.p + up->head->len;
    s.up = up;
    memset(&root, 0, sizeof(root));
    /* an array at the top parses or not, but it is not an object: no usage */
    if (cs_scan_ws(&s) != '{' || !cs_scan_object(&s, 1, cs_scan_root_member, &root) ||
        cs_scan_ws(&s) != -1) {
        return;
    }
    if (root.type_error) {
        up->u.error_event = 1;
    }
    if (root.model_ok) {
        up->u.model = apr_pstrmemdup(up->pool, root.model_str, root.model_len);
    }
    if (root.usage.is_object) {
        up->u.seen_usage = 1;
        for (k = 0; k < 4; k++) {
            if (root.usage.has[k]) {
                *fields[k] = root.usage.v[k];
            }
        }
        up->u.complete = 1;
    }
    up->u.text_chars += root.content_chars;
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
