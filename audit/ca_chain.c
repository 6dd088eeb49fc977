/* ca_chain: line chaining, chain-field parsing, hashes and checkpoint
 * signatures of claude-auditlog (PURE: libc and OpenSSL only).
 *
 * The writer and the verifier share every format here, so that whatever the
 * writer produces the verifier reads back byte for byte: ca_parse_line() is
 * the exact inverse of ca_chain_line(). Formats are fixed (no whitespace
 * freedom) on purpose: a canonical spelling leaves a forger nothing to vary. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca_chain.h"

#define CA_CHECKPOINT_PREFIX "{\"_checkpoint\":"
#define CA_ROTATED_PREFIX "{\"_rotated_from\":"
#define CA_CANONICAL_TAG "claude-auditlog-checkpoint"
#define CA_JSON_MAX_DEPTH 64

/* The fixed ends of the two chained spellings, after the sequence number. */
#define CA_J_SEQ "\"_seq\":"
#define CA_J_PREV ",\"_prev\":\""
#define CA_J_HASH "\",\"_hash\":\""
#define CA_J_END "\"}"
#define CA_J_TAIL (sizeof(CA_J_PREV) - 1 + CA_HEX_LEN + sizeof(CA_J_HASH) - 1 + CA_HEX_LEN + 2)
#define CA_T_SEQ " #chain seq="
#define CA_T_PREV " prev="
#define CA_T_HASH " hash="
#define CA_T_TAIL (sizeof(CA_T_PREV) - 1 + CA_HEX_LEN + sizeof(CA_T_HASH) - 1 + CA_HEX_LEN)

static const char ca_hexdigits[] = "0123456789abcdef";

static void ca_to_hex(const unsigned char *in, size_t len, char *out)
{
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = ca_hexdigits[in[i] >> 4];
        out[2 * i + 1] = ca_hexdigits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

/* Lowercase only: one spelling per hash. */
static int ca_is_hex(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int ca_hash(const char *prev, const char *content, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    if (ctx == NULL) {
        return -1;
    }
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, prev, CA_HEX_LEN) == 1 && EVP_DigestUpdate(ctx, "\n", 1) == 1 &&
         (len == 0 || EVP_DigestUpdate(ctx, content, len) == 1) &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == CA_HEX_LEN / 2;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return -1;
    }
    ca_to_hex(md, mdlen, out);
    return 0;
}

/* --- UTF-8 and a strict JSON syntax check --------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), 0 if none. */
static size_t ca_utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n, i;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    }
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) {
            lo = 0xa0;
        }
        else if (c == 0xed) {
            hi = 0x9f; /* no surrogates */
        }
    }
    else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) {
            lo = 0x90;
        }
        else if (c == 0xf4) {
            hi = 0x8f;
        }
    }
    else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

typedef struct ca_json_t {
    const unsigned char *p, *end;
    int depth;
} ca_json_t;

static void ca_json_ws(ca_json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static int ca_json_lit(ca_json_t *j, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) {
        return 0;
    }
    j->p += n;
    return 1;
}

static int ca_json_string(ca_json_t *j)
{
    size_t n;
    int k;

    if (j->p >= j->end || *j->p != '"') {
        return 0;
    }
    j->p++;
    while (j->p < j->end) {
        unsigned char c = *j->p;

        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20) {
            return 0;
        }
        if (c == '\\') {
            if (j->end - j->p < 2) {
                return 0;
            }
            c = j->p[1];
            if (c == 'u') {
                if (j->end - j->p < 6) {
                    return 0;
                }
                for (k = 2; k < 6; k++) {
                    unsigned char h = j->p[k];
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                          (h >= 'A' && h <= 'F'))) {
                        return 0;
                    }
                }
                j->p += 6;
            }
            else if (strchr("\"\\/bfnrt", c) != NULL && c != '\0') {
                j->p += 2;
            }
            else {
                return 0;
            }
            continue;
        }
        n = ca_utf8_len(j->p, (size_t)(j->end - j->p));
        if (n == 0) {
            return 0;
        }
        j->p += n;
    }
    return 0;
}

static int ca_json_digits(ca_json_t *j)
{
    const unsigned char *start = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        j->p++;
    }
    return j->p > start;
}

static int ca_json_number(ca_json_t *j)
{
    if (j->p < j->end && *j->p == '-') {
        j->p++;
    }
    if (j->p < j->end && *j->p == '0') {
        j->p++;
    }
    else if (!ca_json_digits(j)) {
        return 0;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!ca_json_digits(j)) {
            return 0;
        }
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }
        if (!ca_json_digits(j)) {
            return 0;
        }
    }
    return 1;
}

static int ca_json_value(ca_json_t *j);

/* Object or array: the two share everything but the member syntax. */
static int ca_json_container(ca_json_t *j, int object)
{
    const unsigned char close = object ? '}' : ']';

    if (++j->depth > CA_JSON_MAX_DEPTH) {
        return 0;
    }
    j->p++;
    ca_json_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        if (object) {
            if (!ca_json_string(j)) {
                return 0;
            }
            ca_json_ws(j);
            if (!ca_json_lit(j, ":")) {
                return 0;
            }
            ca_json_ws(j);
        }
        if (!ca_json_value(j)) {
            return 0;
        }
        ca_json_ws(j);
        if (j->p >= j->end) {
            return 0;
        }
        if (*j->p == close) {
            j->p++;
            j->depth--;
            return 1;
        }
        if (*j->p != ',') {
            return 0;
        }
        j->p++;
        ca_json_ws(j);
    }
}

static int ca_json_value(ca_json_t *j)
{
    if (j->p >= j->end) {
        return 0;
    }
    switch (*j->p) {
    case '{':
        return ca_json_container(j, 1);
    case '[':
        return ca_json_container(j, 0);
    case '"':
        return ca_json_string(j);
    case 't':
        return ca_json_lit(j, "true");
    case 'f':
        return ca_json_lit(j, "false");
    case 'n':
        return ca_json_lit(j, "null");
    default:
        return ca_json_number(j);
    }
}

int ca_json_is_object(const char *s, size_t len)
{
    ca_json_t j;

    if (len < 2 || s[0] != '{' || s[len - 1] != '}') {
        return 0;
    }
    j.p = (const unsigned char *)s;
    j.end = j.p + len;
    j.depth = 0;
    return ca_json_value(&j) && j.p == j.end;
}

/* --- chaining ------------------------------------------------------------- */

size_t ca_chain_line(const char *content, size_t len, uint64_t seq, const char *prev, char *out,
                     size_t cap, char *hash)
{
    size_t n;
    int w;

    /* a newline inside would split the record in two on disk */
    if (len > CA_MAX_CONTENT || cap < len + CA_CHAIN_OVERHEAD || !ca_is_hex(prev, CA_HEX_LEN) ||
        (len > 0 && memchr(content, '\n', len) != NULL)) {
        return 0;
    }
    if (ca_hash(prev, content, len, hash) != 0) {
        return 0;
    }
    if (ca_json_is_object(content, len)) {
        size_t body = len - 1, j = body;

        while (j > 0 && (content[j - 1] == ' ' || content[j - 1] == '\t' ||
                         content[j - 1] == '\r' || content[j - 1] == '\n')) {
            j--;
        }
        memcpy(out, content, body);
        n = body;
        if (content[j - 1] != '{') {
            out[n++] = ',';
        }
        w = snprintf(out + n, cap - n,
                     CA_J_SEQ "%" PRIu64 CA_J_PREV "%s" CA_J_HASH "%s" CA_J_END "\n", seq, prev,
                     hash);
    }
    else {
        if (len > 0) {
            memcpy(out, content, len);
        }
        n = len;
        w = snprintf(out + n, cap - n, CA_T_SEQ "%" PRIu64 CA_T_PREV "%s" CA_T_HASH "%s\n", seq,
                     prev, hash);
    }
    if (w < 0 || (size_t)w >= cap - n) {
        return 0;
    }
    return n + (size_t)w;
}

/* Reads the decimal number that ends at line[end), canonical spelling only
 * (no leading zero); its first digit's index goes to *start. */
static int ca_digits_back(const char *line, size_t end, size_t *start, uint64_t *value)
{
    size_t s = end, i;
    uint64_t v = 0;

    while (s > 0 && end - s < 20 && line[s - 1] >= '0' && line[s - 1] <= '9') {
        s--;
    }
    if (s == end || (line[s] == '0' && end - s > 1)) {
        return -1;
    }
    for (i = s; i < end; i++) {
        unsigned d = (unsigned)(line[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *start = s;
    *value = v;
    return 0;
}

static int ca_parse_json(const char *line, size_t len, ca_link_t *link, char *content,
                         size_t *content_len)
{
    const size_t kp = sizeof(CA_J_PREV) - 1, kh = sizeof(CA_J_HASH) - 1, ks = sizeof(CA_J_SEQ) - 1;
    size_t t, s, p, clen;
    const char *q;

    if (len < CA_J_TAIL + ks + 2 || line[len - 1] != '}') {
        return -1;
    }
    t = len - CA_J_TAIL;
    q = line + t;
    if (memcmp(q, CA_J_PREV, kp) != 0 || !ca_is_hex(q + kp, CA_HEX_LEN) ||
        memcmp(q + kp + CA_HEX_LEN, CA_J_HASH, kh) != 0 ||
        !ca_is_hex(q + kp + CA_HEX_LEN + kh, CA_HEX_LEN) ||
        memcmp(q + kp + 2 * CA_HEX_LEN + kh, CA_J_END, 2) != 0) {
        return -1;
    }
    if (ca_digits_back(line, t, &s, &link->seq) != 0 || s < ks + 1 ||
        memcmp(line + s - ks, CA_J_SEQ, ks) != 0) {
        return -1;
    }
    p = s - ks;
    clen = line[p - 1] == ',' ? p - 1 : p;
    if (line[0] != '{' || clen == 0) {
        return -1;
    }
    memcpy(link->prev, q + kp, CA_HEX_LEN);
    link->prev[CA_HEX_LEN] = '\0';
    memcpy(link->hash, q + kp + CA_HEX_LEN + kh, CA_HEX_LEN);
    link->hash[CA_HEX_LEN] = '\0';
    memcpy(content, line, clen);
    content[clen] = '}';
    *content_len = clen + 1;
    return 0;
}

static int ca_parse_text(const char *line, size_t len, ca_link_t *link, char *content,
                         size_t *content_len)
{
    const size_t kp = sizeof(CA_T_PREV) - 1, kh = sizeof(CA_T_HASH) - 1, ks = sizeof(CA_T_SEQ) - 1;
    size_t t, s;
    const char *q;

    if (len < CA_T_TAIL + ks + 1) {
        return -1;
    }
    t = len - CA_T_TAIL;
    q = line + t;
    if (memcmp(q, CA_T_PREV, kp) != 0 || !ca_is_hex(q + kp, CA_HEX_LEN) ||
        memcmp(q + kp + CA_HEX_LEN, CA_T_HASH, kh) != 0 ||
        !ca_is_hex(q + kp + CA_HEX_LEN + kh, CA_HEX_LEN)) {
        return -1;
    }
    if (ca_digits_back(line, t, &s, &link->seq) != 0 || s < ks ||
        memcmp(line + s - ks, CA_T_SEQ, ks) != 0) {
        return -1;
    }
    memcpy(link->prev, q + kp, CA_HEX_LEN);
    link->prev[CA_HEX_LEN] = '\0';
    memcpy(link->hash, q + kp + CA_HEX_LEN + kh, CA_HEX_LEN);
    link->hash[CA_HEX_LEN] = '\0';
    if (s - ks > 0) {
        memcpy(content, line, s - ks);
    }
    *content_len = s - ks;
    return 0;
}

int ca_parse_line(const char *line, size_t len, ca_link_t *link, char *content, size_t *content_len)
{
    if (ca_parse_json(line, len, link, content, content_len) == 0) {
        return 0;
    }
    return ca_parse_text(line, len, link, content, content_len);
}

ca_kind_e ca_content_kind(const char *content, size_t len)
{
#define CA_STARTS(lit) (len >= sizeof(lit) - 1 && memcmp(content, lit, sizeof(lit) - 1) == 0)
    if (CA_STARTS(CA_CHECKPOINT_PREFIX)) {
        return CA_KIND_CHECKPOINT;
    }
    if (CA_STARTS(CA_ROTATED_PREFIX)) {
        return CA_KIND_ROTATED;
    }
    if (CA_STARTS("{\"_dropped\":") || CA_STARTS("{\"_truncated\":")) {
        return CA_KIND_OTHER_META;
    }
    return CA_KIND_RECORD;
#undef CA_STARTS
}

/* --- escaping and the meta lines ------------------------------------------ */

size_t ca_wrap_reserved(const char *line, size_t len, char *out, size_t cap)
{
    int json;

    if (ca_content_kind(line, len) == CA_KIND_RECORD) {
        return 0;
    }
    json = ca_json_is_object(line, len);
    if (len + 11 > cap) {
        return 0;
    }
    memcpy(out, json ? "{\"_input\":" : "_input ", json ? 10 : 7);
    memcpy(out + (json ? 10 : 7), line, len);
    if (json) {
        out[10 + len] = '}';
        return len + 11;
    }
    return len + 7;
}

size_t ca_json_escape(const char *s, size_t len, char *out, size_t cap, size_t *consumed)
{
    size_t i = 0, o = 0;

    if (cap == 0) {
        if (consumed) {
            *consumed = 0;
        }
        return 0;
    }
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        const char *src = tmp;
        size_t need, take = 1;

        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            need = 2;
        }
        else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\u%04x", c);
            need = 6;
        }
        else if ((take = ca_utf8_len((const unsigned char *)s + i, len - i)) > 0) {
            src = s + i; /* ASCII or a whole UTF-8 sequence, as is */
            need = take;
        }
        else {
            src = "\\ufffd";
            need = 6;
            take = 1;
        }
        if (o + need + 1 > cap) {
            break;
        }
        memcpy(out + o, src, need);
        o += need;
        i += take;
    }
    out[o] = '\0';
    if (consumed) {
        *consumed = i;
    }
    return o;
}

size_t ca_truncated(const char *head, size_t head_len, uint64_t orig_len, char *out, size_t cap)
{
    int w;
    size_t n;

    w = snprintf(out, cap, "{\"_truncated\":{\"bytes\":%" PRIu64 ",\"head\":\"", orig_len);
    if (w < 0 || (size_t)w + 4 > cap) {
        return 0;
    }
    n = (size_t)w;
    n += ca_json_escape(head, head_len, out + n, cap - n - 3, NULL);
    memcpy(out + n, "\"}}", 4);
    return n + 3;
}

size_t ca_checkpoint_canonical(const ca_checkpoint_t *cp, char *out, size_t cap)
{
    int w = snprintf(out, cap, CA_CANONICAL_TAG "\n%" PRIu64 "\n%s\n%" PRId64, cp->seq, cp->hash,
                     cp->time);

    return w < 0 || (size_t)w >= cap ? 0 : (size_t)w;
}

size_t ca_checkpoint_format(const ca_checkpoint_t *cp, char *out, size_t cap)
{
    int w = snprintf(out, cap,
                     CA_CHECKPOINT_PREFIX "{\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"time\":%" PRId64
                                          ",\"key_id\":\"%s\",\"sig\":\"%s\"}}",
                     cp->seq, cp->hash, cp->time, cp->key_id, cp->sig);

    return w < 0 || (size_t)w >= cap ? 0 : (size_t)w;
}

/* A cursor for the fixed-format parsers below. */
typedef struct ca_cur_t {
    const char *p, *end;
} ca_cur_t;

static int ca_cur_lit(ca_cur_t *c, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) {
        return 0;
    }
    c->p += n;
    return 1;
}

static int ca_cur_u64(ca_cur_t *c, uint64_t *v)
{
    const char *s = c->p;
    size_t start;

    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        c->p++;
    }
    return ca_digits_back(s, (size_t)(c->p - s), &start, v) == 0 && start == 0;
}

static int ca_cur_hex(ca_cur_t *c, size_t n, char *out)
{
    if ((size_t)(c->end - c->p) < n || !ca_is_hex(c->p, n)) {
        return 0;
    }
    memcpy(out, c->p, n);
    out[n] = '\0';
    c->p += n;
    return 1;
}

int ca_checkpoint_parse(const char *content, size_t len, ca_checkpoint_t *cp)
{
    ca_cur_t c = {content, content + len};
    uint64_t t;
    int neg;
    size_t i;

    memset(cp, 0, sizeof(*cp));
    if (!ca_cur_lit(&c, CA_CHECKPOINT_PREFIX "{\"seq\":") || !ca_cur_u64(&c, &cp->seq) ||
        !ca_cur_lit(&c, ",\"hash\":\"") || !ca_cur_hex(&c, CA_HEX_LEN, cp->hash) ||
        !ca_cur_lit(&c, "\",\"time\":")) {
        return -1;
    }
    neg = ca_cur_lit(&c, "-");
    if (!ca_cur_u64(&c, &t) || t > INT64_MAX || (neg && t == 0)) {
        return -1;
    }
    cp->time = neg ? -(int64_t)t : (int64_t)t;
    if (!ca_cur_lit(&c, ",\"key_id\":\"") || !ca_cur_hex(&c, CA_KEY_ID_LEN, cp->key_id) ||
        !ca_cur_lit(&c, "\",\"sig\":\"") || c.end - c.p < CA_SIG_B64_LEN) {
        return -1;
    }
    for (i = 0; i < CA_SIG_B64_LEN; i++) {
        char ch = c.p[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/' || ch == '=')) {
            return -1;
        }
    }
    memcpy(cp->sig, c.p, CA_SIG_B64_LEN);
    cp->sig[CA_SIG_B64_LEN] = '\0';
    c.p += CA_SIG_B64_LEN;
    return ca_cur_lit(&c, "\"}}") && c.p == c.end ? 0 : -1;
}

/* --- keys and signatures -------------------------------------------------- */

int ca_key_id(EVP_PKEY *key, char *out)
{
    unsigned char *der = NULL, md[32];
    int n = i2d_PUBKEY(key, &der);
    int ok;

    if (n <= 0) {
        return -1;
    }
    ok = EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL) == 1;
    OPENSSL_free(der);
    if (!ok) {
        return -1;
    }
    ca_to_hex(md, CA_KEY_ID_LEN / 2, out);
    return 0;
}

int ca_checkpoint_sign(EVP_PKEY *key, ca_checkpoint_t *cp)
{
    char msg[256];
    unsigned char sig[64];
    size_t mlen, slen = sizeof(sig);
    EVP_MD_CTX *ctx;
    int ok;

    if (!EVP_PKEY_is_a(key, "ED25519") || ca_key_id(key, cp->key_id) != 0) {
        return -1;
    }
    mlen = ca_checkpoint_canonical(cp, msg, sizeof(msg));
    if (mlen == 0 || (ctx = EVP_MD_CTX_new()) == NULL) {
        return -1;
    }
    ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
         EVP_DigestSign(ctx, sig, &slen, (const unsigned char *)msg, mlen) == 1 && slen == 64;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return -1;
    }
    return EVP_EncodeBlock((unsigned char *)cp->sig, sig, 64) == CA_SIG_B64_LEN ? 0 : -1;
}

int ca_checkpoint_verify(EVP_PKEY *key, const ca_checkpoint_t *cp)
{
    char msg[256], again[CA_SIG_B64_LEN + 1];
    unsigned char sig[72];
    size_t mlen;
    EVP_MD_CTX *ctx;
    int ok;

    if (!EVP_PKEY_is_a(key, "ED25519") || strlen(cp->sig) != CA_SIG_B64_LEN ||
        EVP_DecodeBlock(sig, (const unsigned char *)cp->sig, CA_SIG_B64_LEN) != 66) {
        return 0;
    }
    /* only the canonical base64 of the 64 bytes counts, not a variant of it */
    if (EVP_EncodeBlock((unsigned char *)again, sig, 64) != CA_SIG_B64_LEN ||
        memcmp(again, cp->sig, CA_SIG_B64_LEN) != 0) {
        return 0;
    }
    mlen = ca_checkpoint_canonical(cp, msg, sizeof(msg));
    if (mlen == 0 || (ctx = EVP_MD_CTX_new()) == NULL) {
        return 0;
    }
    ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
         EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)msg, mlen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* --- rotation, dropped lines, state file ---------------------------------- */

size_t ca_rotated_format(const char *file, uint64_t seq, const char *hash, int external, char *out,
                         size_t cap)
{
    char name[1024];
    int w;

    ca_json_escape(file, strlen(file), name, sizeof(name), NULL);
    w = snprintf(out, cap,
                 CA_ROTATED_PREFIX "{\"file\":\"%s\",\"seq\":%" PRIu64 ",\"hash\":\"%s\"%s}}", name,
                 seq, hash, external ? ",\"external\":true" : "");
    return w < 0 || (size_t)w >= cap ? 0 : (size_t)w;
}

int ca_rotated_parse(const char *content, size_t len, uint64_t *seq, char *hash)
{
    ca_cur_t c = {content, content + len};

    if (!ca_cur_lit(&c, CA_ROTATED_PREFIX "{\"file\":\"")) {
        return -1;
    }
    while (c.p < c.end && *c.p != '"') {
        c.p += (*c.p == '\\' && c.end - c.p > 1) ? 2 : 1;
    }
    if (!ca_cur_lit(&c, "\",\"seq\":") || !ca_cur_u64(&c, seq) || !ca_cur_lit(&c, ",\"hash\":\"") ||
        !ca_cur_hex(&c, CA_HEX_LEN, hash) || !ca_cur_lit(&c, "\"")) {
        return -1;
    }
    ca_cur_lit(&c, ",\"external\":true");
    return ca_cur_lit(&c, "}}") && c.p == c.end ? 0 : -1;
}

size_t ca_dropped_format(uint64_t lines, char *out, size_t cap)
{
    int w = snprintf(out, cap, "{\"_dropped\":{\"lines\":%" PRIu64 "}}", lines);

    return w < 0 || (size_t)w >= cap ? 0 : (size_t)w;
}

size_t ca_state_format(uint64_t seq, const char *hash, char *out, size_t cap)
{
    int w = snprintf(out, cap, "%" PRIu64 " %s\n", seq, hash);

    return w < 0 || (size_t)w >= cap ? 0 : (size_t)w;
}

int ca_state_parse(const char *s, size_t len, uint64_t *seq, char *hash)
{
    ca_cur_t c = {s, s + len};

    if (!ca_cur_u64(&c, seq) || !ca_cur_lit(&c, " ") || !ca_cur_hex(&c, CA_HEX_LEN, hash)) {
        return -1;
    }
    ca_cur_lit(&c, "\n");
    return c.p == c.end ? 0 : -1;
}
