/* cs_price: the built-in price table.
 *
 * Source: Anthropic's public list prices (platform.claude.com pricing page)
 * as digested in the project's reference notes (OFFICIAL-DOCS.md §6.6,
 * read 2026-11-24), USD per million tokens; 5-minute cache writes (Claude
 * Code does not use 1-hour writes). Treat it as data to refresh. Admins
 * override it per model with pricing.overrides (policy issue). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "cs_price.h"

#define USD(x) ((apr_int64_t)((x)*1000000.0 + 0.5)) /* constant folding only */

/* Every prefix of the table begins with this: checked once, then each row
 * compares only what follows it. */
#define CS_PRICE_STEM "claude-"
#define CS_PRICE_STEM_LEN (sizeof(CS_PRICE_STEM) - 1)

typedef struct cs_price_row_t {
    const char *prefix; /* matched against the normalized id; longest first */
    apr_size_t len;     /* strlen(prefix) */
    apr_int64_t input, cache_write, cache_read, output;
} cs_price_row_t;

#define CS_ROW(prefix, in, cw, cr, out)                                                            \
    {                                                                                              \
        prefix, sizeof(prefix) - 1, in, cw, cr, out                                                \
    }

static const cs_price_row_t cs_prices[] = {
    CS_ROW("claude-fable-5-1", 10000000, 12500000, 250000, 50000000),
    CS_ROW("claude-mythos-5-1", 10000000, 12500000, 250000, 50000000),
    CS_ROW("claude-fable-5", 10000000, 12500000, 1000000, 50000000),
    CS_ROW("claude-mythos-5", 10000000, 12500000, 1000000, 50000000),
    CS_ROW("claude-opus-5", 5000000, 6250000, 500000, 25000000),
    CS_ROW("claude-opus-4-8", 5000000, 6250000, 500000, 25000000),
    CS_ROW("claude-opus-4-7", 5000000, 6250000, 500000, 25000000),
    CS_ROW("claude-opus-4-6", 5000000, 6250000, 500000, 25000000),
    CS_ROW("claude-opus-4-5", 5000000, 6250000, 500000, 25000000),
    CS_ROW("claude-opus-4", 15000000, 18750000, 1500000, 75000000), /* 4.0 and 4.1 */
    CS_ROW("claude-sonnet-5", 2000000, 2500000, 200000, 10000000),
    CS_ROW("claude-sonnet-4", 3000000, 3750000, 300000, 15000000),
    CS_ROW("claude-3-7-sonnet", 3000000, 3750000, 300000, 15000000),
    CS_ROW("claude-haiku-4-5", 1000000, 1250000, 100000, 5000000),
    CS_ROW("claude-3-5-haiku", 800000, 1000000, 80000, 4000000),
    {NULL, 0, 0, 0, 0, 0}};

/* The reference's unknown-model tier, cache at the usual 1.25x / 0.1x. */
static const cs_price_row_t cs_fallback = {NULL, 0, 5000000, 6250000, 500000, 25000000};

/* Provider spellings down to the Anthropic id: "us.anthropic.claude-…-v1:0"
 * (Bedrock, regional or not) and "claude-…@20250929" (Vertex). The id is
 * not copied: it ends at '@' or NUL, and neither matches a byte of any
 * prefix, so comparing a prefix with the rest of the string stops there. */
static const char *cs_price_normalize(const char *model)
{
    const char *dot = strstr(model, "anthropic.");

    return dot != NULL ? dot + 10 : model;
}

void cs_price_lookup(const char *model, cs_price_t *out)
{
    const cs_price_row_t *row = &cs_fallback;
    const char *id, *rest;
    int i, first;

    out->known = 0;
    if (model != NULL) {
        id = cs_price_normalize(model);
        if (strncasecmp(id, CS_PRICE_STEM, CS_PRICE_STEM_LEN) == 0) {
            /* strncasecmp's own test of the first byte after the stem
             * (tolower of both), so a row it skips is one it would refuse */
            rest = id + CS_PRICE_STEM_LEN;
            first = tolower((unsigned char)*rest);
            for (i = 0; cs_prices[i].prefix != NULL; i++) {
                const char *p = cs_prices[i].prefix + CS_PRICE_STEM_LEN;
                if (tolower((unsigned char)*p) == first &&
                    strncasecmp(rest, p, cs_prices[i].len - CS_PRICE_STEM_LEN) == 0) {
                    row = &cs_prices[i];
                    out->known = 1;
                    break;
                }
            }
        }
    }
    out->input = row->input;
    out->output = row->output;
    out->cache_read = row->cache_read;
    out->cache_write = row->cache_write;
}

int cs_price_memo_get(cs_price_memo_t *m, const char *model, cs_price_fn_t fn, void *ctx,
                      cs_price_t *price, apr_int64_t *multiplier_ppm)
{
    if (!m->set || (m->model != model &&
                    (m->model == NULL || model == NULL || strcmp(m->model, model) != 0))) {
        m->known = fn(ctx, model, &m->price, &m->multiplier_ppm);
        m->model = model;
        m->set = 1;
    }
    *price = m->price;
    *multiplier_ppm = m->multiplier_ppm;
    return m->known;
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
