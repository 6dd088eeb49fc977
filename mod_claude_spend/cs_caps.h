/* cs_caps: what the answer says about a user's spend caps (PURE: APR only).
 *
 * The database decides whether a request fits (claude_admit); this file turns
 * the per-period rows it returns into the reference's headers: the
 * anthropic-ratelimit-unified-* family on allowed answers, and the 429's
 * headers, retry-after and message when the request is refused. */
#ifndef CS_CAPS_H
#define CS_CAPS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "cs_period.h"

/** One period's cap as claude_admit reports it. */
typedef struct cs_cap_t {
    cs_period_e period;
    apr_int64_t cap_cents;      /* -1: no cap for this period */
    apr_int64_t spent_micro;    /* settled spend in the period */
    apr_int64_t reserved_micro; /* held by requests in flight */
    int admitted;               /* 0: this period refused the request */
} cs_cap_t;

/** What to tell the client. */
typedef struct cs_caps_verdict_t {
    int capped;              /* some period has a cap: headers apply */
    int blocked;             /* refuse with 429 */
    apr_table_t *headers;    /* anthropic-ratelimit-unified-*, retry-after, x-should-retry */
    const char *message;     /* the 429's message */
    apr_int64_t retry_after; /* seconds, when blocked */
} cs_caps_verdict_t;

/**
 * Build the verdict for the caps of one request.
 * @param p pool for the headers and message
 * @param caps the periods (any order); those with cap_cents < 0 are ignored
 * @param n how many
 * @param now the request time
 * @param blocked_message replaces the 429's message when not NULL
 * @param out receives the verdict
 */
void cs_caps_verdict(apr_pool_t *p, const cs_cap_t *caps, int n, apr_time_t now,
                     const char *blocked_message, cs_caps_verdict_t *out);

/**
 * The headers and message of a refusal because the caps could not be read
 * (ClaudeSpendOnError closed): as the reference's fail_closed_on_error.
 */
void cs_caps_unavailable(apr_pool_t *p, cs_caps_verdict_t *out);

/** utilization as the reference prints it: two decimals at most, no trailing zeros. */
const char *cs_caps_ratio(apr_pool_t *p, apr_int64_t num, apr_int64_t den);

/**
 * The largest cost a request can have, as the reservation's estimate: every
 * body byte counted as a token at the dearer of the input and cache-write
 * rates, plus max_tokens of output. Rates in micro-USD per million tokens.
 */
apr_int64_t cs_caps_estimate(apr_int64_t body_bytes, apr_int64_t max_tokens, apr_int64_t input_rate,
                             apr_int64_t cache_write_rate, apr_int64_t output_rate);

#endif
