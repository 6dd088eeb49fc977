/* journal_oracle.h: cs_journal_line as it was before it went eight bytes at
 * a time, byte by byte. The unit tests and fuzz_journal_line hold the real
 * one to it, byte for byte; a static function, so each includes its own
 * copy. */
#ifndef JOURNAL_ORACLE_H
#define JOURNAL_ORACLE_H

#include <string.h>

#include <apr_pools.h>

#include "cs_journal.h"

static char *journal_oracle_line(apr_pool_t *p, const char *const *values, int n, apr_size_t *len)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t size = 3;
    char *out, *d;
    int i;

    for (i = 0; i < n; i++) {
        size += values[i] ? strlen(values[i]) * 6 + 3 : 5;
    }
    d = out = apr_palloc(p, size);
    *d++ = '[';
    for (i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)values[i];
        apr_size_t left, k;

        if (i > 0) {
            *d++ = ',';
        }
        if (s == NULL) {
            memcpy(d, "null", 4);
            d += 4;
            continue;
        }
        left = strlen((const char *)s);
        *d++ = '"';
        while (left > 0) {
            if (*s >= 0x20 && *s <= 0x7e && *s != '"' && *s != '\\') {
                *d++ = (char)*s++;
                left--;
            }
            else if (*s == '"' || *s == '\\') {
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

#endif
