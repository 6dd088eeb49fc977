/* cs_period: spend-cap periods in UTC.
 *
 * Dates come from Howard Hinnant's days_from_civil / civil_from_days
 * (proleptic Gregorian, 400-year eras), in plain integers: no timegm,
 * gmtime or TZ, so the answer never depends on the server's zone, locale or
 * libc, and holds for every year the ledger can meet (1970..9999). */
#include <string.h>

#include <apr_strings.h>

#include "cs_period.h"

#define CS_USEC_PER_SEC APR_INT64_C(1000000)
#define CS_USEC_PER_DAY (APR_INT64_C(86400) * CS_USEC_PER_SEC)

/* Floor division: C rounds toward zero, which would put a time before the
 * epoch into the following day. */
static apr_int64_t cs_floor_div(apr_int64_t a, apr_int64_t b)
{
    apr_int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

/* Days since 1970-01-01 of a civil date (m 1..12, d 1..31). */
static apr_int64_t cs_days_from_civil(apr_int64_t y, int m, int d)
{
    apr_int64_t era, yoe, doy, doe;

    y -= m <= 2; /* the computational year starts on March 1st */
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The civil date of a day number (days since 1970-01-01). */
static void cs_civil_from_days(apr_int64_t z, apr_int64_t *y, int *m, int *d)
{
    apr_int64_t era, doe, yoe, doy, mp;

    z += 719468; /* days since 0000-03-01 */
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ISO weekday with Monday = 0; day 0 (1970-01-01) was a Thursday. */
static int cs_iso_weekday(apr_int64_t days)
{
    return (int)(days + 3 - cs_floor_div(days + 3, 7) * 7);
}

/* Bounds in whole days since the epoch: [*start, *end). */
static void cs_day_bounds(cs_period_e period, apr_int64_t days, apr_int64_t *start,
                          apr_int64_t *end)
{
    apr_int64_t y;
    int m, d;

    switch (period) {
    case CS_PERIOD_WEEKLY:
        *start = days - cs_iso_weekday(days);
        *end = *start + 7;
        break;
    case CS_PERIOD_MONTHLY:
        cs_civil_from_days(days, &y, &m, &d);
        *start = cs_days_from_civil(y, m, 1);
        *end = m == 12 ? cs_days_from_civil(y + 1, 1, 1) : cs_days_from_civil(y, m + 1, 1);
        break;
    default:
        *start = days;
        *end = days + 1;
        break;
    }
}

int cs_period_parse(const char *s, cs_period_e *out)
{
    if (s == NULL) {
        return -1;
    }
    if (strcmp(s, "daily") == 0) {
        *out = CS_PERIOD_DAILY;
    }
    else if (strcmp(s, "weekly") == 0) {
        *out = CS_PERIOD_WEEKLY;
    }
    else if (strcmp(s, "monthly") == 0) {
        *out = CS_PERIOD_MONTHLY;
    }
    else {
        return -1;
    }
    return 0;
}

const char *cs_period_name(cs_period_e period)
{
    switch (period) {
    case CS_PERIOD_DAILY:
        return "daily";
    case CS_PERIOD_WEEKLY:
        return "weekly";
    case CS_PERIOD_MONTHLY:
        return "monthly";
    }
    return "unknown";
}

void cs_period_bounds(cs_period_e period, apr_time_t t, apr_time_t *start, apr_time_t *end)
{
    apr_int64_t ds, de;

    cs_day_bounds(period, cs_floor_div(t, CS_USEC_PER_DAY), &ds, &de);
    *start = ds * CS_USEC_PER_DAY;
    *end = de * CS_USEC_PER_DAY;
}

const char *cs_period_key(apr_pool_t *pool, cs_period_e period, apr_time_t t)
{
    apr_int64_t days = cs_floor_div(t, CS_USEC_PER_DAY);
    apr_int64_t y, thursday, week;
    int m, d;

    switch (period) {
    case CS_PERIOD_WEEKLY:
        /* An ISO week belongs to the year holding its Thursday, and week 1
         * is the one holding that year's first Thursday. */
        thursday = days - cs_iso_weekday(days) + 3;
        cs_civil_from_days(thursday, &y, &m, &d);
        week = (thursday - cs_days_from_civil(y, 1, 1)) / 7 + 1;
        return apr_psprintf(pool, "%04d-W%02d", (int)y, (int)week);
    case CS_PERIOD_MONTHLY:
        cs_civil_from_days(days, &y, &m, &d);
        return apr_psprintf(pool, "%04d-%02d", (int)y, m);
    default:
        cs_civil_from_days(days, &y, &m, &d);
        return apr_psprintf(pool, "%04d-%02d-%02d", (int)y, m, d);
    }
}

apr_int64_t cs_period_seconds_left(cs_period_e period, apr_time_t t)
{
    apr_time_t start, end;
    apr_int64_t left;

    cs_period_bounds(period, t, &start, &end);
    left = cs_floor_div(end - t + CS_USEC_PER_SEC - 1, CS_USEC_PER_SEC);
    return left < 1 ? 1 : left;
}
