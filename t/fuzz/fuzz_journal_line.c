/* fuzz_journal_line: cs_journal_line on arbitrary values.
 *
 * The input is cut into values at 0x1e; a value that is exactly 0x1f is
 * NULL. Every line must be one line, parse back with jansson (as the
 * journal replay reads it) into as many elements, null where the value was
 * NULL, and the very value wherever that value is valid UTF-8, and be byte
 * for byte the line of the byte-by-byte renderer (journal_oracle.h). Each
 * input gets its own APR subpool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <jansson.h>

#include "cs_journal.h"
#include "journal_oracle.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_VALUES 32

static apr_pool_t *fuzz_pool;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&fuzz_pool, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *values[FUZZ_MAX_VALUES];
    char *copy, *line, *want_line;
    apr_size_t len, want_len, start = 0, i;
    json_t *j;
    int n = 0, k;

    apr_pool_create(&p, fuzz_pool);
    /* values are C strings: a NUL ends one early, as in the server */
    copy = apr_pstrmemdup(p, (const char *)data, size);
    for (i = 0; i <= size && n < FUZZ_MAX_VALUES; i++) {
        if (i == size || copy[i] == 0x1e) {
            copy[i] = '\0';
            values[n++] = strcmp(copy + start, "\x1f") == 0 ? NULL : copy + start;
            start = i + 1;
        }
    }
    line = cs_journal_line(p, values, n, &len);
    want_line = journal_oracle_line(p, values, n, &want_len);
    if (len != want_len || memcmp(line, want_line, len + 1) != 0) {
        abort();
    }
    if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1) != NULL ||
        strlen(line) != len) {
        abort();
    }
    j = json_loadb(line, len, 0, NULL);
    if (!json_is_array(j) || json_array_size(j) != (size_t)n) {
        abort();
    }
    for (k = 0; k < n; k++) {
        json_t *e = json_array_get(j, (size_t)k);
        json_t *want;
        if (values[k] == NULL) {
            if (!json_is_null(e)) {
                abort();
            }
            continue;
        }
        if (!json_is_string(e)) {
            abort();
        }
        want = json_string(values[k]); /* NULL when not valid UTF-8 */
        if (want != NULL && strcmp(json_string_value(want), json_string_value(e)) != 0) {
            abort();
        }
        json_decref(want);
    }
    json_decref(j);
    apr_pool_destroy(p);
    return 0;
}
