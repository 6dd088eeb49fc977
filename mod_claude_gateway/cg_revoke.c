/* cg_revoke: revocation of users and sessions.
 *
 * Rows in PostgreSQL are the truth, so every node sees a revocation. The
 * per-request check is kept cheap by a per-child snapshot of the (small)
 * revocation list, refreshed by one query at most every
 * ClaudeGatewayRevocationRefresh ms, by one thread while the others keep
 * using the previous snapshot. Setting it to 0 trades a query per request
 * for strict "next request" semantics. */
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_thread_mutex.h>
#include <http_core.h>
#include <http_protocol.h>
#include <util_script.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "cg_private.h"
#include "cg_config.h"
#include "cg_admin.h"
#include "cg_db.h"
#include "cg_jwt.h"
#include "cg_oauth.h"
#include "cg_revoke.h"
#include "cg_handler.h"

#define CG_ADMIN_BODY_MAX 16384

/* The snapshot: replaced whole, never modified in place. */
typedef struct cg_revoke_snapshot_t {
    apr_pool_t *pool;
    apr_hash_t *subs; /* sub -> apr_time_t revoked_before */
    apr_hash_t *sids; /* sid -> "" */
    apr_time_t fetched;
} cg_revoke_snapshot_t;

static apr_thread_mutex_t *cg_revoke_mutex;
static cg_revoke_snapshot_t *cg_revoke_snap; /* guarded by cg_revoke_mutex */
static int cg_revoke_refreshing;             /* guarded by cg_revoke_mutex */

static apr_status_t cg_revoke_child_exit(void *unused)
{
    (void)unused;
    if (cg_revoke_snap != NULL) {
        apr_pool_destroy(cg_revoke_snap->pool);
        cg_revoke_snap = NULL;
    }
    return APR_SUCCESS;
}

void cg_revoke_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv = apr_thread_mutex_create(&cg_revoke_mutex, APR_THREAD_MUTEX_DEFAULT, pchild);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, CG_LOGNO(0401) "revocation mutex");
        cg_revoke_mutex = NULL;
    }
    apr_pool_cleanup_register(pchild, NULL, cg_revoke_child_exit, apr_pool_cleanup_null);
}

/* Build a new snapshot from the database, in a pool of its own (parented on
 * the global pool, whose creation is thread-safe, so request threads may do
 * this without touching pchild). NULL when the database cannot answer. */
static cg_revoke_snapshot_t *cg_revoke_fetch(server_rec *s)
{
    static const char *const sql =
        "SELECT 's', sub, (EXTRACT(EPOCH FROM revoked_before) * 1000000)::bigint "
        "FROM claude_revocations UNION ALL "
        "SELECT 'i', sid, 0 FROM claude_session_revocations WHERE expires_at > now()";
    cg_revoke_snapshot_t *snap;
    apr_pool_t *p;
    PGresult *res;
    int i;

    apr_pool_create(&p, NULL);
    if (cg_db_query(p, s, sql, 0, NULL, &res) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return NULL;
    }
    snap = apr_pcalloc(p, sizeof(*snap));
    snap->pool = p;
    snap->subs = apr_hash_make(p);
    snap->sids = apr_hash_make(p);
    snap->fetched = apr_time_now();
    for (i = 0; i < PQntuples(res); i++) {
        const char *key = apr_pstrdup(p, PQgetvalue(res, i, 1));
        if (*PQgetvalue(res, i, 0) == 's') {
            apr_time_t *t = apr_palloc(p, sizeof(*t));
            *t = (apr_time_t)apr_atoi64(PQgetvalue(res, i, 2));
            apr_hash_set(snap->subs, key, APR_HASH_KEY_STRING, t);
        }
        else {
            apr_hash_set(snap->sids, key, APR_HASH_KEY_STRING, "");
        }
    }
    return snap;
}

static int cg_revoked_strict(request_rec *r, const cg_identity_t *id)
{
    const char *params[3];
    PGresult *res;

    params[0] = id->sub;
    params[1] = apr_psprintf(r->pool, "%" APR_TIME_T_FMT, apr_time_sec(id->issued_at));
    params[2] = id->session_id ? id->session_id : "";
    if (cg_db_query(r->pool, r->server,
                    "SELECT 1 FROM claude_revocations WHERE sub = $1 AND "
                    "revoked_before >= to_timestamp($2::bigint) UNION ALL "
                    "SELECT 1 FROM claude_session_revocations WHERE sid = $3",
                    3, params, &res) != APR_SUCCESS) {
        return 0; /* sessions are signed; an unreachable list does not lock everyone out */
    }
    return PQntuples(res) > 0;
}

int cg_revoked(request_rec *r, const cg_identity_t *id)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);
    apr_interval_time_t ttl = apr_time_from_msec(cg_srv_revocation_refresh_ms(sc));
    cg_revoke_snapshot_t *fresh = NULL, *old = NULL;
    const apr_time_t *before;
    int refresh = 0, revoked = 0;

    if (sc->db_conninfo == NULL || cg_revoke_mutex == NULL) {
        return 0;
    }
    if (ttl == 0) {
        return cg_revoked_strict(r, id);
    }
    apr_thread_mutex_lock(cg_revoke_mutex);
    if (!cg_revoke_refreshing &&
        (cg_revoke_snap == NULL || apr_time_now() - cg_revoke_snap->fetched >= ttl)) {
        cg_revoke_refreshing = refresh = 1;
    }
    apr_thread_mutex_unlock(cg_revoke_mutex);
    if (refresh) {
        fresh = cg_revoke_fetch(r->server);
    }
    apr_thread_mutex_lock(cg_revoke_mutex);
    if (refresh) {
        cg_revoke_refreshing = 0;
        if (fresh != NULL) {
            old = cg_revoke_snap;
            cg_revoke_snap = fresh;
        }
    }
    if (cg_revoke_snap != NULL) {
        before = apr_hash_get(cg_revoke_snap->subs, id->sub, APR_HASH_KEY_STRING);
        revoked = (before != NULL && id->issued_at <= *before) ||
                  (id->session_id != NULL &&
                   apr_hash_get(cg_revoke_snap->sids, id->session_id, APR_HASH_KEY_STRING));
    }
    apr_thread_mutex_unlock(cg_revoke_mutex);
    if (old != NULL) {
        apr_pool_destroy(old->pool); /* no reader holds it: lookups copy under the lock */
    }
    return revoked;
}

/* --- handlers --------------------------------------------------------------- */

/* The audit line of a revocation (claude_json prints these notes). */
static void cg_revoke_audit(request_rec *r, const char *decision, const char *reason,
                            const char *sub)
{
    cg_note_set(r, "claude-decision", decision);
    if (reason != NULL) {
        cg_note_set(r, "claude-reason", apr_pstrdup(r->pool, reason));
    }
    if (sub != NULL) {
        cg_note_set(r, "claude-user", apr_pstrdup(r->pool, sub));
    }
}

static int cg_json_answer(request_rec *r, int status, const char *body)
{
    return cg_reply_json(r, status, body, 1);
}

static const char *cg_body_small(request_rec *r, apr_size_t max, apr_size_t *len)
{
    char *buf = apr_palloc(r->pool, max + 1);
    apr_size_t got = 0;
    long n;

    if (ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK || !ap_should_client_block(r)) {
        *len = 0;
        return "";
    }
    while ((n = ap_get_client_block(r, buf + got, max - got)) > 0) {
        got += (apr_size_t)n;
        if (got == max) {
            return NULL; /* too large */
        }
    }
    if (n < 0) {
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* RFC 7009: always 200, whatever the token; a session token of ours is
 * revoked until it would have expired. Refresh tokens belong to the IdP. */
static int cg_revoke_rfc7009(request_rec *r)
{
    apr_table_t *form;
    const char *token;
    cg_identity_t id;
    const char *why;

    if (r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    form = cg_form_table(r, 16384);
    token = form ? apr_table_get(form, "token") : NULL;
    cg_revoke_audit(r, "revoke_noop", "not a token of ours", NULL);
    if (token != NULL && cg_session_verify(r, token, &id, &why) && id.session_id != NULL) {
        const char *params[2];
        PGresult *res;

        params[0] = id.session_id;
        params[1] =
            apr_psprintf(r->pool, "%" APR_TIME_T_FMT, apr_time_sec(id.issued_at) + 86400 * 31);
        if (cg_db_query(r->pool, r->server,
                        "INSERT INTO claude_session_revocations (sid, expires_at) "
                        "VALUES ($1, to_timestamp($2::bigint)) ON CONFLICT DO NOTHING",
                        2, params, &res) != APR_SUCCESS) {
            cg_revoke_audit(r, "signin_unavailable", "store unavailable", id.sub);
            return cg_json_answer(r, HTTP_SERVICE_UNAVAILABLE,
                                  "{\"error\":\"temporarily_unavailable\"}");
        }
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      CG_LOGNO(0402) "session of %s revoked by its holder", id.sub);
        cg_revoke_audit(r, "revoked", "session, by its holder", id.sub);
    }
    else if (token != NULL && *token != '\0' && strlen(token) <= 4096) {
        /* anything else is taken for a refresh token: our refresh grant
         * refuses it from now on (it is the IdP's, known only by hash) */
        const char *params[1];
        PGresult *res;

        params[0] = cg_jwt_sha256_hex(r->pool, token, strlen(token));
        if (cg_db_query(r->pool, r->server,
                        "INSERT INTO claude_refresh_revocations (token_hash) VALUES ($1) "
                        "ON CONFLICT DO NOTHING",
                        1, params, &res) != APR_SUCCESS) {
            cg_revoke_audit(r, "signin_unavailable", "store unavailable", NULL);
            return cg_json_answer(r, HTTP_SERVICE_UNAVAILABLE,
                                  "{\"error\":\"temporarily_unavailable\"}");
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0405) "refresh token revoked");
        cg_revoke_audit(r, "revoked", "refresh token, by its holder", NULL);
    }
    return cg_json_answer(r, HTTP_OK, "{}");
}

/* The admin location: POST {"sub","reason"} revokes every session of a user
 * issued until now; DELETE ?sub= lifts it; GET lists. Callers authenticate
 * as for the spend admin API (cg_admin) and need write access; Apache
 * access control on the location may narrow it further. */
static int cg_revoke_admin(request_rec *r)
{
    const char *params[3], *body, *by;
    apr_size_t len;
    PGresult *res;
    json_t *j, *out;
    int i, can_write;

    if (cg_admin_auth(r, &by, &can_write) != OK) {
        return cg_admin_error(r, HTTP_UNAUTHORIZED, "authentication_error",
                              "missing or invalid admin credentials");
    }
    if (!can_write) {
        return cg_admin_error(r, HTTP_FORBIDDEN, "permission_error", "requires write:revocations");
    }
    if (r->method_number == M_GET) {
        if (cg_db_query(r->pool, r->server,
                        "SELECT sub, to_char(revoked_before AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), coalesce(reason, '') "
                        "FROM claude_revocations ORDER BY revoked_at",
                        0, NULL, &res) != APR_SUCCESS) {
            return cg_json_answer(r, HTTP_SERVICE_UNAVAILABLE, "{\"error\":\"store unavailable\"}");
        }
        out = json_array();
        for (i = 0; i < PQntuples(res); i++) {
            json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "sub", PQgetvalue(res, i, 0),
                                                 "revoked_before", PQgetvalue(res, i, 1), "reason",
                                                 PQgetvalue(res, i, 2)));
        }
        j = json_pack("{s:o}", "data", out);
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        params[0] = apr_pstrdup(r->pool, body ? body : "{}");
        free((void *)body);
        return cg_json_answer(r, HTTP_OK, params[0]);
    }
    if (r->method_number != M_POST && r->method_number != M_DELETE) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (r->method_number == M_DELETE) {
        apr_table_t *q = NULL;
        ap_args_to_table(r, &q);
        params[0] = q ? apr_table_get(q, "sub") : NULL;
        if (params[0] == NULL || *params[0] == '\0') {
            return cg_json_answer(r, HTTP_BAD_REQUEST, "{\"error\":\"sub is required\"}");
        }
        if (cg_db_query(r->pool, r->server, "DELETE FROM claude_revocations WHERE sub = $1", 1,
                        params, &res) != APR_SUCCESS) {
            return cg_json_answer(r, HTTP_SERVICE_UNAVAILABLE, "{\"error\":\"store unavailable\"}");
        }
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      CG_LOGNO(0403) "revocation of %s lifted by %s", params[0], by);
        cg_revoke_audit(r, "revocation_lifted", apr_pstrcat(r->pool, "by ", by, NULL), params[0]);
        return cg_json_answer(r, HTTP_OK, "{}");
    }
    body = cg_body_small(r, CG_ADMIN_BODY_MAX, &len);
    j = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (j == NULL || !json_is_string(json_object_get(j, "sub")) ||
        json_string_length(json_object_get(j, "sub")) == 0) {
        json_decref(j);
        return cg_json_answer(r, HTTP_BAD_REQUEST,
                              "{\"error\":\"body must be a JSON object with a string sub\"}");
    }
    params[0] = apr_pstrdup(r->pool, json_string_value(json_object_get(j, "sub")));
    params[1] = json_is_string(json_object_get(j, "reason"))
                    ? apr_pstrdup(r->pool, json_string_value(json_object_get(j, "reason")))
                    : NULL;
    json_decref(j);
    if (cg_db_query(r->pool, r->server,
                    "INSERT INTO claude_revocations (sub, revoked_before, reason) "
                    "VALUES ($1, now(), $2) ON CONFLICT (sub) DO UPDATE SET "
                    "revoked_before = now(), reason = EXCLUDED.reason, revoked_at = now()",
                    2, params, &res) != APR_SUCCESS) {
        return cg_json_answer(r, HTTP_SERVICE_UNAVAILABLE, "{\"error\":\"store unavailable\"}");
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, CG_LOGNO(0404) "user %s revoked by %s", params[0],
                  by);
    cg_revoke_audit(r, "revoked",
                    apr_pstrcat(r->pool, "user, by ", by, params[1] ? ": " : "",
                                params[1] ? params[1] : "", NULL),
                    params[0]);
    j = json_pack("{s:s,s:b}", "sub", params[0], "revoked", 1);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    params[2] = apr_pstrdup(r->pool, body ? body : "{}");
    free((void *)body);
    return cg_json_answer(r, HTTP_OK, params[2]);
}

int cg_revoke_handler(request_rec *r)
{
    if (strcmp(r->handler, CG_HANDLER_REVOKE) == 0) {
        return cg_revoke_rfc7009(r);
    }
    if (strcmp(r->handler, CG_HANDLER_ADMIN_REVOCATIONS) == 0) {
        return cg_revoke_admin(r);
    }
    return DECLINED;
}
