/* cs_admit: admission of a Messages request against the user's spend caps.
 *
 * Most requests are admitted without the database: from the lease this
 * child holds for the principal (cs_lease.c), when it is young enough and
 * has room for the request's estimate. Otherwise one round trip in fixups:
 * claude_admit_lease (sql/0007_leases.sql) gives back the old lease's unused
 * part, locks the principal, finds the cap of each period and, when every
 * capped period still has room, reserves a new lease. Principals with no
 * cap get an entry that admits without reserving anything until it is too
 * old. A refusal is the reference's 429; a database that cannot answer
 * refuses too (ClaudeSpendOnError closed) or lets the request through
 * (open). The request's estimate is held until its ledger row settles. */
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <libpq-fe.h>

#include "cs_private.h"
#include "cs_admit.h"
#include "cs_caps.h"
#include "cs_period.h"
#include "cs_price.h"
#include "cs_settle.h"

#define CS_ADMIT_SQL                                                                               \
    "SELECT period, cap_cents, spent_micro, reserved_micro, admitted, granted FROM "               \
    "claude_admit_lease($1, $2::text[], $3::text[], $4::bigint, $5::bigint, $6, $7::integer, $8, " \
    "$9, $10::bigint)"
#define CS_ADMIT_NPARAMS 10

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

static apr_int64_t cs_estimate(request_rec *r, cs_req_t *rq)
{
    const char *model = cs_note_get(r, "claude-model-upstream");
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    const char *mt = cs_note_get(r, "claude-max-tokens");
    cs_price_t price;
    apr_int64_t ppm, max_tokens = mt ? apr_atoi64(mt) : -1;

    cs_price_for(r, model ? model : cs_req_model(r, rq), &price, &ppm);
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
    cs_note_set(r, "claude-decision", "spend_blocked");
    cs_note_set(r, "claude-reason", reason);
    return OK;
}

/* "|<length>:<s>" at d; returns the end */
static char *cs_lease_key_part(char *d, const char *s)
{
    apr_size_t len = strlen(s), n = len;
    char digits[24];
    int i = 0;

    *d++ = '|';
    do {
        digits[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (i > 0) {
        *d++ = digits[--i];
    }
    *d++ = ':';
    memcpy(d, s, len);
    return d + len;
}

/* What a lease is for: the principal, its groups (they pick the caps),
 * the group mode and the period keys; length-prefixed, so no two differ
 * only in where one field ends. */
static const char *cs_lease_key(apr_pool_t *p, const cg_identity_t *id, const char *mode,
                                const char *keys)
{
    int i, n = id->groups != NULL ? id->groups->nelts : 0;
    apr_size_t ml = strlen(mode), kl = strlen(keys), len = ml + 1 + kl + 24 + strlen(id->sub) + 1;
    char *out, *d;

    for (i = 0; i < n; i++) {
        len += 24 + strlen(APR_ARRAY_IDX(id->groups, i, const char *));
    }
    out = d = apr_palloc(p, len);
    memcpy(d, mode, ml);
    d += ml;
    *d++ = '|';
    memcpy(d, keys, kl);
    d = cs_lease_key_part(d + kl, id->sub);
    for (i = 0; i < n; i++) {
        d = cs_lease_key_part(d, APR_ARRAY_IDX(id->groups, i, const char *));
    }
    *d = '\0';
    return out;
}

/* claude_admit_lease: a row per period into caps (3 at most), the grant.
 * @return 1 when it answered; else *err says why (in p) */
static int cs_admit_query(apr_pool_t *p, PGconn *conn, const char *const *params, cs_cap_t *caps,
                          int *n, apr_int64_t *granted, const char **err)
{
    PGresult *res = PQexecParams(conn, CS_ADMIT_SQL, CS_ADMIT_NPARAMS, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 6, i;

    *n = 0;
    if (!ok) {
        const char *why = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        *err = apr_pstrdup(p, why ? why : PQerrorMessage(conn));
    }
    for (i = 0; ok && i < PQntuples(res) && *n < 3; i++) {
        cs_cap_t *c = &caps[*n];
        if (cs_period_parse(PQgetvalue(res, i, 0), &c->period) != 0) {
            continue;
        }
        c->cap_cents = PQgetisnull(res, i, 1) ? -1 : apr_atoi64(PQgetvalue(res, i, 1));
        c->spent_micro = apr_atoi64(PQgetvalue(res, i, 2));
        c->reserved_micro = apr_atoi64(PQgetvalue(res, i, 3));
        c->admitted = PQgetvalue(res, i, 4)[0] == 't';
        *granted = apr_atoi64(PQgetvalue(res, i, 5));
        (*n)++;
    }
    PQclear(res);
    return ok;
}

/* The request's hold on its lease ends with its pool: the take's strings
 * (the lease's own) are read until then, by the ledger row, and through
 * the cap headers in err_headers_out by every log_transaction hook. */
static apr_status_t cs_take_release(void *data)
{
    cs_req_t *rq = data;

    if (rq->take.lease != NULL && cs_settle_leases() != NULL) {
        cs_leases_done(cs_settle_leases(), &rq->take);
    }
    return APR_SUCCESS;
}

/* Note what was taken; when the lease is half used, queue its successor
 * for the ledger writer to reserve (cs_admit_renew). */
static void cs_admit_done(request_rec *r, cs_req_t *rq, const cs_lease_take_t *take,
                          const char *lkey, const cg_identity_t *id, const char *keys,
                          apr_int64_t estimate)
{
    rq->take = *take;
    if (take->lease != NULL) {
        apr_pool_cleanup_register(r->pool, rq, cs_take_release, apr_pool_cleanup_null);
    }
    rq->reserved = take->lease_id != NULL;
    rq->cap_headers = take->headers;
    if (take->renew > 0 && take->lease_id != NULL) {
        const cs_srv_conf_t *sc = cs_srv_get(r->server);
        cs_renew_t job;

        job.key = lkey;
        job.old_id = take->lease_id;
        job.sub = id->sub;
        job.groups = cs_pg_array(r->pool, id->groups);
        job.keys = keys;
        job.mode = cs_srv_group_mode(sc);
        job.estimate = estimate;
        job.want = take->renew;
        job.ttl = cs_srv_reservation_ttl(sc);
        cs_settle_renew(&job);
    }
}

int cs_admit_renew(apr_pool_t *p, server_rec *s, struct pg_conn *conn, const cs_renew_t *job,
                   cs_lease_return_t *ret)
{
    const char *params[CS_ADMIT_NPARAMS], *lease_id = cs_new_id(p), *err = NULL;
    cs_leases_t *leases = cs_settle_leases();
    cs_cap_t caps[3];
    cs_caps_verdict_t v;
    apr_int64_t granted = 0;
    int n = 0;

    ret->lease_id = NULL;
    ret->micro = 0;
    params[0] = job->sub;
    params[1] = job->groups;
    params[2] = job->keys;
    params[3] = apr_psprintf(p, "%" APR_INT64_T_FMT, job->estimate);
    params[4] = apr_psprintf(p, "%" APR_INT64_T_FMT, job->want);
    params[5] = lease_id;
    params[6] = apr_itoa(p, job->ttl);
    params[7] = job->mode;
    params[8] = NULL; /* the old lease is still in use: it gives back when it retires */
    params[9] = "0";
    if (!cs_admit_query(p, (PGconn *)conn, params, caps, &n, &granted, &err)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     CS_LOGNO(0403) "reserving the next spend lease of %s failed: %s", job->sub,
                     err);
        return 0;
    }
    cs_caps_verdict(p, caps, n, apr_time_now(), NULL, &v);
    if (leases == NULL || v.blocked || !v.capped || granted < job->estimate) {
        /* the old lease runs out, and the request after it is admitted as usual */
        if (granted > 0) {
            ret->lease_id = lease_id;
            ret->micro = granted;
        }
        return 1;
    }
    cs_leases_renewed(leases, job->key, job->old_id, lease_id, granted, job->estimate, v.headers,
                      apr_time_now(), p, ret);
    if (ret->lease_id != NULL && strcmp(ret->lease_id, lease_id) == 0) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     CS_LOGNO(0405) "the next spend lease of %s came too late: given back",
                     job->sub);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     CS_LOGNO(0404) "next spend lease of %s reserved ahead: %" APR_INT64_T_FMT
                                    " micro-USD",
                     job->sub, granted);
    }
    return 1;
}

int cs_admit(request_rec *r, cs_req_t *rq, const cg_identity_t *id)
{
    const cs_srv_conf_t *sc = cs_srv_get(r->server);
    cs_leases_t *leases = cs_settle_leases();
    const char *params[CS_ADMIT_NPARAMS], *keys, *lkey, *lease_id, *pk[3];
    struct pg_conn *conn;
    cs_cap_t caps[3];
    cs_caps_verdict_t v;
    cs_lease_take_t take;
    cs_lease_return_t ret = {NULL, 0}, displaced;
    apr_status_t rv;
    apr_time_t now = r->request_time;
    apr_int64_t estimate = cs_estimate(r, rq), want = estimate, granted = 0;
    int n = 0, ok;

    rq->entry_id = cs_new_id(r->pool);
    cs_period_keys(r->pool, now, pk);
    memcpy(rq->period_keys, pk, sizeof(pk)); /* the ledger row's, at the end */
    keys = apr_pstrcat(r->pool, "{\"", pk[0], "\",\"", pk[1], "\",\"", pk[2], "\"}", NULL);
    lkey = cs_lease_key(r->pool, id, cs_srv_group_mode(sc), keys);
    if (leases != NULL &&
        cs_leases_take(leases, lkey, estimate, apr_time_now(), r->pool, &take, &want, &ret)) {
        cs_admit_done(r, rq, &take, lkey, id, keys, estimate);
        return DECLINED; /* admitted from this child's lease: no round trip */
    }
    lease_id = cs_new_id(r->pool);
    params[0] = id->sub;
    params[1] = cs_pg_array(r->pool, id->groups);
    params[2] = keys;
    params[3] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, estimate);
    params[4] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, want);
    params[5] = lease_id;
    params[6] = apr_itoa(r->pool, cs_srv_reservation_ttl(sc));
    params[7] = cs_srv_group_mode(sc);
    params[8] = ret.lease_id;
    params[9] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, ret.micro);
    /* from here on this request is the child's admission of lkey: every way
     * out ends it (cs_leases_asked or cs_leases_install), so that requests
     * waiting for it go on */
    rv = cs_db_acquire(r->server, &conn);
    if (rv == APR_ENOTIMPL) {
        cs_leases_asked(leases, lkey, 0);
        return DECLINED; /* no database: no caps */
    }
    ok = 0;
    if (rv == APR_SUCCESS) {
        const char *err = NULL;
        ok = cs_admit_query(r->pool, (PGconn *)conn, params, caps, &n, &granted, &err);
        if (!ok) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          CS_LOGNO(0401) "reading the spend caps of %s failed: %s", id->sub, err);
        }
        cs_db_release(r->server, conn, !ok);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                      CS_LOGNO(0402) "no database connection for the spend caps of %s", id->sub);
    }
    if (!ok) {
        cs_leases_asked(leases, lkey, 1);
        /* the retired lease's unused part goes back with the writer's next batch */
        cs_settle_return(r, ret.lease_id, ret.micro);
        if (cs_srv_fail_open(sc)) {
            cs_note_set(r, "claude-reason", "spend caps unavailable: let through");
            return DECLINED;
        }
        cs_caps_unavailable(r->pool, &v);
        return cs_refuse(r, &v, "spend caps unavailable");
    }
    cs_caps_verdict(r->pool, caps, n, now, sc->blocked_msg, &v);
    if (v.blocked) {
        cs_leases_asked(leases, lkey, 0);
        return cs_refuse(r, &v, "spend cap reached");
    }
    if (v.capped && granted < estimate) {
        cs_leases_asked(leases, lkey, 0);
        /* cannot happen with claude_admit_lease; never admit uncovered */
        cs_caps_unavailable(r->pool, &v);
        return cs_refuse(r, &v, "spend caps unavailable");
    }
    if (leases == NULL) {
        take.lease = NULL;
        take.lease_id = v.capped ? lease_id : NULL;
        take.held = v.capped ? estimate : 0;
        take.headers = v.capped ? v.headers : NULL;
        take.renew = 0;
        cs_admit_done(r, rq, &take, lkey, id, keys, estimate);
        return DECLINED;
    }
    cs_leases_install(leases, lkey, lease_id, granted, !v.capped, estimate, v.headers,
                      apr_time_now(), r->pool, &take, &displaced);
    cs_settle_return(r, displaced.lease_id, displaced.micro);
    cs_admit_done(r, rq, &take, lkey, id, keys, estimate);
    return DECLINED;
}
