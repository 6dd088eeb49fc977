/* cs_caps: spend-cap headers and refusals, see cs_caps.h. Integer arithmetic
 * only: caps are in cents, spend in micro-USD (1 cent = 10000 micro-USD). */
#include <apr_strings.h>

#include "cs_caps.h"

#define CS_MICRO_PER_CENT 10000
/* caps of up to 18 digits of cents overflow 64 bits once in micro-USD, and
 * products of two amounts do long before: compare in 128 bits */
typedef __int128 cs_wide_t;

static const char *const cs_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static const char *cs_caps_ratio_wide(apr_pool_t *p, cs_wide_t num, cs_wide_t den)
{
    apr_int64_t hundredths;

    if (den <= 0) {
        return num > 0 ? "1" : "0";
    }
    if (num < 0) {
        num = 0;
    }
    hundredths = (apr_int64_t)((num * 200 + den) / (2 * den)); /* rounded half up */
    if (hundredths % 100 == 0) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT, hundredths / 100);
    }
    if (hundredths % 10 == 0) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT ".%d", hundredths / 100,
                            (int)(hundredths % 100) / 10);
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT ".%02d", hundredths / 100, (int)(hundredths % 100));
}

const char *cs_caps_ratio(apr_pool_t *p, apr_int64_t num, apr_int64_t den)
{
    return cs_caps_ratio_wide(p, num, den);
}

apr_int64_t cs_caps_estimate(apr_int64_t body_bytes, apr_int64_t max_tokens, apr_int64_t input_rate,
                             apr_int64_t cache_write_rate, apr_int64_t output_rate)
{
    apr_int64_t in_rate = input_rate > cache_write_rate ? input_rate : cache_write_rate;
    apr_int64_t total;

    if (body_bytes < 0) {
        body_bytes = 0;
    }
    if (max_tokens < 0) {
        max_tokens = 0;
    }
    /* rates are per million tokens; round up so the bound holds */
    total = (apr_int64_t)(((cs_wide_t)body_bytes * in_rate + (cs_wide_t)max_tokens * output_rate +
                           999999) /
                          1000000);
    return total;
}

static cs_wide_t cs_cap_micro(const cs_cap_t *c)
{
    return (cs_wide_t)c->cap_cents * CS_MICRO_PER_CENT;
}

static cs_wide_t cs_cap_used(const cs_cap_t *c)
{
    return (cs_wide_t)c->spent_micro + c->reserved_micro;
}

/* a's utilization above b's (cross-multiplied, no division) */
static int cs_cap_fuller(const cs_cap_t *a, const cs_cap_t *b)
{
    cs_wide_t ca = cs_cap_micro(a), cb = cs_cap_micro(b);

    if (ca == 0 || cb == 0) {
        return ca == 0 && cb != 0;
    }
    return cs_cap_used(a) * cb > cs_cap_used(b) * ca; /* used_a/ca > used_b/cb */
}

static void cs_caps_common(apr_pool_t *p, apr_table_t *h, const cs_cap_t *c, apr_time_t now,
                           const char *status)
{
    apr_time_t start, end;
    const char *reset, *util = cs_caps_ratio_wide(p, cs_cap_used(c), cs_cap_micro(c));

    cs_period_bounds(c->period, now, &start, &end);
    reset = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)apr_time_sec(end));
    apr_table_setn(h, "anthropic-ratelimit-unified-status", status);
    apr_table_setn(h, "anthropic-ratelimit-unified-reset", reset);
    apr_table_setn(h, "anthropic-ratelimit-unified-overage-reset", reset);
    apr_table_setn(h, "anthropic-ratelimit-unified-overage-utilization", util);
}

void cs_caps_verdict(apr_pool_t *p, const cs_cap_t *caps, int n, apr_time_t now,
                     const char *blocked_message, cs_caps_verdict_t *out)
{
    const cs_cap_t *bind = NULL, *refused = NULL;
    apr_time_t start, end, refused_end = 0;
    int i;

    out->capped = out->blocked = 0;
    out->headers = apr_table_make(p, 10);
    out->message = NULL;
    out->retry_after = 0;
    for (i = 0; i < n; i++) {
        const cs_cap_t *c = &caps[i];
        if (c->cap_cents < 0) {
            continue;
        }
        out->capped = 1;
        if (bind == NULL || cs_cap_fuller(c, bind)) {
            bind = c;
        }
        if (!c->admitted) {
            /* the refusal names the cap that resets last */
            cs_period_bounds(c->period, now, &start, &end);
            if (refused == NULL || end > refused_end) {
                refused = c;
                refused_end = end;
            }
        }
    }
    if (refused != NULL) {
        apr_time_exp_t tm;

        out->blocked = 1;
        cs_caps_common(p, out->headers, refused, now, "rejected");
        apr_table_setn(out->headers, "anthropic-ratelimit-unified-overage-surpassed-threshold",
                       "1");
        apr_table_setn(out->headers, "anthropic-ratelimit-unified-overage-period",
                       cs_period_name(refused->period));
        apr_table_setn(out->headers, "anthropic-ratelimit-unified-overage-disabled-reason",
                       "org_spend_cap_reached");
        out->retry_after = cs_period_seconds_left(refused->period, now);
        apr_table_setn(out->headers, "retry-after",
                       apr_psprintf(p, "%" APR_INT64_T_FMT, out->retry_after));
        apr_table_setn(out->headers, "x-should-retry", "false");
        apr_time_exp_gmt(&tm, refused_end);
        out->message = blocked_message
                           ? blocked_message
                           : apr_psprintf(p, "spend limit reached \xc2\xb7 resets %s %d",
                                          cs_months[tm.tm_mon], tm.tm_mday);
        return;
    }
    if (bind != NULL) {
        cs_wide_t used = cs_cap_used(bind), cap = cs_cap_micro(bind);
        int warn75 = used * 100 > cap * 75, warn95 = used * 100 > cap * 95;
        const char *status = warn75 ? "allowed_warning" : "allowed";

        cs_caps_common(p, out->headers, bind, now, status);
        if (warn75) {
            apr_table_setn(out->headers, "anthropic-ratelimit-unified-overage-surpassed-threshold",
                           warn95 ? "0.95" : "0.75");
        }
        apr_table_setn(out->headers, "anthropic-ratelimit-unified-representative-claim", "overage");
        apr_table_setn(out->headers, "anthropic-ratelimit-unified-overage-status", status);
    }
}

void cs_caps_unavailable(apr_pool_t *p, cs_caps_verdict_t *out)
{
    out->capped = 1;
    out->blocked = 1;
    out->headers = apr_table_make(p, 4);
    out->retry_after = 0;
    /* no period, reset or retry-after: nothing is known about the caps */
    apr_table_setn(out->headers, "anthropic-ratelimit-unified-status", "rejected");
    apr_table_setn(out->headers, "anthropic-ratelimit-unified-overage-disabled-reason",
                   "fetch_error");
    apr_table_setn(out->headers, "x-should-retry", "false");
    out->message = "spend limit unavailable";
}
