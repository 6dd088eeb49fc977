/* cg_body: Messages API body validation, see cg_body.h.
 *
 * One pass over the body decides what jansson 2.14's json_loadb() with
 * JSON_REJECT_DUPLICATES would (the unit tests and the fuzzer hold the two
 * side by side) and notes the top-level members the gateway reads on the
 * way. No tree is built: a body allocates nothing but its model string, and
 * only objects with many keys, or very deep bodies, borrow scratch memory
 * from a subpool. Where jansson's behaviour is surprising, a comment says so.
 * Not a general JSON parser: it answers valid or not, and three members. */
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "cg_body.h"

/* jansson's JSON_PARSER_MAX_DEPTH: it counts every value, scalars too, so a
 * scalar inside 2048 arrays is one too deep while an empty 2048th is not */
#define CG_MAX_DEPTH 2048
/* an object with more keys than this finds duplicates through a hash table */
#define CG_LINEAR_KEYS 16
#define CG_INLINE_KEYS 32
#define CG_INLINE_OBJS 16

/* the smallest decimal strtod() rounds to infinity, 2^1024 - 2^970 (half an
 * ulp above DBL_MAX, rounded to even): jansson refuses a real from there up */
static const char cg_real_overflow[] =
    "17976931348623158079372897140530341507993413271003782693617377898044496829276475094664901"
    "79775872070963302864166928879109465555478519404026306574886715058206819089020007083836762"
    "73854845817711531764475730270069855571366959622842914819860834936475292719074168444365510"
    "704342711559699508093042880177904174497792";

enum { CG_NONE, CG_MODEL, CG_STREAM, CG_MAX_TOKENS };                        /* top-level members */
enum { CG_ABSENT, CG_NULL, CG_STRING, CG_OTHER };                            /* what model is */
enum { CG_V_STRING, CG_V_INT, CG_V_REAL, CG_V_TRUE, CG_V_FALSE, CG_V_NULL }; /* scalars */

typedef struct {
    apr_uint64_t hash; /* of the decoded key */
    apr_size_t start;  /* the raw key, between its quotes */
    apr_size_t end;
} cg_key_t;

typedef struct {
    apr_size_t base;  /* its first key on the key stack */
    apr_size_t slots; /* its hash table on the slot stack, once it has one */
    apr_size_t mask;  /* table size - 1; 0 while it has none */
} cg_obj_t;

typedef struct {
    const unsigned char *b;
    apr_size_t len;
    apr_pool_t *pool;    /* the caller's: parent of the scratch pool */
    apr_pool_t *scratch; /* made on first need, gone when the check returns */
    apr_uint64_t seed;
    /* three stacks: keys of the open objects, the open objects, their tables
     * (an object adds keys only while innermost, so its table is on top) */
    cg_key_t *keys;
    apr_size_t nkeys, keys_cap;
    cg_obj_t *objs;
    apr_size_t nobjs, objs_cap;
    apr_size_t *slots; /* key index - base + 1; 0 is empty */
    apr_size_t nslots, slots_cap;
    int member; /* which one the next value is */
    int model;
    apr_size_t model_start, model_end; /* the raw string when it is one */
    int stream;
    long long max_tokens;
    /* left uninitialised: each container sets its bit */
    unsigned char is_obj[CG_MAX_DEPTH / 8 + 1]; /* by depth: an object, not an array */
    cg_key_t keys0[CG_INLINE_KEYS];
    cg_obj_t objs0[CG_INLINE_OBJS];
} cg_scan_t;

/* --- the hash seed --------------------------------------------------------- */

static apr_uint64_t cg_seed;
static pthread_once_t cg_seed_once = PTHREAD_ONCE_INIT;

static void cg_seed_init(void)
{
    /* seeded, so a body cannot be made of keys that all share one hash */
    if (apr_generate_random_bytes((unsigned char *)&cg_seed, sizeof(cg_seed)) != APR_SUCCESS) {
        cg_seed = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(apr_uintptr_t)&cg_seed;
    }
}

/* --- strings ------------------------------------------------------------- */

#define CG_ONES 0x0101010101010101ULL
#define CG_HIGHS 0x8080808080808080ULL
#define CG_K1 0x9E3779B97F4A7C15ULL
#define CG_K2 0xD6E8FEB86659FD93ULL

static apr_uint64_t cg_load64(const unsigned char *s)
{
    apr_uint64_t w;

    memcpy(&w, s, sizeof(w));
    return w;
}

/* Nonzero when one of w's 8 bytes ends a run of plain string bytes: '"',
 * '\\', a control character or a byte >= 0x80, each flagged in its high bit.
 * Borrows only carry upwards, so the lowest flag is the first such byte;
 * the ones above it may be wrong. */
static apr_uint64_t cg_word_special(apr_uint64_t w)
{
    apr_uint64_t q = w ^ (CG_ONES * '"'), s = w ^ (CG_ONES * '\\');

    return ((w - CG_ONES * 0x20) | (q - CG_ONES) | (s - CG_ONES) | w) & CG_HIGHS;
}

static int cg_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* the four hex digits at s[0..3] (bounds checked by the caller), or -1 */
static long cg_hex4(const unsigned char *s)
{
    int a = cg_hex(s[0]), b = cg_hex(s[1]), c = cg_hex(s[2]), d = cg_hex(s[3]);

    return (a | b | c | d) < 0 ? -1 : (long)((a << 12) | (b << 8) | (c << 4) | d);
}

/* The length of the UTF-8 sequence at s (n bytes available), 0 if invalid:
 * overlong forms, surrogates and code points above U+10FFFF included. */
static apr_size_t cg_utf8_len(const unsigned char *s, apr_size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    apr_size_t k, need;

    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* overlong */
        hi = c == 0xED ? 0x9F : 0xBF; /* surrogates */
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        lo = c == 0xF0 ? 0x90 : 0x80; /* overlong */
        hi = c == 0xF4 ? 0x8F : 0xBF; /* above U+10FFFF */
    }
    else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (k = 2; k < need; k++) {
        if (s[k] < 0x80 || s[k] > 0xBF) {
            return 0;
        }
    }
    return need;
}

/* Validate the string whose opening quote is at b[*ip], as jansson would:
 * no raw control character, known escapes only, \u escapes with their
 * surrogates paired and never \u0000 (no JSON_ALLOW_NUL), raw bytes valid
 * UTF-8. Leaves *ip after the closing quote, *esc nonzero if it has an
 * escape. Returns 0, or -1 when invalid. */
static int cg_scan_string(const unsigned char *b, apr_size_t len, apr_size_t *ip, int *esc)
{
    apr_size_t i = *ip + 1, n;
    long cp, lo;

    *esc = 0;
    for (;;) {
        /* the common case: eight plain bytes at a time */
        while (i + 8 <= len) {
            apr_uint64_t m = cg_word_special(cg_load64(b + i));

            if (m != 0) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                i += (apr_size_t)__builtin_ctzll(m) / 8; /* to the first special byte */
#endif
                break;
            }
            i += 8;
        }
        while (i < len && b[i] >= 0x20 && b[i] < 0x80 && b[i] != '"' && b[i] != '\\') {
            i++;
        }
        if (i >= len) {
            return -1;
        }
        if (b[i] == '"') {
            *ip = i + 1;
            return 0;
        }
        if (b[i] < 0x20) {
            return -1;
        }
        if (b[i] >= 0x80) {
            if ((n = cg_utf8_len(b + i, len - i)) == 0) {
                return -1;
            }
            i += n;
            continue;
        }
        *esc = 1;
        if (++i >= len) {
            return -1;
        }
        switch (b[i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            i++;
            continue;
        case 'u':
            break;
        default:
            return -1;
        }
        if (len - i < 5 || (cp = cg_hex4(b + i + 1)) <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) {
            return -1; /* \u0000 too, and a low surrogate alone */
        }
        i += 5;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* a high surrogate: its low half must follow at once */
            if (len - i < 6 || b[i] != '\\' || b[i + 1] != 'u' ||
                (lo = cg_hex4(b + i + 2)) < 0xDC00 || lo > 0xDFFF) {
                return -1;
            }
            i += 6;
        }
    }
}

/* The next decoded character of the string whose raw bytes run from *ip to
 * end (after the opening quote, before the closing one), as UTF-8 into out.
 * Returns its length, 0 at the end, -1 on a bad escape; raw bytes are copied
 * unchecked (cg_scan_string checked them). */
static int cg_decode_next(const unsigned char *b, apr_size_t *ip, apr_size_t end,
                          unsigned char out[4])
{
    apr_size_t i = *ip;
    long cp, lo;

    if (i >= end) {
        return 0;
    }
    if (b[i] != '\\') {
        out[0] = b[i];
        *ip = i + 1;
        return 1;
    }
    if (end - i < 2) {
        return -1;
    }
    switch (b[i + 1]) {
    case '"':
    case '\\':
    case '/':
        out[0] = b[i + 1];
        break;
    case 'b':
        out[0] = '\b';
        break;
    case 'f':
        out[0] = '\f';
        break;
    case 'n':
        out[0] = '\n';
        break;
    case 'r':
        out[0] = '\r';
        break;
    case 't':
        out[0] = '\t';
        break;
    case 'u':
        if (end - i < 6 || (cp = cg_hex4(b + i + 2)) <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) {
            return -1;
        }
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - i < 6 || b[i] != '\\' || b[i + 1] != 'u' ||
                (lo = cg_hex4(b + i + 2)) < 0xDC00 || lo > 0xDFFF) {
                return -1;
            }
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        *ip = i;
        if (cp < 0x80) {
            out[0] = (unsigned char)cp;
            return 1;
        }
        if (cp < 0x800) {
            out[0] = (unsigned char)(0xC0 | (cp >> 6));
            out[1] = (unsigned char)(0x80 | (cp & 0x3F));
            return 2;
        }
        if (cp < 0x10000) {
            out[0] = (unsigned char)(0xE0 | (cp >> 12));
            out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            out[2] = (unsigned char)(0x80 | (cp & 0x3F));
            return 3;
        }
        out[0] = (unsigned char)(0xF0 | (cp >> 18));
        out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (unsigned char)(0x80 | (cp & 0x3F));
        return 4;
    default:
        return -1;
    }
    *ip = i + 2;
    return 1;
}

/* Whether the raw strings b[s1..e1) and b2[s2..e2) decode to the same bytes;
 * not equal when either does not decode. */
static int cg_decoded_eq(const unsigned char *b1, apr_size_t s1, apr_size_t e1,
                         const unsigned char *b2, apr_size_t s2, apr_size_t e2)
{
    unsigned char u1[4], u2[4];
    int n1 = 0, n2 = 0, k1 = 0, k2 = 0;

    for (;;) {
        if (k1 == n1) {
            n1 = cg_decode_next(b1, &s1, e1, u1);
            k1 = 0;
        }
        if (k2 == n2) {
            n2 = cg_decode_next(b2, &s2, e2, u2);
            k2 = 0;
        }
        if (n1 <= 0 || n2 <= 0) {
            return n1 == 0 && n2 == 0;
        }
        if (u1[k1++] != u2[k2++]) {
            return 0;
        }
    }
}

/* Whether the raw string b[s..e) decodes to name, n bytes. */
static int cg_decoded_is(const unsigned char *b, apr_size_t s, apr_size_t e, int esc,
                         const char *name, apr_size_t n)
{
    if (!esc) {
        return e - s == n && memcmp(b + s, name, n) == 0;
    }
    return cg_decoded_eq(b, s, e, (const unsigned char *)name, 0, n);
}

#define CG_IS(b, s, e, esc, lit) cg_decoded_is(b, s, e, esc, lit, sizeof(lit) - 1)

static apr_uint64_t cg_mix(apr_uint64_t h, apr_uint64_t w)
{
    h = (h ^ w) * CG_K1;
    return h ^ (h >> 29);
}

/* A seeded hash of the decoded key b[s..e), eight bytes at a time: the same
 * for "model" and "mod\u0065l". */
static apr_uint64_t cg_key_hash(const unsigned char *b, apr_size_t s, apr_size_t e, int esc,
                                apr_uint64_t seed)
{
    apr_uint64_t h = seed, w = 0;
    unsigned char chunk[8];
    apr_size_t n = 0, k = 0, t;

    if (!esc) {
        for (n = e - s; e - s >= 8; s += 8) {
            h = cg_mix(h, cg_load64(b + s));
        }
        if (s < e) {
            /* the tail byte by byte: a short memcpy() would stall the load */
            for (k = 0; s + k < e; k++) {
                w |= (apr_uint64_t)b[s + k] << (8 * k);
            }
            h = cg_mix(h, w);
        }
    }
    else {
        while (s < e) {
            unsigned char u[4];
            int j, m = cg_decode_next(b, &s, e, u);

            if (m <= 0) {
                break; /* cannot happen: the key was scanned */
            }
            for (j = 0; j < m; j++, n++) {
                chunk[k++] = u[j];
                if (k == 8) {
                    h = cg_mix(h, cg_load64(chunk));
                    k = 0;
                }
            }
        }
        if (k > 0) {
            for (t = 0; t < k; t++) { /* the tail as above */
                w |= (apr_uint64_t)chunk[t] << (8 * t);
            }
            h = cg_mix(h, w);
        }
    }
    h = (h ^ n) * CG_K2;
    return h ^ (h >> 32);
}

/* --- numbers and literals --------------------------------------------------- */

static int cg_digit(const unsigned char *b, apr_size_t len, apr_size_t i)
{
    return i < len && b[i] >= '0' && b[i] <= '9';
}

/* Whether the real with integer digits b[is..ie), fraction digits b[fs..fe)
 * and exponent e overflows a double, as strtod() would say. */
static int cg_real_overflows(const unsigned char *b, apr_size_t is, apr_size_t ie, apr_size_t fs,
                             apr_size_t fe, long long e)
{
    apr_size_t ni = ie - is, n = ni + (fe - fs), z, k;
    long long mag;

    /* the k-th significant digit, the point left out */
#define CG_DIG(k) (b[(k) < ni ? is + (k) : fs + ((k)-ni)])
    for (z = 0; z < n && CG_DIG(z) == '0'; z++) {
    }
    if (z == n) {
        return 0; /* zero, whatever the exponent */
    }
    /* the power of ten of the first significant digit */
    mag = (long long)ni - 1 - (long long)z + e;
    if (mag != 308) {
        return mag > 308;
    }
    for (k = 0; k < sizeof(cg_real_overflow) - 1; k++) {
        char d = z + k < n ? (char)CG_DIG(z + k) : '0';

        if (d != cg_real_overflow[k]) {
            return d > cg_real_overflow[k];
        }
    }
#undef CG_DIG
    return 1; /* the threshold itself rounds up */
}

/* A number at b[*ip], in jansson's grammar: '-'? (0 | [1-9][0-9]*), then an
 * optional fraction and exponent. An integer must fit a long long (jansson:
 * "too big integer"), a real must not overflow a double; underflow is fine.
 * Returns CG_V_INT (*ival set), CG_V_REAL or -1. */
static int cg_scan_number(const unsigned char *b, apr_size_t len, apr_size_t *ip, long long *ival)
{
    apr_size_t i = *ip, is, ie, fs = 0, fe = 0;
    unsigned long long mag = 0, lim = LLONG_MAX;
    long long e = 0;
    int neg = 0, eneg = 0;

    if (b[i] == '-') {
        neg = 1;
        lim++; /* LLONG_MIN fits */
        i++;
    }
    is = i;
    if (i < len && b[i] == '0') {
        i++;
        if (cg_digit(b, len, i)) {
            return -1; /* leading zero */
        }
    }
    else if (!cg_digit(b, len, i)) {
        return -1;
    }
    while (cg_digit(b, len, i)) {
        i++;
    }
    ie = i;
    if (i >= len || (b[i] != '.' && b[i] != 'e' && b[i] != 'E')) {
        for (i = is; i < ie; i++) {
            unsigned d = b[i] - '0';

            if (mag > (lim - d) / 10) {
                return -1;
            }
            mag = mag * 10 + d;
        }
        *ival = !neg                                  ? (long long)mag
                : mag > (unsigned long long)LLONG_MAX ? LLONG_MIN
                                                      : -(long long)mag;
        *ip = i;
        return CG_V_INT;
    }
    if (b[i] == '.') {
        fs = ++i;
        if (!cg_digit(b, len, i)) {
            return -1;
        }
        while (cg_digit(b, len, i)) {
            i++;
        }
        fe = i;
    }
    if (i < len && (b[i] == 'e' || b[i] == 'E')) {
        i++;
        if (i < len && (b[i] == '+' || b[i] == '-')) {
            eneg = b[i] == '-';
            i++;
        }
        if (!cg_digit(b, len, i)) {
            return -1;
        }
        for (; cg_digit(b, len, i); i++) {
            if (e < 1000000000000LL) { /* far past any double; more digits change nothing */
                e = e * 10 + (b[i] - '0');
            }
        }
    }
    if (cg_real_overflows(b, is, ie, fs, fe, eneg ? -e : e)) {
        return -1;
    }
    *ip = i;
    return CG_V_REAL;
}

/* --- the stacks ----------------------------------------------------------- */

/* Room for one more element on a stack that started inline: grown twofold
 * into the scratch pool, which is made on first need. */
static void *cg_stack_room(cg_scan_t *sc, void *base, apr_size_t *cap, apr_size_t used,
                           apr_size_t need, apr_size_t size)
{
    apr_size_t ncap = *cap > 0 ? *cap : 64;
    void *nb;

    if (need <= *cap) {
        return base;
    }
    while (ncap < need) {
        ncap *= 2;
    }
    if (sc->scratch == NULL) {
        apr_pool_create(&sc->scratch, sc->pool);
    }
    nb = apr_palloc(sc->scratch, ncap * size);
    if (used > 0) {
        memcpy(nb, base, used * size);
    }
    *cap = ncap;
    return nb;
}

static void cg_table_put(cg_scan_t *sc, const cg_obj_t *o, apr_size_t k)
{
    apr_size_t *t = sc->slots + o->slots, j = sc->keys[k].hash & o->mask;

    while (t[j] != 0) {
        j = (j + 1) & o->mask;
    }
    t[j] = k - o->base + 1;
}

/* (Re)build the innermost object's table, big enough for twice its keys. */
static void cg_table_build(cg_scan_t *sc, cg_obj_t *o)
{
    apr_size_t size = 64, k, n = sc->nkeys - o->base;

    while (size < 4 * n) {
        size *= 2;
    }
    if (o->mask == 0) {
        o->slots = sc->nslots;
    }
    sc->slots = cg_stack_room(sc, sc->slots, &sc->slots_cap, sc->nslots, o->slots + size,
                              sizeof(*sc->slots));
    sc->nslots = o->slots + size;
    o->mask = size - 1;
    memset(sc->slots + o->slots, 0, size * sizeof(*sc->slots));
    for (k = o->base; k < sc->nkeys; k++) {
        cg_table_put(sc, o, k);
    }
}

static int cg_key_same(const cg_scan_t *sc, const cg_key_t *a, const cg_key_t *k)
{
    if (a->hash != k->hash) {
        return 0;
    }
    if (a->end - a->start == k->end - k->start &&
        memcmp(sc->b + a->start, sc->b + k->start, a->end - a->start) == 0) {
        return 1;
    }
    return cg_decoded_eq(sc->b, a->start, a->end, sc->b, k->start, k->end);
}

/* Add the key b[s..e) to the innermost object; -1 if it has it already. */
static int cg_key_add(cg_scan_t *sc, apr_size_t s, apr_size_t e, int esc)
{
    cg_obj_t *o = &sc->objs[sc->nobjs - 1];
    cg_key_t *k;
    apr_size_t j, n = sc->nkeys - o->base;

    if (sc->nkeys == sc->keys_cap) {
        sc->keys =
            cg_stack_room(sc, sc->keys, &sc->keys_cap, sc->nkeys, sc->nkeys + 1, sizeof(*sc->keys));
    }
    k = &sc->keys[sc->nkeys];
    k->hash = cg_key_hash(sc->b, s, e, esc, sc->seed);
    k->start = s;
    k->end = e;
    if (o->mask == 0) {
        for (j = o->base; j < sc->nkeys; j++) {
            if (cg_key_same(sc, &sc->keys[j], k)) {
                return -1;
            }
        }
        sc->nkeys++;
        if (n + 1 > CG_LINEAR_KEYS) {
            cg_table_build(sc, o);
        }
        return 0;
    }
    for (j = k->hash & o->mask; sc->slots[o->slots + j] != 0; j = (j + 1) & o->mask) {
        if (cg_key_same(sc, &sc->keys[o->base + sc->slots[o->slots + j] - 1], k)) {
            return -1;
        }
    }
    sc->nkeys++;
    if (2 * (n + 1) > o->mask + 1) {
        cg_table_build(sc, o); /* keep it at most half full */
    }
    else {
        sc->slots[o->slots + j] = n + 1;
    }
    return 0;
}

static void cg_obj_open(cg_scan_t *sc)
{
    cg_obj_t *o;

    if (sc->nobjs == sc->objs_cap) {
        sc->objs =
            cg_stack_room(sc, sc->objs, &sc->objs_cap, sc->nobjs, sc->nobjs + 1, sizeof(*sc->objs));
    }
    o = &sc->objs[sc->nobjs++];
    o->base = sc->nkeys;
    o->slots = 0;
    o->mask = 0;
}

static void cg_obj_close(cg_scan_t *sc)
{
    const cg_obj_t *o = &sc->objs[--sc->nobjs];

    sc->nkeys = o->base;
    if (o->mask != 0) {
        sc->nslots = o->slots;
    }
}

/* --- the document ---------------------------------------------------------- */

static apr_size_t cg_ws(const unsigned char *b, apr_size_t i, apr_size_t len)
{
    while (i < len && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) {
        i++;
    }
    return i;
}

/* A scalar value at b[*ip]: its kind, or -1 when invalid. */
static int cg_scan_scalar(const unsigned char *b, apr_size_t len, apr_size_t *ip, long long *ival)
{
    apr_size_t i = *ip, s = i;
    int kind, esc;

    if (b[i] == '"') {
        return cg_scan_string(b, len, ip, &esc) == 0 ? CG_V_STRING : -1;
    }
    if (b[i] == '-' || (b[i] >= '0' && b[i] <= '9')) {
        kind = cg_scan_number(b, len, &i, ival);
    }
    else {
        /* jansson reads a whole run of letters, then wants one of three words */
        while (i < len && (b[i] | 0x20) >= 'a' && (b[i] | 0x20) <= 'z') {
            i++;
        }
        kind = i - s == 4 && memcmp(b + s, "true", 4) == 0    ? CG_V_TRUE
               : i - s == 5 && memcmp(b + s, "false", 5) == 0 ? CG_V_FALSE
               : i - s == 4 && memcmp(b + s, "null", 4) == 0  ? CG_V_NULL
                                                              : -1;
    }
    /* jansson's quirk: the byte after a number or a word is read and put
     * back, and a NUL put back is lost, so "[1\0]" reads as "[1]" */
    if (kind >= 0 && i < len && b[i] == '\0') {
        i++;
    }
    *ip = i;
    return kind;
}

/* The whole body, as json_loadb() without JSON_DECODE_ANY: 0 if valid, else -1. */
static int cg_scan_doc(cg_scan_t *sc)
{
    const unsigned char *b = sc->b;
    apr_size_t len = sc->len, i = cg_ws(b, 0, len), s;
    unsigned depth = 0; /* values open */
    int esc, kind;
    long long ival = 0;
    apr_size_t ks;

    if (i >= len || (b[i] != '{' && b[i] != '[')) {
        return -1; /* a container, not a scalar */
    }
    for (;;) {
        /* b[i] starts a value (or is not there) */
        if (++depth > CG_MAX_DEPTH || i >= len) {
            return -1;
        }
        if (b[i] == '{' || b[i] == '[') {
            int obj = b[i] == '{';

            if (sc->member == CG_MODEL) {
                sc->model = CG_OTHER;
            }
            sc->member = CG_NONE;
            if (obj) {
                sc->is_obj[depth / 8] |= (unsigned char)(1u << (depth % 8));
                cg_obj_open(sc);
            }
            else {
                sc->is_obj[depth / 8] &= (unsigned char)~(1u << (depth % 8));
            }
            i = cg_ws(b, i + 1, len);
            if (i >= len) {
                return -1;
            }
            if (b[i] != (obj ? '}' : ']')) {
                if (obj) {
                    goto key;
                }
                continue;
            }
            if (obj) {
                cg_obj_close(sc);
            }
            i++;
        }
        else {
            s = i;
            if ((kind = cg_scan_scalar(b, len, &i, &ival)) < 0) {
                return -1;
            }
            if (sc->member == CG_MODEL) {
                sc->model = kind == CG_V_STRING ? CG_STRING
                            : kind == CG_V_NULL ? CG_NULL
                                                : CG_OTHER;
                sc->model_start = s + 1;
                sc->model_end = i - 1;
            }
            else if (sc->member == CG_STREAM) {
                sc->stream = kind == CG_V_TRUE;
            }
            else if (sc->member == CG_MAX_TOKENS) {
                sc->max_tokens = kind == CG_V_INT && ival >= 0 ? ival : -1;
            }
            sc->member = CG_NONE;
        }
        /* a value ended at i: close what it ends */
        for (;;) {
            int obj;

            if (--depth == 0) {
                return cg_ws(b, i, len) == len ? 0 : -1;
            }
            obj = (sc->is_obj[depth / 8] >> (depth % 8)) & 1;
            i = cg_ws(b, i, len);
            if (i < len && b[i] == (obj ? '}' : ']')) {
                if (obj) {
                    cg_obj_close(sc);
                }
                i++;
                continue;
            }
            if (i >= len || b[i] != ',') {
                return -1;
            }
            i = cg_ws(b, i + 1, len);
            if (obj) {
                goto key;
            }
            break;
        }
        continue;
    key:
        /* b[i] starts a member of the innermost object */
        if (i >= len || b[i] != '"') {
            return -1;
        }
        ks = i;
        if (cg_scan_string(b, len, &i, &esc) != 0 || cg_key_add(sc, ks + 1, i - 1, esc) != 0) {
            return -1;
        }
        if (depth == 1) {
            sc->member = CG_IS(b, ks + 1, i - 1, esc, "model")        ? CG_MODEL
                         : CG_IS(b, ks + 1, i - 1, esc, "stream")     ? CG_STREAM
                         : CG_IS(b, ks + 1, i - 1, esc, "max_tokens") ? CG_MAX_TOKENS
                                                                      : CG_NONE;
        }
        i = cg_ws(b, i, len);
        if (i >= len || b[i] != ':') {
            return -1;
        }
        i = cg_ws(b, i + 1, len);
    }
}

const char *cg_body_check(apr_pool_t *p, const char *buf, apr_size_t len, cg_body_info_t *info)
{
    cg_scan_t sc;
    int rc;

    if (buf == NULL) {
        return "invalid JSON";
    }
    pthread_once(&cg_seed_once, cg_seed_init);
    memset(&sc, 0, offsetof(cg_scan_t, is_obj));
    sc.b = (const unsigned char *)buf;
    sc.len = len;
    sc.pool = p;
    sc.seed = cg_seed;
    sc.keys = sc.keys0;
    sc.keys_cap = CG_INLINE_KEYS;
    sc.objs = sc.objs0;
    sc.objs_cap = CG_INLINE_OBJS;
    sc.max_tokens = -1;
    /* JSON_REJECT_DUPLICATES' reason: {"model":"a","model":"b"} is a policy
     * bypass when the upstream keeps the first and we the last */
    rc = cg_scan_doc(&sc);
    if (sc.scratch != NULL) {
        apr_pool_destroy(sc.scratch);
    }
    if (rc != 0) {
        return "invalid JSON"; /* anywhere in the body, before any member is judged */
    }
    if (sc.b[cg_ws(sc.b, 0, len)] == '[') {
        return "request body must be a JSON object";
    }
    /* "" decodes to nothing, and no escape does: \u0000 is refused */
    if (sc.model == CG_ABSENT || sc.model == CG_NULL ||
        (sc.model == CG_STRING && sc.model_end == sc.model_start)) {
        return "model is required";
    }
    if (sc.model != CG_STRING) {
        return "model must be a string";
    }
    if (info != NULL) {
        char *m = apr_palloc(p, sc.model_end - sc.model_start + 1);
        apr_size_t i = sc.model_start, n = 0;
        int k;

        if (memchr(buf + i, '\\', sc.model_end - i) == NULL) {
            n = sc.model_end - i;
            memcpy(m, buf + i, n);
        }
        else {
            while ((k = cg_decode_next(sc.b, &i, sc.model_end, (unsigned char *)m + n)) > 0) {
                n += (apr_size_t)k;
            }
        }
        m[n] = '\0';
        info->model = m;
        info->stream = sc.stream;
        info->max_tokens = sc.max_tokens;
    }
    return NULL;
}

/* --- replacing the model ------------------------------------------------- */

static apr_size_t cg_skip_ws(const char *b, apr_size_t i, apr_size_t len)
{
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) {
        i++;
    }
    return i;
}

/* i at the opening quote; returns the index after the closing one */
static apr_size_t cg_skip_string(const char *b, apr_size_t i, apr_size_t len)
{
    for (i++; i < len && b[i] != '"'; i++) {
        if (b[i] == '\\') {
            i++;
        }
    }
    return i + 1;
}

static apr_size_t cg_skip_value(const char *b, apr_size_t i, apr_size_t len)
{
    int depth = 0;

    if (i < len && b[i] == '"') {
        return cg_skip_string(b, i, len);
    }
    if (i < len && (b[i] == '{' || b[i] == '[')) {
        while (i < len) {
            if (b[i] == '"') {
                i = cg_skip_string(b, i, len);
                continue;
            }
            if (b[i] == '{' || b[i] == '[') {
                depth++;
            }
            else if ((b[i] == '}' || b[i] == ']') && --depth == 0) {
                return i + 1;
            }
            i++;
        }
        return len;
    }
    /* a number or a literal */
    while (i < len && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' &&
           b[i] != '\n' && b[i] != '\r') {
        i++;
    }
    return i;
}

/* model as a JSON string, escaped as json_dumps() does (short escapes where
 * JSON has them, else \u00XX), or NULL when it is not valid UTF-8 */
static char *cg_json_quote(apr_pool_t *p, const char *model, apr_size_t *out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)model;
    apr_size_t n = strlen(model), i, k, o = 0;
    char *out = apr_palloc(p, 6 * n + 3), c;

    out[o++] = '"';
    for (i = 0; i < n; i++) {
        if (s[i] >= 0x80) {
            if ((k = cg_utf8_len(s + i, n - i)) == 0) {
                return NULL;
            }
            memcpy(out + o, s + i, k);
            o += k;
            i += k - 1;
            continue;
        }
        c = s[i] == '"' || s[i] == '\\' ? (char)s[i]
            : s[i] == '\b'              ? 'b'
            : s[i] == '\f'              ? 'f'
            : s[i] == '\n'              ? 'n'
            : s[i] == '\r'              ? 'r'
            : s[i] == '\t'              ? 't'
                                        : 0;
        if (c != 0) {
            out[o++] = '\\';
            out[o++] = c;
        }
        else if (s[i] < 0x20) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[s[i] >> 4];
            out[o + 5] = hex[s[i] & 0xF];
            o += 6;
        }
        else {
            out[o++] = (char)s[i];
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    *out_len = o;
    return out;
}

const char *cg_body_set_model(apr_pool_t *p, const char *buf, apr_size_t len, const char *model,
                              apr_size_t *out_len)
{
    apr_size_t i = cg_skip_ws(buf, 0, len);

    if (i >= len || buf[i] != '{') {
        return NULL;
    }
    i++;
    for (;;) {
        apr_size_t ks, ke, vs, ve;

        i = cg_skip_ws(buf, i, len);
        if (i >= len || buf[i] != '"') {
            return NULL;
        }
        ks = i;
        ke = cg_skip_string(buf, i, len);
        if (ke > len) {
            return NULL; /* unterminated */
        }
        i = cg_skip_ws(buf, ke, len);
        if (i >= len || buf[i] != ':') {
            return NULL;
        }
        vs = cg_skip_ws(buf, i + 1, len);
        ve = cg_skip_value(buf, vs, len);
        /* the decoded key: "mod\u0065l" is the model key too */
        if (CG_IS((const unsigned char *)buf, ks + 1, ke - 1, 1, "model")) {
            apr_size_t elen;
            const char *enc = cg_json_quote(p, model, &elen);
            char *out;

            if (enc == NULL) {
                return NULL;
            }
            *out_len = vs + elen + (len - ve);
            out = apr_palloc(p, *out_len + 1);
            memcpy(out, buf, vs);
            memcpy(out + vs, enc, elen);
            memcpy(out + vs + elen, buf + ve, len - ve);
            out[*out_len] = '\0';
            return out;
        }
        i = cg_skip_ws(buf, ve, len);
        if (i >= len || buf[i] != ',') {
            return NULL;
        }
        i++;
    }
}
