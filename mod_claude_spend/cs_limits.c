/* cs_limits: the wire shapes of the spend admin API and /api/oauth/usage.
 *
 * Messages, key order and number formats follow the reference gateway's
 * captures (PROTOCOL.md §8, captures 27 and 70-88). No httpd here. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include "cs_limits.h"

#define CS_LIMITS_ID_MAX 256

const char *cs_limits_dump(apr_pool_t *p, json_t *j)
{
    char *s;
    const char *out;

    if (j == NULL) {
        return "null";
    }
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    out = s ? apr_pstrdup(p, s) : "null";
    free(s);
    return out;
}

int cs_limits_amount_valid(const char *s)
{
    apr_size_t n = 0;

    if (s == NULL) {
        return 0;
    }
    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 18) {
            return 0;
        }
    }
    return n >= 1;
}

int cs_limits_count_parse(const char *s, int def, int lo, int hi, int *out)
{
    apr_int64_t v = 0;
    apr_size_t i;

    if (s == NULL) {
        *out = def;
        return 0;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 9) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0 || v < lo || v > hi) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* digits of a fixed width at s, or -1 */
static int cs_limits_digits(const char *s, int width)
{
    int v = 0, i;

    for (i = 0; i < width; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int cs_limits_time_parse(const char *s, apr_time_t *t)
{
    apr_time_exp_t x;
    int y, mo, d, h = 0, mi = 0, sec = 0, usec = 0, off = 0;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (s == NULL || strlen(s) < 10 || s[4] != '-' || s[7] != '-') {
        return -1;
    }
    y = cs_limits_digits(s, 4);
    mo = cs_limits_digits(s + 5, 2);
    d = cs_limits_digits(s + 8, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))) {
        return -1;
    }
    s += 10;
    if (*s != '\0') {
        if ((*s != 'T' && *s != 't') || strlen(s) < 9 || s[3] != ':' || s[6] != ':') {
            return -1;
        }
        h = cs_limits_digits(s + 1, 2);
        mi = cs_limits_digits(s + 4, 2);
        sec = cs_limits_digits(s + 7, 2);
        if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) {
            return -1;
        }
        s += 9;
        if (*s == '.') {
            int scale = 100000, n = 0;
            for (s++; *s >= '0' && *s <= '9'; s++, n++) {
                usec += (*s - '0') * scale;
                scale /= 10;
            }
            if (n == 0) {
                return -1;
            }
        }
        if (*s == 'Z' || *s == 'z') {
            s++;
        }
        else if ((*s == '+' || *s == '-') && strlen(s) == 6 && s[3] == ':') {
            int oh = cs_limits_digits(s + 1, 2), om = cs_limits_digits(s + 4, 2);
            if (oh < 0 || oh > 23 || om < 0 || om > 59) {
                return -1;
            }
            off = (oh * 60 + om) * 60 * (*s == '+' ? 1 : -1);
            s += 6;
        }
        else {
            return -1;
        }
        if (*s != '\0') {
            return -1;
        }
    }
    memset(&x, 0, sizeof(x));
    x.tm_year = y - 1900;
    x.tm_mon = mo - 1;
    x.tm_mday = d;
    x.tm_hour = h;
    x.tm_min = mi;
    x.tm_sec = sec;
    x.tm_usec = usec;
    if (apr_time_exp_gmt_get(t, &x) != APR_SUCCESS) {
        return -1;
    }
    *t -= apr_time_from_sec(off);
    return 0;
}

const char *cs_limits_time_format(apr_pool_t *p, apr_time_t t, int with_ms)
{
    apr_time_exp_t x;

    apr_time_exp_gmt(&x, t);
    if (with_ms) {
        return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", x.tm_year + 1900,
                            x.tm_mon + 1, x.tm_mday, x.tm_hour, x.tm_min, x.tm_sec,
                            x.tm_usec / 1000);
    }
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", x.tm_year + 1900, x.tm_mon + 1,
                        x.tm_mday, x.tm_hour, x.tm_min, x.tm_sec);
}

const char *cs_limits_cents_rounded(apr_pool_t *p, apr_int64_t micro)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, micro < 0 ? 0 : (micro + 5000) / 10000);
}

const char *cs_limits_cents_decimal(apr_pool_t *p, apr_int64_t micro)
{
    if (micro < 0) {
        micro = 0;
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT ".%06" APR_INT64_T_FMT, micro / 10000,
                        (micro % 10000) * 100);
}

apr_int64_t cs_limits_percent(apr_int64_t spent_micro, apr_int64_t cap_cents)
{
    if (cap_cents <= 0) {
        return 100;
    }
    if (spent_micro <= 0) {
        return 0;
    }
    /* in floating point: a cap of 18 digits times 10000 overflows 64 bits;
     * truncating a positive value rounds it down (no libm in a module) */
    return (apr_int64_t)((double)spent_micro / ((double)cap_cents * 100.0) + 0.5);
}

/* --- the POST body ------------------------------------------------------- */

/* A required non-empty string member of scope. */
static const char *cs_limits_scope_id(apr_pool_t *p, json_t *scope, const char *key,
                                      const char **out)
{
    json_t *v = json_object_get(scope, key);

    if (v == NULL || json_is_null(v)) {
        return apr_psprintf(p, "scope.%s: Required", key);
    }
    /* an embedded NUL would name someone else once stored as C text */
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > CS_LIMITS_ID_MAX ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return apr_psprintf(p, "scope.%s: must be a string of 1 to %d characters", key,
                            CS_LIMITS_ID_MAX);
    }
    *out = apr_pstrdup(p, json_string_value(v));
    return NULL;
}

static const char *cs_limits_parse_scope(apr_pool_t *p, json_t *root, cs_limit_input_t *in)
{
    json_t *scope = json_object_get(root, "scope"), *type;
    const char *t;

    if (scope == NULL || json_is_null(scope)) {
        return "scope: Required";
    }
    if (!json_is_object(scope)) {
        return "scope: Expected object";
    }
    type = json_object_get(scope, "type");
    if (type == NULL || json_is_null(type)) {
        return "scope.type: Required";
    }
    t = json_string_value(type);
    if (t != NULL && strcmp(t, "user") == 0) {
        in->scope_type = "user";
        return cs_limits_scope_id(p, scope, "user_id", &in->scope_id);
    }
    if (t != NULL && strcmp(t, "rbac_group") == 0) {
        in->scope_type = "rbac_group";
        return cs_limits_scope_id(p, scope, "rbac_group_id", &in->scope_id);
    }
    if (t != NULL && strcmp(t, "organization") == 0) {
        in->scope_type = "organization";
        in->scope_id = "";
        return NULL;
    }
    return "scope.type: must be user, rbac_group or organization";
}

static const char *cs_limits_parse_pooled(apr_pool_t *p, json_t *pb, cs_limit_input_t *in)
{
    json_t *amount, *paused;

    if (strcmp(in->scope_type, "rbac_group") != 0) {
        return "Pooled budget fields can only be set on a group-level limit";
    }
    if (strcmp(in->period, "monthly") != 0) {
        return "Pooled budgets are monthly only: set period to monthly";
    }
    if (!json_is_object(pb)) {
        return "pooled_budget: Expected object";
    }
    amount = json_object_get(pb, "amount");
    if (amount == NULL || json_is_null(amount)) {
        return "pooled_budget.amount: Required";
    }
    if (!cs_limits_amount_valid(json_string_value(amount))) {
        return "pooled_budget.amount: must be a string of 1 to 18 digits (whole cents)";
    }
    paused = json_object_get(pb, "paused");
    if (paused != NULL && !json_is_null(paused) && !json_is_boolean(paused)) {
        return "pooled_budget.paused: Expected boolean";
    }
    in->pooled = 1;
    in->pooled_amount = apr_pstrdup(p, json_string_value(amount));
    in->pooled_paused = json_is_true(paused);
    return NULL;
}

static const char *cs_limits_parse_object(apr_pool_t *p, json_t *root, cs_limit_input_t *in)
{
    json_t *v;
    const char *msg;

    if ((msg = cs_limits_parse_scope(p, root, in)) != NULL) {
        return msg;
    }
    v = json_object_get(root, "amount");
    if (v == NULL) {
        return "amount: Required";
    }
    if (!json_is_null(v)) {
        if (!cs_limits_amount_valid(json_string_value(v))) {
            return "amount: must be a string of 1 to 18 digits (whole cents) or null";
        }
        in->amount = apr_pstrdup(p, json_string_value(v));
    }
    v = json_object_get(root, "period");
    in->period = "monthly";
    if (v != NULL && !json_is_null(v)) {
        const char *s = json_string_value(v);
        cs_period_e e;
        if (cs_period_parse(s, &e) != 0) {
            return "period: must be daily, weekly or monthly";
        }
        in->period = cs_period_name(e);
    }
    v = json_object_get(root, "currency");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || strcmp(json_string_value(v), "USD") != 0)) {
        return "currency: only USD is supported";
    }
    v = json_object_get(root, "pooled_budget");
    if (v != NULL && !json_is_null(v)) {
        return cs_limits_parse_pooled(p, v, in);
    }
    return NULL;
}

const char *cs_limits_parse(apr_pool_t *p, const char *body, apr_size_t len, cs_limit_input_t *in)
{
    json_t *root;
    const char *msg;

    memset(in, 0, sizeof(*in));
    root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return "invalid JSON body";
    }
    msg = cs_limits_parse_object(p, root, in);
    json_decref(root);
    return msg;
}

/* --- answers ------------------------------------------------------------- */

static json_t *cs_limits_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *cs_limits_scope_json(const char *type, const char *id)
{
    if (type == NULL) {
        return json_null();
    }
    if (strcmp(type, "user") == 0) {
        return json_pack("{s:s,s:s?}", "type", "user", "user_id", id);
    }
    if (strcmp(type, "rbac_group") == 0) {
        return json_pack("{s:s,s:s?}", "type", "rbac_group", "rbac_group_id", id);
    }
    return json_pack("{s:s}", "type", type);
}

json_t *cs_limits_object_json(const cs_limit_row_t *row)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string("spend_limit"));
    json_object_set_new(o, "id", json_string(row->id));
    json_object_set_new(o, "created_at", json_string(row->created_at));
    json_object_set_new(o, "updated_at", json_string(row->updated_at));
    json_object_set_new(o, "scope", cs_limits_scope_json(row->scope_type, row->scope_id));
    json_object_set_new(o, "amount", cs_limits_str_or_null(row->amount));
    json_object_set_new(o, "currency", json_string(row->currency ? row->currency : "USD"));
    json_object_set_new(o, "period", json_string(row->period));
    if (row->pooled) {
        char spent[32];
        /* no pool here: the spend is formatted on the stack */
        apr_snprintf(spent, sizeof(spent), "%" APR_INT64_T_FMT,
                     row->pooled_spent_micro < 0 ? 0 : (row->pooled_spent_micro + 5000) / 10000);
        json_object_set_new(o, "pooled_budget",
                            json_pack("{s:o,s:b,s:s,s:s}", "amount",
                                      cs_limits_str_or_null(row->pooled_amount), "paused",
                                      row->pooled_paused, "currency", "USD", "period_to_date_spend",
                                      spent));
    }
    return o;
}

json_t *cs_limits_audit_json(const cs_limit_row_t *row)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(row->id));
    json_object_set_new(o, "scope", cs_limits_scope_json(row->scope_type, row->scope_id));
    json_object_set_new(o, "amount", cs_limits_str_or_null(row->amount));
    json_object_set_new(o, "period", json_string(row->period));
    json_object_set_new(o, "currency", json_string(row->currency ? row->currency : "USD"));
    json_object_set_new(o, "created_at", json_string(row->created_at));
    json_object_set_new(o, "updated_at", json_string(row->updated_at));
    if (row->pooled) {
        json_object_set_new(o, "pooled_budget",
                            json_pack("{s:o,s:b}", "amount",
                                      cs_limits_str_or_null(row->pooled_amount), "paused",
                                      row->pooled_paused));
    }
    return o;
}

json_t *cs_limits_effective_json(const char *principal, json_t *groups, const char *name,
                                 const char *email, apr_int64_t cap_cents, const char *period,
                                 const char *source_type, const char *source_id,
                                 const char *limit_id, apr_int64_t spent_micro, apr_pool_t *p)
{
    json_t *o = json_object();

    json_object_set_new(o, "scope", cs_limits_scope_json("user", principal));
    json_object_set_new(o, "groups", json_is_array(groups) ? json_incref(groups) : json_array());
    json_object_set_new(o, "actor",
                        json_pack("{s:s,s:s,s:o,s:o,s:b}", "type", "user_actor", "user_id",
                                  principal, "name", cs_limits_str_or_null(name), "email_address",
                                  cs_limits_str_or_null(email), "deleted", 0));
    json_object_set_new(
        o, "amount",
        cap_cents < 0 ? json_null() : json_string(apr_psprintf(p, "%" APR_INT64_T_FMT, cap_cents)));
    json_object_set_new(o, "currency", json_string("USD"));
    json_object_set_new(o, "period", json_string(period));
    json_object_set_new(o, "source", cs_limits_scope_json(source_type, source_id));
    json_object_set_new(o, "spend_limit_id", cs_limits_str_or_null(limit_id));
    json_object_set_new(o, "period_to_date_spend",
                        json_string(cs_limits_cents_rounded(p, spent_micro)));
    return o;
}

json_t *cs_limits_cost_item_json(apr_pool_t *p, apr_time_t start, apr_time_t end, const char *actor,
                                 const char *actor_email, const char *group, int by_group,
                                 apr_int64_t micro)
{
    /* the Anthropic cost report's group, in its order; we fill two of them */
    static const char *const keys[] = {"product",
                                       "model",
                                       "context_window",
                                       "inference_geo",
                                       "speed",
                                       "slack_channel_id",
                                       "claude_tag_category",
                                       "claude_tag_user_id",
                                       "rbac_group_id",
                                       "workspace_id",
                                       "service_tier",
                                       "user_profile_id",
                                       "agent_id",
                                       "environment_id",
                                       "deployment_id",
                                       "session_id",
                                       "actor",
                                       "actor_type",
                                       "api_key_id",
                                       "cost_type",
                                       "token_type",
                                       NULL};
    json_t *g = json_object();
    const char *amount = cs_limits_cents_decimal(p, micro);
    int i;

    for (i = 0; keys[i] != NULL; i++) {
        json_t *v = NULL;
        if (strcmp(keys[i], "rbac_group_id") == 0 && by_group && group != NULL) {
            v = json_string(group);
        }
        else if (strcmp(keys[i], "actor") == 0 && actor != NULL) {
            v = json_pack("{s:s,s:s,s:o}", "type", "user_actor", "user_id", actor, "email_address",
                          cs_limits_str_or_null(actor_email));
        }
        else if (strcmp(keys[i], "actor_type") == 0 && actor != NULL) {
            v = json_string("user_actor");
        }
        json_object_set_new(g, keys[i], v ? v : json_null());
    }
    return json_pack("{s:s,s:s,s:o,s:{s:s,s:s,s:s,s:n}}", "starting_at",
                     cs_limits_time_format(p, start, 0), "ending_at",
                     cs_limits_time_format(p, end, 0), "group", g, "cost", "currency", "USD",
                     "amount", amount, "list_amount", amount, "requests");
}

/* The cap the client's headers describe: the exceeded one that resets last,
 * else the fullest (the first of equals, in period order). */
static int cs_limits_active(const cs_limit_usage_t *caps, int n, const apr_time_t *ends)
{
    int i, best = -1, over = -1;
    double best_util = -1.0;

    for (i = 0; i < n; i++) {
        double util;
        if (caps[i].cap_cents < 0) {
            continue;
        }
        util = caps[i].cap_cents == 0
                   ? 1.0
                   : (double)caps[i].spent_micro / ((double)caps[i].cap_cents * 10000.0);
        if (util >= 1.0 && (over < 0 || ends[i] >= ends[over])) {
            over = i;
        }
        if (util > best_util) {
            best_util = util;
            best = i;
        }
    }
    return over >= 0 ? over : best;
}

static const char *cs_limits_severity(const cs_limit_usage_t *c)
{
    apr_int64_t whole = c->cap_cents * 10000;

    if (c->cap_cents == 0 || c->spent_micro >= whole) {
        return "critical";
    }
    /* the client warns past 75%, as the allowed_warning headers do */
    if ((double)c->spent_micro > 0.75 * (double)whole) {
        return "warning";
    }
    return "normal";
}

json_t *cs_limits_usage_json(apr_pool_t *p, const cs_limit_usage_t *caps, int n, apr_time_t now)
{
    json_t *extra = json_object(), *limits = json_array();
    apr_time_t ends[3], start;
    apr_int64_t spent[3] = {0, 0, 0};
    int i, active;

    if (n > 3) {
        n = 3;
    }
    for (i = 0; i < n; i++) {
        cs_period_bounds(caps[i].period, now, &start, &ends[i]);
        if (caps[i].period >= CS_PERIOD_DAILY && caps[i].period <= CS_PERIOD_MONTHLY) {
            spent[caps[i].period] = caps[i].spent_micro;
        }
    }
    active = cs_limits_active(caps, n, ends);
    json_object_set_new(extra, "is_enabled", json_true());
    if (active < 0) {
        /* no cap: the spend of the month, day and week, in whole cents */
        json_object_set_new(extra, "monthly_limit", json_null());
        json_object_set_new(extra, "used_credits", json_integer(spent[CS_PERIOD_MONTHLY] / 10000));
        json_object_set_new(extra, "utilization", json_null());
        json_object_set_new(extra, "currency", json_string("USD"));
        json_object_set_new(extra, "daily",
                            json_pack("{s:n,s:I,s:n}", "limit", "used_credits",
                                      (json_int_t)(spent[CS_PERIOD_DAILY] / 10000), "utilization"));
        json_object_set_new(extra, "weekly",
                            json_pack("{s:n,s:I,s:n}", "limit", "used_credits",
                                      (json_int_t)(spent[CS_PERIOD_WEEKLY] / 10000),
                                      "utilization"));
        return json_pack("{s:o,s:o}", "extra_usage", extra, "limits", limits);
    }
    json_object_set_new(extra, "monthly_limit", json_integer(caps[active].cap_cents));
    json_object_set_new(extra, "used_credits", json_integer(caps[active].spent_micro / 10000));
    json_object_set_new(
        extra, "utilization",
        json_integer(cs_limits_percent(caps[active].spent_micro, caps[active].cap_cents)));
    json_object_set_new(extra, "currency", json_string("USD"));
    for (i = 0; i < n; i++) {
        if (caps[i].cap_cents < 0) {
            continue;
        }
        json_array_append_new(
            limits, json_pack("{s:s,s:s,s:I,s:s,s:s,s:b}", "kind", "spend", "group",
                              cs_period_name(caps[i].period), "percent",
                              (json_int_t)cs_limits_percent(caps[i].spent_micro, caps[i].cap_cents),
                              "resets_at", cs_limits_time_format(p, ends[i], 1), "severity",
                              cs_limits_severity(&caps[i]), "is_active", i == active));
    }
    return json_pack("{s:o,s:o}", "extra_usage", extra, "limits", limits);
}

json_t *cs_limits_error_json(const char *type, const char *message, const char *request_id)
{
    return json_pack("{s:s,s:{s:s,s:s},s:s}", "type", "error", "error", "type", type, "message",
                     message, "request_id", request_id);
}
