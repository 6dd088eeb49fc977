/* Inputs for the fast apr_atoi64 stand-ins of both modules (cg_atoi64,
 * cs_batch_atoi64): edge cases, then random strings over digits, signs,
 * spaces and letters. Each test compares its function with apr_atoi64. */
#ifndef UNIT_ATOI_CASES_H
#define UNIT_ATOI_CASES_H

#include <apr_strings.h>

static const char *const atoi_cases[] = {"",
                                         "0",
                                         "-0",
                                         "7",
                                         "-7",
                                         "007",
                                         "+5",
                                         " 5",
                                         "\t-5",
                                         "5 ",
                                         "-",
                                         "+",
                                         "--5",
                                         "1e3",
                                         "12a",
                                         "abc",
                                         "999999999999999999",
                                         "-999999999999999999",
                                         "1000000000000000000",
                                         "-1000000000000000000",
                                         "9223372036854775807",
                                         "9223372036854775808",
                                         "-9223372036854775808",
                                         "-9223372036854775809",
                                         "99999999999999999999999",
                                         "0000000000000000000000042",
                                         "1748736000123456"};

/* A random string of up to 24 characters into buf (25 bytes at least). */
static const char *atoi_random(char *buf, unsigned int *seed)
{
    static const char alphabet[] = "0123456789012345678901234567890123456789-+ a";
    int n, i;

    *seed = *seed * 1103515245u + 12345u;
    n = (int)((*seed >> 16) % 25u);
    for (i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        buf[i] = alphabet[(*seed >> 16) % (sizeof(alphabet) - 1)];
    }
    buf[n] = '\0';
    return buf;
}

#define ATOI_RANDOM_ROUNDS 200000

#endif
