/* cg_db: the per-child PostgreSQL connection pool of mod_claude_gateway,
 * shared with mod_claude_spend through optional functions. */
#ifndef CG_DB_H
#define CG_DB_H

#include <httpd.h>

#include "mod_claude_gateway.h"

struct pg_result; /* libpq's PGresult */

/**
 * Create the pool of this child (child_init). Connections open lazily, after
 * fork, so no libpq socket or TLS state is ever shared between processes.
 * @param pchild the child pool; the pool and its connections die with it
 */
void cg_db_child_init(apr_pool_t *pchild, server_rec *s);

/** See claude_gateway_db_acquire in mod_claude_gateway.h. */
apr_status_t cg_db_acquire(server_rec *s, struct pg_conn **conn);

/** See claude_gateway_db_release in mod_claude_gateway.h. */
void cg_db_release(server_rec *s, struct pg_conn *conn, int broken);

/**
 * Whether the database answers a trivial query within its statement timeout.
 * @return APR_SUCCESS, APR_ENOTIMPL when none is configured, or the error
 */
apr_status_t cg_db_ping(server_rec *s);

#endif

/**
 * Run one parameterised statement on a pooled connection and give the
 * connection back at once.
 * @param p pool the result is released with (PQclear cleanup)
 * @param sql the statement, with $1.. placeholders
 * @param nparams number of text parameters (NULL elements are SQL NULL)
 * @param res receives the result on success (tuples or command OK)
 * @return APR_SUCCESS; APR_ENOTIMPL without a database; another error when the
 *         database is unreachable or the statement failed (logged with CG0103)
 */
apr_status_t cg_db_query(apr_pool_t *p, server_rec *s, const char *sql, int nparams,
                         const char *const *params, struct pg_result **res);
