/* cs_price: list prices of Claude models and the cost of a request, in
 * integer micro-USD (PURE: no httpd, no floating point). */
#ifndef CS_PRICE_H
#define CS_PRICE_H

#include <apr.h>

/** Prices of one model in micro-USD per million tokens. */
typedef struct cs_price_t {
    apr_int64_t input, output, cache_read, cache_write;
    int known; /* 0: the unknown-model fallback rate */
} cs_price_t;

/**
 * The list price for a model id as a client or an upstream names it
 * (Anthropic ids, dated ids, Bedrock "us.anthropic.…-v1:0", Vertex "…@date").
 * Unknown models get the reference's fallback: $5 input / $25 output per
 * MTok, cache at the standard multipliers.
 * @param model may be NULL (then the fallback)
 * @param out receives the price
 */
void cs_price_lookup(const char *model, cs_price_t *out);

/**
 * Cost of the tokens at the price, rounded up to the next micro-USD so that
 * metering never undercounts.
 * @return micro-USD
 */
apr_int64_t cs_price_cost(const cs_price_t *price, apr_int64_t input, apr_int64_t output,
                          apr_int64_t cache_read, apr_int64_t cache_write);

/**
 * A cost times pricing.multiplier (in millionths), rounded up.
 * @return micro-USD
 */
apr_int64_t cs_price_scale(apr_int64_t cost, apr_int64_t multiplier_ppm);

#endif
