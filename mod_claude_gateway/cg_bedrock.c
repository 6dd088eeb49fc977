/* cg_bedrock: the Amazon Bedrock upstream, see cg_bedrock.h.
 *
 * The event-stream framing is AWS's application/vnd.amazon.eventstream: a
 * 12-byte prelude (total length, headers length, CRC32 of those 8 bytes, all
 * big-endian), the headers (1-byte name length, name, 1-byte type, value), the
 * payload, and a CRC32 of everything before it. The decoder keeps at most one
 * message: it reads the prelude, checks it before trusting the length, then
 * waits for exactly that many bytes, so a split anywhere (one byte per feed)
 * gives the same frames as the whole body at once. Nothing is emitted from an
 * unverified message. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <jansson.h>

#include "cg_bedrock.h"
#include "cg_provider.h"
#include "cg_sigv4.h"

#define CG_ES_PRELUDE 12
#define CG_ES_MIN_MESSAGE 16
#define CG_ES_MAX_HEADERS (128 * 1024)
/* the longest text kept for the operational log */
#define CG_BEDROCK_ERROR_MAX 2048

/* A string header value inside the message buffer (not NUL-terminated). */
typedef struct {
    const char *p;
    apr_size_t n;
} cg_es_str_t;

typedef enum { CG_ES_OK = 0, CG_ES_ENDED, CG_ES_MALFORMED, CG_ES_STOPPED } cg_es_state_e;

struct cg_bedrock_stream_t {
    apr_pool_t *pool;
    cg_bedrock_emit_fn emit;
    void *baton;
    apr_size_t max;
    unsigned char *buf; /* the message being read */
    apr_size_t cap, have, need;
    char *scratch; /* decoded chunk bytes, then the SSE frame; reused */
    apr_size_t scratch_cap;
    apr_uint32_t crc_table[256];
    cg_es_state_e state;
    apr_status_t rv;
    const char *error;
    apr_size_t events;
};

/* ---- request side ---------------------------------------------------------------- */

const char *cg_bedrock_host(apr_pool_t *p, const char *region)
{
    const char *c;

    if (region == NULL || *region == '\0') {
        return NULL;
    }
    for (c = region; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
            return NULL;
        }
    }
    return apr_pstrcat(p, "bedrock-runtime.", region, ".amazonaws.com", NULL);
}

const char *cg_bedrock_path(apr_pool_t *p, const char *model_id, cg_bedrock_op_e op)
{
    static const char *const ops[] = {"/invoke", "/invoke-with-response-stream", "/count-tokens"};

    if (model_id == NULL || *model_id == '\0' || op < CG_BEDROCK_INVOKE ||
        op > CG_BEDROCK_COUNT_TOKENS) {
        return NULL;
    }
    return apr_pstrcat(p, "/model/", cg_sigv4_uri_encode(p, model_id, 0), ops[op], NULL);
}

/* The client's body made an invoke body, as a JSON object owned by p. */
static json_t *cg_bedrock_translate(apr_pool_t *p, const char *buf, apr_size_t len,
                                    const char *anthropic_beta)
{
    json_t *j = cg_provider_body_parse(p, buf, len), *old, *arr;
    apr_array_header_t *betas;
    size_t i;
    int k;

    if (j == NULL) {
        return NULL;
    }
    json_object_del(j, "model");  /* in the URL */
    json_object_del(j, "stream"); /* the operation says it */
    json_object_del(j, "tags");   /* Bedrock refuses request tags */
    json_object_set_new(j, "anthropic_version", json_string(CG_BEDROCK_ANTHROPIC_VERSION));

    betas = cg_provider_betas(p, anthropic_beta, CG_PROVIDER_REQUEST_TAGS_BETA);
    old = json_object_get(j, "anthropic_beta");
    if (betas->nelts == 0 && !json_is_array(old)) {
        return j; /* nothing to move; a non-array value is the client's business */
    }
    arr = json_array();
    if (json_is_array(old)) {
        for (i = 0; i < json_array_size(old); i++) {
            json_t *v = json_array_get(old, i);

            if (!json_is_string(v) ||
                strcmp(json_string_value(v), CG_PROVIDER_REQUEST_TAGS_BETA) != 0) {
                json_array_append(arr, v);
            }
        }
    }
    for (k = 0; k < betas->nelts; k++) {
        const char *b = APR_ARRAY_IDX(betas, k, const char *);
        int seen = 0;

        for (i = 0; i < json_array_size(arr) && !seen; i++) {
            json_t *v = json_array_get(arr, i);

            seen = json_is_string(v) && strcmp(json_string_value(v), b) == 0;
        }
        if (!seen) {
            json_array_append_new(arr, json_string(b));
        }
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        json_object_del(j, "anthropic_beta");
    }
    else {
        json_object_set_new(j, "anthropic_beta", arr);
    }
    return j;
}

const char *cg_bedrock_body(apr_pool_t *p, const char *buf, apr_size_t len,
                            const char *anthropic_beta, apr_size_t *out_len)
{
    return cg_bedrock_body_tagged(p, buf, len, anthropic_beta, NULL, out_len);
}

/* A text wrapped in the guardrail's input tags. */
static json_t *cg_bedrock_guard_text(apr_pool_t *p, const char *text, const char *suffix)
{
    return json_string(apr_pstrcat(p, "<" CG_BEDROCK_GUARD_TAG, suffix, ">", text,
                                   "</" CG_BEDROCK_GUARD_TAG, suffix, ">", NULL));
}

/* Tag the last user turn's text; 0 when there is nothing to tag. */
static int cg_bedrock_guard_input(apr_pool_t *p, json_t *body, const char *suffix)
{
    json_t *messages = json_object_get(body, "messages"), *m = NULL, *content, *block;
    apr_size_t i;
    int tagged = 0;

    for (i = json_array_size(messages); i > 0; i--) {
        json_t *role = json_object_get(json_array_get(messages, i - 1), "role");
        if (json_is_string(role) && !strcmp(json_string_value(role), "user")) {
            m = json_array_get(messages, i - 1);
            break;
        }
    }
    content = json_object_get(m, "content");
    if (json_is_string(content)) {
        return json_object_set_new(
                   m, "content", cg_bedrock_guard_text(p, json_string_value(content), suffix)) == 0;
    }
    json_array_foreach(content, i, block)
    {
        json_t *type = json_object_get(block, "type"), *text = json_object_get(block, "text");
        if (json_is_string(type) && !strcmp(json_string_value(type), "text") &&
            json_is_string(text)) {
            json_object_set_new(block, "text",
                                cg_bedrock_guard_text(p, json_string_value(text), suffix));
            tagged = 1;
        }
    }
    return tagged;
}

const char *cg_bedrock_body_tagged(apr_pool_t *p, const char *buf, apr_size_t len,
                                   const char *anthropic_beta, const char *tag_suffix,
                                   apr_size_t *out_len)
{
    json_t *j = cg_bedrock_translate(p, buf, len, anthropic_beta);

    if (j != NULL && tag_suffix != NULL && cg_bedrock_guard_input(p, j, tag_suffix)) {
        json_object_set_new(j, "amazon-bedrock-guardrailConfig",
                            json_pack("{s:s}", "tagSuffix", tag_suffix));
    }
    return j ? cg_provider_body_dump(p, j, out_len) : NULL;
}

static const char cg_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char *cg_bedrock_b64(apr_pool_t *p, const unsigned char *in, apr_size_t len)
{
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1), *o = out;
    apr_size_t i;

    for (i = 0; i + 3 <= len; i += 3) {
        *o++ = cg_b64_alphabet[in[i] >> 2];
        *o++ = cg_b64_alphabet[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        *o++ = cg_b64_alphabet[((in[i + 1] & 0x0f) << 2) | (in[i + 2] >> 6)];
        *o++ = cg_b64_alphabet[in[i + 2] & 0x3f];
    }
    if (len - i == 1) {
        *o++ = cg_b64_alphabet[in[i] >> 2];
        *o++ = cg_b64_alphabet[(in[i] & 0x03) << 4];
        *o++ = '=';
        *o++ = '=';
    }
    else if (len - i == 2) {
        *o++ = cg_b64_alphabet[in[i] >> 2];
        *o++ = cg_b64_alphabet[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        *o++ = cg_b64_alphabet[(in[i + 1] & 0x0f) << 2];
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

const char *cg_bedrock_count_tokens_body(apr_pool_t *p, const char *buf, apr_size_t len,
                                         const char *anthropic_beta, apr_size_t *out_len)
{
    json_t *j = cg_bedrock_translate(p, buf, len, anthropic_beta), *tools, *thinking, *wrap;
    json_int_t budget = 0, max_tokens;
    const char *invoke, *out;
    apr_size_t ilen;

    if (j == NULL) {
        return NULL;
    }
    tools = json_object_get(j, "tools");
    if (json_is_array(tools) && json_array_size(tools) == 0) {
        json_object_del(j, "tools");
    }
    thinking = json_object_get(j, "thinking");
    if (json_is_integer(json_object_get(thinking, "budget_tokens"))) {
        budget = json_integer_value(json_object_get(thinking, "budget_tokens"));
    }
    max_tokens = json_is_integer(json_object_get(j, "max_tokens"))
                     ? json_integer_value(json_object_get(j, "max_tokens"))
                     : 0;
    if (max_tokens <= budget || max_tokens < 1) {
        /* an absurd budget stays absurd: Bedrock refuses it, we do not overflow */
        json_object_set_new(j, "max_tokens",
                            json_integer(budget <= 0          ? 1
                                         : budget < LLONG_MAX ? budget + 1
                                                              : budget));
    }
    invoke = cg_provider_body_dump(p, j, &ilen);
    if (invoke == NULL) {
        return NULL;
    }
    wrap = json_pack("{s:{s:{s:s}}}", "input", "invokeModel", "body",
                     cg_bedrock_b64(p, (const unsigned char *)invoke, ilen));
    out = wrap ? cg_provider_body_dump(p, wrap, out_len) : NULL;
    json_decref(wrap);
    return out;
}

const char *cg_bedrock_count_tokens_answer(apr_pool_t *p, const char *buf, apr_size_t len)
{
    json_t *j = buf ? json_loadb(buf, len, 0, NULL) : NULL;
    const json_t *n = json_object_get(j, "inputTokens");
    const char *out = NULL;

    if (json_is_integer(n) && json_integer_value(n) >= 0) {
        out = apr_psprintf(p, "{\"input_tokens\":%" APR_INT64_T_FMT "}",
                           (apr_int64_t)json_integer_value(n));
    }
    json_decref(j);
    return out;
}

/* ---- response side: the event-stream decoder --------------------------------------- */

cg_bedrock_stream_t *cg_bedrock_stream_create(apr_pool_t *p, apr_size_t max_message,
                                              cg_bedrock_emit_fn emit, void *baton)
{
    cg_bedrock_stream_t *s = apr_pcalloc(p, sizeof(*s));
    apr_uint32_t i, c;
    int k;

    s->pool = p;
    s->emit = emit;
    s->baton = baton;
    s->max = max_message >= CG_ES_MIN_MESSAGE ? max_message : CG_BEDROCK_MAX_MESSAGE;
    s->cap = 4096;
    s->buf = apr_palloc(p, s->cap);
    /* CRC-32 (IEEE 802.3, reflected 0xEDB88320), as zlib's crc32() */
    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        s->crc_table[i] = c;
    }
    return s;
}

static apr_uint32_t cg_es_crc32(const cg_bedrock_stream_t *s, const unsigned char *b, apr_size_t n)
{
    apr_uint32_t c = 0xFFFFFFFFu;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        c = s->crc_table[(c ^ b[i]) & 0xff] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}

static apr_uint32_t cg_es_be32(const unsigned char *b)
{
    return (apr_uint32_t)b[0] << 24 | (apr_uint32_t)b[1] << 16 | (apr_uint32_t)b[2] << 8 | b[3];
}

static char *cg_es_scratch(cg_bedrock_stream_t *s, apr_size_t n)
{
    if (n > s->scratch_cap) {
        apr_size_t cap = s->scratch_cap ? s->scratch_cap : 1024;

        while (cap < n) {
            cap *= 2;
        }
        s->scratch = apr_palloc(s->pool, cap);
        s->scratch_cap = cap;
    }
    return s->scratch;
}

/* Strict standard base64 with padding; the result goes to the start of the scratch. */
static int cg_es_b64_decode(cg_bedrock_stream_t *s, const char *in, apr_size_t n,
                            apr_size_t *outlen)
{
    unsigned char *out;
    apr_size_t i, o = 0, pad = 0;
    apr_uint32_t acc = 0;

    if (n % 4 != 0) {
        return 0;
    }
    if (n > 0 && in[n - 1] == '=') {
        pad = (n > 1 && in[n - 2] == '=') ? 2 : 1;
    }
    out = (unsigned char *)cg_es_scratch(s, n / 4 * 3 + 1);
    for (i = 0; i < n - pad; i++) {
        const char *pos = in[i] ? strchr(cg_b64_alphabet, in[i]) : NULL;

        if (pos == NULL) {
            return 0;
        }
        acc = acc << 6 | (apr_uint32_t)(pos - cg_b64_alphabet);
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(acc >> 16);
            out[o++] = (unsigned char)(acc >> 8);
            out[o++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (pad == 1) {
        if (acc & 0x3) {
            return 0;
        }
        out[o++] = (unsigned char)(acc >> 10);
        out[o++] = (unsigned char)(acc >> 2);
    }
    else if (pad == 2) {
        if (acc & 0xf) {
            return 0;
        }
        out[o++] = (unsigned char)(acc >> 4);
    }
    *outlen = o;
    return 1;
}

static apr_status_t cg_es_emit(cg_bedrock_stream_t *s, const char *data, apr_size_t len)
{
    apr_status_t rv = s->emit ? s->emit(s->baton, data, len) : APR_SUCCESS;

    if (rv != APR_SUCCESS) {
        s->state = CG_ES_STOPPED;
        s->rv = rv;
    }
    return rv;
}

/* The stream cannot be trusted any more: say so once, in the client's terms. */
static apr_status_t cg_es_malformed(cg_bedrock_stream_t *s, const char *why)
{
    const char *frame = cg_provider_sse_error(s->pool, "api_error", "upstream error");
    apr_status_t rv;

    s->error = apr_pstrcat(s->pool, "malformed event stream: ", why, NULL);
    rv = cg_es_emit(s, frame, strlen(frame));
    if (rv == APR_SUCCESS) {
        s->state = CG_ES_MALFORMED;
        s->rv = APR_EINVAL;
    }
    return s->rv;
}

/* The HTTP status an AWS exception stands for (the InvokeModelWithResponseStream
 * error list), which picks error.type and the client's message. */
static int cg_es_exception_status(const char *type, const json_t *payload)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {
        {"throttlingException", 429},     {"serviceQuotaExceededException", 429},
        {"modelNotReadyException", 429},  {"validationException", 400},
        {"accessDeniedException", 403},   {"resourceNotFoundException", 404},
        {"modelTimeoutException", 504},   {"serviceUnavailableException", 503},
        {"internalServerException", 500}, {"modelErrorException", 500},
    };
    apr_size_t i;

    if (type != NULL && strcmp(type, "modelStreamErrorException") == 0) {
        /* the model's own failure, with the status it would have had */
        const json_t *st = json_object_get(payload, "originalStatusCode");

        if (json_is_integer(st) && json_integer_value(st) >= 400 && json_integer_value(st) <= 599) {
            return (int)json_integer_value(st);
        }
        return 500;
    }
    for (i = 0; type != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcasecmp(type, map[i].type) == 0) {
            return map[i].status;
        }
    }
    return 500;
}

static apr_status_t cg_es_exception(cg_bedrock_stream_t *s, const char *type,
                                    const unsigned char *payload, apr_size_t plen,
                                    const char *header_message)
{
    json_t *j = plen > 0 ? json_loadb((const char *)payload, plen, 0, NULL) : NULL;
    const json_t *m = json_object_get(j, "message");
    const char *msg, *frame;
    apr_status_t rv;
    int status;

    if (!json_is_string(m)) {
        m = json_object_get(j, "Message");
    }
    msg = json_is_string(m) ? apr_pstrdup(s->pool, json_string_value(m)) : header_message;
    status = cg_es_exception_status(type, j);
    s->error = apr_pstrndup(
        s->pool, apr_pstrcat(s->pool, type ? type : "exception", ": ", msg ? msg : "", NULL),
        CG_BEDROCK_ERROR_MAX);
    frame = cg_provider_sse_error(s->pool, cg_provider_error_type(status),
                                  cg_provider_error_message(status, msg));
    json_decref(j);
    rv = cg_es_emit(s, frame, strlen(frame));
    if (rv == APR_SUCCESS) {
        s->state = CG_ES_ENDED;
        s->rv = APR_EOF;
    }
    return s->rv;
}

/* An Anthropic event name: what goes on the "event:" line must be one token. */
static int cg_es_event_name_ok(const char *t)
{
    apr_size_t n = 0;

    for (; *t; t++, n++) {
        if (!((*t >= 'a' && *t <= 'z') || *t == '_')) {
            return 0;
        }
    }
    return n > 0 && n <= 64;
}

static apr_status_t cg_es_chunk(cg_bedrock_stream_t *s, const unsigned char *payload,
                                apr_size_t plen)
{
    json_t *outer = json_loadb((const char *)payload, plen, 0, NULL), *ev = NULL;
    const json_t *bytes = json_object_get(outer, "bytes");
    const char *type, *data;
    char *frame, *dumped = NULL;
    apr_size_t dlen = 0, tlen, flen;
    apr_status_t rv;

    if (!json_is_string(bytes) ||
        !cg_es_b64_decode(s, json_string_value(bytes), json_string_length(bytes), &dlen)) {
        json_decref(outer);
        return cg_es_malformed(s, "a chunk without base64 bytes");
    }
    json_decref(outer);
    ev = json_loadb(s->scratch, dlen, JSON_REJECT_DUPLICATES, NULL);
    type = json_string_value(json_object_get(ev, "type"));
    if (!json_is_object(ev) || type == NULL || !cg_es_event_name_ok(type)) {
        json_decref(ev);
        return cg_es_malformed(s, "a chunk that is not an Anthropic event");
    }
    data = s->scratch;
    if (memchr(data, '\n', dlen) != NULL || memchr(data, '\r', dlen) != NULL) {
        /* one SSE data line: the JSON must not break it */
        dumped = json_dumps(ev, JSON_COMPACT);
        if (dumped == NULL) {
            json_decref(ev);
            return cg_es_malformed(s, "an event that cannot be re-serialised");
        }
        data = dumped;
        dlen = strlen(dumped);
    }
    tlen = strlen(type);
    flen = 7 + tlen + 7 + dlen + 2;
    /* the frame is built after the decoded bytes, in the same scratch */
    if (dumped == NULL) {
        apr_size_t off = dlen;

        frame = cg_es_scratch(s, off + flen);
        if (frame != data) {
            memmove(frame, data, dlen); /* the scratch moved when it grew */
            data = frame;
        }
        frame += off;
    }
    else {
        frame = cg_es_scratch(s, flen);
    }
    memcpy(frame, "event: ", 7);
    memcpy(frame + 7, type, tlen);
    memcpy(frame + 7 + tlen, "\ndata: ", 7);
    memcpy(frame + 14 + tlen, data, dlen);
    memcpy(frame + 14 + tlen + dlen, "\n\n", 2);
    json_decref(ev);
    free(dumped);
    s->events++;
    rv = cg_es_emit(s, frame, flen);
    return rv;
}

/* Only for the one message that ends the stream: never per event. */
static const char *cg_es_dup(cg_bedrock_stream_t *s, cg_es_str_t v)
{
    return v.p ? apr_pstrmemdup(s->pool, v.p, v.n) : NULL;
}

/* A whole message of s->need bytes is in s->buf. */
static apr_status_t cg_es_message(cg_bedrock_stream_t *s)
{
    const unsigned char *b = s->buf, *h, *payload;
    apr_size_t total = s->need, hlen = cg_es_be32(b + 4), pos = 0, plen;
    cg_es_str_t mtype = {NULL, 0}, etype = {NULL, 0}, xtype = {NULL, 0}, ecode = {NULL, 0};
    cg_es_str_t emsg = {NULL, 0};

    if (cg_es_crc32(s, b, total - 4) != cg_es_be32(b + total - 4)) {
        return cg_es_malformed(s, "message CRC mismatch");
    }
    h = b + CG_ES_PRELUDE;
    payload = h + hlen;
    plen = total - CG_ES_PRELUDE - hlen - 4;
    while (pos < hlen) {
        apr_size_t nlen = h[pos++], vlen;
        const unsigned char *name = h + pos;
        unsigned char vt;

        if (nlen == 0 || pos + nlen >= hlen) {
            return cg_es_malformed(s, "bad header name");
        }
        pos += nlen;
        vt = h[pos++];
        switch (vt) {
        case 0: /* true */
        case 1: /* false */
            vlen = 0;
            break;
        case 2: /* byte */
            vlen = 1;
            break;
        case 3: /* short */
            vlen = 2;
            break;
        case 4: /* int */
            vlen = 4;
            break;
        case 5: /* long */
        case 8: /* timestamp */
            vlen = 8;
            break;
        case 9: /* uuid */
            vlen = 16;
            break;
        case 6: /* bytes */
        case 7: /* string */
            if (pos + 2 > hlen) {
                return cg_es_malformed(s, "bad header value length");
            }
            vlen = (apr_size_t)h[pos] << 8 | h[pos + 1];
            pos += 2;
            break;
        default:
            return cg_es_malformed(s, "unknown header value type");
        }
        if (pos + vlen > hlen) {
            return cg_es_malformed(s, "header value past the headers");
        }
        if (vt == 7) {
            cg_es_str_t v = {(const char *)h + pos, vlen};

#define CG_ES_IS(n) (nlen == sizeof(n) - 1 && memcmp(name, n, nlen) == 0)
            if (CG_ES_IS(":message-type")) {
                mtype = v;
            }
            else if (CG_ES_IS(":event-type")) {
                etype = v;
            }
            else if (CG_ES_IS(":exception-type")) {
                xtype = v;
            }
            else if (CG_ES_IS(":error-code")) {
                ecode = v;
            }
            else if (CG_ES_IS(":error-message")) {
                emsg = v;
            }
#undef CG_ES_IS
        }
        pos += vlen;
    }
#define CG_ES_EQ(v, lit)                                                                           \
    ((v).p != NULL && (v).n == sizeof(lit) - 1 && memcmp((v).p, lit, (v).n) == 0)
    if (mtype.p == NULL) {
        return cg_es_malformed(s, "no :message-type");
    }
    if (CG_ES_EQ(mtype, "event")) {
        if (CG_ES_EQ(etype, "chunk")) {
            return cg_es_chunk(s, payload, plen);
        }
        return APR_SUCCESS; /* other events carry nothing for the client */
    }
    if (CG_ES_EQ(mtype, "exception")) {
        return cg_es_exception(s, cg_es_dup(s, xtype), payload, plen, NULL);
    }
    if (CG_ES_EQ(mtype, "error")) {
        return cg_es_exception(s, cg_es_dup(s, ecode), NULL, 0, cg_es_dup(s, emsg));
    }
#undef CG_ES_EQ
    return cg_es_malformed(s, "unknown :message-type");
}

apr_status_t cg_bedrock_stream_feed(cg_bedrock_stream_t *s, const char *data, apr_size_t len)
{
    const unsigned char *in = (const unsigned char *)data;

    while (len > 0 && s->state == CG_ES_OK) {
        apr_size_t want = s->need ? s->need : CG_ES_PRELUDE;
        apr_size_t take = want - s->have < len ? want - s->have : len;
        apr_status_t rv;

        memcpy(s->buf + s->have, in, take);
        s->have += take;
        in += take;
        len -= take;
        if (s->need == 0 && s->have == CG_ES_PRELUDE) {
            apr_uint32_t total = cg_es_be32(s->buf), hlen = cg_es_be32(s->buf + 4);

            if (cg_es_crc32(s, s->buf, 8) != cg_es_be32(s->buf + 8)) {
                return cg_es_malformed(s, "prelude CRC mismatch");
            }
            if (total < CG_ES_MIN_MESSAGE || total > s->max || hlen > CG_ES_MAX_HEADERS ||
                hlen > total - CG_ES_MIN_MESSAGE) {
                return cg_es_malformed(s, "impossible message or header length");
            }
            s->need = total;
            if (s->need > s->cap) {
                apr_size_t cap = s->cap * 2 > s->need ? s->cap * 2 : s->need;
                unsigned char *nb;

                cap = cap > s->max ? s->max : cap;
                nb = apr_palloc(s->pool, cap);
                memcpy(nb, s->buf, s->have);
                s->buf = nb;
                s->cap = cap;
            }
        }
        if (s->need != 0 && s->have == s->need) {
            rv = cg_es_message(s);
            s->have = 0;
            s->need = 0;
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
    }
    return s->state == CG_ES_OK ? APR_SUCCESS : s->rv;
}

apr_status_t cg_bedrock_stream_finish(cg_bedrock_stream_t *s)
{
    if (s->state == CG_ES_OK && s->have > 0) {
        return APR_INCOMPLETE;
    }
    return APR_SUCCESS;
}

const char *cg_bedrock_stream_error(const cg_bedrock_stream_t *s)
{
    return s->error;
}

apr_size_t cg_bedrock_stream_events(const cg_bedrock_stream_t *s)
{
    return s->events;
}
