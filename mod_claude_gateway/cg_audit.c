/* cg_audit: PURE notes reader and claude_json renderer, see cg_audit.h.
 *
 * Nothing here knows about requests: the glue (cg_auditlog.c) hands over the
 * notes table and the few request fields the line holds. The renderer sizes
 * the line first and writes it into one allocation: it runs for every
 * request, for every CustomLog using the format. */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>

#include "cg_audit.h"

/* --- the notes ------------------------------------------------------------ */

typedef struct cg_note_name_t {
    const char *name; /* lower case, as both modules set it */
    apr_size_t len;
    apr_size_t off; /* of the field in cg_notes_t */
} cg_note_name_t;

/* the members of one entry: name, its length, where its value goes */
#define CG_NOTE(n, f) n, sizeof(n) - 1, offsetof(cg_notes_t, f)

/* the most frequent first: a key is compared until one matches */
static const cg_note_name_t cg_note_names[] = {
    {CG_NOTE("claude-request-id", request_id)},
    {CG_NOTE("claude-decision", decision)},
    {CG_NOTE("claude-user", user)},
    {CG_NOTE("claude-email", email)},
    {CG_NOTE("claude-groups", groups)},
    {CG_NOTE("claude-model", model)},
    {CG_NOTE("claude-model-upstream", model_upstream)},
    {CG_NOTE("claude-max-tokens", max_tokens)},
    {CG_NOTE("claude-upstream", upstream)},
    {CG_NOTE("claude-upstream-ttfb-us", upstream_ttfb_us)},
    {CG_NOTE("claude-usage-in", usage_in)},
    {CG_NOTE("claude-usage-out", usage_out)},
    {CG_NOTE("claude-usage-cache-read", usage_cache_read)},
    {CG_NOTE("claude-usage-cache-write", usage_cache_write)},
    {CG_NOTE("claude-usage-partial", usage_partial)},
    {CG_NOTE("claude-model-served", model_served)},
    {CG_NOTE("claude-cost-micro-usd", cost_micro_usd)},
    {CG_NOTE("claude-failovers", failovers)},
    {CG_NOTE("claude-reason", reason)},
    {CG_NOTE("claude-admin-request-id", admin_request_id)},
};

#define CG_NOTE_COUNT (sizeof(cg_note_names) / sizeof(cg_note_names[0]))

void cg_notes_read(const apr_table_t *notes, cg_notes_t *out)
{
    const apr_array_header_t *arr;
    const apr_table_entry_t *e;
    int i;

    memset(out, 0, sizeof(*out));
    if (notes == NULL) {
        return;
    }
    arr = apr_table_elts(notes);
    e = (const apr_table_entry_t *)arr->elts;
    for (i = 0; i < arr->nelts; i++) {
        const char *k = e[i].key;
        apr_size_t len, j;

        /* other modules' notes (mod_proxy, mod_ssl ...) leave at the prefix */
        if (k == NULL || strncasecmp(k, "claude-", 7) != 0) {
            continue;
        }
        len = strlen(k);
        for (j = 0; j < CG_NOTE_COUNT; j++) {
            const cg_note_name_t *n = &cg_note_names[j];
            const char **slot = (const char **)((char *)out + n->off);

            if (n->len != len || (memcmp(k, n->name, len) != 0 && strcasecmp(k, n->name) != 0)) {
                continue;
            }
            if (*slot == NULL) { /* the first wins, as in apr_table_get */
                *slot = e[i].val;
            }
            break;
        }
    }
}

/* An open-addressed index of cg_note_names, for cg_notes_slot: a note is
 * written or read some twenty times a request, and a walk of the list took
 * a hundred instructions each time. Built when the module is loaded. */
#define CG_NOTE_SLOTS 64
static signed char cg_note_index[CG_NOTE_SLOTS];
_Static_assert(CG_NOTE_COUNT < CG_NOTE_SLOTS / 2, "cg_note_index: room for the names");

/* every name is "claude-" and more: its length, the letter after the dash
 * and the last one tell the names apart but for a few, which probe on */
static unsigned int cg_note_hash(const char *name, apr_size_t len)
{
    return ((unsigned int)len * 31u + (unsigned char)name[7] * 7u + (unsigned char)name[len - 1]) &
           (CG_NOTE_SLOTS - 1);
}

__attribute__((constructor)) static void cg_note_index_build(void)
{
    apr_size_t j;

    memset(cg_note_index, -1, sizeof(cg_note_index));
    for (j = 0; j < CG_NOTE_COUNT; j++) {
        unsigned int h = cg_note_hash(cg_note_names[j].name, cg_note_names[j].len);
        while (cg_note_index[h] >= 0) {
            h = (h + 1) & (CG_NOTE_SLOTS - 1);
        }
        cg_note_index[h] = (signed char)j;
    }
}

const char **cg_notes_slot(cg_notes_t *n, const char *name)
{
    apr_size_t len = strlen(name);
    unsigned int h;
    int j;

    /* the names are our own literals: exact bytes, no case folding */
    if (len < 8) {
        return NULL;
    }
    for (h = cg_note_hash(name, len); (j = cg_note_index[h]) >= 0;
         h = (h + 1) & (CG_NOTE_SLOTS - 1)) {
        if (cg_note_names[j].len == len && memcmp(name, cg_note_names[j].name, len) == 0) {
            return (const char **)((char *)n + cg_note_names[j].off);
        }
    }
    return NULL;
}

/* --- JSON ----------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 table 3-7), 0 if
 * s[0] does not start one. s is NUL-terminated, and NUL is no continuation
 * byte, so reading on stops at the end. */
static apr_size_t cg_audit_utf8_len(const unsigned char *s)
{
    unsigned char lo = 0x80, hi = 0xbf;
    apr_size_t n, i;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = s[0] == 0xed ? 0x9f : 0xbf; /* no surrogates */
    }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        lo = s[0] == 0xf0 ? 0x90 : 0x80;
        hi = s[0] == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
    }
    else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

/* Bytes that go into a JSON string as they are: printable ASCII but the
 * quote and the backslash (NUL is not one, so a run stops at the end). */
static const unsigned char cg_audit_plain[256] = {
    [0x20 ... 0x21] = 1, /* then 0x22, the quote */
    [0x23 ... 0x5b] = 1, /* then 0x5c, the backslash */
    [0x5d ... 0x7e] = 1,
};

/* Writes str JSON-escaped (no quotes) to out, which has room for six bytes
 * per byte of str (the worst case, a \u escape); returns the length. */
static apr_size_t cg_audit_escape(char *out, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    apr_size_t o = 0, n;

    while (*s != '\0') {
        const unsigned char *run = s;
        unsigned char c;

        /* the bulk of every value: copied in runs */
        while (cg_audit_plain[*s]) {
            s++;
        }
        if (s > run) {
            memcpy(out + o, run, (apr_size_t)(s - run));
            o += (apr_size_t)(s - run);
            continue;
        }
        c = *s;
        if (c == '"' || c == '\\') {
            out[o] = '\\';
            out[o + 1] = (char)c;
            o += 2;
            s++;
        }
        else if (c < 0x80) { /* controls and DEL */
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 0x0f];
            o += 6;
            s++;
        }
        else if ((n = cg_audit_utf8_len(s)) > 0) {
            memcpy(out + o, s, n);
            o += n;
            s += n;
        }
        else { /* one replacement per stray byte: the count shows what was lost */
            memcpy(out + o, "\\ufffd", 6);
            o += 6;
            s++;
        }
    }
    return o;
}

/* Decimal of v into buf (at least 21 bytes), NUL-terminated. */
static const char *cg_audit_i64(char *buf, apr_int64_t v)
{
    char tmp[21];
    apr_uint64_t u = v < 0 ? (apr_uint64_t)0 - (apr_uint64_t)v : (apr_uint64_t)v;
    int n = 0, o = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        buf[o++] = '-';
    }
    while (n > 0) {
        buf[o++] = tmp[--n];
    }
    buf[o] = '\0';
    return buf;
}

typedef struct cg_audit_field_t {
    const char *key; /* ,"name": with the separator; the first has { instead */
    apr_size_t len;
    int quoted; /* a string value; else printed bare, as the LogFormat did */
} cg_audit_field_t;

/* the members of one entry: the key with its separator, its length, quoted */
#define CG_FIELD(sep, name, q) sep "\"" name "\":", sizeof(sep "\"" name "\":") - 1, q

/* The order and types of the claude_json LogFormat this replaces. */
static const cg_audit_field_t cg_audit_fields[] = {
    {CG_FIELD("{", "request_id", 1)},
    {CG_FIELD(",", "time", 0)},
    {CG_FIELD(",", "client", 1)},
    {CG_FIELD(",", "user", 1)},
    {CG_FIELD(",", "email", 1)},
    {CG_FIELD(",", "groups", 1)},
    {CG_FIELD(",", "method", 1)},
    {CG_FIELD(",", "path", 1)},
    {CG_FIELD(",", "model", 1)},
    {CG_FIELD(",", "model_served", 1)},
    {CG_FIELD(",", "status", 0)},
    {CG_FIELD(",", "decision", 1)},
    {CG_FIELD(",", "reason", 1)},
    {CG_FIELD(",", "input_tokens", 1)},
    {CG_FIELD(",", "output_tokens", 1)},
    {CG_FIELD(",", "cache_read_tokens", 1)},
    {CG_FIELD(",", "cache_write_tokens", 1)},
    {CG_FIELD(",", "partial", 1)},
    {CG_FIELD(",", "cost_micro_usd", 1)},
    {CG_FIELD(",", "latency_us", 0)},
    {CG_FIELD(",", "bytes_out", 0)},
};

#define CG_AUDIT_NFIELDS (sizeof(cg_audit_fields) / sizeof(cg_audit_fields[0]))

const char *cg_audit_json(apr_pool_t *p, const cg_audit_rec_t *rec)
{
    const cg_notes_t *n = &rec->notes;
    char time_buf[21], status_buf[21], latency_buf[21], bytes_buf[21];
    const char *v[CG_AUDIT_NFIELDS];
    apr_size_t len = 1, i, o, vl[CG_AUDIT_NFIELDS]; /* len: the closing brace */
    char *line;

    /* in cg_audit_fields' order */
    v[0] = n->request_id;
    v[1] = cg_audit_i64(time_buf, apr_time_sec(rec->time));
    v[2] = rec->client_ip;
    v[3] = n->user;
    v[4] = n->email;
    v[5] = n->groups;
    v[6] = rec->method;
    v[7] = rec->path;
    v[8] = n->model;
    v[9] = n->model_served;
    v[10] = rec->status > 0 ? cg_audit_i64(status_buf, rec->status) : "-";
    v[11] = n->decision;
    v[12] = n->reason;
    v[13] = n->usage_in;
    v[14] = n->usage_out;
    v[15] = n->usage_cache_read;
    v[16] = n->usage_cache_write;
    v[17] = n->usage_partial;
    v[18] = n->cost_micro_usd;
    v[19] = cg_audit_i64(latency_buf, rec->latency_us);
    v[20] = cg_audit_i64(bytes_buf, rec->bytes_out);
    for (i = 0; i < CG_AUDIT_NFIELDS; i++) {
        if (v[i] == NULL) {
            v[i] = "-"; /* what mod_log_config prints for a missing item */
        }
        vl[i] = strlen(v[i]);
        /* room for the worst case (every byte a \u escape): one pass over
         * each value instead of measuring it and then writing it */
        len += cg_audit_fields[i].len + (cg_audit_fields[i].quoted ? 6 * vl[i] + 2 : vl[i]);
    }
    line = apr_palloc(p, len + 1);
    for (i = 0, o = 0; i < CG_AUDIT_NFIELDS; i++) {
        const cg_audit_field_t *f = &cg_audit_fields[i];

        memcpy(line + o, f->key, f->len);
        o += f->len;
        if (f->quoted) {
            line[o++] = '"';
            o += cg_audit_escape(line + o, v[i]);
            line[o++] = '"';
        }
        else {
            memcpy(line + o, v[i], vl[i]);
            o += vl[i];
        }
    }
    line[o++] = '}';
    line[o] = '\0';
    return line;
}
