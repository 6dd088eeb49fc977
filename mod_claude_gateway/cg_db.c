/* cg_db: a small libpq pool per child process (apr_reslist).
 *
 * Why not mod_dbd: Debian ships no apr_dbd pgsql driver by default, and
 * ap_dbd_acquire binds a connection to the request until it ends, which for
 * an SSE stream is minutes. Here a connection is borrowed for one statement
 * and given back; the acquire has a timeout so a stalled database can never
 * park every worker thread. */
#include <apr_reslist.h>
#include <apr_strings.h>
#include <http_core.h>
#include <ap_mpm.h>
#include <libpq-fe.h>

#include "cg_private.h"
#include "cg_config.h"
#include "cg_db.h"

#include "cg_schema.h"

/* Advisory lock key of schema migrations: nodes starting together apply
 * them one after the other (each file is idempotent). */
#define CG_SCHEMA_LOCK "7243001"

/* Set once this process has seen the schema up to date; a race only means
 * the idempotent migrations run twice. */
static volatile int cg_db_schema_ok;

/* One pool per child; set in child_init before any request thread exists and
 * read-only afterwards. */
static apr_reslist_t *cg_db_pool;

/* Bounds every statement so a hung database shows up as an error, not as a
 * worker thread stuck forever. */
#define CG_DB_STATEMENT_TIMEOUT "-c statement_timeout=5000"

static apr_status_t cg_db_construct(void **resource, void *params, apr_pool_t *pool)
{
    server_rec *s = params;
    const cg_srv_conf_t *sc = cg_srv_get(s);
    /* dbname is expanded as a full conninfo or URI; the later keywords win */
    const char *const keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *const vals[] = {sc->db_conninfo, "2", "mod_claude", CG_DB_STATEMENT_TIMEOUT, NULL};
    PGconn *conn;

    (void)pool;
    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        /* PQerrorMessage names host and user, never the password */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CG_LOGNO(0101) "database connection failed: %s",
                     conn ? PQerrorMessage(conn) : "out of memory");
        if (conn != NULL) {
            PQfinish(conn);
        }
        return APR_ECONNREFUSED;
    }
    if (!cg_db_schema_ok) {
        PGresult *res = PQexec(conn, "BEGIN; SELECT pg_advisory_xact_lock(" CG_SCHEMA_LOCK ");");
        int ok = PQresultStatus(res) == PGRES_TUPLES_OK;

        PQclear(res);
        if (ok) {
            res = PQexec(conn, cg_schema_sql);
            ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
            if (!ok) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                             CG_LOGNO(0105) "applying the schema migrations failed: %s",
                             PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                                 ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                                 : PQerrorMessage(conn));
            }
            PQclear(res);
        }
        res = PQexec(conn, ok ? "COMMIT" : "ROLLBACK");
        ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            PQfinish(conn);
            return APR_EGENERAL;
        }
        cg_db_schema_ok = 1;
    }
    *resource = conn;
    return APR_SUCCESS;
}

static apr_status_t cg_db_destruct(void *resource, void *params, apr_pool_t *pool)
{
    (void)params;
    (void)pool;
    PQfinish(resource);
    return APR_SUCCESS;
}

void cg_db_child_init(apr_pool_t *pchild, server_rec *s)
{
    const cg_srv_conf_t *sc = cg_srv_get(s);
    apr_pool_t *sub;
    apr_status_t rv;
    int threads = 1, max;

    if (sc->db_conninfo == NULL) {
        return;
    }
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    max = cg_srv_db_max(sc);
    if (threads > 0 && max > threads) {
        max = threads; /* more connections than threads could never be used */
    }
    apr_pool_create(&sub, pchild);
    apr_pool_tag(sub, "claude_gateway_db");
    /* min 0, keep 1: a child that serves no gateway traffic holds at most one
     * idle connection; idle ones expire after 60 s */
    rv = apr_reslist_create(&cg_db_pool, 0, 1, max, apr_time_from_sec(60), cg_db_construct,
                            cg_db_destruct, s, sub);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CG_LOGNO(0102) "cannot create the database pool");
        cg_db_pool = NULL;
        return;
    }
    apr_reslist_timeout_set(cg_db_pool, cg_srv_db_acquire_timeout(sc));
}

apr_status_t cg_db_acquire(server_rec *s, struct pg_conn **conn)
{
    void *res;
    apr_status_t rv;
    int attempt;

    *conn = NULL;
    if (cg_db_pool == NULL) {
        return cg_srv_get(s)->db_conninfo == NULL ? APR_ENOTIMPL : APR_EGENERAL;
    }
    /* A pooled connection whose server went away reports CONNECTION_BAD only
     * after a failed statement; a second attempt gets a fresh one. */
    for (attempt = 0; attempt < 2; attempt++) {
        rv = apr_reslist_acquire(cg_db_pool, &res);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (PQstatus(res) == CONNECTION_OK) {
            *conn = res;
            return APR_SUCCESS;
        }
        apr_reslist_invalidate(cg_db_pool, res);
    }
    return APR_ECONNREFUSED;
}

void cg_db_release(server_rec *s, struct pg_conn *conn, int broken)
{
    (void)s;
    if (conn == NULL || cg_db_pool == NULL) {
        return;
    }
    if (broken || PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        apr_reslist_invalidate(cg_db_pool, conn);
    }
    else {
        apr_reslist_release(cg_db_pool, conn);
    }
}

apr_status_t cg_db_ping(server_rec *s)
{
    PGconn *conn;
    PGresult *res;
    apr_status_t rv;
    int ok;

    rv = cg_db_acquire(s, &conn);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    res = PQexec(conn, "SELECT 1");
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "readiness query failed: %s",
                     PQerrorMessage(conn));
    }
    PQclear(res);
    cg_db_release(s, conn, !ok);
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

static apr_status_t cg_db_result_clear(void *res)
{
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t cg_db_query(apr_pool_t *p, server_rec *s, const char *sql, int nparams,
                         const char *const *params, struct pg_result **out)
{
    PGconn *conn;
    PGresult *res;
    apr_status_t rv;
    ExecStatusType st;

    *out = NULL;
    rv = cg_db_acquire(s, &conn);
    if (rv != APR_SUCCESS) {
        if (rv != APR_ENOTIMPL) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                         CG_LOGNO(0104) "no database connection available");
        }
        return rv;
    }
    res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        /* the primary message only: DETAIL may quote parameter values */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CG_LOGNO(0103) "database statement failed: %s",
                     PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                         ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                         : PQerrorMessage(conn));
        PQclear(res);
        cg_db_release(s, conn, 1);
        return APR_EGENERAL;
    }
    cg_db_release(s, conn, 0);
    apr_pool_cleanup_register(p, res, cg_db_result_clear, apr_pool_cleanup_null);
    *out = res;
    return APR_SUCCESS;
}
