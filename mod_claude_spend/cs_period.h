/* cs_period: the periods of spend caps (daily, weekly, monthly, all in UTC),
 * their bounds and the keys the ledger files spend under (PURE: APR and
 * libc only, integer civil-date arithmetic, no TZ or libc time functions). */
#ifndef CS_PERIOD_H
#define CS_PERIOD_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_time.h>

/** The period of a spend cap. */
typedef enum {
    CS_PERIOD_DAILY = 0,  /* the UTC day */
    CS_PERIOD_WEEKLY = 1, /* the ISO-8601 week, Monday 00:00 UTC to Monday */
    CS_PERIOD_MONTHLY = 2 /* the calendar month in UTC */
} cs_period_e;

/**
 * Parse a period name as configured: exactly "daily", "weekly" or "monthly"
 * (case and whitespace matter, so a typo is refused rather than guessed).
 * @param s the name, may be NULL
 * @param out receives the period on success, untouched otherwise
 * @return 0 on success, -1 if s names no period
 */
int cs_period_parse(const char *s, cs_period_e *out);

/**
 * The configuration name of a period.
 * @param period the period
 * @return "daily", "weekly" or "monthly"; "unknown" for any other value
 */
const char *cs_period_name(cs_period_e period);

/**
 * The period containing a time. Values outside the enum count as daily.
 * @param period the period
 * @param t the time (microseconds since the epoch, UTC)
 * @param start receives the first microsecond of the period (inclusive)
 * @param end receives the first microsecond of the next period (exclusive)
 */
void cs_period_bounds(cs_period_e period, apr_time_t t, apr_time_t *start, apr_time_t *end);

/**
 * The ledger key of the period containing a time: daily "YYYY-MM-DD",
 * weekly "YYYY-Www" with the ISO week-numbering year (2024-12-30 is
 * "2025-W01", 2027-01-01 is "2026-W53"), monthly "YYYY-MM".
 * @param pool the key is allocated from it
 * @param period the period; values outside the enum count as daily
 * @param t the time (microseconds since the epoch, UTC)
 * @return the key
 */
const char *cs_period_key(apr_pool_t *pool, cs_period_e period, apr_time_t t);

/**
 * Seconds from a time until the end of its period, rounded up (what a
 * Retry-After for an exhausted cap should say).
 * @param period the period; values outside the enum count as daily
 * @param t the time (microseconds since the epoch, UTC)
 * @return seconds, at least 1
 */
apr_int64_t cs_period_seconds_left(cs_period_e period, apr_time_t t);

#endif
