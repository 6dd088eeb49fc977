/* cg_ratelimit: requests and tokens per minute per principal and per group.
 *
 * The policy file's rate_limits section gives the limits. With store: node
 * (the default) every child of this httpd counts into one table in shared
 * memory under a global mutex: exact for the node, each node counting on
 * its own. With store: postgres one statement per request counts across
 * every node (claude_rate_take, sql/0005_rate.sql): exact everywhere.
 * Requests are counted when admitted; tokens (input + output) when the
 * answer was metered, in log_transaction, and hold back the following
 * requests of the same minute. */
#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <libpq-fe.h>
#include <util_mutex.h>

#include "cg_private.h"
#include "cg_config.h"
#include "cg_db.h"
#include "cg_handler.h"
#include "cg_ratelimit.h"
#include "cg_rl.h"
#include "cg_util.h"

#define CG_RL_SLOTS 16384
#define CG_RL_MUTEX "claude-gateway-ratelimit"

static apr_shm_t *cg_rl_shm;
static apr_global_mutex_t *cg_rl_mutex;
static cg_rl_table_t *cg_rl_table;

static int cg_rl_wanted(server_rec *s)
{
    for (; s != NULL; s = s->next) {
        const cg_policy_t *pol = cg_srv_get(s)->policy;
        if (pol != NULL && !pol->rl_postgres &&
            (pol->rl_rpm || pol->rl_tpm || pol->rl_groups->nelts)) {
            return 1;
        }
    }
    return 0;
}

void cg_ratelimit_pre_config(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, CG_RL_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t cg_rl_shm_cleanup(void *unused)
{
    (void)unused;
    if (cg_rl_shm != NULL) {
        apr_shm_destroy(cg_rl_shm);
        cg_rl_shm = NULL;
        cg_rl_table = NULL;
    }
    return APR_SUCCESS;
}

int cg_ratelimit_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv;

    cg_rl_table = NULL;
    if (!cg_rl_wanted(s)) {
        return OK;
    }
    /* anonymous: inherited by the children the parent forks */
    rv = apr_shm_create(&cg_rl_shm, cg_rl_size(CG_RL_SLOTS), NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CG_LOGNO(0130) "cannot create the rate-limit table in shared memory");
        return !OK;
    }
    apr_pool_cleanup_register(pconf, NULL, cg_rl_shm_cleanup, apr_pool_cleanup_null);
    cg_rl_table = cg_rl_init(apr_shm_baseaddr_get(cg_rl_shm), CG_RL_SLOTS);
    rv = ap_global_mutex_create(&cg_rl_mutex, NULL, CG_RL_MUTEX, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CG_LOGNO(0131) "cannot create the rate-limit mutex");
        return !OK;
    }
    return OK;
}

void cg_ratelimit_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (cg_rl_mutex == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&cg_rl_mutex, apr_global_mutex_lockfile(cg_rl_mutex), pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CG_LOGNO(0132) "cannot attach the rate-limit mutex in this child");
        cg_rl_table = NULL;
    }
}

/* The names this request counts against, with their limits. */
typedef struct cg_rl_item_t {
    const char *name;
    apr_int64_t rpm, tpm;
} cg_rl_item_t;

static apr_array_header_t *cg_rl_items(request_rec *r, const cg_policy_t *pol,
                                       const cg_identity_t *id)
{
    apr_array_header_t *items = apr_array_make(r->pool, 4, sizeof(cg_rl_item_t));
    int i, k;

    if (pol->rl_rpm || pol->rl_tpm) {
        cg_rl_item_t *it = apr_array_push(items);
        it->name = apr_pstrcat(r->pool, "u:", id->sub, NULL);
        it->rpm = pol->rl_rpm;
        it->tpm = pol->rl_tpm;
    }
    for (i = 0; i < pol->rl_groups->nelts; i++) {
        const cg_rl_group_t *g = &APR_ARRAY_IDX(pol->rl_groups, i, cg_rl_group_t);
        for (k = 0; id->groups != NULL && k < id->groups->nelts; k++) {
            if (!strcmp(APR_ARRAY_IDX(id->groups, k, const char *), g->group)) {
                cg_rl_item_t *it = apr_array_push(items);
                it->name = apr_pstrcat(r->pool, "g:", g->group, NULL);
                it->rpm = g->rpm;
                it->tpm = g->tpm;
                break;
            }
        }
    }
    return items;
}

static const char *cg_pg_text_array(apr_pool_t *p, const apr_array_header_t *items, int which)
{
    char *out = "{";
    int i;

    for (i = 0; i < items->nelts; i++) {
        const cg_rl_item_t *it = &APR_ARRAY_IDX(items, i, cg_rl_item_t);
        const char *v = which == 0   ? it->name
                        : which == 1 ? apr_psprintf(p, "%" APR_INT64_T_FMT, it->rpm)
                                     : apr_psprintf(p, "%" APR_INT64_T_FMT, it->tpm);
        if (which == 0) {
            /* quoted element; names come from verified claims, escape anyway */
            char *q = apr_palloc(p, strlen(v) * 2 + 3), *d = q;
            *d++ = '"';
            for (; *v; v++) {
                if (*v == '"' || *v == '\\') {
                    *d++ = '\\';
                }
                *d++ = *v;
            }
            *d++ = '"';
            *d = '\0';
            v = q;
        }
        out = apr_pstrcat(p, out, i ? "," : "", v, NULL);
    }
    return apr_pstrcat(p, out, "}", NULL);
}

/* 1: allowed and counted, 0: limited, -1: the store did not answer */
static int cg_rl_take_pg(request_rec *r, const apr_array_header_t *items, apr_time_t now)
{
    const char *params[4];
    PGconn *conn;
    PGresult *res;
    int ok = -1;

    if (cg_db_acquire(r->server, &conn) != APR_SUCCESS) {
        return -1;
    }
    params[0] = cg_pg_text_array(r->pool, items, 0);
    params[1] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)apr_time_sec(now) / 60);
    params[2] = cg_pg_text_array(r->pool, items, 1);
    params[3] = cg_pg_text_array(r->pool, items, 2);
    res = PQexecParams(conn,
                       "SELECT claude_rate_take($1::text[], $2::bigint, $3::bigint[], "
                       "$4::bigint[])",
                       4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        ok = PQgetvalue(res, 0, 0)[0] == 't';
    }
    PQclear(res);
    cg_db_release(r->server, conn, ok < 0);
    return ok;
}

int cg_ratelimit_check(request_rec *r, const cg_identity_t *id)
{
    const cg_policy_t *pol = cg_srv_get(r->server)->policy;
    apr_array_header_t *items;
    apr_time_t now = r->request_time;
    int i, wait = 0, which = -1;

    if (pol == NULL || id == NULL || id->sub == NULL) {
        return OK;
    }
    items = cg_rl_items(r, pol, id);
    if (items->nelts == 0) {
        return OK;
    }
    if (pol->rl_postgres) {
        int ok = cg_rl_take_pg(r, items, now);
        if (ok < 0) {
            /* the limit store is down: rate limits are a courtesy, caps are
             * the money guard, so the request goes on */
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          CG_LOGNO(0133) "rate limits unavailable: request let through");
            return OK;
        }
        wait = ok ? 0 : (int)(60 - apr_time_sec(now) % 60);
        which = ok ? -1 : 0;
    }
    else if (cg_rl_table != NULL) {
        apr_global_mutex_lock(cg_rl_mutex);
        for (i = 0; i < items->nelts && !wait; i++) {
            const cg_rl_item_t *it = &APR_ARRAY_IDX(items, i, cg_rl_item_t);
            wait = cg_rl_take(cg_rl_table, cg_rl_key(it->name), now, it->rpm, it->tpm, 0);
            which = wait ? i : -1;
        }
        for (i = 0; i < items->nelts && !wait; i++) {
            const cg_rl_item_t *it = &APR_ARRAY_IDX(items, i, cg_rl_item_t);
            cg_rl_take(cg_rl_table, cg_rl_key(it->name), now, it->rpm, it->tpm, 1);
        }
        apr_global_mutex_unlock(cg_rl_mutex);
    }
    if (!wait) {
        return OK;
    }
    {
        const cg_rl_item_t *it = &APR_ARRAY_IDX(items, which < 0 ? 0 : which, cg_rl_item_t);
        const char *scope =
            it->name[0] == 'g' ? apr_pstrcat(r->pool, "group ", it->name + 2, NULL) : "your";
        apr_table_setn(r->err_headers_out, "retry-after", apr_itoa(r->pool, wait));
        cg_error_set(r, HTTP_TOO_MANY_REQUESTS, "rate_limit_error",
                     apr_psprintf(r->pool,
                                  "rate limit exceeded for %s requests (%" APR_INT64_T_FMT
                                  " requests and %" APR_INT64_T_FMT
                                  " tokens per minute); retry in %d s",
                                  scope, it->rpm, it->tpm, wait));
        cg_note_set(r, "claude-decision", "rate_limited");
    }
    return OK;
}

void cg_ratelimit_account(request_rec *r, const cg_identity_t *id)
{
    const cg_policy_t *pol = cg_srv_get(r->server)->policy;
    const char *in = cg_note_get(r, "claude-usage-in");
    const char *out = cg_note_get(r, "claude-usage-out");
    apr_int64_t tokens = (in ? cg_atoi64(in) : 0) + (out ? cg_atoi64(out) : 0);
    apr_array_header_t *items;
    int i;

    if (pol == NULL || id == NULL || id->sub == NULL || tokens <= 0) {
        return;
    }
    items = cg_rl_items(r, pol, id);
    if (items->nelts == 0) {
        return;
    }
    if (pol->rl_postgres) {
        const char *params[3];
        PGconn *conn;
        PGresult *res;
        if (cg_db_acquire(r->server, &conn) != APR_SUCCESS) {
            return;
        }
        params[0] = cg_pg_text_array(r->pool, items, 0);
        params[1] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                 (apr_int64_t)apr_time_sec(r->request_time) / 60);
        params[2] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, tokens);
        res = PQexecParams(conn,
                           "UPDATE claude_rate_minutes SET tokens = tokens + $3::bigint "
                           "WHERE key = ANY ($1::text[]) AND minute = $2::bigint",
                           3, NULL, params, NULL, NULL, 0);
        cg_db_release(r->server, conn, PQresultStatus(res) != PGRES_COMMAND_OK);
        PQclear(res);
        return;
    }
    if (cg_rl_table == NULL) {
        return;
    }
    apr_global_mutex_lock(cg_rl_mutex);
    for (i = 0; i < items->nelts; i++) {
        const cg_rl_item_t *it = &APR_ARRAY_IDX(items, i, cg_rl_item_t);
        cg_rl_add_tokens(cg_rl_table, cg_rl_key(it->name), r->request_time, tokens);
    }
    apr_global_mutex_unlock(cg_rl_mutex);
}
