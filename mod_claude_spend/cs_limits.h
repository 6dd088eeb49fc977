/* cs_limits: the wire shapes of the spend admin API and of /api/oauth/usage
 * (PURE: APR and jansson only).
 *
 * What a POST /v1/organizations/spend_limits body may say, and the JSON the
 * reference gateway answers with: spend-limit objects, their audit form,
 * /effective rows, cost-report items, the usage report the client shows and
 * the admin error envelope. The glue (cs_admin.c) only moves rows between
 * PostgreSQL and these functions. Money: integer micro-USD in counters,
 * integer cents in limits (1 cent = 10000 micro-USD). */
#ifndef CS_LIMITS_H
#define CS_LIMITS_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

#include "cs_period.h"

/** A validated POST body: what to upsert. Strings are owned by the parse pool. */
typedef struct cs_limit_input_t {
    const char *scope_type;    /* "user", "rbac_group" or "organization" */
    const char *scope_id;      /* the sub or group; "" for the organization */
    const char *period;        /* "daily", "weekly" or "monthly" (the default) */
    const char *amount;        /* whole cents as digits; NULL: unlimited */
    int pooled;                /* a pooled_budget was given (group, monthly) */
    const char *pooled_amount; /* its cents as digits, when pooled */
    int pooled_paused;
} cs_limit_input_t;

/** A stored limit, as read back (text columns of claude_spend_limits). */
typedef struct cs_limit_row_t {
    const char *id;
    const char *scope_type;
    const char *scope_id;
    const char *period;
    const char *amount; /* NULL: unlimited */
    const char *currency;
    int pooled;
    const char *pooled_amount; /* may be NULL */
    int pooled_paused;
    apr_int64_t pooled_spent_micro; /* the group's pot this month */
    const char *created_at;         /* 2026-11-23T16:38:22.614Z */
    const char *updated_at;
} cs_limit_row_t;

/** One period of a user's caps, as claude_admit reports it. */
typedef struct cs_limit_usage_t {
    cs_period_e period;
    apr_int64_t cap_cents;   /* -1: no cap */
    apr_int64_t spent_micro; /* settled spend in the current period */
} cs_limit_usage_t;

/**
 * Validate a POST body as the reference does, first problem first.
 * @param p pool for the strings of in and for the message
 * @param body the body (need not be NUL-terminated)
 * @param in receives the upsert on success
 * @return NULL on success, else the client-facing message ("scope.user_id:
 *         Required", "invalid JSON body", ...)
 */
const char *cs_limits_parse(apr_pool_t *p, const char *body, apr_size_t len, cs_limit_input_t *in);

/** Whether s is an amount of whole cents: 1 to 18 ASCII digits. */
int cs_limits_amount_valid(const char *s);

/**
 * A query-string count such as limit: digits only, from lo to hi.
 * @param s the value; NULL gives def
 * @return 0 on success, -1 when s is not acceptable
 */
int cs_limits_count_parse(const char *s, int def, int lo, int hi, int *out);

/**
 * Parse an RFC 3339 time (2026-11-01T00:00:00Z, fractions and offsets
 * allowed) or a bare date (2026-11-01, midnight UTC).
 * @return 0 on success, -1 otherwise
 */
int cs_limits_time_parse(const char *s, apr_time_t *t);

/**
 * Format a time in UTC: 2026-11-24T00:00:00Z, or with milliseconds
 * 2026-11-24T00:00:00.000Z.
 */
const char *cs_limits_time_format(apr_pool_t *p, apr_time_t t, int with_ms);

/** Cents, rounded half up, as a decimal string ("6" for 59850 micro-USD). */
const char *cs_limits_cents_rounded(apr_pool_t *p, apr_int64_t micro);

/** Cents with six decimals, as the cost report's amounts ("5.985000"). */
const char *cs_limits_cents_decimal(apr_pool_t *p, apr_int64_t micro);

/**
 * Whole percent of a cap used, rounded: 120 for 5.985 cents of 5. A cap of
 * 0 blocks everything and reads as 100.
 */
apr_int64_t cs_limits_percent(apr_int64_t spent_micro, apr_int64_t cap_cents);

/** A scope object: {"type":"user","user_id":…}, {"type":"organization"}, … (new reference). */
json_t *cs_limits_scope_json(const char *type, const char *id);

/** The API's spend_limit object (new reference). */
json_t *cs_limits_object_json(const cs_limit_row_t *row);

/** The audit trail's before/after form of a limit (new reference). */
json_t *cs_limits_audit_json(const cs_limit_row_t *row);

/**
 * One /effective row (new reference).
 * @param groups borrowed: the principal's last-seen groups (a JSON array)
 * @param name may be NULL
 * @param email may be NULL
 * @param cap_cents -1 when no limit applies
 * @param source_type the scope the cap came from, NULL when none
 * @param source_id its sub or group
 * @param limit_id may be NULL
 */
json_t *cs_limits_effective_json(const char *principal, json_t *groups, const char *name,
                                 const char *email, apr_int64_t cap_cents, const char *period,
                                 const char *source_type, const char *source_id,
                                 const char *limit_id, apr_int64_t spent_micro, apr_pool_t *p);

/**
 * One cost-report item: a bucket and the group it sums (new reference).
 * @param actor the sub when grouped by actor, else NULL
 * @param actor_email the actor's email, may be NULL
 * @param group the rbac_group_id when grouped by it, else NULL
 * @param by_group whether grouped by rbac_group_id (then a NULL group is the
 *        spend of users in no group)
 */
json_t *cs_limits_cost_item_json(apr_pool_t *p, apr_time_t start, apr_time_t end, const char *actor,
                                 const char *actor_email, const char *group, int by_group,
                                 apr_int64_t micro);

/**
 * The body of GET /api/oauth/usage (new reference): with no cap the spend of
 * the day, week and month and empty limits; otherwise one limits row per
 * capped period, and in extra_usage the cap the client's headers describe
 * (the exceeded one that resets last, else the fullest).
 * @param caps the three periods, daily, weekly, monthly
 * @param now the time the report is for (period ends)
 */
json_t *cs_limits_usage_json(apr_pool_t *p, const cs_limit_usage_t *caps, int n, apr_time_t now);

/**
 * The admin API's error body, in the reference's key order:
 * {"type":"error","error":{"type":…,"message":…},"request_id":…} (new reference).
 */
json_t *cs_limits_error_json(const char *type, const char *message, const char *request_id);

/**
 * Compact JSON text of j in p; j's reference is consumed.
 * @return the text, "null" when j is NULL
 */
const char *cs_limits_dump(apr_pool_t *p, json_t *j);

#endif
