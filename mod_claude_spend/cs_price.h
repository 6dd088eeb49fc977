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
 * Computes a model's price on a memo miss.
 * @param ctx the caller's, passed through
 * @param model as given to cs_price_memo_get (may be NULL)
 * @return what the memo returns for the model
 */
typedef int (*cs_price_fn_t)(void *ctx, const char *model, cs_price_t *price,
                             apr_int64_t *multiplier_ppm);

/** The last price one request computed; zero it (apr_pcalloc) to start. */
typedef struct cs_price_memo_t {
    int set;
    const char *model; /* borrowed: the caller's string, alive as long as the memo */
    int known;
    cs_price_t price;
    apr_int64_t multiplier_ppm;
} cs_price_memo_t;

/**
 * The price of model, from m when m holds that model's (equal strings, or
 * both NULL), else from fn, which then replaces what m held. For a request
 * that prices the same model twice (its estimate, then its cost): the
 * second time costs a string compare.
 * @param model kept by m: must live as long as m
 * @return fn's return value for the model
 */
int cs_price_memo_get(cs_price_memo_t *m, const char *model, cs_price_fn_t fn, void *ctx,
                      cs_price_t *price, apr_int64_t *multiplier_ppm);

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
