/* cs_journal: the journal's line format (PURE: APR only).
 *
 * A ledger row that waits for the database (in a child's spool, or in the
 * journal) is one line: a JSON array of strings and nulls, written with
 * one write() so concurrent appends never interleave. This formatter is
 * what the request threads use, so it is cheap: no JSON library, one
 * allocation. Bytes that are not valid UTF-8 become U+FFFD, control
 * characters \u escapes, so every line parses back. */
#ifndef CS_JOURNAL_H
#define CS_JOURNAL_H

#include <apr_pools.h>

/**
 * Length of the valid UTF-8 sequence at s (left > 0 bytes at most), 0 if
 * none: what jansson accepts (no overlong forms, surrogates or code points
 * beyond U+10FFFF). ASCII is a sequence of 1.
 */
apr_size_t cs_utf8_len(const unsigned char *s, apr_size_t left);

/**
 * The line of n values (NULL: null), with its trailing newline.
 * @param len receives the line's length
 */
char *cs_journal_line(apr_pool_t *p, const char *const *values, int n, apr_size_t *len);

#endif
