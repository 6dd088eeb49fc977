/* cg_handler: content handlers of mod_claude_gateway.
 *
 * Errors are written here and not by returning HTTP_* from a hook: that path
 * (ap_send_error_response) forces text/html and drops headers_out, and the
 * Claude Code client expects the reference's JSON envelope. */
#include <stdlib.h>

#include <apr_strings.h>
#include <jansson.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_script.h>

#include "cg_private.h"
#include "cg_config.h"
#include "cg_db.h"
#include "cg_handler.h"
#include "cg_oauth.h"
#include "cg_revoke.h"
#include "cg_upstream.h"
#include "cg_keys.h"
#include "cg_util.h"

int cg_error_set(request_rec *r, int status, const char *type, const char *msg)
{
    cg_req_t *rq = cg_req_get(r);

    /* for the audit log: what the gateway decided, and the client-facing why */
    cg_note_set(r, "claude-decision",
                status == HTTP_NOT_FOUND                  ? "not_found"
                : status == HTTP_REQUEST_ENTITY_TOO_LARGE ? "too_large"
                                                          : "invalid_request");
    cg_note_set(r, "claude-reason", msg);
    rq->err_status = status;
    rq->err_type = type;
    rq->err_msg = msg;
    rq->err_plain = 0;
    r->handler = CG_HANDLER_ERROR;
    return OK;
}

int cg_error_set_plain(request_rec *r, int status, const char *msg)
{
    cg_error_set(r, status, NULL, msg);
    cg_req_get(r)->err_plain = 1;
    return OK;
}

int cg_reply_json(request_rec *r, int status, const char *body, int no_store)
{
    cg_response_headers(r);
    if (no_store) {
        apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
        apr_table_setn(r->err_headers_out, "Pragma", "no-cache");
    }
    r->status = status;
    ap_set_content_type(r, "application/json;charset=utf-8");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

apr_table_t *cg_form_table(request_rec *r, apr_size_t max)
{
    apr_array_header_t *pairs = NULL;
    apr_table_t *t = apr_table_make(r->pool, 8);

    if (ap_parse_form_data(r, NULL, &pairs, 32, max) != OK) {
        return NULL;
    }
    while (pairs != NULL && !apr_is_empty_array(pairs)) {
        ap_form_pair_t *pair = apr_array_pop(pairs);
        apr_off_t len;
        apr_size_t size;
        char *buf;

        apr_brigade_length(pair->value, 1, &len);
        size = (apr_size_t)len;
        buf = apr_palloc(r->pool, size + 1);
        apr_brigade_flatten(pair->value, buf, &size);
        buf[size] = '\0';
        apr_table_setn(t, pair->name, buf);
    }
    return t;
}

static int cg_write_text(request_rec *r, int status, const char *text)
{
    r->status = status;
    ap_set_content_type(r, "text/plain;charset=utf-8");
    ap_set_content_length(r, (apr_off_t)strlen(text));
    if (!r->header_only) {
        ap_rputs(text, r);
    }
    return OK;
}

static int cg_healthz(request_rec *r)
{
    cg_response_headers(r);
    return cg_write_text(r, HTTP_OK, "ok");
}

static int cg_readyz(request_rec *r)
{
    apr_status_t rv;

    cg_response_headers(r);
    rv = cg_db_ping(r->server);
    if (rv == APR_SUCCESS || rv == APR_ENOTIMPL) {
        return cg_write_text(r, HTTP_OK, "ready");
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, CG_LOGNO(0201) "not ready: store unavailable");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    return cg_write_text(r, HTTP_SERVICE_UNAVAILABLE, "store unavailable");
}

/* Answers the error recorded on this request, or on the request an
 * authentication failure was internally redirected from. */
static int cg_error_answer(request_rec *r, const cg_req_t *rq)
{
    const char *body;

    cg_response_headers(r);
    /* a request refused before its body was read must not leave the body on
     * the connection for the next request to trip over */
    if (rq->body == NULL && ap_discard_request_body(r) != OK) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    if (rq->err_plain) {
        return cg_write_text(r, rq->err_status, rq->err_msg);
    }
    r->status = rq->err_status;
    body = cg_error_envelope(r->pool, rq->err_type, rq->err_msg,
                             rq->err_no_request_id ? NULL : rq->request_id);
    ap_set_content_type(r, "application/json;charset=utf-8");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

/* If-None-Match holds our ETag (strong or weak). "*" is answered as if absent,
 * as the reference does: Claude Desktop sends it only to ask for a 200/404. */
static int cg_etag_listed(request_rec *r, const char *etag)
{
    const char *inm = apr_table_get(r->headers_in, "If-None-Match");
    char *list, *tok, *last;

    if (inm == NULL) {
        return 0;
    }
    list = apr_pstrdup(r->pool, inm);
    for (tok = apr_strtok(list, ", \t", &last); tok; tok = apr_strtok(NULL, ", \t", &last)) {
        if (strncmp(tok, "W/", 2) == 0) {
            tok += 2;
        }
        if (strcmp(tok, etag) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Claude Code's managed settings for the signed-in user (PROTOCOL.md §6). */
static int cg_managed_settings(request_rec *r)
{
    const cg_policy_t *pol = cg_srv_get(r->server)->policy;
    cg_req_t *rq = cg_req_get(r);
    const cg_identity_t *id = rq->identity.sub ? &rq->identity : NULL;
    const cg_settings_t *s;
    const char *etag;

    cg_response_headers(r);
    apr_table_setn(r->err_headers_out, "x-cc-gateway-version", CG_PROTOCOL_VERSION);
    apr_table_mergen(r->err_headers_out, "Vary", "User-Agent");
    if (r->method_number != M_GET) {
        cg_error_set_plain(r, HTTP_NOT_FOUND, "not found");
        return cg_error_answer(r, rq);
    }
    if (id == NULL) {
        /* the location lacks AuthType claude-session: never serve anonymously */
        cg_error_set(r, HTTP_UNAUTHORIZED, "authentication_error", "invalid token");
        return cg_error_answer(r, rq);
    }
    s = cg_policy_settings(pol, r->pool, id->email, id->groups);
    if (s == NULL) {
        apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
        cg_error_set(r, HTTP_NOT_FOUND, "not_found_error",
                     pol != NULL && pol->configured ? "no policy matched" : "not configured");
        cg_note_set(r, "claude-decision", "allowed");
        return cg_error_answer(r, rq);
    }
    cg_note_set(r, "claude-decision", "allowed");
    etag = apr_pstrcat(r->pool, "\"", s->checksum, "\"", NULL);
    if (cg_etag_listed(r, etag)) {
        return HTTP_NOT_MODIFIED;
    }
    apr_table_setn(r->headers_out, "ETag", etag);
    return cg_reply_json(r, HTTP_OK, s->response, 0);
}

/* The model list, generated here and filtered by the user's availableModels. */
static int cg_models(request_rec *r)
{
    const cg_policy_t *pol = cg_srv_get(r->server)->policy;
    cg_req_t *rq = cg_req_get(r);
    const cg_identity_t *id = rq->identity.sub ? &rq->identity : NULL;
    const cg_settings_t *s;
    json_t *list;
    char *dump;
    const char *body;

    cg_response_headers(r);
    if (r->method_number != M_GET) {
        cg_error_set_plain(r, HTTP_NOT_FOUND, "not found");
        return cg_error_answer(r, rq);
    }
    if (id == NULL) {
        cg_error_set(r, HTTP_UNAUTHORIZED, "authentication_error", "invalid token");
        return cg_error_answer(r, rq);
    }
    s = cg_policy_settings(pol, r->pool, id->email, id->groups);
    list = cg_policy_models_list(pol, s);
    dump = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    if (dump == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    body = apr_pstrdup(r->pool, dump);
    free(dump);
    cg_note_set(r, "claude-decision", "allowed");
    return cg_reply_json(r, HTTP_OK, body, 0);
}

int cg_error_reply(request_rec *r)
{
    return cg_error_answer(r, cg_req_get(r));
}

int cg_handler(request_rec *r)
{
    const cg_req_t *rq;
    int rc;

    /* the ErrorDocument redirect of a 401 from check_authn: whatever handler
     * the site configured for that URI, the answer is ours */
    if (r->prev != NULL && strcmp(r->uri, CG_ERROR_URI) == 0) {
        rq = cg_req_find(r);
        return (rq == NULL || rq->err_status == 0) ? DECLINED : cg_error_answer(r, rq);
    }
    if (r->handler == NULL) {
        return DECLINED;
    }
    if (strcmp(r->handler, CG_HANDLER_ERROR) == 0) {
        rq = cg_req_find(r);
        return (rq == NULL || rq->err_status == 0) ? DECLINED : cg_error_answer(r, rq);
    }
    if ((rc = cg_oauth_handler(r)) != DECLINED || (rc = cg_revoke_handler(r)) != DECLINED) {
        return rc;
    }
    if (strcmp(r->handler, CG_HANDLER_HEALTHZ) == 0) {
        return r->method_number == M_GET ? cg_healthz(r) : HTTP_METHOD_NOT_ALLOWED;
    }
    if (strcmp(r->handler, CG_HANDLER_READYZ) == 0) {
        return r->method_number == M_GET ? cg_readyz(r) : HTTP_METHOD_NOT_ALLOWED;
    }
    if (strcmp(r->handler, CG_HANDLER_MANAGED_SETTINGS) == 0) {
        return cg_managed_settings(r);
    }
    if (strcmp(r->handler, CG_HANDLER_MODELS) == 0) {
        return cg_models(r);
    }
    if (strcmp(r->handler, CG_HANDLER_ROUTE) == 0) {
        return cg_upstream_handler(r);
    }
    if (strcmp(r->handler, CG_HANDLER_KEYS) == 0) {
        return cg_keys_handler(r);
    }
    return DECLINED;
}
