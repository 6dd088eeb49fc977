/* cs_journal: the journal's line format, see cs_journal.h. */
#include <string.h>

#include "cs_journal.h"

apr_size_t cs_utf8_len(const unsigned char *s, apr_size_t left)
{
    apr_size_t n, i;
    unsigned int cp;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    }
    else {
        return 0;
    }
    if (left < n) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates and beyond U+10FFFF are not UTF-8 */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* Bytes a JSON string takes as they are: printable ASCII but the quote and
 * the backslash. */
static const unsigned char cs_journal_plain[256] = {
    [0x20 ... 0x21] = 1, /* then 0x22, the quote */
    [0x23 ... 0x5b] = 1, /* then 0x5c, the backslash */
    [0x5d ... 0x7e] = 1,
};

/* Values whose lengths are kept from the sizing pass; a row has 21. */
#define CS_JOURNAL_LENS 32

#define CS_ONES ((apr_uint64_t)0x0101010101010101ULL)
#define CS_HIGHS ((apr_uint64_t)0x8080808080808080ULL)

/* The high bit of each byte of v that is not plain: from 0x80, from 0x7f,
 * below 0x20, a quote or a backslash. Each test works on the low seven bits
 * of a byte and cannot carry into the next, so on a little-endian machine
 * the lowest set bit is the first such byte. */
static inline apr_uint64_t cs_journal_special(apr_uint64_t v)
{
    apr_uint64_t a = v & (CS_ONES * 0x7f);
    apr_uint64_t ok = (a + CS_ONES * 0x60) & ((a ^ (CS_ONES * '"')) + CS_ONES * 0x7f) &
                      ((a ^ (CS_ONES * '\\')) + CS_ONES * 0x7f);

    return (v | (a + CS_ONES) | ~ok) & CS_HIGHS;
}

/* Copy the run of plain bytes at the start of s (left bytes) to *d, eight
 * at a time, and return its length. A word is stored before it is checked:
 * the line has room for six bytes for each one left. */
static apr_size_t cs_journal_run(const unsigned char *s, apr_size_t left, char **d)
{
    apr_size_t k = 0;

    while (left - k >= 8) {
        apr_uint64_t v, m;

        memcpy(&v, s + k, 8);
        memcpy(*d + k, &v, 8);
        m = cs_journal_special(v);
        if (m != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            k += (apr_size_t)__builtin_ctzll(m) >> 3;
            *d += k;
            return k;
#else
            break;
#endif
        }
        k += 8;
    }
    while (k < left && cs_journal_plain[s[k]]) {
        (*d)[k] = (char)s[k];
        k++;
    }
    *d += k;
    return k;
}

char *cs_journal_line(apr_pool_t *p, const char *const *values, int n, apr_size_t *len)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t lens[CS_JOURNAL_LENS];
    apr_size_t size = 3;
    char *out, *d;
    int i;

    for (i = 0; i < n; i++) {
        apr_size_t l = values[i] ? strlen(values[i]) : 0;

        if (i < CS_JOURNAL_LENS) {
            lens[i] = l;
        }
        /* worst case: every byte a 6-byte escape */
        size += values[i] ? l * 6 + 3 : 5;
    }
    d = out = apr_palloc(p, size);
    *d++ = '[';
    for (i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)values[i];
        apr_size_t left;

        if (i > 0) {
            *d++ = ',';
        }
        if (s == NULL) {
            memcpy(d, "null", 4);
            d += 4;
            continue;
        }
        left = i < CS_JOURNAL_LENS ? lens[i] : strlen((const char *)s);
        *d++ = '"';
        for (;;) {
            /* printable ASCII other than quote and backslash, the bulk of a
             * row, goes over in runs */
            apr_size_t k = cs_journal_run(s, left, &d);

            s += k;
            left -= k;
            if (left == 0) {
                break;
            }
            if (*s == '"' || *s == '\\') {
                *d++ = '\\';
                *d++ = (char)*s++;
                left--;
            }
            else if (*s < 0x20 || *s == 0x7f) {
                memcpy(d, "\\u00", 4);
                d[4] = hex[*s >> 4];
                d[5] = hex[*s & 0xf];
                d += 6;
                s++;
                left--;
            }
            else if ((k = cs_utf8_len(s, left)) > 0) {
                memcpy(d, s, k);
                d += k;
                s += k;
                left -= k;
            }
            else {
                memcpy(d, "\\ufffd", 6);
                d += 6;
                s++;
                left--;
            }
        }
        *d++ = '"';
    }
    *d++ = ']';
    *d++ = '\n';
    *d = '\0';
    *len = (apr_size_t)(d - out);
    return out;
}
