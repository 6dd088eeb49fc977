/* Unit tests for cs_period: parsing and names, and the bounds, ledger keys
 * and seconds left of the three UTC periods. Expected values in the tables
 * were computed outside the code under test, with GNU date (`date -u -d ...
 * +%s`, `+%F`, `+%G-W%V`, `+%Y-%m`), and a sweep checks against gmtime_r. */
#include <string.h>
#include <time.h>
#include <apr_strings.h>

#include "unit.h"
#include "cs_period.h"

#define USEC APR_INT64_C(1000000)

/* One instant and everything each period says about it; bounds in seconds. */
typedef struct period_case_t {
    const char *when; /* UTC, for failure messages */
    apr_int64_t sec;
    apr_int64_t usec;
    const char *day_key, *week_key, *month_key;
    apr_int64_t day_start, day_end, week_start, week_end, month_start, month_end;
} period_case_t;

static const period_case_t period_cases[] = {
    {"1970-01-01 00:00:00.000000", 0, 0, "1970-01-01", "1970-W01", "1970-01", 0, 86400, -259200,
     345600, 0, 2678400},
    {"1970-01-04 23:59:59.999999", 345599, 999999, "1970-01-04", "1970-W01", "1970-01", 259200,
     345600, -259200, 345600, 0, 2678400},
    {"1970-01-05 00:00:00.000000", 345600, 0, "1970-01-05", "1970-W02", "1970-01", 345600, 432000,
     345600, 950400, 0, 2678400},
    {"2015-12-31 12:00:00.000000", 1451563200, 0, "2015-12-31", "2015-W53", "2015-12", 1451520000,
     1451606400, 1451260800, 1451865600, 1448928000, 1451606400},
    {"2016-01-03 23:59:59.999999", 1451865599, 999999, "2016-01-03", "2015-W53", "2016-01",
     1451779200, 1451865600, 1451260800, 1451865600, 1451606400, 1454284800},
    {"2016-01-04 00:00:00.000000", 1451865600, 0, "2016-01-04", "2016-W01", "2016-01", 1451865600,
     1451952000, 1451865600, 1452470400, 1451606400, 1454284800},
    {"2020-12-31 23:59:59.999999", 1609459199, 999999, "2020-12-31", "2020-W53", "2020-12",
     1609372800, 1609459200, 1609113600, 1609718400, 1606780800, 1609459200},
    {"2021-01-01 00:00:00.000000", 1609459200, 0, "2021-01-01", "2020-W53", "2021-01", 1609459200,
     1609545600, 1609113600, 1609718400, 1609459200, 1612137600},
    {"2021-01-03 23:59:59.999999", 1609718399, 999999, "2021-01-03", "2020-W53", "2021-01",
     1609632000, 1609718400, 1609113600, 1609718400, 1609459200, 1612137600},
    {"2021-01-04 00:00:00.000000", 1609718400, 0, "2021-01-04", "2021-W01", "2021-01", 1609718400,
     1609804800, 1609718400, 1610323200, 1609459200, 1612137600},
    {"2024-02-28 23:59:59.999999", 1709164799, 999999, "2024-02-28", "2024-W09", "2024-02",
     1709078400, 1709164800, 1708905600, 1709510400, 1706745600, 1709251200},
    {"2024-02-29 00:00:00.000000", 1709164800, 0, "2024-02-29", "2024-W09", "2024-02", 1709164800,
     1709251200, 1708905600, 1709510400, 1706745600, 1709251200},
    {"2024-02-29 13:45:10.500000", 1709214310, 500000, "2024-02-29", "2024-W09", "2024-02",
     1709164800, 1709251200, 1708905600, 1709510400, 1706745600, 1709251200},
    {"2024-02-29 23:59:59.999999", 1709251199, 999999, "2024-02-29", "2024-W09", "2024-02",
     1709164800, 1709251200, 1708905600, 1709510400, 1706745600, 1709251200},
    {"2024-03-01 00:00:00.000000", 1709251200, 0, "2024-03-01", "2024-W09", "2024-03", 1709251200,
     1709337600, 1708905600, 1709510400, 1709251200, 1711929600},
    {"2024-12-29 23:59:59.999999", 1735516799, 999999, "2024-12-29", "2024-W52", "2024-12",
     1735430400, 1735516800, 1734912000, 1735516800, 1733011200, 1735689600},
    {"2024-12-30 00:00:00.000000", 1735516800, 0, "2024-12-30", "2025-W01", "2024-12", 1735516800,
     1735603200, 1735516800, 1736121600, 1733011200, 1735689600},
    {"2024-12-31 23:59:59.999999", 1735689599, 999999, "2024-12-31", "2025-W01", "2024-12",
     1735603200, 1735689600, 1735516800, 1736121600, 1733011200, 1735689600},
    {"2025-01-01 00:00:00.000000", 1735689600, 0, "2025-01-01", "2025-W01", "2025-01", 1735689600,
     1735776000, 1735516800, 1736121600, 1735689600, 1738368000},
    {"2026-01-31 23:59:59.999999", 1769903999, 999999, "2026-01-31", "2026-W05", "2026-01",
     1769817600, 1769904000, 1769385600, 1769990400, 1767225600, 1769904000},
    {"2026-02-01 00:00:00.000000", 1769904000, 0, "2026-02-01", "2026-W05", "2026-02", 1769904000,
     1769990400, 1769385600, 1769990400, 1769904000, 1772323200},
    {"2026-04-30 23:59:59.999999", 1777593599, 999999, "2026-04-30", "2026-W18", "2026-04",
     1777507200, 1777593600, 1777248000, 1777852800, 1775001600, 1777593600},
    {"2026-05-01 00:00:00.000000", 1777593600, 0, "2026-05-01", "2026-W18", "2026-05", 1777593600,
     1777680000, 1777248000, 1777852800, 1777593600, 1780272000},
    {"2026-12-28 00:00:00.000000", 1798416000, 0, "2026-12-28", "2026-W53", "2026-12", 1798416000,
     1798502400, 1798416000, 1799020800, 1796083200, 1798761600},
    {"2026-12-31 23:59:59.999999", 1798761599, 999999, "2026-12-31", "2026-W53", "2026-12",
     1798675200, 1798761600, 1798416000, 1799020800, 1796083200, 1798761600},
    {"2027-01-01 00:00:00.000000", 1798761600, 0, "2027-01-01", "2026-W53", "2027-01", 1798761600,
     1798848000, 1798416000, 1799020800, 1798761600, 1801440000},
    {"2027-01-03 23:59:59.999999", 1799020799, 999999, "2027-01-03", "2026-W53", "2027-01",
     1798934400, 1799020800, 1798416000, 1799020800, 1798761600, 1801440000},
    {"2027-01-04 00:00:00.000000", 1799020800, 0, "2027-01-04", "2027-W01", "2027-01", 1799020800,
     1799107200, 1799020800, 1799625600, 1798761600, 1801440000},
    {"2000-02-28 12:00:00.000000", 951739200, 0, "2000-02-28", "2000-W09", "2000-02", 951696000,
     951782400, 951696000, 952300800, 949363200, 951868800},
    {"2000-02-29 12:00:00.000000", 951825600, 0, "2000-02-29", "2000-W09", "2000-02", 951782400,
     951868800, 951696000, 952300800, 949363200, 951868800},
    {"2000-03-01 00:00:00.000000", 951868800, 0, "2000-03-01", "2000-W09", "2000-03", 951868800,
     951955200, 951696000, 952300800, 951868800, 954547200},
    {"2100-02-28 23:59:59.999999", 4107542399, 999999, "2100-02-28", "2100-W08", "2100-02",
     4107456000, 4107542400, 4106937600, 4107542400, 4105123200, 4107542400},
    {"2100-03-01 00:00:00.000000", 4107542400, 0, "2100-03-01", "2100-W09", "2100-03", 4107542400,
     4107628800, 4107542400, 4108147200, 4107542400, 4110220800},
    {"2038-01-19 03:14:08.000000", 2147483648, 0, "2038-01-19", "2038-W03", "2038-01", 2147472000,
     2147558400, 2147385600, 2147990400, 2145916800, 2148595200},
    {"9999-12-31 23:59:59.999999", 253402300799, 999999, "9999-12-31", "9999-W52", "9999-12",
     253402214400, 253402300800, 253401868800, 253402473600, 253399622400, 253402300800},
    {"2015-12-28 00:00:00.000000", 1451260800, 0, "2015-12-28", "2015-W53", "2015-12", 1451260800,
     1451347200, 1451260800, 1451865600, 1448928000, 1451606400},
    {"2020-12-27 23:59:59.999999", 1609113599, 999999, "2020-12-27", "2020-W52", "2020-12",
     1609027200, 1609113600, 1608508800, 1609113600, 1606780800, 1609459200},
    {"2020-12-28 00:00:00.000000", 1609113600, 0, "2020-12-28", "2020-W53", "2020-12", 1609113600,
     1609200000, 1609113600, 1609718400, 1606780800, 1609459200},
    {"2023-02-28 23:59:59.999999", 1677628799, 999999, "2023-02-28", "2023-W09", "2023-02",
     1677542400, 1677628800, 1677456000, 1678060800, 1675209600, 1677628800},
    {"2023-03-01 00:00:00.000000", 1677628800, 0, "2023-03-01", "2023-W09", "2023-03", 1677628800,
     1677715200, 1677456000, 1678060800, 1677628800, 1680307200},
    {"2009-12-31 06:30:00.000000", 1262241000, 0, "2009-12-31", "2009-W53", "2009-12", 1262217600,
     1262304000, 1261958400, 1262563200, 1259625600, 1262304000},
    {"2010-01-03 23:59:59.999999", 1262563199, 999999, "2010-01-03", "2009-W53", "2010-01",
     1262476800, 1262563200, 1261958400, 1262563200, 1262304000, 1264982400},
    {"2010-01-04 00:00:00.000000", 1262563200, 0, "2010-01-04", "2010-W01", "2010-01", 1262563200,
     1262649600, 1262563200, 1263168000, 1262304000, 1264982400},
    {"2100-02-01 00:00:00.000000", 4105123200, 0, "2100-02-01", "2100-W05", "2100-02", 4105123200,
     4105209600, 4105123200, 4105728000, 4105123200, 4107542400},
    {"1999-12-31 23:59:59.999999", 946684799, 999999, "1999-12-31", "1999-W52", "1999-12",
     946598400, 946684800, 946252800, 946857600, 944006400, 946684800},
    {"2000-01-01 00:00:00.000000", 946684800, 0, "2000-01-01", "1999-W52", "2000-01", 946684800,
     946771200, 946252800, 946857600, 946684800, 949363200},
    {"2025-06-15 08:00:00.123456", 1749974400, 123456, "2025-06-15", "2025-W24", "2025-06",
     1749945600, 1750032000, 1749427200, 1750032000, 1748736000, 1751328000},
};

#define N_PERIOD_CASES ((int)(sizeof(period_cases) / sizeof(period_cases[0])))

/* Ceiling of (end - t) in seconds, t in microseconds and non-negative. */
static apr_int64_t expect_left(apr_int64_t end_sec, apr_time_t t)
{
    return (end_sec * USEC - t + USEC - 1) / USEC;
}

static void check_period(const period_case_t *c, cs_period_e p, const char *key, apr_int64_t start,
                         apr_int64_t end)
{
    apr_time_t t = c->sec * USEC + c->usec;
    apr_time_t s = -1, e = -1;

    ck_assert_msg(strcmp(cs_period_key(unit_pool, p, t), key) == 0, "%s %s: key %s, want %s",
                  c->when, cs_period_name(p), cs_period_key(unit_pool, p, t), key);
    cs_period_bounds(p, t, &s, &e);
    ck_assert_msg(s == start * USEC, "%s %s: start %" APR_INT64_T_FMT ", want %" APR_INT64_T_FMT,
                  c->when, cs_period_name(p), s, start * USEC);
    ck_assert_msg(e == end * USEC, "%s %s: end %" APR_INT64_T_FMT ", want %" APR_INT64_T_FMT,
                  c->when, cs_period_name(p), e, end * USEC);
    ck_assert_msg(cs_period_seconds_left(p, t) == expect_left(end, t),
                  "%s %s: seconds_left %" APR_INT64_T_FMT ", want %" APR_INT64_T_FMT, c->when,
                  cs_period_name(p), cs_period_seconds_left(p, t), expect_left(end, t));
}

START_TEST(table)
{
    const period_case_t *c = &period_cases[_i];

    check_period(c, CS_PERIOD_DAILY, c->day_key, c->day_start, c->day_end);
    check_period(c, CS_PERIOD_WEEKLY, c->week_key, c->week_start, c->week_end);
    check_period(c, CS_PERIOD_MONTHLY, c->month_key, c->month_start, c->month_end);
}
END_TEST

START_TEST(parse_and_name)
{
    static const char *const bad[] = {"Daily ", "",     "Daily", "DAILY",    " daily", "daily ",
                                      "day",    "week", "month", "monthlyx", "annual"};
    cs_period_e p = CS_PERIOD_MONTHLY;
    size_t i;

    ck_assert_int_eq(cs_period_parse("daily", &p), 0);
    ck_assert_int_eq(p, CS_PERIOD_DAILY);
    ck_assert_int_eq(cs_period_parse("weekly", &p), 0);
    ck_assert_int_eq(p, CS_PERIOD_WEEKLY);
    ck_assert_int_eq(cs_period_parse("monthly", &p), 0);
    ck_assert_int_eq(p, CS_PERIOD_MONTHLY);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = CS_PERIOD_WEEKLY;
        ck_assert_msg(cs_period_parse(bad[i], &p) == -1, "accepted \"%s\"", bad[i]);
        ck_assert_int_eq(p, CS_PERIOD_WEEKLY); /* untouched on failure */
    }
    ck_assert_int_eq(cs_period_parse(NULL, &p), -1);

    ck_assert_str_eq(cs_period_name(CS_PERIOD_DAILY), "daily");
    ck_assert_str_eq(cs_period_name(CS_PERIOD_WEEKLY), "weekly");
    ck_assert_str_eq(cs_period_name(CS_PERIOD_MONTHLY), "monthly");
    ck_assert_str_eq(cs_period_name((cs_period_e)7), "unknown");
    /* names parse back to their period */
    for (i = CS_PERIOD_DAILY; i <= CS_PERIOD_MONTHLY; i++) {
        ck_assert_int_eq(cs_period_parse(cs_period_name((cs_period_e)i), &p), 0);
        ck_assert_int_eq(p, (cs_period_e)i);
    }
}
END_TEST

START_TEST(seconds_left)
{
    /* 2024-02-29 13:45:10.5: to 2024-03-01 and to Monday 2024-03-04 */
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_DAILY, 1709214310 * USEC + 500000), 36890);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_WEEKLY, 1709214310 * USEC + 500000), 296090);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_MONTHLY, 1709214310 * USEC + 500000), 36890);
    /* 2024-02-28 00:00:00: a whole day; the leap month still has two days */
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_DAILY, 1709078400 * USEC), 86400);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_MONTHLY, 1709078400 * USEC), 172800);
    /* Monday 2026-12-28 00:00:00: a whole week, four days of December */
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_WEEKLY, 1798416000 * USEC), 604800);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_MONTHLY, 1798416000 * USEC), 345600);
    /* one microsecond, or one second, before each boundary: 1 */
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_DAILY, 1798761600 * USEC - 1), 1);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_WEEKLY, 1799020800 * USEC - 1), 1);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_MONTHLY, 1798761600 * USEC - 1), 1);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_DAILY, 1798761599 * USEC), 1);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_MONTHLY, 4107542399 * USEC), 1);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_DAILY, 1798761598 * USEC), 2);
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_DAILY, 1798761598 * USEC + 1), 2);
    /* the last microsecond the ledger can meet */
    ck_assert_int_eq(cs_period_seconds_left(CS_PERIOD_MONTHLY, 253402300800 * USEC - 1), 1);
}
END_TEST

/* Compare one instant against gmtime_r/strftime and check the invariants
 * that tie bounds and keys together. Returns NULL when all hold, else what
 * failed: ck_assert on every step would cost libcheck a write each, and the
 * sweep makes millions of them. */
static const char *sweep_one(apr_pool_t *p, apr_int64_t sec)
{
    static const cs_period_e periods[] = {CS_PERIOD_DAILY, CS_PERIOD_WEEKLY, CS_PERIOD_MONTHLY};
    time_t tt = (time_t)sec;
    apr_time_t t = sec * USEC;
    struct tm tm, stm;
    char want[32];
    size_t i;

    if (gmtime_r(&tt, &tm) == NULL) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT ": gmtime_r failed", sec);
    }
    for (i = 0; i < 3; i++) {
        const char *name = cs_period_name(periods[i]);
        const char *key = cs_period_key(p, periods[i], t);
        apr_time_t s, e;
        time_t st;

        /* literal formats: -Wformat=2 refuses a format from a table */
        if (periods[i] == CS_PERIOD_DAILY) {
            strftime(want, sizeof(want), "%Y-%m-%d", &tm);
        }
        else if (periods[i] == CS_PERIOD_WEEKLY) {
            strftime(want, sizeof(want), "%G-W%V", &tm);
        }
        else {
            strftime(want, sizeof(want), "%Y-%m", &tm);
        }
        if (strcmp(key, want) != 0) {
            return apr_psprintf(p, "%" APR_INT64_T_FMT " %s: key %s, want %s", sec, name, key,
                                want);
        }
        cs_period_bounds(periods[i], t, &s, &e);
        if (!(s <= t && t < e) || s % (86400 * USEC) != 0 || e % (86400 * USEC) != 0) {
            return apr_psprintf(p, "%" APR_INT64_T_FMT " %s: bad bounds", sec, name);
        }
        if (strcmp(cs_period_key(p, periods[i], s), key) != 0 ||
            strcmp(cs_period_key(p, periods[i], e - 1), key) != 0 ||
            strcmp(cs_period_key(p, periods[i], e), key) == 0) {
            return apr_psprintf(p, "%" APR_INT64_T_FMT " %s: bounds and key disagree", sec, name);
        }
        /* weeks start on Monday, months on the 1st */
        st = (time_t)(s / USEC);
        if (gmtime_r(&st, &stm) == NULL || (periods[i] == CS_PERIOD_WEEKLY && stm.tm_wday != 1) ||
            (periods[i] == CS_PERIOD_MONTHLY && stm.tm_mday != 1)) {
            return apr_psprintf(p, "%" APR_INT64_T_FMT " %s: bad start", sec, name);
        }
        if (cs_period_seconds_left(periods[i], t) != (e - t + USEC - 1) / USEC) {
            return apr_psprintf(p, "%" APR_INT64_T_FMT " %s: seconds_left", sec, name);
        }
    }
    return NULL;
}

START_TEST(sweep_against_gmtime)
{
    const char *err = NULL;
    apr_pool_t *p;
    apr_int64_t sec;

    apr_pool_create(&p, unit_pool);
    /* every day of 1998..2032 at a drifting time of day */
    for (sec = 883612800; err == NULL && sec < 1988150400; sec += 86400 + 613) {
        err = sweep_one(p, sec);
        if (err == NULL) {
            apr_pool_clear(p);
        }
    }
    /* 1970..9999 in prime strides, so every weekday and day of month comes up */
    for (sec = 0; err == NULL && sec < APR_INT64_C(253402300800);
         sec += APR_INT64_C(13) * 86400 + 3607) {
        err = sweep_one(p, sec);
        if (err == NULL) {
            apr_pool_clear(p);
        }
    }
    if (err == NULL) {
        err = sweep_one(p, APR_INT64_C(253402300799));
    }
    /* one assertion: libcheck writes one record per assertion */
    ck_assert_msg(err == NULL, "%s", err);
    apr_pool_destroy(p);
}
END_TEST

Suite *unit_suite_cs_period(void)
{
    Suite *s = suite_create("cs_period");
    TCase *tc = tcase_create("period");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_set_timeout(tc, 60); /* the sweep checks thousands of days; slow under ASan */
    tcase_add_loop_test(tc, table, 0, N_PERIOD_CASES);
    tcase_add_test(tc, parse_and_name);
    tcase_add_test(tc, seconds_left);
    tcase_add_test(tc, sweep_against_gmtime);
    suite_add_tcase(s, tc);
    return s;
}
