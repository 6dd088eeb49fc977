/* cs_admit: admission of a Messages request against the user's spend caps.
 *
 * One round trip in fixups: claude_admit (sql/0004_caps.sql) locks the
 * principal, finds the cap of each period, and reserves the request's
 * largest possible cost when every capped period still has room. The
 * reservation is settled by the statement that appends the ledger row. A
 * refusal is the reference's 429; a database that cannot answer refuses too
 * (ClaudeSpendOnError closed) or lets the request through (open). */
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <libpq-fe.h>

#include "cs_private.h"
#include "cs_admit.h"
#include "cs_caps.h"
#include "cs_period.h"
#include "cs_price.h"

#define CS_ADMIT_SQL                                                                               \
    "SELECT period, cap_cents, spent_micro, reserved_micro, admitted FROM "                        \
    "claude_admit($1, $2::text[], $3::text[], $4::bigint, $5, $6::integer, $7)"

/* A text[] literal: every element quoted, quotes and backslashes escaped. */
static const char *cs_pg_array(apr_pool_t *p, const apr_array_header_t *items)
{
    char *out = "{";
    int i;

    for (i = 0; items != NULL && i < items->nelts; i++) {
        const char *s = APR_ARRAY_IDX(items, i, const char *);
        char *q = apr_palloc(p, strlen(s) * 2 + 3), *d = q;
        *d++ = '"';
        for (; *s; s++) {
            if (*s == '"' || *s == '\\') {
                *d++ = '\\';
            }
            *d++ = *s;
        }
        *d++ = '"';
        *d = '\0';
        out = apr_pstrcat(p, out, i ? "," : "", q, NULL);
    }
    return apr_pstrcat(p, out, "}", NULL);
}

static apr_int64_t cs_estimate(request_rec *r)
{
    const char *model = apr_table_get(r->notes, "claude-model-upstream");
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    const char *mt = apr_table_get(r->notes, "claude-max-tokens");
    cs_price_t price;
    apr_int64_t ppm, max_tokens = mt ? apr_atoi64(mt) : -1;

    cs_price_for(r, model ? model : apr_table_get(r->notes, "claude-model"), &price, &ppm);
    if (max_tokens < 0) {
        max_tokens = 128000; /* the API requires max_tokens; bound it anyway */
    }
    return cs_price_scale(cs_caps_estimate(cl ? apr_atoi64(cl) : 0, max_tokens, price.input,
                                           price.cache_write, price.output),
                          ppm);
}

/* Refuse with the verdict's headers and message, as the reference's 429. */
static int cs_refuse(request_rec *r, const cs_caps_verdict_t *v, const char *reason)
{
    apr_table_overlap(r->err_headers_out, v->headers, APR_OVERLAP_TABLES_SET);
    cs_refuse_fn(r, HTTP_TOO_MANY_REQUESTS, "billing_error", v->message, 0);
    /* after the refusal, which notes the client-facing message: the audit
     * log gets a plain ASCII reason (mod_log_config \x-escapes other bytes) */
    apr_table_setn(r->notes, "claude-decision", "spend_blocked");
    apr_table_setn(r->notes, "claude-reason", reason);
    return OK;
}

int cs_admit(request_rec *r, cs_req_t *rq, const cg_identity_t *id)
{
    const cs_srv_conf_t *sc = cs_srv_get(r->server);
    const char *params[7], *keys;
    struct pg_conn *conn;
    cs_cap_t caps[3];
    cs_caps_verdict_t v;
    PGresult *res;
    apr_status_t rv;
    apr_time_t now = r->request_time;
    int n = 0, i, ok;

    rq->entry_id = cs_new_id(r->pool);
    keys = apr_psprintf(r->pool, "{\"%s\",\"%s\",\"%s\"}",
                        cs_period_key(r->pool, CS_PERIOD_DAILY, now),
                        cs_period_key(r->pool, CS_PERIOD_WEEKLY, now),
                        cs_period_key(r->pool, CS_PERIOD_MONTHLY, now));
    params[0] = id->sub;
    params[1] = cs_pg_array(r->pool, id->groups);
    params[2] = keys;
    params[3] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, cs_estimate(r));
    params[4] = rq->entry_id;
    params[5] = apr_itoa(r->pool, cs_srv_reservation_ttl(sc));
    params[6] = cs_srv_group_mode(sc);
    rv = cs_db_acquire(r->server, &conn);
    if (rv == APR_ENOTIMPL) {
        return DECLINED; /* no database: no caps */
    }
    ok = 0;
    if (rv == APR_SUCCESS) {
        res = PQexecParams((PGconn *)conn, CS_ADMIT_SQL, 7, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 5;
        if (!ok) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          CS_LOGNO(0401) "reading the spend caps of %s failed: %s", id->sub,
                          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                              ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                              : PQerrorMessage((PGconn *)conn));
        }
        for (i = 0; ok && i < PQntuples(res) && n < 3; i++) {
            cs_cap_t *c = &caps[n];
            if (cs_period_parse(PQgetvalue(res, i, 0), &c->period) != 0) {
                continue;
            }
            c->cap_cents = PQgetisnull(res, i, 1) ? -1 : apr_atoi64(PQgetvalue(res, i, 1));
            c->spent_micro = apr_atoi64(PQgetvalue(res, i, 2));
            c->reserved_micro = apr_atoi64(PQgetvalue(res, i, 3));
            c->admitted = PQgetvalue(res, i, 4)[0] == 't';
            n++;
        }
        PQclear(res);
        cs_db_release(r->server, conn, !ok);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                      CS_LOGNO(0402) "no database connection for the spend caps of %s", id->sub);
    }
    if (!ok) {
        rq->entry_id = NULL; /* nothing was reserved */
        if (cs_srv_fail_open(sc)) {
            apr_table_setn(r->notes, "claude-reason", "spend caps unavailable: let through");
            return DECLINED;
        }
        cs_caps_unavailable(r->pool, &v);
        return cs_refuse(r, &v, "spend caps unavailable");
    }
    cs_caps_verdict(r->pool, caps, n, now, sc->blocked_msg, &v);
    if (v.blocked) {
        return cs_refuse(r, &v, "spend cap reached");
    }
    rq->cap_headers = v.capped ? v.headers : NULL;
    rq->reserved = v.capped;
    return DECLINED;
}
