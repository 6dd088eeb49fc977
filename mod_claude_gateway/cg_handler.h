/* cg_handler: the answers mod_claude_gateway writes itself: /healthz,
 * /readyz, and every error in the reference's JSON envelopes. */
#ifndef CG_HANDLER_H
#define CG_HANDLER_H

#include <httpd.h>

/**
 * The content handler (registered before mod_proxy). Declines what is not ours.
 */
int cg_handler(request_rec *r);

/**
 * Make r answer with an error in the Anthropic envelope from our handler
 * (called from fixups). Returns OK so the fixups phase continues; the
 * handler phase then writes the answer and mod_proxy never runs.
 * @param status HTTP status
 * @param type the envelope's error.type (invalid_request_error, ...)
 * @param msg the client-facing message
 */
int cg_error_set(request_rec *r, int status, const char *type, const char *msg);

/** Like cg_error_set, but a text/plain body as the reference's 404/411/413. */
int cg_error_set_plain(request_rec *r, int status, const char *msg);

/** Answer the error recorded with cg_error_set, from a handler. */
int cg_error_reply(request_rec *r);

/**
 * Write a JSON answer with the gateway's headers.
 * @param body compact JSON text
 * @param no_store add Cache-Control: no-store and Pragma: no-cache (OAuth)
 * @return OK
 */
int cg_reply_json(request_rec *r, int status, const char *body, int no_store);

/**
 * The urlencoded form of a POST as a table of strings (r->pool).
 * Another content type gives an empty table.
 * @param max largest body accepted
 * @return the table, or NULL when the body cannot be read or is too large
 */
apr_table_t *cg_form_table(request_rec *r, apr_size_t max);

#endif
