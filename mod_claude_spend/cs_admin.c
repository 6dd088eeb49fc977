/* cs_admin: the spend admin API and /api/oauth/usage, as the reference
 * gateway answers them (PROTOCOL.md §8, captures 27 and 70-88).
 *
 * Each request borrows one pooled connection for a few short, parameterised
 * statements and gives it back before the answer is written. Mutations run
 * in one transaction with their claude_admin_audit row; upserts of one
 * (scope, period) are serialised by an advisory lock. Effective caps come
 * from claude_admit called without a request id, which reserves nothing.
 * The JSON shapes are built by cs_limits.c. */
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_optional.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_script.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "cs_private.h"
#include "cs_admin.h"
#include "cs_limits.h"
#include "cs_period.h"

#define CS_ADMIN_BODY_MAX 65536
#define CS_ADMIN_PREFIX "/v1/organizations"
/* advisory lock class of limit upserts (7243001: migrations, 7243002: admission) */
#define CS_ADMIN_LOCK_CLASS "7243003"

/* A spend limit's columns, in cs_admin_row() order; $1 is always the current
 * month's key (the pooled budget's period to date). */
#define CS_TS_FMT " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define CS_LIMIT_COLS                                                                              \
    "l.id, l.scope_type, l.scope_id, l.period, l.amount_cents, l.currency, l.pooled_enabled, "     \
    "l.pooled_amount_cents, l.pooled_paused, to_char(l.created_at" CS_TS_FMT ", "                  \
    "to_char(l.updated_at" CS_TS_FMT ", (SELECT ps.micro_usd FROM claude_pooled_spend ps "         \
    "WHERE ps.rbac_group_id = l.scope_id AND ps.period_key = $1)"

/** One admin request. */
typedef struct cs_admin_t {
    request_rec *r;
    const char *actor;
    int can_write;
    apr_table_t *args;
    PGconn *conn;
    int broken;
    /* the answer, written once the connection is back */
    int status;
    const char *body;
    int no_store;
} cs_admin_t;

/* --- answers ------------------------------------------------------------ */

static void cs_admin_set(cs_admin_t *a, int status, const char *body, int no_store)
{
    a->status = status;
    a->body = body;
    a->no_store = no_store;
}

static const char *cs_admin_request_id(request_rec *r)
{
    const char *id = cs_note_get(r, "claude-admin-request-id");

    return id ? id : "req_00000000000000000000000000000000";
}

static void cs_admin_fail(cs_admin_t *a, int status, const char *type, const char *message)
{
    cs_admin_set(
        a, status,
        cs_limits_dump(a->r->pool, cs_limits_error_json(type, message, cs_admin_request_id(a->r))),
        0);
}

static void cs_admin_invalid(cs_admin_t *a, const char *message)
{
    cs_admin_fail(a, HTTP_BAD_REQUEST, "invalid_request_error", message);
}

static int cs_admin_write(request_rec *r, int status, const char *body, int no_store)
{
    if (no_store) {
        apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    }
    r->status = status;
    ap_set_content_type(r, "application/json;charset=utf-8");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

/* --- the database ------------------------------------------------------- */

static apr_status_t cs_admin_pqclear(void *res)
{
    PQclear(res);
    return APR_SUCCESS;
}

static int cs_admin_db_open(cs_admin_t *a)
{
    struct pg_conn *conn;
    apr_status_t rv = cs_db_acquire(a->r->server, &conn);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv == APR_ENOTIMPL ? 0 : rv, a->r,
                      CS_LOGNO(0602) "spend admin: %s",
                      rv == APR_ENOTIMPL ? "no ClaudeGatewayDatabase configured"
                                         : "no database connection");
        cs_admin_fail(a, HTTP_SERVICE_UNAVAILABLE, "api_error", "store unavailable");
        return 0;
    }
    a->conn = (PGconn *)conn;
    a->broken = 0;
    return 1;
}

static void cs_admin_db_close(cs_admin_t *a)
{
    if (a->conn != NULL) {
        cs_db_release(a->r->server, (struct pg_conn *)a->conn, a->broken);
        a->conn = NULL;
    }
}

/* One statement; the result is cleared with r->pool. NULL (logged, answer
 * set to 503) when it fails. */
static PGresult *cs_admin_exec(cs_admin_t *a, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(a->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        apr_pool_cleanup_register(a->r->pool, res, cs_admin_pqclear, apr_pool_cleanup_null);
        return res;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, a->r, CS_LOGNO(0603) "spend admin: database: %s",
                  PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                      ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                      : PQerrorMessage(a->conn));
    PQclear(res);
    a->broken = 1; /* whatever state it is in, it is not reused */
    cs_admin_fail(a, HTTP_SERVICE_UNAVAILABLE, "api_error", "store unavailable");
    return NULL;
}

static int cs_admin_begin(cs_admin_t *a)
{
    return cs_admin_exec(a, "BEGIN", 0, NULL) != NULL;
}

static int cs_admin_commit(cs_admin_t *a)
{
    return cs_admin_exec(a, "COMMIT", 0, NULL) != NULL;
}

static void cs_admin_rollback(cs_admin_t *a)
{
    PGresult *res = PQexec(a->conn, "ROLLBACK");

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        a->broken = 1;
    }
    PQclear(res);
}

static const char *cs_admin_val(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static void cs_admin_row(const PGresult *res, int i, cs_limit_row_t *row)
{
    row->id = PQgetvalue(res, i, 0);
    row->scope_type = PQgetvalue(res, i, 1);
    row->scope_id = PQgetvalue(res, i, 2);
    row->period = PQgetvalue(res, i, 3);
    row->amount = cs_admin_val(res, i, 4);
    row->currency = PQgetvalue(res, i, 5);
    row->pooled = *PQgetvalue(res, i, 6) == 't';
    row->pooled_amount = cs_admin_val(res, i, 7);
    row->pooled_paused = *PQgetvalue(res, i, 8) == 't';
    row->created_at = PQgetvalue(res, i, 9);
    row->updated_at = PQgetvalue(res, i, 10);
    row->pooled_spent_micro =
        PQgetisnull(res, i, 11) ? 0 : (apr_int64_t)apr_atoi64(PQgetvalue(res, i, 11));
}

static const char *cs_admin_month(request_rec *r)
{
    return cs_period_key(r->pool, CS_PERIOD_MONTHLY, apr_time_now());
}

/* --- query strings ------------------------------------------------------ */

typedef struct cs_admin_multi_t {
    const char *name;
    apr_array_header_t *values;
} cs_admin_multi_t;

static int cs_admin_multi_cb(void *rec, const char *key, const char *value)
{
    cs_admin_multi_t *m = rec;
    apr_size_t n = strlen(m->name);

    /* name[] and the plain name both count */
    if (strncmp(key, m->name, n) == 0 && (key[n] == '\0' || strcmp(key + n, "[]") == 0)) {
        APR_ARRAY_PUSH(m->values, const char *) = value;
    }
    return 1;
}

/* The query string with every value of a repeated key (group_by[]=a&
 * group_by[]=b): ap_args_to_table keeps only one. */
static apr_table_t *cs_admin_args_parse(request_rec *r)
{
    apr_table_t *t = apr_table_make(r->pool, 8);
    char *copy, *pair, *state, *eq;

    if (r->args == NULL) {
        return t;
    }
    copy = apr_pstrdup(r->pool, r->args);
    for (pair = apr_strtok(copy, "&", &state); pair != NULL; pair = apr_strtok(NULL, "&", &state)) {
        eq = strchr(pair, '=');
        if (eq != NULL) {
            *eq++ = '\0';
        }
        /* a value that does not decode is dropped: it can name nothing valid */
        if (ap_unescape_urlencoded(pair) != OK ||
            (eq != NULL && ap_unescape_urlencoded(eq) != OK)) {
            continue;
        }
        apr_table_addn(t, pair, eq ? eq : "");
    }
    return t;
}

static apr_array_header_t *cs_admin_args_all(cs_admin_t *a, const char *name)
{
    cs_admin_multi_t m;

    m.name = name;
    m.values = apr_array_make(a->r->pool, 4, sizeof(const char *));
    if (a->args != NULL) {
        apr_table_do(cs_admin_multi_cb, &m, a->args, NULL);
    }
    return m.values;
}

static const char *cs_admin_arg(cs_admin_t *a, const char *name)
{
    const char *v = a->args ? apr_table_get(a->args, name) : NULL;

    return (v != NULL && *v != '\0') ? v : NULL;
}

/* --- spend limits ------------------------------------------------------- */

static void cs_admin_list(cs_admin_t *a)
{
    static const char *const sql_after =
        "SELECT " CS_LIMIT_COLS " FROM claude_spend_limits l WHERE ($2::text IS NULL OR "
        "l.scope_type = $2) AND ($3::bigint IS NULL OR l.seq > $3) ORDER BY l.seq LIMIT $4";
    static const char *const sql_before =
        "SELECT " CS_LIMIT_COLS " FROM claude_spend_limits l WHERE ($2::text IS NULL OR "
        "l.scope_type = $2) AND l.seq < $3 ORDER BY l.seq DESC LIMIT $4";
    const char *scope = cs_admin_arg(a, "scope_type"), *after = cs_admin_arg(a, "after_id");
    const char *before = cs_admin_arg(a, "before_id"), *cursor, *params[4];
    json_t *data, *first = NULL, *last = NULL;
    PGresult *res;
    int limit, i, n;

    if (cs_limits_count_parse(cs_admin_arg(a, "limit"), 20, 1, 1000, &limit) != 0) {
        cs_admin_invalid(a, "limit: must be an integer from 1 to 1000");
        return;
    }
    if (scope != NULL && strcmp(scope, "user") != 0 && strcmp(scope, "rbac_group") != 0 &&
        strcmp(scope, "organization") != 0) {
        cs_admin_invalid(a, "scope_type: must be organization, rbac_group or user");
        return;
    }
    if (after != NULL && before != NULL) {
        cs_admin_invalid(a, "after_id and before_id are mutually exclusive");
        return;
    }
    cursor = after ? after : before;
    if (!cs_admin_db_open(a)) {
        return;
    }
    params[0] = cs_admin_month(a->r);
    params[1] = scope;
    params[2] = NULL;
    params[3] = apr_itoa(a->r->pool, limit + 1);
    if (cursor != NULL) {
        res = cs_admin_exec(a, "SELECT seq FROM claude_spend_limits WHERE id = $1", 1, &cursor);
        if (res == NULL) {
            return;
        }
        if (PQntuples(res) == 0) {
            cs_admin_invalid(a, after ? "after_id: no spend limit has this id"
                                      : "before_id: no spend limit has this id");
            return;
        }
        params[2] = apr_pstrdup(a->r->pool, PQgetvalue(res, 0, 0));
    }
    res = cs_admin_exec(a, before ? sql_before : sql_after, 4, params);
    if (res == NULL) {
        return;
    }
    n = PQntuples(res) > limit ? limit : PQntuples(res);
    data = json_array();
    for (i = 0; i < n; i++) {
        cs_limit_row_t row;
        /* before_id pages backwards: the rows came newest first */
        cs_admin_row(res, before ? n - 1 - i : i, &row);
        json_array_append_new(data, cs_limits_object_json(&row));
    }
    if (n > 0) {
        first = json_object_get(json_array_get(data, 0), "id");
        last = json_object_get(json_array_get(data, (size_t)n - 1), "id");
    }
    cs_admin_set(a, HTTP_OK,
                 cs_limits_dump(a->r->pool, json_pack("{s:o,s:b,s:O?,s:O?}", "data", data,
                                                      "has_more", PQntuples(res) > limit,
                                                      "first_id", first, "last_id", last)),
                 1);
}

static void cs_admin_get(cs_admin_t *a, const char *id)
{
    const char *params[2];
    cs_limit_row_t row;
    PGresult *res;

    if (!cs_admin_db_open(a)) {
        return;
    }
    params[0] = cs_admin_month(a->r);
    params[1] = id;
    res = cs_admin_exec(a, "SELECT " CS_LIMIT_COLS " FROM claude_spend_limits l WHERE l.id = $2", 2,
                        params);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        cs_admin_fail(a, HTTP_NOT_FOUND, "not_found_error", "spend limit not found");
        return;
    }
    cs_admin_row(res, 0, &row);
    cs_admin_set(a, HTTP_OK, cs_limits_dump(a->r->pool, cs_limits_object_json(&row)), 1);
}

static const char *cs_admin_body(request_rec *r, apr_size_t *len, int *too_large)
{
    char *buf = apr_palloc(r->pool, CS_ADMIN_BODY_MAX + 1);
    apr_size_t got = 0;
    long n;

    *len = 0;
    *too_large = 0;
    if (ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK) {
        return NULL;
    }
    if (!ap_should_client_block(r)) {
        return "";
    }
    while ((n = ap_get_client_block(r, buf + got, CS_ADMIN_BODY_MAX - got)) > 0) {
        got += (apr_size_t)n;
        if (got == CS_ADMIN_BODY_MAX) {
            *too_large = 1;
            return NULL;
        }
    }
    if (n < 0) {
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static const char *cs_admin_new_id(apr_pool_t *p)
{
    unsigned char b[16];
    char *id = apr_palloc(p, 4 + 2 * sizeof(b) + 1);
    int i;

    memcpy(id, "spl_", 4);
    if (apr_generate_random_bytes(b, sizeof(b)) != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < (int)sizeof(b); i++) {
        apr_snprintf(id + 4 + 2 * i, 3, "%02x", b[i]);
    }
    return id;
}

static PGresult *cs_admin_audit(cs_admin_t *a, const char *action, const char *target,
                                const char *before, const char *after)
{
    const char *params[5];

    params[0] = a->actor;
    params[1] = action;
    params[2] = target;
    params[3] = before;
    params[4] = after;
    return cs_admin_exec(a,
                         "INSERT INTO claude_admin_audit (actor, action, target, before, after) "
                         "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)",
                         5, params);
}

static void cs_admin_upsert_tx(cs_admin_t *a, const cs_limit_input_t *in)
{
    const char *params[11], *before = NULL, *id = cs_admin_new_id(a->r->pool);
    cs_limit_row_t row;
    PGresult *res;

    params[0] = cs_admin_month(a->r);
    params[1] = apr_pstrcat(a->r->pool, in->scope_type, ":", in->scope_id, ":", in->period, NULL);
    if (id == NULL || !cs_admin_begin(a) ||
        cs_admin_exec(a, "SELECT pg_advisory_xact_lock(" CS_ADMIN_LOCK_CLASS ", hashtext($1))", 1,
                      params + 1) == NULL) {
        return;
    }
    params[1] = in->scope_type;
    params[2] = in->scope_id;
    params[3] = in->period;
    res = cs_admin_exec(a,
                        "SELECT " CS_LIMIT_COLS " FROM claude_spend_limits l WHERE "
                        "l.scope_type = $2 AND l.scope_id = $3 AND l.period = $4",
                        4, params);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) > 0) {
        cs_admin_row(res, 0, &row);
        before = cs_limits_dump(a->r->pool, cs_limits_audit_json(&row));
    }
    params[4] = id;
    params[5] = in->amount;
    params[6] = in->pooled ? "t" : "f";
    params[7] = in->pooled ? in->pooled_amount : NULL;
    params[8] = in->pooled_paused ? "t" : "f";
    params[9] = a->actor;
    res = cs_admin_exec(
        a,
        "INSERT INTO claude_spend_limits AS l (id, scope_type, scope_id, period, amount_cents, "
        "currency, pooled_enabled, pooled_amount_cents, pooled_paused, created_by) VALUES ($5, "
        "$2, $3, $4, $6::bigint, 'USD', $7::boolean, $8::bigint, $9::boolean, $10) ON CONFLICT "
        "(scope_type, scope_id, period) DO UPDATE SET amount_cents = EXCLUDED.amount_cents, "
        "currency = EXCLUDED.currency, pooled_enabled = EXCLUDED.pooled_enabled, "
        "pooled_amount_cents = EXCLUDED.pooled_amount_cents, pooled_paused = "
        "EXCLUDED.pooled_paused, updated_at = now() RETURNING " CS_LIMIT_COLS,
        10, params);
    if (res == NULL || PQntuples(res) != 1) {
        return;
    }
    cs_admin_row(res, 0, &row);
    if (cs_admin_audit(a, "spend_limit.upsert", row.id, before,
                       cs_limits_dump(a->r->pool, cs_limits_audit_json(&row))) == NULL ||
        !cs_admin_commit(a)) {
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, a->r,
                  CS_LOGNO(0620) "spend limit %s (%s %s %s) set to %s cents by %s", row.id,
                  row.scope_type, row.scope_id, row.period, row.amount ? row.amount : "unlimited",
                  a->actor);
    cs_admin_set(a, HTTP_OK, cs_limits_dump(a->r->pool, cs_limits_object_json(&row)), 0);
}

static void cs_admin_upsert(cs_admin_t *a)
{
    cs_limit_input_t in;
    const char *body, *msg;
    apr_size_t len;
    int too_large;

    body = cs_admin_body(a->r, &len, &too_large);
    if (body == NULL) {
        a->r->connection->keepalive = AP_CONN_CLOSE;
        if (too_large) {
            cs_admin_fail(a, HTTP_REQUEST_ENTITY_TOO_LARGE, "request_too_large",
                          "request body too large");
        }
        else {
            cs_admin_invalid(a, "invalid JSON body");
        }
        return;
    }
    if ((msg = cs_limits_parse(a->r->pool, body, len, &in)) != NULL) {
        cs_admin_invalid(a, msg);
        return;
    }
    if (!cs_admin_db_open(a)) {
        return;
    }
    cs_admin_upsert_tx(a, &in);
    if (a->status != HTTP_OK) {
        cs_admin_rollback(a);
    }
}

static void cs_admin_delete_tx(cs_admin_t *a, const char *id)
{
    const char *params[2];
    cs_limit_row_t row;
    PGresult *res;

    params[0] = id;
    if (!cs_admin_begin(a) ||
        (res = cs_admin_exec(a,
                             "SELECT scope_type || ':' || scope_id || ':' || period FROM "
                             "claude_spend_limits WHERE id = $1",
                             1, params)) == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        cs_admin_fail(a, HTTP_NOT_FOUND, "not_found_error", "spend limit not found");
        return;
    }
    params[0] = PQgetvalue(res, 0, 0);
    if (cs_admin_exec(a, "SELECT pg_advisory_xact_lock(" CS_ADMIN_LOCK_CLASS ", hashtext($1))", 1,
                      params) == NULL) {
        return;
    }
    params[0] = cs_admin_month(a->r);
    params[1] = id;
    res = cs_admin_exec(
        a, "DELETE FROM claude_spend_limits AS l WHERE l.id = $2 RETURNING " CS_LIMIT_COLS, 2,
        params);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        cs_admin_fail(a, HTTP_NOT_FOUND, "not_found_error", "spend limit not found");
        return;
    }
    cs_admin_row(res, 0, &row);
    if (cs_admin_audit(a, "spend_limit.delete", row.id,
                       cs_limits_dump(a->r->pool, cs_limits_audit_json(&row)), NULL) == NULL ||
        !cs_admin_commit(a)) {
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, a->r,
                  CS_LOGNO(0621) "spend limit %s (%s %s %s) deleted by %s", row.id, row.scope_type,
                  row.scope_id, row.period, a->actor);
    cs_admin_set(a, HTTP_OK,
                 cs_limits_dump(a->r->pool, json_pack("{s:s,s:s}", "type", "spend_limit_deleted",
                                                      "id", row.id)),
                 0);
}

static void cs_admin_delete(cs_admin_t *a, const char *id)
{
    if (!cs_admin_db_open(a)) {
        return;
    }
    cs_admin_delete_tx(a, id);
    if (a->status != HTTP_OK) {
        cs_admin_rollback(a);
    }
}

/* --- effective limits ---------------------------------------------------- */

/* principals asked for, else those with recorded spend; q filters */
#define CS_EFFECTIVE_WHO                                                                           \
    "SELECT c.principal FROM (SELECT x.principal FROM jsonb_array_elements_text("                  \
    "coalesce($1::jsonb, '[]')) AS x(principal) UNION SELECT DISTINCT s.principal FROM "           \
    "claude_spend s WHERE $1::jsonb IS NULL) c LEFT JOIN claude_principals pr ON "                 \
    "pr.principal = c.principal WHERE $2::text IS NULL OR strpos(lower(c.principal), "             \
    "lower($2)) > 0 OR strpos(lower(coalesce(pr.email, '')), lower($2)) > 0 OR "                   \
    "strpos(lower(coalesce(pr.name, '')), lower($2)) > 0 "

#define CS_GROUPS_OF(j) "CASE WHEN jsonb_typeof(" j ") = 'array' THEN " j " ELSE '[]'::jsonb END"
#define CS_PR_GROUPS CS_GROUPS_OF("coalesce(pr.groups, '[]'::jsonb)")

static void cs_admin_effective_rows(cs_admin_t *a, json_t *who, const apr_array_header_t *periods,
                                    json_t *data)
{
    static const char *const sql =
        "SELECT p.principal, pr.email, pr.name, (" CS_PR_GROUPS ")::text, a.period, a.cap_cents, "
        "a.limit_id, a.source, l.scope_id, a.spent_micro "
        "FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS p(principal, ord) "
        "LEFT JOIN claude_principals pr ON pr.principal = p.principal "
        "CROSS JOIN LATERAL claude_admit(p.principal, ARRAY(SELECT "
        "jsonb_array_elements_text(" CS_PR_GROUPS
        ")), ARRAY[$2, $3, $4]::text[], 0, NULL::text, 0, $5) AS a "
        "LEFT JOIN claude_spend_limits l ON l.id = a.limit_id "
        "ORDER BY p.ord, array_position(ARRAY['daily', 'weekly', 'monthly'], a.period)";
    const char *params[5];
    apr_time_t now = apr_time_now();
    PGresult *res;
    int i, j;

    params[0] = cs_limits_dump(a->r->pool, json_incref(who));
    params[1] = cs_period_key(a->r->pool, CS_PERIOD_DAILY, now);
    params[2] = cs_period_key(a->r->pool, CS_PERIOD_WEEKLY, now);
    params[3] = cs_period_key(a->r->pool, CS_PERIOD_MONTHLY, now);
    params[4] = cs_srv_group_mode(cs_srv_get(a->r->server));
    if ((res = cs_admin_exec(a, sql, 5, params)) == NULL) {
        return;
    }
    for (i = 0; i < PQntuples(res); i++) {
        const char *period = PQgetvalue(res, i, 4);
        json_t *groups;
        int wanted = periods->nelts == 0;

        for (j = 0; j < periods->nelts; j++) {
            wanted = wanted || strcmp(APR_ARRAY_IDX(periods, j, const char *), period) == 0;
        }
        if (!wanted) {
            continue;
        }
        groups = json_loads(PQgetvalue(res, i, 3), 0, NULL);
        json_array_append_new(
            data,
            cs_limits_effective_json(
                PQgetvalue(res, i, 0), groups, cs_admin_val(res, i, 2), cs_admin_val(res, i, 1),
                PQgetisnull(res, i, 5) ? -1 : (apr_int64_t)apr_atoi64(PQgetvalue(res, i, 5)),
                period, cs_admin_val(res, i, 7), cs_admin_val(res, i, 8), cs_admin_val(res, i, 6),
                (apr_int64_t)apr_atoi64(PQgetvalue(res, i, 9)), a->r->pool));
        json_decref(groups);
    }
}

static void cs_admin_effective(cs_admin_t *a)
{
    static const char *const sql_who = CS_EFFECTIVE_WHO "ORDER BY c.principal OFFSET $3 LIMIT $4";
    static const char *const sql_who_by_spend =
        CS_EFFECTIVE_WHO "ORDER BY (SELECT s2.micro_usd FROM claude_spend s2 WHERE s2.principal = "
                         "c.principal AND s2.period_key = $5) DESC NULLS LAST, c.principal "
                         "OFFSET $3 LIMIT $4";
    apr_array_header_t *users = cs_admin_args_all(a, "user_ids");
    apr_array_header_t *one = cs_admin_args_all(a, "user_id");
    apr_array_header_t *periods = cs_admin_args_all(a, "period");
    const char *sort = cs_admin_arg(a, "sort"), *params[5];
    json_t *who = NULL, *page, *data;
    cs_period_e by = CS_PERIOD_DAILY;
    PGresult *res;
    int limit, offset, i;

    apr_array_cat(users, one);
    for (i = 0; i < periods->nelts; i++) {
        cs_period_e e;
        if (cs_period_parse(APR_ARRAY_IDX(periods, i, const char *), &e) != 0) {
            cs_admin_invalid(a, "period[]: must be daily, weekly or monthly");
            return;
        }
        by = e;
    }
    if (sort != NULL && strcmp(sort, "spend_desc") != 0) {
        cs_admin_invalid(a, "sort: must be spend_desc");
        return;
    }
    if (sort != NULL && periods->nelts != 1) {
        cs_admin_invalid(a, "sort=spend_desc needs exactly one period[]");
        return;
    }
    if (cs_limits_count_parse(cs_admin_arg(a, "limit"), 20, 1, 1000, &limit) != 0) {
        cs_admin_invalid(a, "limit: must be an integer from 1 to 1000");
        return;
    }
    /* next_page is an offset into the ordered principals */
    if (cs_limits_count_parse(cs_admin_arg(a, "page"), 0, 0, 100000000, &offset) != 0) {
        cs_admin_invalid(a, "page: not a next_page value of this API");
        return;
    }
    if (users->nelts > 0) {
        who = json_array();
        for (i = 0; i < users->nelts; i++) {
            json_array_append_new(who, json_string(APR_ARRAY_IDX(users, i, const char *)));
        }
    }
    params[0] = who ? cs_limits_dump(a->r->pool, who) : NULL;
    params[1] = cs_admin_arg(a, "q");
    params[2] = apr_itoa(a->r->pool, offset);
    params[3] = apr_itoa(a->r->pool, limit + 1);
    params[4] = cs_period_key(a->r->pool, by, apr_time_now());
    if (!cs_admin_db_open(a) ||
        (res = cs_admin_exec(a, sort ? sql_who_by_spend : sql_who, sort ? 5 : 4, params)) == NULL) {
        return;
    }
    who = json_array();
    for (i = 0; i < PQntuples(res) && i < limit; i++) {
        json_array_append_new(who, json_string(PQgetvalue(res, i, 0)));
    }
    page = PQntuples(res) > limit ? json_string(apr_itoa(a->r->pool, offset + limit)) : json_null();
    data = json_array();
    if (json_array_size(who) > 0) {
        cs_admin_effective_rows(a, who, periods, data);
    }
    json_decref(who);
    if (a->status != 0) {
        json_decref(page);
        json_decref(data);
        return;
    }
    cs_admin_set(
        a, HTTP_OK,
        cs_limits_dump(a->r->pool, json_pack("{s:o,s:o}", "data", data, "next_page", page)), 1);
}

/* --- audit trail --------------------------------------------------------- */

static json_t *cs_admin_jsonb(const PGresult *res, int i, int col)
{
    json_t *j = PQgetisnull(res, i, col) ? NULL : json_loads(PQgetvalue(res, i, col), 0, NULL);

    return j ? j : json_null();
}

static void cs_admin_audit_list(cs_admin_t *a)
{
    const char *after = cs_admin_arg(a, "after_id"), *params[2];
    json_t *data;
    PGresult *res;
    int limit, i, n;

    if (cs_limits_count_parse(cs_admin_arg(a, "limit"), 100, 1, 1000, &limit) != 0) {
        cs_admin_invalid(a, "limit: must be an integer from 1 to 1000");
        return;
    }
    if (after != NULL && (strlen(after) > 18 || strspn(after, "0123456789") != strlen(after))) {
        cs_admin_invalid(a, "after_id: must be the numeric id of an audit event");
        return;
    }
    params[0] = after;
    params[1] = apr_itoa(a->r->pool, limit + 1);
    if (!cs_admin_db_open(a) ||
        (res = cs_admin_exec(a,
                             "SELECT id, to_char(at" CS_TS_FMT
                             ", actor, action, target, before::text, "
                             "after::text, reason FROM claude_admin_audit WHERE ($1::bigint IS "
                             "NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                             2, params)) == NULL) {
        return;
    }
    n = PQntuples(res) > limit ? limit : PQntuples(res);
    data = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(
            data, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:s?}", "type", "audit_event", "id",
                            PQgetvalue(res, i, 0), "created_at", PQgetvalue(res, i, 1), "actor",
                            PQgetvalue(res, i, 2), "action", PQgetvalue(res, i, 3), "target_id",
                            PQgetvalue(res, i, 4), "before", cs_admin_jsonb(res, i, 5), "after",
                            cs_admin_jsonb(res, i, 6), "reason", cs_admin_val(res, i, 7)));
    }
    cs_admin_set(a, HTTP_OK,
                 cs_limits_dump(a->r->pool, json_pack("{s:o,s:b}", "data", data, "has_more",
                                                      PQntuples(res) > limit)),
                 1);
}

/* --- cost report --------------------------------------------------------- */

#define CS_COST_FROM " FROM claude_ledger l"
#define CS_COST_GROUPS                                                                             \
    " LEFT JOIN LATERAL jsonb_array_elements_text(" CS_GROUPS_OF("l.groups") ") AS g(grp) ON true"
#define CS_COST_WHERE                                                                              \
    " WHERE l.at >= 'epoch'::timestamptz + $1::bigint * interval '1 microsecond' AND l.at < "      \
    "'epoch'::timestamptz + $2::bigint * interval '1 microsecond' "

static void cs_admin_cost(cs_admin_t *a)
{
    /* columns: sub, email, group, micro-USD; index: by actor + 2 * by group */
    static const char *const sql[4] = {
        "SELECT NULL, NULL, NULL, coalesce(sum(l.cost_micro_usd), 0)" CS_COST_FROM CS_COST_WHERE,
        "SELECT l.sub, max(l.email), NULL, sum(l.cost_micro_usd)" CS_COST_FROM CS_COST_WHERE
        "GROUP BY l.sub ORDER BY l.sub",
        "SELECT NULL, NULL, g.grp, sum(l.cost_micro_usd)" CS_COST_FROM CS_COST_GROUPS CS_COST_WHERE
        "GROUP BY g.grp ORDER BY g.grp NULLS LAST",
        "SELECT l.sub, max(l.email), g.grp, sum(l.cost_micro_usd)" CS_COST_FROM CS_COST_GROUPS
            CS_COST_WHERE "GROUP BY l.sub, g.grp ORDER BY l.sub, g.grp NULLS LAST"};
    apr_array_header_t *by = cs_admin_args_all(a, "group_by");
    const char *start_s = cs_admin_arg(a, "starting_at"), *end_s = cs_admin_arg(a, "ending_at");
    const char *params[2];
    apr_time_t start, end, day_start, now = apr_time_now();
    int by_actor = 0, by_group = 0, i;
    json_t *data;
    PGresult *res;

    for (i = 0; i < by->nelts; i++) {
        const char *g = APR_ARRAY_IDX(by, i, const char *);
        if (strcmp(g, "actor") == 0) {
            by_actor = 1;
        }
        else if (strcmp(g, "rbac_group_id") == 0) {
            by_group = 1;
        }
        else {
            cs_admin_invalid(a, "group_by[]: must be actor or rbac_group_id; the gateway "
                                "records spend per user per day only");
            return;
        }
    }
    if (start_s == NULL) {
        cs_admin_invalid(a, "starting_at: Required");
        return;
    }
    if (cs_limits_time_parse(start_s, &start) != 0) {
        cs_admin_invalid(a, "starting_at: must be an RFC 3339 time such as "
                            "2026-11-01T00:00:00Z");
        return;
    }
    if (end_s == NULL) {
        /* to the end of the current UTC day, as the reference */
        cs_period_bounds(CS_PERIOD_DAILY, now, &day_start, &end);
    }
    else if (cs_limits_time_parse(end_s, &end) != 0) {
        cs_admin_invalid(a, "ending_at: must be an RFC 3339 time such as "
                            "2026-11-24T00:00:00Z");
        return;
    }
    if (end <= start) {
        cs_admin_invalid(a, "ending_at: must be after starting_at");
        return;
    }
    params[0] = apr_psprintf(a->r->pool, "%" APR_TIME_T_FMT, start);
    params[1] = apr_psprintf(a->r->pool, "%" APR_TIME_T_FMT, end);
    if (!cs_admin_db_open(a) ||
        (res = cs_admin_exec(a, sql[by_actor + 2 * by_group], 2, params)) == NULL) {
        return;
    }
    data = json_array();
    for (i = 0; i < PQntuples(res); i++) {
        json_array_append_new(data, cs_limits_cost_item_json(
                                        a->r->pool, start, end, cs_admin_val(res, i, 0),
                                        cs_admin_val(res, i, 1), cs_admin_val(res, i, 2), by_group,
                                        (apr_int64_t)apr_atoi64(PQgetvalue(res, i, 3))));
    }
    cs_admin_set(a, HTTP_OK,
                 cs_limits_dump(a->r->pool, json_pack("{s:o,s:b,s:n,s:s}", "data", data, "has_more",
                                                      0, "next_page", "data_refreshed_at",
                                                      cs_limits_time_format(a->r->pool, now, 1))),
                 1);
}

/* --- routing ------------------------------------------------------------- */

static void cs_admin_route(cs_admin_t *a)
{
    request_rec *r = a->r;
    const char *path = r->uri;
    int get = r->method_number == M_GET, write;

    if (strncmp(path, CS_ADMIN_PREFIX, sizeof(CS_ADMIN_PREFIX) - 1) == 0) {
        path += sizeof(CS_ADMIN_PREFIX) - 1;
    }
    write = (r->method_number == M_POST && strcmp(path, "/spend_limits") == 0) ||
            (r->method_number == M_DELETE && strncmp(path, "/spend_limits/", 14) == 0);
    if (write && !a->can_write) {
        cs_admin_fail(a, HTTP_FORBIDDEN, "permission_error", "requires write:spend_limits");
        return;
    }
    if (strcmp(path, "/spend_limits") == 0 && get) {
        cs_admin_list(a);
        return;
    }
    if (strcmp(path, "/spend_limits") == 0 && r->method_number == M_POST) {
        cs_admin_upsert(a);
        return;
    }
    if (strcmp(path, "/spend_limits/effective") == 0 && get) {
        cs_admin_effective(a);
        return;
    }
    if (strcmp(path, "/spend_limits/audit") == 0 && get) {
        cs_admin_audit_list(a);
        return;
    }
    if (strcmp(path, "/analytics/cost") == 0 && get) {
        cs_admin_cost(a);
        return;
    }
    if (strncmp(path, "/spend_limits/", 14) == 0 && path[14] != '\0' &&
        ap_strchr_c(path + 14, '/') == NULL) {
        if (get) {
            cs_admin_get(a, path + 14);
            return;
        }
        if (r->method_number == M_DELETE) {
            cs_admin_delete(a, path + 14);
            return;
        }
    }
    cs_admin_fail(a, HTTP_NOT_FOUND, "not_found_error", "not found");
}

static int cs_admin_api(request_rec *r)
{
    cs_admin_t a;

    memset(&a, 0, sizeof(a));
    a.r = r;
    if (r->method_number != M_POST && ap_discard_request_body(r) != OK) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    if (cs_admin_auth_fn(r, &a.actor, &a.can_write) != OK) {
        cs_admin_fail(&a, HTTP_UNAUTHORIZED, "authentication_error",
                      "missing or invalid admin credentials");
    }
    else {
        a.args = cs_admin_args_parse(r);
        cs_admin_route(&a);
    }
    if (a.conn != NULL) {
        cs_admin_db_close(&a);
    }
    if (a.status != HTTP_OK && r->method_number == M_POST && ap_discard_request_body(r) != OK) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    cs_note_set(r, "claude-decision", a.status == HTTP_OK ? "allowed" : "admin_refused");
    return cs_admin_write(r, a.status, a.body, a.no_store);
}

/* --- /api/oauth/usage --------------------------------------------------- */

/* The bearer endpoints' envelope (request_id second), as the gateway's. */
static int cs_usage_fail(request_rec *r, int status, const char *type, const char *message)
{
    json_t *j = json_pack("{s:s,s:s,s:{s:s,s:s}}", "type", "error", "request_id", cs_request_id(r),
                          "error", "type", type, "message", message);

    return cs_admin_write(r, status, cs_limits_dump(r->pool, j), 0);
}

static int cs_usage_report(request_rec *r)
{
    static const char *const sql =
        "SELECT a.period, a.cap_cents, a.spent_micro FROM claude_admit($1, ARRAY(SELECT "
        "jsonb_array_elements_text($2::jsonb)), ARRAY[$3, $4, $5]::text[], 0, NULL::text, 0, $6) "
        "AS a";
    const cg_identity_t *id = cs_identity(r);
    cs_limit_usage_t caps[3];
    const char *params[6];
    apr_time_t now = apr_time_now();
    json_t *groups;
    cs_admin_t a;
    PGresult *res;
    int i, n = 0;

    if (ap_discard_request_body(r) != OK) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    if (r->method_number != M_GET) {
        r->status = HTTP_NOT_FOUND;
        ap_set_content_type(r, "text/plain;charset=utf-8");
        ap_rputs("not found", r);
        return OK;
    }
    if (id == NULL) {
        /* the location lacks AuthType claude-session: never answer anonymously */
        return cs_usage_fail(r, HTTP_UNAUTHORIZED, "authentication_error", "invalid token");
    }
    groups = json_array();
    for (i = 0; id->groups != NULL && i < id->groups->nelts; i++) {
        json_array_append_new(groups, json_string(APR_ARRAY_IDX(id->groups, i, const char *)));
    }
    params[0] = id->sub;
    params[1] = cs_limits_dump(r->pool, groups);
    params[2] = cs_period_key(r->pool, CS_PERIOD_DAILY, now);
    params[3] = cs_period_key(r->pool, CS_PERIOD_WEEKLY, now);
    params[4] = cs_period_key(r->pool, CS_PERIOD_MONTHLY, now);
    params[5] = cs_srv_group_mode(cs_srv_get(r->server));
    memset(&a, 0, sizeof(a));
    a.r = r;
    if (cs_admin_db_open(&a) && (res = cs_admin_exec(&a, sql, 6, params)) != NULL) {
        for (i = 0; i < PQntuples(res) && n < 3; i++) {
            if (cs_period_parse(PQgetvalue(res, i, 0), &caps[n].period) != 0) {
                continue;
            }
            caps[n].cap_cents =
                PQgetisnull(res, i, 1) ? -1 : (apr_int64_t)apr_atoi64(PQgetvalue(res, i, 1));
            caps[n].spent_micro = (apr_int64_t)apr_atoi64(PQgetvalue(res, i, 2));
            n++;
        }
    }
    cs_admin_db_close(&a);
    if (a.status != 0) {
        return cs_usage_fail(r, HTTP_SERVICE_UNAVAILABLE, "api_error", "spend status unavailable");
    }
    cs_note_set(r, "claude-decision", "allowed");
    return cs_admin_write(r, HTTP_OK,
                          cs_limits_dump(r->pool, cs_limits_usage_json(r->pool, caps, n, now)), 1);
}

int cs_admin_handler(request_rec *r)
{
    if (r->handler == NULL) {
        return DECLINED;
    }
    if (strcmp(r->handler, CS_HANDLER_ADMIN) == 0) {
        return cs_admin_api(r);
    }
    if (strcmp(r->handler, CS_HANDLER_USAGE) == 0) {
        return cs_usage_report(r);
    }
    return DECLINED;
}
