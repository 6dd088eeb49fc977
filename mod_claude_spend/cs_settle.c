/* cs_settle: the ledger is written by one background thread per child.
 *
 * A request's log_transaction queues its ledger row and returns; the writer
 * takes everything queued so far and settles it in one transaction: the
 * rows by binary COPY, then the period totals, principals and holds on
 * leases and reservations, summed in the writer (cs_batch.c), by one call
 * of claude_settle_sums (sql/0008). Journaled rows, which may be in the
 * ledger already, go through claude_settle (sql/0007), which counts only
 * the rows it inserts.
 * Under load a batch holds whatever arrived while the previous one was
 * written; when idle the writer wakes on the first row, so a row is in the
 * database a few milliseconds after its answer went out.
 *
 * Nothing is lost when the child dies: every queued row is also copied
 * into one of the child's two spool files (in the directory <main server's
 * journal>.spool), the one of the batch it joins. The files are mapped
 * shared, so a row costs a memcpy and no system call, and what was copied
 * is in the page cache even if the process is killed the next instant
 * (rows beyond the mapping are appended with write()). The writer empties
 * a spool file only after its batch is in the database or the journal, and
 * only once no request thread is still copying into it. The spool files of
 * a child that died are moved into the journal by its successors (at start
 * and every few seconds).
 *
 * Nothing is lost when PostgreSQL is away: a batch the database does not
 * take is appended to the journal (ClaudeSpendJournal, one JSON array per
 * line, under an exclusive lock shared by all children), which the writer
 * replays once the database takes batches again; entry ids make replays
 * idempotent. The writer also retires idle leases and hands their unused
 * part back. It is stopped, after a last flush, before the child's pool
 * goes (graceful stop and restart lose nothing). */
#include <apr_file_info.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <jansson.h>
#include <libpq-fe.h>

#include <apr_atomic.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cs_private.h"
#include "cs_admit.h"
#include "cs_journal.h"
#include "cs_period.h"
#include "cs_settle.h"

#define CS_SETTLE_SQL                                                                              \
    "SELECT claude_settle($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], "          \
    "$6::text[], $7::text[], $8::text[], $9::text[], $10::integer[], $11::bigint[], "              \
    "$12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::boolean[], $17::text[], "    \
    "$18::text[], $19::text[], $20::text[], $21::bigint[], $22::text[], $23::bigint[])"
#define CS_SETTLE_NPARAMS 23
#define CS_COPY_SQL                                                                                \
    "COPY claude_ledger (entry_id, request_id, at, sub, email, groups, model_requested, "          \
    "model_served, upstream, status, input_tokens, output_tokens, cache_read_tokens, "             \
    "cache_write_tokens, cost_micro_usd, partial) FROM STDIN (FORMAT binary)"
#define CS_SUMS_SQL                                                                                \
    "SELECT claude_settle_sums($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], "     \
    "$6::text[], $7::text[], $8::text[], $9::bigint[])"
#define CS_SUMS_NPARAMS 9
/* claude_settle's parameters 1-21, as row columns */
static const int cs_settle_cols[] = {
    CS_COL_ENTRY,   CS_COL_REQUEST,   CS_COL_AT_US,      CS_COL_SUB,         CS_COL_EMAIL,
    CS_COL_GROUPS,  CS_COL_MODEL_REQ, CS_COL_MODEL_SRV,  CS_COL_UPSTREAM,    CS_COL_STATUS,
    CS_COL_IN,      CS_COL_OUT,       CS_COL_CACHE_READ, CS_COL_CACHE_WRITE, CS_COL_COST,
    CS_COL_PARTIAL, CS_COL_DAY,       CS_COL_WEEK,       CS_COL_MONTH,       CS_COL_LEASE,
    CS_COL_HELD};

/* Rows per transaction: a batch is one COPY and one claude_settle_sums
 * unless a backlog made it larger. Journal replays and a batch that meets a
 * known entry go through claude_settle, whose arrays hold as many. */
#define CS_SETTLE_CHUNK 10000
#define CS_SETTLE_BACKLOG 100000               /* queued rows beyond this go to the journal */
#define CS_SETTLE_TICK apr_time_from_msec(250) /* lease sweep and idle wake-up */
#define CS_JOURNAL_CHECK apr_time_from_sec(5)  /* journals written by other children */
/* Under load, batches start at most this often unless CS_SETTLE_FULL rows
 * wait: the database's work per batch grows with the principals in it, not
 * with its rows, so fewer, bigger batches cost it much less (200 ms rather
 * than 50: -4 us of PostgreSQL CPU per request at 9k req/s, 16 users; 1 s
 * in one transaction rather than 200 ms in chunks of 1000 rows: another
 * -5 us). Caps do not wait for it: a lease's part counts as reserved until
 * its batch is in, and an idle writer still takes the first row at once. */
#define CS_SETTLE_GAP apr_time_from_msec(1000)
#define CS_SETTLE_FULL 5000
/* Bytes of a spool file that are mapped (sparse on disk until used): room
 * for ten thousand rows; a batch larger still appends the rest. */
#define CS_SPOOL_MAP (4 * 1024 * 1024)
/* Freed memory the writer's allocator keeps: two batches of CS_SETTLE_FULL
 * rows with their copies and the statement's text take ~8 MB; giving that
 * back to the heap after each batch cost a page fault per few requests. */
#define CS_SETTLE_KEEP (16 * 1024 * 1024)
/* A batch's row array starts at the last one's size plus a quarter, up to
 * this: no doubling and copying under the lock while a user is steady. */
#define CS_SETTLE_PRESIZE 8192

typedef struct cs_row_t {
    const char *v[CS_ROW_NV];
    const char *journal;
} cs_row_t;

typedef struct cs_batch_t {
    apr_pool_t *pool;
    apr_array_header_t *rows;   /* cs_row_t */
    apr_array_header_t *rets;   /* cs_lease_return_t */
    apr_array_header_t *renews; /* cs_renew_t: leases to reserve ahead */
    int renews_done;            /* of them, taken by the writer (under lock) */
    int spool;                  /* the spool file its rows are also in */
    int rows_hint;              /* rows of the batch before: the next one's size */
} cs_batch_t;

static struct {
    apr_pool_t *pool;
    server_rec *s;
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *cond;
    cs_batch_t fill, spare; /* fill: being queued into, under lock */
    apr_thread_t *thread;
    int running, stopping, waiting;
    int gap_waiting;       /* between batches: only a renewal wakes the writer */
    apr_pool_t *renewpool; /* the writer's, for renewals; cleared after each run */
    cs_leases_t *leases;
    apr_array_header_t *journals; /* distinct journal paths of all servers */
    const char *journal;          /* the main server's: where spools are recovered to */
    const char *spool_dir;
    const char *spool_path[2];
    int spool_fd[2];                     /* -1: no spool */
    char *spool_map[2];                  /* NULL: rows are appended with write() */
    apr_size_t spool_used[2];            /* bytes of the map handed out, under lock */
    int spool_spilled[2];                /* rows were appended beyond the map */
    volatile apr_uint32_t spool_busy[2]; /* threads still copying into the map */
    int journal_dirty;
    apr_time_t journal_checked;
    struct pg_conn *conn; /* the writer's own, kept between batches */
    /* the statement's column literals: reused, grown only to the largest
     * batch, so batches of every size do not fragment the heap */
    apr_pool_t *colpool;
    char *col[21];
    apr_size_t colcap[21];
} cs_q;

/* Room for need[i] bytes in every column buffer; all are made again,
 * larger, when one must grow (rare: their sizes settle at the largest
 * batch). Writer thread only. */
static void cs_colbufs_reserve(const apr_size_t *need)
{
    int k, grow = 0;

    for (k = 0; k < 21; k++) {
        if (need[k] > cs_q.colcap[k]) {
            cs_q.colcap[k] = need[k] + need[k] / 2;
            grow = 1;
        }
    }
    if (grow) {
        apr_pool_clear(cs_q.colpool);
        for (k = 0; k < 21; k++) {
            cs_q.col[k] = apr_palloc(cs_q.colpool, cs_q.colcap[k]);
        }
    }
}

/* The writer keeps one pooled connection for itself: it never waits for a
 * request's, and the buffers libpq grows to a batch's size stay with that
 * one connection instead of spreading over the whole pool. */
static apr_status_t cs_writer_conn(struct pg_conn **conn)
{
    apr_status_t rv = APR_SUCCESS;

    if (cs_q.conn == NULL) {
        rv = cs_db_acquire(cs_q.s, &cs_q.conn);
        if (rv != APR_SUCCESS) {
            cs_q.conn = NULL;
        }
    }
    *conn = cs_q.conn;
    return rv;
}

/* After a failed statement the connection goes back as broken. */
static void cs_writer_conn_done(int ok)
{
    if (!ok && cs_q.conn != NULL) {
        cs_db_release(cs_q.s, cs_q.conn, 1);
        cs_q.conn = NULL;
    }
}

cs_leases_t *cs_settle_leases(void)
{
    return cs_q.leases;
}

static void cs_batch_reset(cs_batch_t *b)
{
    int size = b->rows != NULL ? b->rows->nelts : 0;

    b->rows_hint = size > CS_SETTLE_PRESIZE ? CS_SETTLE_PRESIZE : size;
    apr_pool_clear(b->pool);
    b->rows = apr_array_make(b->pool, 64 + b->rows_hint + b->rows_hint / 4, sizeof(cs_row_t));
    b->rets = apr_array_make(b->pool, 8, sizeof(cs_lease_return_t));
    b->renews = apr_array_make(b->pool, 4, sizeof(cs_renew_t));
    b->renews_done = 0;
}

/* A text[] (or number[]) literal of one column: elements quoted with
 * quotes and backslashes escaped, NULL for a missing value. */
static apr_size_t cs_pg_column_len(const cs_row_t *rows, int n, int col)
{
    apr_size_t len = 3;
    int i;

    for (i = 0; i < n; i++) {
        len += cs_batch_quoted_len(rows[i].v[col]) + 1;
    }
    return len;
}

/* Written into out, which has room for cs_pg_column_len(). */
static const char *cs_pg_column(char *out, const cs_row_t *rows, int n, int col)
{
    char *d = out;
    int i;

    *d++ = '{';
    for (i = 0; i < n; i++) {
        if (i > 0) {
            *d++ = ',';
        }
        d = cs_batch_quote(d, rows[i].v[col]);
    }
    *d++ = '}';
    *d = '\0';
    return out;
}

static const char *cs_pg_returns(apr_pool_t *p, const apr_array_header_t *rets, int ids)
{
    char *out = "{";
    int i;

    for (i = 0; i < rets->nelts; i++) {
        const cs_lease_return_t *r = &APR_ARRAY_IDX(rets, i, cs_lease_return_t);
        /* lease ids are our own hex */
        out = apr_pstrcat(p, out, i ? "," : "",
                          ids ? r->lease_id : apr_off_t_toa(p, (apr_off_t)r->micro), NULL);
    }
    return apr_pstrcat(p, out, "}", NULL);
}

/* 1 when a statement's result says the database took it; else *why is
 * its message (one line) and *sqlstate its code. */
static int cs_settle_result(apr_pool_t *p, PGconn *conn, PGresult *res, const char **why,
                            const char **sqlstate)
{
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok) {
        const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        char *nl;
        *why = apr_pstrdup(p, m ? m : PQerrorMessage(conn));
        if ((nl = strchr(*why, '\n')) != NULL) {
            *nl = '\0'; /* one log line */
        }
        if (sqlstate != NULL) {
            *sqlstate = code != NULL ? apr_pstrdup(p, code) : "";
        }
    }
    PQclear(res);
    return ok;
}

/* The rows' columns into the column buffers and params[0..20]. */
static void cs_settle_columns(const cs_row_t *rows, int n, const char **params)
{
    apr_size_t need[21];
    int i;

    for (i = 0; i < 21; i++) {
        need[i] = cs_pg_column_len(rows, n, cs_settle_cols[i]);
    }
    cs_colbufs_reserve(need);
    for (i = 0; i < 21; i++) {
        params[i] = cs_pg_column(cs_q.col[i], rows, n, cs_settle_cols[i]);
    }
}

/* One claude_settle call, which counts only the rows that are new to the
 * ledger (journal replays, a batch whose COPY met a known entry); 1 when the
 * database took it. */
static int cs_settle_exec(apr_pool_t *p, PGconn *conn, const cs_row_t *rows, int n,
                          const apr_array_header_t *rets, const char **why)
{
    const char *params[CS_SETTLE_NPARAMS];

    cs_settle_columns(rows, n, params);
    params[21] = cs_pg_returns(p, rets, 1);
    params[22] = cs_pg_returns(p, rets, 0);
    return cs_settle_result(
        p, conn, PQexecParams(conn, CS_SETTLE_SQL, CS_SETTLE_NPARAMS, NULL, params, NULL, NULL, 0),
        why, NULL);
}

static const char *cs_int_literal(apr_pool_t *p, const apr_int64_t *v, int n)
{
    const char **s = apr_palloc(p, sizeof(*s) * (apr_size_t)(n + 1));
    int i;

    for (i = 0; i < n; i++) {
        s[i] = apr_off_t_toa(p, (apr_off_t)v[i]);
    }
    return cs_batch_literal(p, s, n);
}

/* PostgreSQL's binary COPY format: integers of 2, 4 or 8 bytes, big-endian. */
static char *cs_be(char *d, apr_int64_t v, int bytes)
{
    apr_uint64_t u = (apr_uint64_t)v;
    int i;

    for (i = bytes - 1; i >= 0; i--) {
        d[i] = (char)(u & 0xff);
        u >>= 8;
    }
    return d + bytes;
}

static char *cs_copy_text(char *d, const char *s)
{
    apr_size_t len;

    if (s == NULL) {
        return cs_be(d, -1, 4);
    }
    len = strlen(s);
    d = cs_be(d, (apr_int32_t)len, 4);
    memcpy(d, s, len);
    return d + len;
}

static char *cs_copy_int(char *d, const char *s, int bytes)
{
    if (s == NULL) {
        return cs_be(d, -1, 4); /* the column refuses it; the database says why */
    }
    d = cs_be(d, bytes, 4);
    return cs_be(d, cs_batch_atoi64(s), bytes);
}

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define CS_PG_EPOCH_US APR_INT64_C(946684800000000)

/* The rows as one binary COPY stream: no text to parse in the database,
 * and the heap takes them a page at a time. */
static char *cs_copy_data(apr_pool_t *p, const cs_row_t *rows, int n, apr_size_t *len)
{
    static const int texts[] = {CS_COL_ENTRY,     CS_COL_REQUEST,   CS_COL_SUB,     CS_COL_EMAIL,
                                CS_COL_MODEL_REQ, CS_COL_MODEL_SRV, CS_COL_UPSTREAM};
    apr_size_t size = 19 + 2;
    apr_time_t now = apr_time_now();
    char *out, *d;
    int i, j;

    for (i = 0; i < n; i++) {
        /* 16 length words, at, status, 5 bigints, partial, the jsonb version */
        size += 2 + 16 * 4 + 8 + 4 + 5 * 8 + 1 + 1;
        for (j = 0; j < (int)(sizeof(texts) / sizeof(texts[0])); j++) {
            size += rows[i].v[texts[j]] ? strlen(rows[i].v[texts[j]]) : 0;
        }
        size += rows[i].v[CS_COL_GROUPS] ? strlen(rows[i].v[CS_COL_GROUPS]) : 2;
    }
    out = d = apr_palloc(p, size);
    memcpy(d, "PGCOPY\n\377\r\n\0", 11);
    d = cs_be(d + 11, 0, 4); /* flags */
    d = cs_be(d, 0, 4);      /* header extension */
    for (i = 0; i < n; i++) {
        const char *const *v = rows[i].v;
        const char *groups = v[CS_COL_GROUPS] ? v[CS_COL_GROUPS] : "[]";
        apr_size_t glen = strlen(groups);
        apr_time_t at = v[CS_COL_AT_US] ? (apr_time_t)cs_batch_atoi64(v[CS_COL_AT_US]) : now;

        d = cs_be(d, 16, 2);
        d = cs_copy_text(d, v[CS_COL_ENTRY]);
        d = cs_copy_text(d, v[CS_COL_REQUEST]);
        d = cs_be(d, 8, 4);
        d = cs_be(d, at - CS_PG_EPOCH_US, 8);
        d = cs_copy_text(d, v[CS_COL_SUB]);
        d = cs_copy_text(d, v[CS_COL_EMAIL]);
        d = cs_be(d, (apr_int32_t)(glen + 1), 4);
        *d++ = 1; /* jsonb's binary form: a version byte, then the text */
        memcpy(d, groups, glen);
        d += glen;
        d = cs_copy_text(d, v[CS_COL_MODEL_REQ]);
        d = cs_copy_text(d, v[CS_COL_MODEL_SRV]);
        d = cs_copy_text(d, v[CS_COL_UPSTREAM]);
        d = cs_copy_int(d, v[CS_COL_STATUS], 4);
        d = cs_copy_int(d, v[CS_COL_IN], 8);
        d = cs_copy_int(d, v[CS_COL_OUT], 8);
        d = cs_copy_int(d, v[CS_COL_CACHE_READ], 8);
        d = cs_copy_int(d, v[CS_COL_CACHE_WRITE], 8);
        d = cs_copy_int(d, v[CS_COL_COST], 8);
        d = cs_be(d, 1, 4);
        *d++ = (char)(v[CS_COL_PARTIAL] != NULL && v[CS_COL_PARTIAL][0] == 't');
    }
    d = cs_be(d, -1, 2);
    *len = (apr_size_t)(d - out);
    return out;
}

/* A statement of the writer's transaction; 0 and *why if it failed. */
static int cs_settle_step(apr_pool_t *p, PGconn *conn, PGresult *res, ExecStatusType want,
                          const char **why, const char **sqlstate)
{
    if (PQresultStatus(res) == want) {
        PQclear(res);
        return 1;
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        *why = "unexpected answer";
        return 0;
    }
    return cs_settle_result(p, conn, res, why, sqlstate);
}

/* Rows this child made (see cs_batch.h), in one transaction: COPY, then
 * claude_settle_sums; 1 when the database took it. On failure the
 * transaction is rolled back and *sqlstate says why. */
static int cs_settle_exec_copy(apr_pool_t *p, PGconn *conn, const cs_row_t *rows, int n,
                               const apr_array_header_t *rets, const char **why,
                               const char **sqlstate)
{
    const char *params[CS_SUMS_NPARAMS];
    const char *const **vals = apr_palloc(p, sizeof(*vals) * (apr_size_t)(n + 1));
    cs_batch_release_t *ret = apr_palloc(p, sizeof(*ret) * (apr_size_t)(rets->nelts + 1));
    cs_batch_sums_t sum;
    const char **s1, **s2, **s3;
    apr_int64_t *m;
    apr_size_t len;
    const char *data;
    PGresult *res;
    int i, nt, nw, nl, ok;

    for (i = 0; i < n; i++) {
        vals[i] = rows[i].v;
    }
    for (i = 0; i < rets->nelts; i++) {
        const cs_lease_return_t *r = &APR_ARRAY_IDX(rets, i, cs_lease_return_t);
        ret[i].lease = r->lease_id;
        ret[i].micro = r->micro;
    }
    cs_batch_sum(p, vals, n, ret, rets->nelts, &sum);
    nt = sum.totals->nelts;
    nw = sum.who->nelts;
    nl = sum.releases->nelts;
    i = nt > nw ? nt : nw;
    i = i > nl ? i : nl;
    s1 = apr_palloc(p, sizeof(*s1) * (apr_size_t)(i + 1));
    s2 = apr_palloc(p, sizeof(*s2) * (apr_size_t)(i + 1));
    s3 = apr_palloc(p, sizeof(*s3) * (apr_size_t)(i + 1));
    m = apr_palloc(p, sizeof(*m) * (apr_size_t)(i + 1));
    for (i = 0; i < nt; i++) {
        const cs_batch_total_t *t = &APR_ARRAY_IDX(sum.totals, i, cs_batch_total_t);
        s1[i] = t->principal;
        s2[i] = t->period_key;
        m[i] = t->micro;
    }
    params[0] = cs_batch_literal(p, s1, nt);
    params[1] = cs_batch_literal(p, s2, nt);
    params[2] = cs_int_literal(p, m, nt);
    for (i = 0; i < nw; i++) {
        const cs_batch_who_t *w = &APR_ARRAY_IDX(sum.who, i, cs_batch_who_t);
        s1[i] = w->principal;
        s2[i] = w->email;
        s3[i] = w->groups;
    }
    params[3] = cs_batch_literal(p, s1, nw);
    params[4] = cs_batch_literal(p, s2, nw);
    params[5] = cs_batch_literal(p, s3, nw);
    params[6] = cs_batch_literal(p, (const char *const *)sum.reserved->elts, sum.reserved->nelts);
    for (i = 0; i < nl; i++) {
        const cs_batch_release_t *r = &APR_ARRAY_IDX(sum.releases, i, cs_batch_release_t);
        s1[i] = r->lease;
        m[i] = r->micro;
    }
    params[7] = cs_batch_literal(p, s1, nl);
    params[8] = cs_int_literal(p, m, nl);

    ok = cs_settle_step(p, conn, PQexec(conn, "BEGIN"), PGRES_COMMAND_OK, why, sqlstate);
    if (ok && n > 0) {
        ok = cs_settle_step(p, conn, PQexec(conn, CS_COPY_SQL), PGRES_COPY_IN, why, sqlstate);
        if (ok) {
            data = cs_copy_data(p, rows, n, &len);
            if (PQputCopyData(conn, data, (int)len) != 1 || PQputCopyEnd(conn, NULL) != 1) {
                ok = 0;
                *why = apr_pstrdup(p, PQerrorMessage(conn));
            }
            /* the COPY's own result, then the end of its results */
            while ((res = PQgetResult(conn)) != NULL) {
                if (ok) {
                    ok = cs_settle_step(p, conn, res, PGRES_COMMAND_OK, why, sqlstate);
                }
                else {
                    PQclear(res);
                }
            }
        }
    }
    if (ok) {
        ok = cs_settle_step(
            p, conn, PQexecParams(conn, CS_SUMS_SQL, CS_SUMS_NPARAMS, NULL, params, NULL, NULL, 0),
            PGRES_TUPLES_OK, why, sqlstate);
    }
    if (ok) {
        ok = cs_settle_step(p, conn, PQexec(conn, "COMMIT"), PGRES_COMMAND_OK, why, sqlstate);
    }
    else if (PQstatus(conn) == CONNECTION_OK) {
        PQclear(PQexec(conn, "ROLLBACK"));
    }
    return ok;
}

/* Append bytes to a journal under its lock, in one write. */
static apr_status_t cs_journal_write(apr_pool_t *p, const char *path, const char *data,
                                     apr_size_t len)
{
    apr_file_t *f;
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_file_lock(f, APR_FLOCK_EXCLUSIVE);
    rv = apr_file_write_full(f, data, len, NULL);
    apr_file_flush(f);
    apr_file_unlock(f);
    apr_file_close(f);
    return rv;
}

/* Append rows to their journals; returns how many could not be written. */
static int cs_journal_append(apr_pool_t *p, const cs_row_t *rows, int n)
{
    int i, lost = 0;

    for (i = 0; i < n; i++) {
        apr_size_t len;
        const char *line = cs_journal_line(p, rows[i].v, CS_ROW_NV, &len);
        apr_status_t rv = cs_journal_write(p, rows[i].journal, line, len);

        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, cs_q.s,
                         CS_LOGNO(0301) "ledger and journal unavailable: request %s of %s lost",
                         rows[i].v[CS_COL_ENTRY], rows[i].v[CS_COL_SUB]);
            lost++;
        }
    }
    return lost;
}

/* The lines of a spool file read whole: the unused part of its map, and
 * the tail of a row whose copy was cut short, are zero bytes; each run of
 * them ends a line, so a torn row stays apart (the replay skips it) and
 * the rows around it parse. Returns the new length. */
static apr_size_t cs_spool_compact(char *data, apr_size_t len)
{
    apr_size_t i, j = 0;

    for (i = 0; i < len; i++) {
        if (data[i] != '\0') {
            data[j++] = data[i];
        }
        else if (j > 0 && data[j - 1] != '\n') {
            data[j++] = '\n';
        }
    }
    return j;
}

/* Move the spool files of children that are gone (and, with own, this
 * process's leftovers from an earlier process of the same pid) into the
 * journal; the replay then settles them. */
static void cs_spool_recover(apr_pool_t *p, int own)
{
    apr_dir_t *dir;
    apr_finfo_t fi;
    pid_t me = getpid();

    if (cs_q.spool_dir == NULL || apr_dir_open(&dir, cs_q.spool_dir, p) != APR_SUCCESS) {
        return;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE | APR_FINFO_SIZE, dir) ==
           APR_SUCCESS) {
        char *end;
        long pid = strtol(fi.name, &end, 10);
        const char *path;
        apr_file_t *f;
        char *data;
        apr_size_t len;

        if (fi.filetype != APR_REG || pid <= 0 || *end != '.') {
            continue;
        }
        if ((pid_t)pid == me ? !own : (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) {
            continue; /* alive (or not ours to judge) */
        }
        path = apr_pstrcat(p, cs_q.spool_dir, "/", fi.name, NULL);
        if (fi.size > 0 &&
            apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p) == APR_SUCCESS) {
            len = (apr_size_t)fi.size;
            data = apr_palloc(p, len);
            if (apr_file_read_full(f, data, len, &len) != APR_SUCCESS && len == 0) {
                apr_file_close(f);
                continue;
            }
            apr_file_close(f);
            /* a mapped spool is never empty on disk: only lines count */
            len = cs_spool_compact(data, len);
            if (len > 0) {
                if (cs_journal_write(p, cs_q.journal, data, len) != APR_SUCCESS) {
                    continue; /* try again next time */
                }
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cs_q.s,
                             CS_LOGNO(0308) "ledger rows of process %ld, which ended without "
                                            "writing them, moved to the journal for replay",
                             pid);
                cs_q.journal_dirty = 1;
            }
        }
        apr_file_remove(path, p);
    }
    apr_dir_close(dir);
}

static void cs_spool_open(apr_pool_t *p)
{
    int i;

    cs_q.spool_fd[0] = cs_q.spool_fd[1] = -1;
    if (cs_q.spool_dir == NULL) {
        return;
    }
    cs_spool_recover(p, 1);
    for (i = 0; i < 2; i++) {
        apr_file_t *f;
        apr_os_file_t fd;
        apr_status_t rv;

        cs_q.spool_path[i] =
            apr_psprintf(cs_q.pool, "%s/%" APR_PID_T_FMT ".%d", cs_q.spool_dir, getpid(), i);
        rv = apr_file_open(&f, cs_q.spool_path[i],
                           APR_FOPEN_READ | APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE |
                               APR_FOPEN_TRUNCATE,
                           APR_FPROT_UREAD | APR_FPROT_UWRITE, cs_q.pool);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, cs_q.s,
                         CS_LOGNO(0309) "no spool file %s: queued ledger rows are lost if this "
                                        "process dies",
                         cs_q.spool_path[i]);
            cs_q.spool_fd[0] = cs_q.spool_fd[1] = -1;
            return;
        }
        apr_os_file_get(&fd, f);
        cs_q.spool_fd[i] = fd;
        cs_q.spool_map[i] = NULL;
        if (ftruncate(fd, CS_SPOOL_MAP) == 0) {
            void *m = mmap(NULL, CS_SPOOL_MAP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            cs_q.spool_map[i] = m != MAP_FAILED ? m : NULL;
        }
        if (cs_q.spool_map[i] == NULL) {
            ap_log_error(APLOG_MARK, APLOG_INFO, APR_FROM_OS_ERROR(errno), cs_q.s,
                         CS_LOGNO(0314) "spool file %s not mapped: rows are appended to it",
                         cs_q.spool_path[i]);
            if (ftruncate(fd, 0) != 0) {
                cs_q.spool_fd[0] = cs_q.spool_fd[1] = -1;
                return;
            }
        }
    }
}

/* Empty the spool file of a batch that is in the database or the journal.
 * Its rows were handed out under the lock before the batch was taken, so
 * once no thread is still copying, nothing more arrives in it. */
static apr_status_t cs_spool_empty(int i)
{
    apr_size_t used;

    if (cs_q.spool_map[i] == NULL) {
        return ftruncate(cs_q.spool_fd[i], 0) == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
    }
    while (apr_atomic_read32(&cs_q.spool_busy[i]) != 0) {
        apr_sleep(100); /* a thread between its reservation and its copy */
    }
    apr_thread_mutex_lock(cs_q.lock);
    used = cs_q.spool_used[i];
    apr_thread_mutex_unlock(cs_q.lock);
    memset(cs_q.spool_map[i], 0, used); /* the pages stay: no fault for the next rows */
    apr_thread_mutex_lock(cs_q.lock);
    cs_q.spool_used[i] = 0;
    apr_thread_mutex_unlock(cs_q.lock);
    if (cs_q.spool_spilled[i]) {
        cs_q.spool_spilled[i] = 0;
        if (ftruncate(cs_q.spool_fd[i], CS_SPOOL_MAP) != 0) {
            return APR_FROM_OS_ERROR(errno);
        }
    }
    return APR_SUCCESS;
}

/* Settle rows and returns; what the database does not take is journaled
 * (returns are not: their leases expire in the database on their own).
 * @return 1 when the database took everything */
static int cs_settle_batch(apr_pool_t *p, const cs_row_t *rows, int n,
                           const apr_array_header_t *rets)
{
    struct pg_conn *conn = NULL;
    apr_status_t rv;
    const char *why = NULL;
    int off = 0, ok = 1;

    if (n == 0 && rets->nelts == 0) {
        return 1;
    }
    rv = cs_writer_conn(&conn);
    if (rv == APR_ENOTIMPL) {
        return 1; /* no ClaudeGatewayDatabase: metering ends in the access log */
    }
    if (rv != APR_SUCCESS) {
        ok = 0;
        why = "no database connection";
    }
    while (ok && (off < n || off == 0)) {
        int k = n - off > CS_SETTLE_CHUNK ? CS_SETTLE_CHUNK : n - off;
        /* the returns ride with the first chunk */
        const apr_array_header_t *r =
            off == 0 ? rets : apr_array_make(p, 1, sizeof(cs_lease_return_t));
        const char *state = NULL;
        ok = cs_settle_exec_copy(p, (PGconn *)conn, rows + off, k, r, &why, &state);
        if (!ok && state != NULL && strcmp(state, "23505") == 0) {
            /* an entry is in the ledger already (a batch whose commit the
             * writer never heard of): count only what is new */
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, cs_q.s,
                         CS_LOGNO(0313) "ledger batch of %d rows holds a known entry (%s): "
                                        "settled row by row",
                         k, why);
            ok = cs_settle_exec(p, (PGconn *)conn, rows + off, k, r, &why);
        }
        if (ok) {
            off += k;
        }
        if (n == 0) {
            break;
        }
    }
    cs_writer_conn_done(ok);
    if (ok) {
        return 1;
    }
    if (off < n) {
        int lost = cs_journal_append(p, rows + off, n - off);
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, cs_q.s,
                     CS_LOGNO(0303) "ledger unreachable (%s): %d rows journaled for replay, "
                                    "first request %s",
                     why ? why : "?", n - off - lost, rows[off].v[CS_COL_REQUEST]);
        cs_q.journal_dirty = 1;
    }
    return 0;
}

/* The journal's rows back into the database once it answers again, in
 * chunks; truncated only when all went in. */
static void cs_journal_replay(apr_pool_t *p, const char *path)
{
    apr_finfo_t fi;
    apr_file_t *f;
    apr_array_header_t *rows, *none = apr_array_make(p, 1, sizeof(cs_lease_return_t));
    char buf[16384];
    int replayed = 0, ok = 1;
    apr_time_t now = apr_time_now();

    if (apr_stat(&fi, path, APR_FINFO_SIZE, p) != APR_SUCCESS || fi.size == 0) {
        return;
    }
    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_WRITE, APR_OS_DEFAULT, p) !=
        APR_SUCCESS) {
        return;
    }
    apr_file_lock(f, APR_FLOCK_EXCLUSIVE);
    rows = apr_array_make(p, 64, sizeof(cs_row_t));
    while (ok) {
        int eof = apr_file_gets(buf, sizeof(buf), f) != APR_SUCCESS;
        json_t *line = eof ? NULL : json_loads(buf, 0, NULL);
        size_t nv = json_is_array(line) ? json_array_size(line) : 0;

        if (!eof && (nv == CS_ROW_NV_V1 || nv == CS_ROW_NV_V2 || nv == CS_ROW_NV)) {
            cs_row_t *row = apr_array_push(rows);
            size_t i;
            memset(row, 0, sizeof(*row));
            for (i = 0; i < nv; i++) {
                json_t *v = json_array_get(line, i);
                row->v[i] = json_is_string(v) ? apr_pstrdup(p, json_string_value(v)) : NULL;
            }
            if (nv == CS_ROW_NV_V1) {
                /* rows from before the totals existed count in today's periods */
                row->v[CS_COL_DAY] = cs_period_key(p, CS_PERIOD_DAILY, now);
                row->v[CS_COL_WEEK] = cs_period_key(p, CS_PERIOD_WEEKLY, now);
                row->v[CS_COL_MONTH] = cs_period_key(p, CS_PERIOD_MONTHLY, now);
            }
            row->journal = path;
        }
        /* other lines are torn by a crash: their rows were never acknowledged */
        json_decref(line);
        if (rows->nelts == CS_SETTLE_CHUNK || (eof && rows->nelts > 0)) {
            struct pg_conn *conn;
            const char *why = NULL;
            ok = cs_writer_conn(&conn) == APR_SUCCESS;
            if (ok) {
                ok = cs_settle_exec(p, (PGconn *)conn, (cs_row_t *)rows->elts, rows->nelts, none,
                                    &why);
                cs_writer_conn_done(ok);
            }
            replayed += ok ? rows->nelts : 0;
            rows->nelts = 0;
        }
        if (eof) {
            break;
        }
    }
    if (ok) {
        apr_file_trunc(f, 0);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, cs_q.s,
                     CS_LOGNO(0304) "%d journaled ledger rows replayed from %s", replayed, path);
    }
    apr_file_unlock(f);
    apr_file_close(f);
}

/* The lease renewals queued in b and not yet run, each on the writer's
 * connection; what comes back (a grant too late to install) goes out with
 * the next batch. b's strings live until the writer itself resets it.
 * Writer thread only. */
static void cs_settle_renewals(cs_batch_t *b)
{
    for (;;) {
        cs_renew_t job;
        cs_lease_return_t ret;
        struct pg_conn *conn;
        apr_status_t rv;
        int ok;

        apr_thread_mutex_lock(cs_q.lock);
        if (b->renews_done == b->renews->nelts) {
            apr_thread_mutex_unlock(cs_q.lock);
            break;
        }
        job = APR_ARRAY_IDX(b->renews, b->renews_done, cs_renew_t);
        b->renews_done++;
        apr_thread_mutex_unlock(cs_q.lock);
        if ((rv = cs_writer_conn(&conn)) != APR_SUCCESS) {
            /* the old lease runs out, and the request after it waits for the database */
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, cs_q.s,
                         CS_LOGNO(0315) "no database connection to reserve the next spend "
                                        "lease of %s",
                         job.sub);
            continue;
        }
        ok = cs_admit_renew(cs_q.renewpool, cs_q.s, conn, &job, &ret);
        cs_writer_conn_done(ok);
        if (ret.lease_id != NULL && ret.micro > 0) {
            cs_lease_return_t *out;
            apr_thread_mutex_lock(cs_q.lock);
            out = apr_array_push(cs_q.fill.rets);
            out->lease_id = apr_pstrdup(cs_q.fill.pool, ret.lease_id);
            out->micro = ret.micro;
            apr_thread_mutex_unlock(cs_q.lock);
        }
        apr_pool_clear(cs_q.renewpool);
    }
}

static void *APR_THREAD_FUNC cs_settle_run(apr_thread_t *thread, void *data)
{
    apr_time_t last_sweep = 0, last_flush = 0;

    (void)data;
    /* named for top -H, perf and gdb: the child's one ledger writer */
#ifdef __linux__
    pthread_setname_np(pthread_self(), "claude-ledger");
#endif
    for (;;) {
        cs_batch_t b;
        int stopping, ok;
        apr_status_t rv;
        apr_time_t now;
        apr_pool_t *tmp;

        apr_thread_mutex_lock(cs_q.lock);
        if (!cs_q.stopping && cs_q.fill.rows->nelts == 0 && cs_q.fill.rets->nelts == 0 &&
            cs_q.fill.renews_done == cs_q.fill.renews->nelts) {
            cs_q.waiting = 1;
            apr_thread_cond_timedwait(cs_q.cond, cs_q.lock, CS_SETTLE_TICK);
            cs_q.waiting = 0;
        }
        now = apr_time_now();
        while (!cs_q.stopping && cs_q.fill.rows->nelts < CS_SETTLE_FULL && now >= last_flush &&
               now - last_flush < CS_SETTLE_GAP) {
            /* a batch went out just now: let this one fill up a little, but
             * reserve the leases asked for meanwhile at once */
            if (cs_q.fill.renews_done < cs_q.fill.renews->nelts) {
                apr_thread_mutex_unlock(cs_q.lock);
                cs_settle_renewals(&cs_q.fill);
                apr_thread_mutex_lock(cs_q.lock);
            }
            else {
                cs_q.gap_waiting = 1;
                apr_thread_cond_timedwait(cs_q.cond, cs_q.lock, last_flush + CS_SETTLE_GAP - now);
                cs_q.gap_waiting = 0;
            }
            now = apr_time_now();
        }
        stopping = cs_q.stopping;
        b = cs_q.fill;
        cs_q.fill = cs_q.spare;
        apr_thread_mutex_unlock(cs_q.lock);
        cs_settle_renewals(&b);

        now = apr_time_now();
        if (b.rows->nelts > 0) {
            last_flush = now; /* an idle tick is no batch: the next row goes at once */
        }
        if (stopping || now - last_sweep >= CS_SETTLE_TICK || now < last_sweep) {
            cs_leases_sweep(cs_q.leases, now, stopping, b.rets);
            last_sweep = now;
        }
        apr_pool_create(&tmp, b.pool);
        ok = cs_settle_batch(tmp, (cs_row_t *)b.rows->elts, b.rows->nelts, b.rets);
        if (b.rows->nelts > 0 && cs_q.spool_fd[b.spool] >= 0 &&
            (rv = cs_spool_empty(b.spool)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, cs_q.s,
                         CS_LOGNO(0310) "cannot empty the spool file %s", cs_q.spool_path[b.spool]);
        }
        if (ok && (cs_q.journal_dirty || now - cs_q.journal_checked >= CS_JOURNAL_CHECK ||
                   now < cs_q.journal_checked)) {
            int i;
            cs_spool_recover(tmp, 0);
            for (i = 0; i < cs_q.journals->nelts; i++) {
                cs_journal_replay(tmp, APR_ARRAY_IDX(cs_q.journals, i, const char *));
            }
            cs_q.journal_dirty = 0;
            cs_q.journal_checked = now;
        }
        cs_batch_reset(&b);

        apr_thread_mutex_lock(cs_q.lock);
        cs_q.spare = b;
        if (cs_q.stopping && cs_q.fill.rows->nelts == 0 && cs_q.fill.rets->nelts == 0) {
            apr_thread_mutex_unlock(cs_q.lock);
            break;
        }
        apr_thread_mutex_unlock(cs_q.lock);
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* A pre-cleanup of pchild: the last rows are written while the database
 * pool (a subpool of pchild) still exists. */
static apr_status_t cs_settle_child_exit(void *unused)
{
    apr_status_t rv;

    (void)unused;
    if (!cs_q.running) {
        return APR_SUCCESS;
    }
    apr_thread_mutex_lock(cs_q.lock);
    cs_q.stopping = 1;
    apr_thread_cond_signal(cs_q.cond);
    apr_thread_mutex_unlock(cs_q.lock);
    apr_thread_join(&rv, cs_q.thread);
    cs_q.running = 0;
    if (cs_q.conn != NULL) {
        cs_db_release(cs_q.s, cs_q.conn, 0);
        cs_q.conn = NULL;
    }
    /* every row is in the database or the journal now */
    if (cs_q.spool_fd[0] >= 0) {
        apr_file_remove(cs_q.spool_path[0], cs_q.pool);
        apr_file_remove(cs_q.spool_path[1], cs_q.pool);
    }
    return APR_SUCCESS;
}

const char *cs_settle_spool_dir(apr_pool_t *p, server_rec *s)
{
    return apr_pstrcat(p, cs_srv_get(s)->journal, ".spool", NULL);
}

void cs_settle_child_init(apr_pool_t *pchild, server_rec *s)
{
    const cs_srv_conf_t *sc = cs_srv_get(s);
    cs_lease_conf_t lc;
    server_rec *v;
    apr_status_t rv;

    memset(&cs_q, 0, sizeof(cs_q));
    cs_q.s = s;
    if ((rv = cs_pool_create_shared(&cs_q.pool, pchild, "claude_spend_settle", CS_SETTLE_KEEP)) !=
        APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CS_LOGNO(0312) "cannot set up the ledger writer's memory: rows go to the "
                                    "journal");
        return;
    }
    cs_q.journals = apr_array_make(cs_q.pool, 2, sizeof(const char *));
    for (v = s; v != NULL; v = v->next) {
        const char *path = cs_srv_get(v)->journal;
        int i, seen = 0;
        for (i = 0; i < cs_q.journals->nelts; i++) {
            seen |= strcmp(APR_ARRAY_IDX(cs_q.journals, i, const char *), path) == 0;
        }
        if (!seen) {
            APR_ARRAY_PUSH(cs_q.journals, const char *) = path;
        }
    }
    cs_q.journal = sc->journal;
    cs_q.spool_dir = cs_settle_spool_dir(cs_q.pool, s);
    lc.max_requests = cs_srv_lease_requests(sc);
    lc.max_age = cs_srv_lease_age(sc);
    lc.idle = lc.max_age < apr_time_from_sec(1) ? lc.max_age : apr_time_from_sec(1);
    /* a request waits this long for another one's admission of its key: an
     * admission is one round trip, so this only bounds a stuck one */
    lc.wait = apr_time_from_sec(1);
    apr_pool_create(&cs_q.fill.pool, cs_q.pool);
    apr_pool_create(&cs_q.spare.pool, cs_q.pool);
    apr_pool_create(&cs_q.colpool, cs_q.pool);
    apr_pool_create(&cs_q.renewpool, cs_q.pool);
    cs_batch_reset(&cs_q.fill);
    cs_batch_reset(&cs_q.spare);
    cs_q.fill.spool = 0;
    cs_q.spare.spool = 1;
    cs_spool_open(cs_q.pool);
    if ((rv = apr_thread_mutex_create(&cs_q.lock, APR_THREAD_MUTEX_DEFAULT, cs_q.pool)) !=
            APR_SUCCESS ||
        (rv = apr_thread_cond_create(&cs_q.cond, cs_q.pool)) != APR_SUCCESS ||
        (rv = cs_leases_create(&cs_q.leases, cs_q.pool, &lc)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CS_LOGNO(0305) "cannot set up the ledger writer: rows go to the journal");
        cs_q.leases = NULL;
        return;
    }
    cs_q.running = 1;
    rv = apr_thread_create(&cs_q.thread, NULL, cs_settle_run, NULL, cs_q.pool);
    if (rv != APR_SUCCESS) {
        cs_q.running = 0;
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     CS_LOGNO(0306) "cannot start the ledger writer: rows go to the journal");
        return;
    }
    apr_pool_pre_cleanup_register(pchild, NULL, cs_settle_child_exit);
}

void cs_settle_row(request_rec *r, const char *const *values)
{
    cs_row_t *row;
    int i, direct = 0, fd = -1, spool = 0;
    char *dst = NULL;
    const char *line = NULL;
    apr_size_t len = 0;

    apr_size_t vlen[CS_ROW_NV], total = 0;

    if (cs_q.spool_fd[0] >= 0) {
        line = cs_journal_line(r->pool, values, CS_ROW_NV, &len);
    }
    /* measured before the lock, copied under it in one block */
    for (i = 0; i < CS_ROW_NV; i++) {
        vlen[i] = values[i] ? strlen(values[i]) + 1 : 0;
        total += vlen[i];
    }
    if (!cs_q.running || cs_q.stopping) {
        direct = 1;
    }
    else {
        apr_thread_mutex_lock(cs_q.lock);
        if (cs_q.fill.rows->nelts >= CS_SETTLE_BACKLOG) {
            direct = 1; /* the writer is far behind: do not grow without bound */
        }
        else {
            char *copy = apr_palloc(cs_q.fill.pool, total + 1);
            row = apr_array_push(cs_q.fill.rows);
            for (i = 0; i < CS_ROW_NV; i++) {
                row->v[i] = values[i] ? memcpy(copy, values[i], vlen[i]) : NULL;
                copy += vlen[i];
            }
            row->journal = cs_srv_get(r->server)->journal;
            spool = cs_q.fill.spool;
            if (line != NULL && cs_q.spool_map[spool] != NULL &&
                cs_q.spool_used[spool] + len <= CS_SPOOL_MAP) {
                /* counted busy before the lock goes, so the writer cannot
                 * empty the file under the copy */
                dst = cs_q.spool_map[spool] + cs_q.spool_used[spool];
                cs_q.spool_used[spool] += len;
                apr_atomic_inc32(&cs_q.spool_busy[spool]);
            }
            else if (line != NULL) {
                fd = cs_q.spool_fd[spool];
                cs_q.spool_spilled[spool] = cs_q.spool_map[spool] != NULL;
            }
            if (cs_q.waiting) {
                apr_thread_cond_signal(cs_q.cond);
            }
        }
        apr_thread_mutex_unlock(cs_q.lock);
    }
    if (dst != NULL) {
        memcpy(dst, line, len);
        apr_atomic_dec32(&cs_q.spool_busy[spool]);
    }
    else if (fd >= 0) {
        /* outside the lock: should the writer empty this file first, the
         * line only outlives its row, and a replay of it changes nothing */
        if (write(fd, line, len) != (ssize_t)len) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, APR_FROM_OS_ERROR(errno), r,
                          CS_LOGNO(0311) "ledger row of request %s not spooled",
                          values[CS_COL_REQUEST]);
        }
    }
    if (direct) {
        cs_row_t one;
        for (i = 0; i < CS_ROW_NV; i++) {
            one.v[i] = values[i];
        }
        one.journal = cs_srv_get(r->server)->journal;
        if (cs_journal_append(r->pool, &one, 1) == 0) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          CS_LOGNO(0307) "ledger writer unavailable or behind: request %s "
                                         "journaled for replay",
                          values[CS_COL_REQUEST]);
        }
    }
}

void cs_settle_return(request_rec *r, const char *lease_id, apr_int64_t micro)
{
    cs_lease_return_t *ret;

    (void)r;
    if (!cs_q.running || lease_id == NULL || micro <= 0) {
        return; /* the lease expires in the database on its own */
    }
    apr_thread_mutex_lock(cs_q.lock);
    ret = apr_array_push(cs_q.fill.rets);
    ret->lease_id = apr_pstrdup(cs_q.fill.pool, lease_id);
    ret->micro = micro;
    if (cs_q.waiting) {
        apr_thread_cond_signal(cs_q.cond);
    }
    apr_thread_mutex_unlock(cs_q.lock);
}

void cs_settle_renew(const cs_renew_t *job)
{
    cs_renew_t *j;
    apr_pool_t *p;

    if (!cs_q.running) {
        return; /* the lease runs out, and the request after it is admitted as usual */
    }
    apr_thread_mutex_lock(cs_q.lock);
    if (!cs_q.stopping) {
        p = cs_q.fill.pool;
        j = apr_array_push(cs_q.fill.renews);
        j->key = apr_pstrdup(p, job->key);
        j->old_id = apr_pstrdup(p, job->old_id);
        j->sub = apr_pstrdup(p, job->sub);
        j->groups = apr_pstrdup(p, job->groups);
        j->keys = apr_pstrdup(p, job->keys);
        j->mode = apr_pstrdup(p, job->mode);
        j->estimate = job->estimate;
        j->want = job->want;
        j->ttl = job->ttl;
        if (cs_q.waiting || cs_q.gap_waiting) {
            apr_thread_cond_signal(cs_q.cond);
        }
    }
    apr_thread_mutex_unlock(cs_q.lock);
}
