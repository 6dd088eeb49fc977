/* mod_claude_gateway: an Apache vhost as a self-hosted gateway for Claude Code.
 *
 * The module record and the hooks; each hook routes and delegates:
 *   check_authn    AuthType claude-session: who is calling (cg_check_authn)
 *   fixups         read and check the Messages body once, keep only the headers
 *                  the upstream needs, set the provider credential (cg_fixups)
 *   insert_filter  replay the body to mod_proxy_http (CLAUDE_GATEWAY_REPLAY)
 *   handler        /healthz, /readyz and our JSON errors, before mod_proxy
 *   child_init     the per-child PostgreSQL pool
 * Directives are in cg_config.c, handlers in cg_handler.c. */
#include <apr_strings.h>
#include <apr_optional.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include <http_ssl.h>
#include <mod_auth.h>
#include <curl/curl.h>

#include "cg_private.h"
#include "cg_config.h"
#include "cg_admin.h"
#include "cg_auditlog.h"
#include "cg_body.h"
#include "cg_db.h"
#include "cg_handler.h"
#include "cg_jwt.h"
#include "cg_oauth.h"
#include "cg_ratelimit.h"
#include "cg_keys.h"
#include "cg_provider.h"
#include "cg_revoke.h"
#include "cg_upstream.h"
#include "cg_telemetry.h"
#include "cg_util.h"

#define CG_AUTH_TYPE "claude-session"
#define CG_REPLAY_FILTER "CLAUDE_GATEWAY_REPLAY"

static ap_filter_rec_t *cg_replay_filter_handle;
static ap_filter_rec_t *cg_headers_filter_handle;

#define CG_HEADERS_FILTER "CLAUDE_GATEWAY_HEADERS"

static request_rec *cg_initial(request_rec *r)
{
    while (r->main != NULL) {
        r = r->main;
    }
    while (r->prev != NULL) {
        r = r->prev;
    }
    return r;
}

cg_req_t *cg_req_find(request_rec *r)
{
    return ap_get_module_config(cg_initial(r)->request_config, &claude_gateway_module);
}

cg_req_t *cg_req_get(request_rec *r)
{
    request_rec *ir = cg_initial(r);
    cg_req_t *rq = ap_get_module_config(ir->request_config, &claude_gateway_module);
    const char *client_id;

    if (rq == NULL) {
        rq = apr_pcalloc(ir->pool, sizeof(*rq));
        client_id = apr_table_get(ir->headers_in, "x-client-request-id");
        rq->request_id =
            cg_request_id_valid(client_id) ? apr_pstrdup(ir->pool, client_id) : cg_uuid4(ir->pool);
        if (rq->request_id == NULL) {
            rq->request_id = apr_pstrdup(ir->pool, ir->log_id ? ir->log_id : "-");
        }
        ap_set_module_config(ir->request_config, &claude_gateway_module, rq);
        rq->notes.request_id = rq->request_id;
        apr_table_addn(ir->notes, "claude-request-id", rq->request_id);
    }
    return rq;
}

/* Only the initial request's notes are mirrored: an internal redirect or a
 * subrequest has a table of its own, read and written as it is. */
void cg_note_set(request_rec *r, const char *name, const char *value)
{
    const char **slot;

    if (r->main == NULL && r->prev == NULL &&
        (slot = cg_notes_slot(&cg_req_get(r)->notes, name)) != NULL) {
        if (*slot == NULL) {
            apr_table_addn(r->notes, name, value); /* none yet: no search */
        }
        else {
            apr_table_setn(r->notes, name, value);
        }
        *slot = value;
        return;
    }
    apr_table_setn(r->notes, name, value);
}

const char *cg_note_get(request_rec *r, const char *name)
{
    cg_req_t *rq;
    const char **slot;

    if (r->main == NULL && r->prev == NULL && (rq = cg_req_find(r)) != NULL &&
        (slot = cg_notes_slot(&rq->notes, name)) != NULL) {
        return *slot;
    }
    return apr_table_get(r->notes, name);
}

void cg_notes_get_all(request_rec *r, cg_notes_t *out)
{
    cg_req_t *rq;

    if (r->main == NULL && r->prev == NULL && (rq = cg_req_find(r)) != NULL) {
        *out = rq->notes;
        return;
    }
    cg_notes_read(r->notes, out);
}

void cg_response_headers(request_rec *r)
{
    apr_table_t *h = r->err_headers_out;
    cg_req_t *rq = cg_req_get(r);

    /* authn, fixups and the handlers each ask: once per table is enough
     * (an internal redirect passes the same table on; a new one is filled) */
    if (rq->headers_set == h) {
        return;
    }
    rq->headers_set = h;
    apr_table_setn(h, "X-Content-Type-Options", "nosniff");
    apr_table_setn(h, "X-Frame-Options", "DENY");
    apr_table_setn(h, "Referrer-Policy", "no-referrer");
    apr_table_setn(h, "Cross-Origin-Opener-Policy", "same-origin");
    apr_table_setn(h, "x-request-id", rq->request_id);
    if (ap_ssl_conn_is_ssl(r->connection)) {
        apr_table_setn(h, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
    }
}

/* --- optional functions ------------------------------------------------- */

/* named as registered: APR_REGISTER_OPTIONAL_FN takes the function's name */
static const cg_identity_t *claude_gateway_identity(request_rec *r)
{
    const cg_req_t *rq = cg_req_find(r);

    return (rq != NULL && rq->identity.sub != NULL) ? &rq->identity : NULL;
}

static const char *claude_gateway_request_id(request_rec *r)
{
    return cg_req_get(r)->request_id;
}

static apr_status_t claude_gateway_db_acquire(server_rec *s, struct pg_conn **conn)
{
    return cg_db_acquire(s, conn);
}

static void claude_gateway_db_release(server_rec *s, struct pg_conn *conn, int broken)
{
    cg_db_release(s, conn, broken);
}

static void claude_gateway_note_set(request_rec *r, const char *name, const char *value)
{
    cg_note_set(r, name, value);
}

static const char *claude_gateway_note_get(request_rec *r, const char *name)
{
    return cg_note_get(r, name);
}

static int claude_gateway_admin_auth(request_rec *r, const char **actor, int *can_write)
{
    return cg_admin_auth(r, actor, can_write);
}

/* --- authentication ----------------------------------------------------- */

static void claude_gateway_pricing(request_rec *r, const char *served, claude_gateway_price_t *out)
{
    const cg_policy_t *pol = cg_srv_get(r->server)->policy;
    const cg_price_row_t *row = cg_policy_price(pol, cg_dir_upstream_name(cg_dir_get(r)),
                                                cg_note_get(r, "claude-model"), served);

    memset(out, 0, sizeof(*out));
    out->multiplier_ppm = pol ? pol->multiplier_ppm : 1000000;
    if (row != NULL) {
        out->overridden = 1;
        out->input = row->input;
        out->output = row->output;
        out->cache_read = row->cache_read;
        out->cache_write = row->cache_write;
    }
}

static int claude_gateway_refuse(request_rec *r, int status, const char *type, const char *message,
                                 int with_request_id)
{
    cg_req_t *rq = cg_req_get(r);

    cg_error_set(r, status, type, message);
    rq->err_no_request_id = !with_request_id;
    return OK;
}

static int cg_auth_fail(request_rec *r, cg_req_t *rq, const char *why)
{
    /* for the audit log: why is a static reason, never token bytes */
    cg_note_set(r, "claude-decision", "auth_failed");
    cg_note_set(r, "claude-reason", why);
    rq->err_status = HTTP_UNAUTHORIZED;
    rq->err_type = "authentication_error";
    rq->err_msg = "invalid token";
    apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer");
    /* httpd would write its HTML page; redirect the error to our handler */
    ap_custom_response(r, HTTP_UNAUTHORIZED, CG_ERROR_URI);
    return HTTP_UNAUTHORIZED;
}

static void cg_identity_set(request_rec *r, cg_req_t *rq, const cg_identity_t *id)
{
    rq->identity = *id;
    r->user = apr_pstrdup(r->pool, id->sub);
    cg_note_set(r, "claude-user", rq->identity.sub);
    if (id->email != NULL) {
        cg_note_set(r, "claude-email", id->email);
    }
    cg_note_set(r, "claude-groups", apr_array_pstrcat(r->pool, id->groups, ','));
}

static int cg_check_authn(request_rec *r)
{
    const char *type = ap_auth_type(r), *auth;
    const cg_dir_conf_t *dc;
    cg_req_t *rq;

    if (type == NULL || strcasecmp(type, CG_AUTH_TYPE) != 0) {
        return DECLINED;
    }
    dc = cg_dir_get(r);
    rq = cg_req_get(r);
    cg_response_headers(r);
    auth = apr_table_get(r->headers_in, "Authorization");
    if (auth == NULL && cg_key_looks_like(apr_table_get(r->headers_in, "x-api-key"))) {
        auth = apr_pstrcat(r->pool, "Bearer ", apr_table_get(r->headers_in, "x-api-key"), NULL);
    }
    if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 && cg_key_looks_like(auth + 7)) {
        /* a service key: Authorization: Bearer or x-api-key, as SDKs send them */
        cg_identity_t id;
        const char *why = NULL;

        if (cg_key_authenticate(r, auth + 7, &id, &why)) {
            cg_identity_set(r, rq, &id);
            return OK;
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "service key refused: %s", why);
        return cg_auth_fail(r, rq, why);
    }
    if (auth != NULL) {
        cg_identity_t id;
        const char *why = "not a bearer token";

        if (strncasecmp(auth, "Bearer ", 7) == 0 && cg_session_verify(r, auth + 7, &id, &why)) {
            if (!cg_revoked(r, &id)) {
                cg_identity_set(r, rq, &id);
                return OK;
            }
            why = "revoked";
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session refused: %s", why);
        return cg_auth_fail(r, rq, why);
    }
    /* no credential at all: only the development identity, which
     * post_config announces loudly, gets in */
    if (dc->dev_identity != NULL) {
        cg_identity_set(r, rq, dc->dev_identity);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "serving as development identity %s",
                      dc->dev_identity->sub);
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "no session token");
    return cg_auth_fail(r, rq, "no session token");
}

/* --- Require claude-group ---------------------------------------------- */

/* An authz provider so any location can say `Require claude-group eng ops`.
 * A refusal is answered as JSON like every other gateway error. */
static authz_status cg_authz_group(request_rec *r, const char *require_args,
                                   const void *parsed_require_line)
{
    const cg_identity_t *id = claude_gateway_identity(r);
    const char *line = require_args, *want;
    cg_req_t *rq;
    int i;

    (void)parsed_require_line;
    if (id == NULL) {
        return AUTHZ_DENIED_NO_USER;
    }
    while ((want = ap_getword_conf(r->pool, &line)) != NULL && *want != '\0') {
        for (i = 0; id->groups != NULL && i < id->groups->nelts; i++) {
            if (strcmp(APR_ARRAY_IDX(id->groups, i, const char *), want) == 0) {
                return AUTHZ_GRANTED;
            }
        }
    }
    rq = cg_req_get(r);
    rq->err_status = HTTP_FORBIDDEN;
    rq->err_type = "permission_error";
    rq->err_msg = "you aren't in a group that can use this gateway. Ask your administrator to "
                  "add you to one";
    cg_note_set(r, "claude-decision", "group_denied");
    cg_note_set(r, "claude-reason", require_args);
    /* mod_authz_core answers 401 unless AuthzSendForbiddenOnFailure is on;
     * either way our handler writes the 403 */
    ap_custom_response(r, HTTP_FORBIDDEN, CG_ERROR_URI);
    ap_custom_response(r, HTTP_UNAUTHORIZED, CG_ERROR_URI);
    return AUTHZ_DENIED;
}

static const authz_provider cg_authz_group_provider = {&cg_authz_group, NULL};

/* --- the Messages request path ----------------------------------------- */

/* Read the whole body into one r->pool buffer, bounded by max. The core's
 * buckets are released on every pass so peak memory is about one body. */
static int cg_body_read(request_rec *r, cg_req_t *rq, apr_off_t max)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    apr_size_t cap, len = 0;
    apr_off_t declared = -1;
    char *buf;
    int seen_eos = 0;

    if (cl != NULL && !ap_parse_strict_length(&declared, cl)) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return cg_error_set_plain(r, HTTP_BAD_REQUEST, "invalid content-length");
    }
    if (declared > max) {
        /* refused unread: the connection cannot be reused */
        r->connection->keepalive = AP_CONN_CLOSE;
        return cg_error_set_plain(r, HTTP_REQUEST_ENTITY_TOO_LARGE, "payload too large");
    }
    cap = declared >= 0 ? (apr_size_t)declared + 1 : 16384;
    buf = apr_palloc(r->pool, cap);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            int st = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            r->connection->keepalive = AP_CONN_CLOSE;
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, "reading the request body");
            return cg_error_set_plain(r, st,
                                      st == HTTP_REQUEST_ENTITY_TOO_LARGE ? "payload too large"
                                      : st == HTTP_REQUEST_TIME_OUT       ? "request timeout"
                                                                          : "bad request");
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &n, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                r->connection->keepalive = AP_CONN_CLOSE;
                return cg_error_set_plain(r, HTTP_BAD_REQUEST, "bad request");
            }
            if ((apr_off_t)(len + n) > max) {
                r->connection->keepalive = AP_CONN_CLOSE;
                return cg_error_set_plain(r, HTTP_REQUEST_ENTITY_TOO_LARGE, "payload too large");
            }
            if (len + n + 1 > cap) {
                char *grown;
                while (len + n + 1 > cap) {
                    cap *= 2;
                }
                grown = apr_palloc(r->pool, cap);
                memcpy(grown, buf, len);
                buf = grown;
            }
            memcpy(buf + len, data, n);
            len += n;
        }
        apr_brigade_cleanup(bb);
    }
    buf[len] = '\0';
    rq->body = buf;
    rq->body_len = len;
    return OK;
}

/* Keep only what the upstream needs (the reference's list), then add the
 * provider credential. Client credentials, cookies, identity and forwarding
 * headers never leave; Accept-Encoding is dropped so the answer comes back
 * uncompressed for metering. */
static void cg_headers_upstream(request_rec *r, const cg_dir_conf_t *dc, const cg_req_t *rq)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    apr_table_t *out = apr_table_make(r->pool, arr->nelts + 2);
    const char *ua = NULL, *conn = NULL;
    int i;

    for (i = 0; i < arr->nelts; i++) {
        if (e[i].key == NULL) {
            continue;
        }
        if (strcasecmp(e[i].key, "User-Agent") == 0) {
            ua = e[i].val;
        }
        else if (strcasecmp(e[i].key, "Connection") == 0) {
            conn = e[i].val;
        }
        else if (strcasecmp(e[i].key, "Host") == 0 || cg_header_forwardable(e[i].key)) {
            apr_table_addn(out, e[i].key, e[i].val);
        }
    }
    /* Apache's keep-alive decision reads Connection (an HTTP/1.0 client
     * keeps its connection only by asking), and the proxy drops every
     * header it names: only its close or keep-alive stays, so a client
     * cannot name the credential set below away */
    if (conn != NULL && ap_find_token(r->pool, conn, "close")) {
        apr_table_setn(out, "Connection", "close");
    }
    else if (conn != NULL && ap_find_token(r->pool, conn, "keep-alive")) {
        apr_table_setn(out, "Connection", "keep-alive");
    }
    apr_table_setn(out, "User-Agent",
                   ua ? apr_pstrcat(r->pool, ua, " mod_claude/" CG_VERSION, NULL)
                      : "mod_claude/" CG_VERSION);
    apr_table_setn(out, "Content-Length", apr_off_t_toa(r->pool, (apr_off_t)rq->body_len));
    apr_table_unset(out, "Transfer-Encoding");
    if (dc->upstream_key != NULL) {
        if (cg_dir_upstream_auth(dc) == CG_UPSTREAM_AUTH_BEARER) {
            apr_table_setn(out, "Authorization",
                           apr_pstrcat(r->pool, "Bearer ", dc->upstream_key, NULL));
        }
        else {
            apr_table_setn(out, "x-api-key", dc->upstream_key);
        }
    }
    r->headers_in = out;
}

/* availableModels, then the model id this upstream knows. The body is
 * rewritten only when the id changes; otherwise it goes up byte for byte. */
static int cg_apply_policy(request_rec *r, const cg_dir_conf_t *dc, cg_req_t *rq)
{
    const cg_policy_t *pol = cg_srv_get(r->server)->policy;
    const cg_identity_t *id = rq->identity.sub ? &rq->identity : NULL;
    const cg_settings_t *settings;
    const char *upstream, *target;

    settings = cg_policy_settings(pol, r->pool, id ? id->email : NULL, id ? id->groups : NULL);
    if (id != NULL && id->models != NULL) {
        /* a service key's own list narrows what its groups allow (pool
         * memory: it outlives this block) */
        cg_settings_t *narrow = apr_pcalloc(r->pool, sizeof(*narrow));
        narrow->available_models = (apr_array_header_t *)id->models;
        if (!cg_policy_model_allowed(narrow, rq->model)) {
            settings = narrow;
        }
    }
    if (!cg_policy_model_allowed(settings, rq->model)) {
        cg_error_set(r, HTTP_BAD_REQUEST, "invalid_request_error",
                     apr_psprintf(r->pool,
                                  "model %s is not in your role's availableModels allowlist",
                                  rq->model));
        cg_note_set(r, "claude-decision", "policy_denied");
        return OK;
    }
    if (cg_dir_route(dc)) {
        r->handler = CG_HANDLER_ROUTE; /* mapped per upstream by cg_upstream.c */
        return OK;
    }
    upstream = cg_dir_upstream_name(dc);
    target = cg_policy_upstream_model(pol, rq->model, upstream,
                                      cg_policy_upstream_provider(pol, upstream));
    if (target == NULL) {
        /* a custom model with no mapping for this upstream: skipped, as the
         * reference skips it, and nothing is left to try */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      CG_LOGNO(0110) "model %s has no upstream_model for upstream %s", rq->model,
                      upstream);
        cg_error_set(r, HTTP_BAD_GATEWAY, "api_error", "all upstreams failed (1 attempted)");
        cg_note_set(r, "claude-decision", "no_upstream");
        return OK;
    }
    if (strcmp(target, rq->model) != 0) {
        apr_size_t len;
        const char *body = cg_body_set_model(r->pool, rq->body, rq->body_len, target, &len);
        if (body == NULL) {
            return cg_error_set(r, HTTP_BAD_REQUEST, "invalid_request_error", "invalid JSON");
        }
        rq->body = body;
        rq->body_len = len;
        cg_note_set(r, "claude-model-upstream", target);
    }
    return OK;
}

static int cg_fixups(request_rec *r)
{
    const cg_dir_conf_t *dc = cg_dir_get(r);
    cg_body_info_t info;
    const char *msg;
    cg_req_t *rq;

    if (!ap_is_initial_req(r) || !cg_dir_enabled(dc)) {
        return DECLINED;
    }
    rq = cg_req_get(r);
    cg_response_headers(r);
    if (rq->err_status != 0) {
        return DECLINED;
    }
    if (r->method_number != M_POST) {
        return cg_error_set_plain(r, HTTP_NOT_FOUND, "not found");
    }
    if (apr_table_get(r->headers_in, "Content-Encoding") != NULL) {
        /* we would check one body and forward another */
        return cg_error_set(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "invalid_request_error",
                            "compressed request bodies are not supported");
    }
    if (cg_body_read(r, rq, cg_dir_max_body(dc)) != OK || rq->err_status != 0) {
        return OK;
    }
    msg = cg_body_check(r->pool, rq->body, rq->body_len, &info);
    if (msg != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "refused body: %s", msg);
        return cg_error_set(r, HTTP_BAD_REQUEST, "invalid_request_error", msg);
    }
    rq->model = info.model;
    rq->stream = info.stream;
    cg_note_set(r, "claude-model", rq->model);
    if (info.max_tokens >= 0) {
        /* for mod_claude_spend's cost estimate */
        cg_note_set(r, "claude-max-tokens", apr_off_t_toa(r->pool, (apr_off_t)info.max_tokens));
    }
    if (cg_apply_policy(r, dc, rq) != OK || rq->err_status != 0) {
        return OK;
    }
    if (strstr(r->uri, "/count_tokens") == NULL &&
        (cg_ratelimit_check(r, rq->identity.sub ? &rq->identity : NULL) != OK ||
         rq->err_status != 0)) {
        return OK;
    }
    cg_note_set(r, "claude-decision", "allowed");
    cg_headers_upstream(r, dc, rq);
    return OK;
}

static void cg_insert_filter(request_rec *r)
{
    cg_req_t *rq = cg_req_find(r);

    if (rq != NULL && rq->body != NULL && rq->err_status == 0 && r->main == NULL) {
        /* here and not in fixups: an internal redirect resets input filters */
        ap_add_input_filter_handle(cg_replay_filter_handle, rq, r, r->connection);
        ap_add_output_filter_handle(cg_headers_filter_handle, rq, r, r->connection);
    }
}

/* Upstream response headers that say things about the provider account
 * (its request ids, rate limits, organization) rather than about this
 * answer: the client gets ours instead. */
static int cg_header_private(void *rec, const char *key, const char *value)
{
    apr_array_header_t *drop = rec;

    int private;

    (void)value;
    switch (key[0] | 0x20) { /* by the first letter: every answer header comes here */
    case 'a':
        private
        = strncasecmp(key, "anthropic-ratelimit-", 20) == 0 ||
          strcasecmp(key, "anthropic-organization-id") == 0;
        break;
    case 'c':
        private
        = strcasecmp(key, "cf-ray") == 0;
        break;
    case 'r':
        private
        = strcasecmp(key, "request-id") == 0;
        break;
    case 'v':
        private
        = strcasecmp(key, "via") == 0;
        break;
    case 'x':
        private
        = strncasecmp(key, "x-gateway-", 10) == 0;
        break;
    default:
        private
        = 0;
    }
    if (private) {
        APR_ARRAY_PUSH(drop, const char *) = key;
    }
    return 1;
}

/* Runs once, on the first brigade of the proxied answer, before any header
 * is written; then steps aside. */
static apr_status_t cg_headers_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    const cg_req_t *rq = f->ctx;
    apr_array_header_t *drop = apr_array_make(r->pool, 8, sizeof(const char *));
    int i;

    apr_table_do(cg_header_private, drop, r->headers_out, NULL);
    for (i = 0; i < drop->nelts; i++) {
        apr_table_unset(r->headers_out, APR_ARRAY_IDX(drop, i, const char *));
    }
    if (r->status >= 200 && r->status < 300) {
        apr_table_setn(r->headers_out, "request-id", rq->request_id);
    }
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

/* Serves the body read in fixups to whoever reads the request next
 * (mod_proxy_http), honouring readbytes so ap_get_client_block users work. */
static apr_status_t cg_replay_in(ap_filter_t *f, apr_bucket_brigade *bb, ap_input_mode_t mode,
                                 apr_read_type_e block, apr_off_t readbytes)
{
    cg_req_t *rq = f->ctx;
    apr_size_t remaining, n;

    if (mode != AP_MODE_READBYTES && mode != AP_MODE_SPECULATIVE && mode != AP_MODE_EXHAUSTIVE) {
        return ap_get_brigade(f->next, bb, mode, block, readbytes);
    }
    remaining = rq->body_len - rq->replayed;
    n = remaining;
    if (mode != AP_MODE_EXHAUSTIVE && readbytes > 0 && (apr_off_t)n > readbytes) {
        n = (apr_size_t)readbytes;
    }
    if (n > 0) {
        APR_BRIGADE_INSERT_TAIL(
            bb, apr_bucket_pool_create(rq->body + rq->replayed, n, f->r->pool, bb->bucket_alloc));
    }
    if (mode != AP_MODE_SPECULATIVE) {
        rq->replayed += n;
    }
    if (rq->replayed == rq->body_len && mode != AP_MODE_SPECULATIVE) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    }
    return APR_SUCCESS;
}

/* --- lifecycle ------------------------------------------------------------ */

/* curl_global_init once per load of this module: its cleanup goes with
 * pconf, the pool this DSO lives and is unloaded with. On the process pool
 * it would outlive the DSO and, at exit, jump into unmapped code. */
static int cg_curl_ready;

static apr_status_t cg_curl_global_cleanup(void *unused)
{
    (void)unused;
    curl_global_cleanup();
    cg_curl_ready = 0;
    return APR_SUCCESS;
}

/* What the admin should know about each policy file, said once per file. */
static void cg_policy_report(server_rec *s)
{
    const cg_policy_t *last = NULL;
    int i;

    for (; s != NULL; s = s->next) {
        const cg_policy_t *pol = cg_srv_get(s)->policy;
        if (pol == NULL || pol == last) {
            continue;
        }
        last = pol;
        for (i = 0; i < pol->notes->nelts; i++) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CG_LOGNO(0100) "%s: %s", pol->file,
                         APR_ARRAY_IDX(pol->notes, i, const char *));
        }
        for (i = 0; i < pol->upstreams->nelts; i++) {
            const cg_upstream_decl_t *u = &APR_ARRAY_IDX(pol->upstreams, i, cg_upstream_decl_t);
            cg_provider_e kind = cg_provider_parse(u->provider);
            const char *why = NULL;

            if (kind == CG_PROVIDER_UNKNOWN) {
                why = "this provider is not routed by this version";
            }
            if (why != NULL) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                             CG_LOGNO(0141) "%s: upstreams[%d] %s (%s): %s; ClaudeGatewayRoute "
                                            "skips it",
                             pol->file, i, u->name, u->provider, why);
            }
        }
        for (i = 0; i < pol->rules->nelts; i++) {
            const cg_policy_rule_t *rule = &APR_ARRAY_IDX(pol->rules, i, cg_policy_rule_t);
            if (rule->compiled != NULL &&
                !cg_policy_model_allowed(rule->compiled, CG_CLIENT_DEFAULT_MODEL)) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                             CG_LOGNO(0140) "%s: managed.policies[%d]: availableModels leaves "
                                            "out the client's default model %s; its users must "
                                            "pick a model with /model first",
                             pol->file, i, CG_CLIENT_DEFAULT_MODEL);
            }
        }
    }
}

/* apachectl -t never reaches post_config: report the policy here then. */
static int cg_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_TEST) {
        cg_policy_report(s);
    }
    return OK;
}

/* Key the session HMAC once, here in the parent, so the children's request
 * threads only copy it (cg_jwt_key_prepare). Vhosts may share the main
 * server's key array; a prepared key is left alone. The keys live in pconf,
 * so their prepared state goes with them at restart. */
static void cg_session_keys_prepare(apr_pool_t *pconf, server_rec *s)
{
    int i;

    for (; s != NULL; s = s->next) {
        const cg_srv_conf_t *sc = cg_srv_get(s);
        apr_status_t rv;

        for (i = 0; sc->session_keys != NULL && i < sc->session_keys->nelts; i++) {
            rv = cg_jwt_key_prepare(pconf, &APR_ARRAY_IDX(sc->session_keys, i, cg_jwt_key_t));
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                             CG_LOGNO(0003) "cannot key the session HMAC in advance: sessions "
                                            "are verified the slow way");
            }
        }
    }
}

static int cg_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    void *dev = NULL;

    (void)plog;
    (void)ptemp;
    /* once, in the parent: reference-counted, mod_auth_openidc calls it too */
    if (!cg_curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        cg_curl_ready = 1;
        apr_pool_cleanup_register(pconf, NULL, cg_curl_global_cleanup, apr_pool_cleanup_null);
    }
    /* post_config runs twice at first start; speak only on the real pass */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    apr_pool_userdata_get(&dev, CG_DEV_IDENTITY_KEY, pconf);
    if (dev != NULL) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     CG_LOGNO(0002) "ClaudeGatewayDevIdentity is set: requests without a session "
                                    "are served unauthenticated. Development only.");
    }
    cg_policy_report(s);
    cg_session_keys_prepare(pconf, s);
    if (cg_ratelimit_post_config(pconf, s) != OK) {
        return !OK;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 CG_LOGNO(0001) "mod_claude_gateway/" CG_VERSION " ready (database %s)",
                 cg_srv_get(s)->db_conninfo ? "configured" : "none");
    return OK;
}

static int cg_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    cg_ratelimit_pre_config(pconf);
    return OK;
}

/* Runs after mod_claude_spend published the usage notes. */
static int cg_log_transaction(request_rec *r)
{
    cg_req_t *rq = cg_req_find(r);

    if (rq != NULL && rq->identity.sub != NULL && rq->err_status == 0 &&
        cg_note_get(r, "claude-usage-in") != NULL) {
        cg_ratelimit_account(r, &rq->identity);
    }
    return DECLINED;
}

static void cg_child_init(apr_pool_t *pchild, server_rec *s)
{
    cg_ratelimit_child_init(pchild, s);
    cg_db_child_init(pchild, s);
    cg_revoke_child_init(pchild, s);
    cg_upstream_child_init(pchild, s);
}

static void cg_register_hooks(apr_pool_t *p)
{
    APR_REGISTER_OPTIONAL_FN(claude_gateway_identity);
    APR_REGISTER_OPTIONAL_FN(claude_gateway_request_id);
    APR_REGISTER_OPTIONAL_FN(claude_gateway_db_acquire);
    APR_REGISTER_OPTIONAL_FN(claude_gateway_db_release);
    APR_REGISTER_OPTIONAL_FN(claude_gateway_admin_auth);
    APR_REGISTER_OPTIONAL_FN(claude_gateway_refuse);
    APR_REGISTER_OPTIONAL_FN(claude_gateway_pricing);
    APR_REGISTER_OPTIONAL_FN(claude_gateway_note_set);
    APR_REGISTER_OPTIONAL_FN(claude_gateway_note_get);

    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "claude-group", AUTHZ_PROVIDER_VERSION,
                              &cg_authz_group_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_pre_config(cg_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(cg_log_transaction, NULL, NULL, APR_HOOK_LAST);
    ap_hook_check_config(cg_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(cg_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(cg_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* OTLP ingest and relay, own metrics, the managed settings' OTEL env */
    cg_telemetry_register_hooks(p);
    /* the claude_json audit line as one mod_log_config item, %^CJ */
    cg_auditlog_register_hooks(p);
    ap_hook_check_authn(cg_check_authn, NULL, NULL, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_fixups(cg_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_filter(cg_insert_filter, NULL, NULL, APR_HOOK_MIDDLE);
    /* REALLY_FIRST: mod_proxy's handler keys on r->proxyreq, not r->handler,
     * so a refused request must be answered before it looks */
    ap_hook_handler(cg_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    cg_replay_filter_handle =
        ap_register_input_filter(CG_REPLAY_FILTER, cg_replay_in, NULL, AP_FTYPE_RESOURCE);
    /* a content filter sees the first brigade before HTTP_HEADER writes */
    cg_headers_filter_handle =
        ap_register_output_filter(CG_HEADERS_FILTER, cg_headers_out, NULL, AP_FTYPE_CONTENT_SET);
}

/* clang-format off */
/* the one symbol httpd looks up: visible despite -fvisibility=hidden */
__attribute__((visibility("default"))) module AP_MODULE_DECLARE_DATA claude_gateway_module = {
    STANDARD20_MODULE_STUFF,
    cg_dir_create,
    cg_dir_merge,
    cg_srv_create,
    cg_srv_merge,
    cg_cmds,
    cg_register_hooks,
    AP_MODULE_FLAG_ALWAYS_MERGE
};
/* clang-format on */
