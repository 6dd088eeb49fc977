/* cs_price: the built-in price table.
 *
 * Source: Anthropic's public list prices (platform.claude.com pricing page)
 * as digested in the project's reference notes (OFFICIAL-DOCS.md §6.6,
 * read 2026-11-24), USD per million tokens; 5-minute cache writes (Claude
 * Code does not use 1-hour writes). Treat it as data to refresh. Admins
 * override it per model with pricing.overrides (policy issue). */
#include <string.h>
#include <strings.h>

#include "cs_price.h"

#define USD(x) ((apr_int64_t)((x)*1000000.0 + 0.5)) /* constant folding only */

typedef struct cs_price_row_t {
    const char *prefix; /* matched against the normalized id; longest first */
    apr_int64_t input, cache_write, cache_read, output;
} cs_price_row_t;

static const cs_price_row_t cs_prices[] = {
    {"claude-fable-5-1", 10000000, 12500000, 250000, 50000000},
    {"claude-mythos-5-1", 10000000, 12500000, 250000, 50000000},
    {"claude-fable-5", 10000000, 12500000, 1000000, 50000000},
    {"claude-mythos-5", 10000000, 12500000, 1000000, 50000000},
    {"claude-opus-5", 5000000, 6250000, 500000, 25000000},
    {"claude-opus-4-8", 5000000, 6250000, 500000, 25000000},
    {"claude-opus-4-7", 5000000, 6250000, 500000, 25000000},
    {"claude-opus-4-6", 5000000, 6250000, 500000, 25000000},
    {"claude-opus-4-5", 5000000, 6250000, 500000, 25000000},
    {"claude-opus-4", 15000000, 18750000, 1500000, 75000000}, /* 4.0 and 4.1 */
    {"claude-sonnet-5", 2000000, 2500000, 200000, 10000000},
    {"claude-sonnet-4", 3000000, 3750000, 300000, 15000000},
    {"claude-3-7-sonnet", 3000000, 3750000, 300000, 15000000},
    {"claude-haiku-4-5", 1000000, 1250000, 100000, 5000000},
    {"claude-3-5-haiku", 800000, 1000000, 80000, 4000000},
    {NULL, 0, 0, 0, 0}};

/* The reference's unknown-model tier, cache at the usual 1.25x / 0.1x. */
static const cs_price_row_t cs_fallback = {NULL, 5000000, 6250000, 500000, 25000000};

/* Provider spellings down to the Anthropic id: "us.anthropic.claude-…-v1:0"
 * (Bedrock, regional or not) and "claude-…@20250929" (Vertex). */
static void cs_price_normalize(const char *model, char *buf, apr_size_t size)
{
    const char *p = model, *dot = strstr(model, "anthropic.");
    apr_size_t n;

    if (dot != NULL) {
        p = dot + 10;
    }
    n = strcspn(p, "@");
    if (n >= size) {
        n = size - 1;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
}

void cs_price_lookup(const char *model, cs_price_t *out)
{
    const cs_price_row_t *row = &cs_fallback;
    char id[128];
    int i;

    out->known = 0;
    if (model != NULL) {
        cs_price_normalize(model, id, sizeof(id));
        for (i = 0; cs_prices[i].prefix != NULL; i++) {
            if (strncasecmp(id, cs_prices[i].prefix, strlen(cs_prices[i].prefix)) == 0) {
                row = &cs_prices[i];
                out->known = 1;
                break;
            }
        }
    }
    out->input = row->input;
    out->output = row->output;
    out->cache_read = row->cache_read;
    out->cache_write = row->cache_write;
}

apr_int64_t cs_price_scale(apr_int64_t cost, apr_int64_t multiplier_ppm)
{
    if (multiplier_ppm == 1000000 || cost <= 0) {
        return cost;
    }
    /* 128-bit: a large cost times up to 10x must not overflow */
    return (apr_int64_t)(((__int128)cost * multiplier_ppm + 999999) / 1000000);
}

apr_int64_t cs_price_cost(const cs_price_t *price, apr_int64_t input, apr_int64_t output,
                          apr_int64_t cache_read, apr_int64_t cache_write)
{
    /* micro-USD per MTok times tokens: below 2^63 for any real request
     * (10^8 tokens at $75/MTok is 7.5 * 10^15) */
    apr_int64_t total = input * price->input + output * price->output +
                        cache_read * price->cache_read + cache_write * price->cache_write;

    return total <= 0 ? 0 : (total + 999999) / 1000000;
}
