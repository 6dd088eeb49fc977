/* cg_oauth: the device flow of RFC 8628 as the reference gateway speaks it,
 * and the HS256 session tokens it mints (PROTOCOL.md §2-4).
 *
 * mod_auth_openidc is the relying party: it guards /device, runs the IdP
 * login and hands us the claims in the environment (OIDCPassClaimsAs
 * environment). Our /device page shows who is signing in and which code and
 * approves only on a same-origin POST. The CLI polls /oauth/token. Device
 * grants and rate-limit counters are rows in PostgreSQL; the device code is
 * stored only as its SHA-256. */
#include <apr_strings.h>
#include <apr_lib.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_script.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <curl/curl.h>

#include "cg_private.h"
#include "cg_config.h"
#include "cg_db.h"
#include "cg_jwt.h"
#include "cg_oauth.h"
#include "cg_util.h"
#include "cg_handler.h"
#include "cg_claims.h"

#define CG_DEVICE_TTL 600
#define CG_DEVICE_INTERVAL 5
#define CG_SLOW_DOWN_SECONDS 4
#define CG_VERIFY_RATE 10
#define CG_FORM_MAX 8192
#define CG_AUDIENCE "claude-gateway"
/* the reference's user-code alphabet: no vowels, no look-alikes */
#define CG_USER_CODE_ALPHABET "BCDFGHJKMNPQRSTVWXYZ"

/* --- small helpers ------------------------------------------------------ */

/* The origin clients use: ClaudeGatewayPublicURL, else the request's own. */
static const char *cg_base_url(request_rec *r)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);

    return sc->public_url ? sc->public_url : ap_construct_url(r->pool, "", r);
}

static int cg_json_reply(request_rec *r, int status, json_t *j, int no_store)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    const char *body = s ? apr_pstrdup(r->pool, s) : "{}";

    free(s);
    json_decref(j);
    return cg_reply_json(r, status, body, no_store);
}

/* The audit line of a sign-in step (claude_json in conf/claude-gateway-log.conf
 * prints these notes): what was decided, why, and for whom. Never a token or
 * a device code; the user code the person typed is fine. */
static void cg_audit(request_rec *r, const char *decision, const char *reason, const char *sub,
                     const char *email)
{
    cg_note_set(r, "claude-decision", decision);
    if (reason != NULL) {
        cg_note_set(r, "claude-reason", apr_pstrdup(r->pool, reason));
    }
    if (sub != NULL && *sub != '\0') {
        cg_note_set(r, "claude-user", apr_pstrdup(r->pool, sub));
    }
    if (email != NULL && *email != '\0') {
        cg_note_set(r, "claude-email", apr_pstrdup(r->pool, email));
    }
}

static int cg_oauth_fail(request_rec *r, int status, const char *error, const char *desc)
{
    json_t *j = json_object();

    /* callers that know more (who, which code) set the decision first */
    if (cg_note_get(r, "claude-decision") == NULL) {
        int token = strcmp(r->handler, CG_HANDLER_TOKEN) == 0;
        cg_audit(r,
                 !strcmp(error, "temporarily_unavailable") || !strcmp(error, "server_error")
                     ? "signin_unavailable"
                 : !token                                  ? "device_authorization_refused"
                 : !strcmp(error, "authorization_pending") ? "token_pending"
                 : !strcmp(error, "slow_down")             ? "token_slow_down"
                                                           : "token_denied",
                 error, NULL, NULL);
    }

    json_object_set_new(j, "error", json_string(error));
    if (desc != NULL) {
        json_object_set_new(j, "error_description", json_string(desc));
    }
    return cg_json_reply(r, status, j, 1);
}

static apr_table_t *cg_form_read(request_rec *r)
{
    return cg_form_table(r, CG_FORM_MAX);
}

/* One fixed-window counter per key; returns the count in this window, or -1
 * when the database cannot say (callers fail closed). */
static int cg_rate_hit(request_rec *r, const char *key, int window_seconds)
{
    static const char *const sql =
        "INSERT INTO claude_rate (key, window_start, count) VALUES ($1, now(), 1) "
        "ON CONFLICT (key) DO UPDATE SET "
        "count = CASE WHEN claude_rate.window_start <= now() - make_interval(secs => $2::int) "
        "THEN 1 ELSE claude_rate.count + 1 END, "
        "window_start = CASE WHEN claude_rate.window_start <= now() - "
        "make_interval(secs => $2::int) THEN now() ELSE claude_rate.window_start END "
        "RETURNING count";
    const char *params[2];
    PGresult *res;

    params[0] = key;
    params[1] = apr_itoa(r->pool, window_seconds);
    if (cg_db_query(r->pool, r->server, sql, 2, params, &res) != APR_SUCCESS ||
        PQntuples(res) != 1) {
        return -1;
    }
    return atoi(PQgetvalue(res, 0, 0));
}

/* XXXX-XXXX from the reference's alphabet; rejection sampling keeps it uniform. */
static const char *cg_user_code_new(apr_pool_t *p)
{
    static const char alphabet[] = CG_USER_CODE_ALPHABET;
    const apr_size_t n = sizeof(alphabet) - 1;
    unsigned char rnd[64];
    char *code = apr_palloc(p, 9);
    apr_size_t i, got = 0;

    while (got < 8) {
        if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
            return NULL;
        }
        for (i = 0; i < sizeof(rnd) && got < 8; i++) {
            if (rnd[i] < 256 - (256 % n)) {
                code[got++] = alphabet[rnd[i] % n];
            }
        }
    }
    code[8] = '\0';
    return code;
}

/* A user code as typed (any case, with or without hyphen or spaces) in its
 * stored form, or NULL when it cannot be one of ours. */
static const char *cg_user_code_normalize(apr_pool_t *p, const char *in)
{
    char *out = apr_palloc(p, 9);
    apr_size_t n = 0;

    for (; in != NULL && *in != '\0'; in++) {
        char c = (char)apr_toupper(*in);
        if (c == '-' || c == ' ') {
            continue;
        }
        if (n == 8 || strchr(CG_USER_CODE_ALPHABET, c) == NULL) {
            return NULL;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return n == 8 ? out : NULL;
}

static const char *cg_user_code_display(apr_pool_t *p, const char *code)
{
    return apr_psprintf(p, "%.4s-%.4s", code, code + 4);
}

static json_t *cg_groups_json(const apr_array_header_t *groups)
{
    json_t *a = json_array();
    int i;

    for (i = 0; groups != NULL && i < groups->nelts; i++) {
        json_array_append_new(a, json_string(APR_ARRAY_IDX(groups, i, const char *)));
    }
    return a;
}

/* --- discovery ---------------------------------------------------------- */

static int cg_discovery(request_rec *r)
{
    const char *base = cg_base_url(r);
    json_t *j;

    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    j = json_object();
    json_object_set_new(j, "issuer", json_string(base));
    json_object_set_new(
        j, "device_authorization_endpoint",
        json_string(apr_pstrcat(r->pool, base, "/oauth/device_authorization", NULL)));
    json_object_set_new(j, "token_endpoint",
                        json_string(apr_pstrcat(r->pool, base, "/oauth/token", NULL)));
    json_object_set_new(j, "revocation_endpoint",
                        json_string(apr_pstrcat(r->pool, base, "/oauth/revoke", NULL)));
    json_object_set_new(
        j, "grant_types_supported",
        json_pack("[ss]", "urn:ietf:params:oauth:grant-type:device_code", "refresh_token"));
    json_object_set_new(j, "response_types_supported", json_array());
    json_object_set_new(j, "token_endpoint_auth_methods_supported", json_pack("[s]", "none"));
    json_object_set_new(j, "scopes_supported", json_pack("[sss]", "openid", "profile", "email"));
    json_object_set_new(j, "gateway_protocol_version", json_integer(1));
    cg_audit(r, "allowed", NULL, NULL, NULL);
    return cg_json_reply(r, HTTP_OK, j, 0);
}

/* --- device authorization ----------------------------------------------- */

static int cg_device_authorization(request_rec *r)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);
    const char *base = cg_base_url(r);
    const char *device_code, *user_code = NULL, *params[3];
    PGresult *res = NULL;
    int hits, attempt;
    json_t *j;

    if (r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (cg_form_read(r) == NULL) {
        return cg_oauth_fail(r, HTTP_BAD_REQUEST, "invalid_request", NULL);
    }
    hits = cg_rate_hit(r, apr_pstrcat(r->pool, "devauth:", r->useragent_ip, NULL), CG_DEVICE_TTL);
    if (hits < 0) {
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    if (hits > cg_srv_device_rate(sc)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      CG_LOGNO(0301) "device authorization rate limit reached");
        cg_audit(r, "device_authorization_refused", "rate limited", NULL, NULL);
        return cg_oauth_fail(r, HTTP_TOO_MANY_REQUESTS, "slow_down",
                             "Too many sign-in attempts came from your network, which other "
                             "people may share.");
    }
    device_code = cg_jwt_random_b64url(r->pool, 32);
    if (device_code == NULL) {
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    params[0] = cg_jwt_sha256_hex(r->pool, device_code, strlen(device_code));
    params[2] = r->useragent_ip;
    /* user codes are 20^8: a collision is rare, and then we draw again */
    for (attempt = 0; attempt < 3; attempt++) {
        params[1] = user_code = cg_user_code_new(r->pool);
        if (user_code == NULL ||
            cg_db_query(r->pool, r->server,
                        "INSERT INTO claude_device_grants (device_hash, user_code, client_ip, "
                        "expires_at) VALUES ($1, $2, $3, now() + interval '600 seconds') "
                        "ON CONFLICT DO NOTHING RETURNING 1",
                        3, params, &res) != APR_SUCCESS) {
            return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
        }
        if (PQntuples(res) == 1) {
            break;
        }
    }
    if (PQntuples(res) != 1) {
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    user_code = cg_user_code_display(r->pool, user_code);
    j = json_object();
    json_object_set_new(j, "device_code", json_string(device_code));
    json_object_set_new(j, "user_code", json_string(user_code));
    json_object_set_new(j, "verification_uri",
                        json_string(apr_pstrcat(r->pool, base, "/device", NULL)));
    json_object_set_new(
        j, "verification_uri_complete",
        json_string(apr_pstrcat(r->pool, base, "/device?user_code=", user_code, NULL)));
    json_object_set_new(j, "expires_in", json_integer(CG_DEVICE_TTL));
    json_object_set_new(j, "interval", json_integer(CG_DEVICE_INTERVAL));
    if (sc->login_notice != NULL) {
        json_object_set_new(j, "login_notice", json_string(sc->login_notice));
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0302) "device authorization %s issued",
                  user_code);
    cg_audit(r, "device_authorized", apr_pstrcat(r->pool, "user_code ", user_code, NULL), NULL,
             NULL);
    return cg_json_reply(r, HTTP_OK, j, 1);
}

/* --- session tokens ----------------------------------------------------- */

static const char *cg_session_mint(request_rec *r, const char *sub, const char *email,
                                   const char *name, json_t *groups)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);
    apr_int64_t now = apr_time_sec(apr_time_now());
    const char *token;
    json_t *claims;

    if (sc->session_keys == NULL || sc->session_keys->nelts == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0303) "no ClaudeGatewaySessionSecret: cannot mint a session");
        return NULL;
    }
    claims = json_object();
    json_object_set_new(claims, "sub", json_string(sub));
    if (email != NULL && *email != '\0') {
        json_object_set_new(claims, "email", json_string(email));
    }
    if (name != NULL && *name != '\0') {
        json_object_set_new(claims, "name", json_string(name));
    }
    if (groups != NULL) {
        json_object_set(claims, "groups", groups);
    }
    json_object_set_new(claims, "aud", json_string(CG_AUDIENCE));
    json_object_set_new(claims, "iat", json_integer(now));
    json_object_set_new(claims, "exp", json_integer(now + cg_srv_session_ttl(sc)));
    if (sc->public_url != NULL) {
        json_object_set_new(claims, "iss", json_string(sc->public_url));
    }
    json_object_set_new(claims, "sid", json_string(cg_jwt_random_b64url(r->pool, 16)));
    token = cg_jwt_sign(r->pool, &APR_ARRAY_IDX(sc->session_keys, 0, cg_jwt_key_t), claims);
    json_decref(claims);
    return token;
}

int cg_session_verify(request_rec *r, const char *token, cg_identity_t *id, const char **why)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);
    cg_jwt_expect_t want;
    cg_jwt_session_t ses;
    json_t *v;
    apr_array_header_t *g;
    size_t i;

    if (sc->session_keys == NULL || sc->session_keys->nelts == 0) {
        *why = "no ClaudeGatewaySessionSecret configured";
        return 0;
    }
    want.iss = sc->public_url;
    want.aud = CG_AUDIENCE;
    want.now = apr_time_now();
    want.leeway = 30;
    /* the claims come read already for a token the key's cache holds */
    if (cg_jwt_verify_session(r->pool, token, (const cg_jwt_key_t *)sc->session_keys->elts,
                              sc->session_keys->nelts, &want, &ses, why) != CG_JWT_OK) {
        return 0;
    }
    memset(id, 0, sizeof(*id));
    id->sub = apr_pstrdup(r->pool, ses.sub);
    if (ses.email != NULL) {
        id->email = apr_pstrdup(r->pool, ses.email);
    }
    if (ses.name != NULL) {
        id->name = apr_pstrdup(r->pool, ses.name);
    }
    g = apr_array_make(r->pool, 4, sizeof(const char *));
    if (ses.groups != NULL) {
        json_array_foreach(ses.groups, i, v)
        {
            if (json_is_string(v)) {
                APR_ARRAY_PUSH(g, const char *) = apr_pstrdup(r->pool, json_string_value(v));
            }
        }
    }
    id->groups = g;
    id->source = "session";
    if (ses.sid != NULL) {
        id->session_id = apr_pstrdup(r->pool, ses.sid);
    }
    if (ses.has_iat) {
        id->issued_at = apr_time_from_sec((apr_int64_t)ses.iat);
    }
    if (id->sub == NULL) {
        *why = "no subject";
        return 0;
    }
    return 1;
}

/* --- token endpoint ----------------------------------------------------- */

static int cg_token_device_grant(request_rec *r, const char *device_code)
{
    static const char *const poll_sql =
        "WITH o AS (SELECT device_hash, last_poll FROM claude_device_grants "
        "WHERE device_hash = $1 AND expires_at > now() FOR UPDATE) "
        "UPDATE claude_device_grants g SET last_poll = now() FROM o "
        "WHERE g.device_hash = o.device_hash "
        "RETURNING g.status, COALESCE(EXTRACT(EPOCH FROM now() - o.last_poll), 1e9)::float8";
    const char *params[1], *status, *token, *refresh, *user_code;
    PGresult *res;
    json_t *j, *groups;
    double since_last;

    params[0] = cg_jwt_sha256_hex(r->pool, device_code, strlen(device_code));
    if (cg_db_query(r->pool, r->server, poll_sql, 1, params, &res) != APR_SUCCESS) {
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    if (PQntuples(res) != 1) {
        return cg_oauth_fail(r, HTTP_BAD_REQUEST, "expired_token", NULL);
    }
    status = PQgetvalue(res, 0, 0);
    since_last = atof(PQgetvalue(res, 0, 1));
    if (strcmp(status, "pending") == 0) {
        if (since_last < CG_SLOW_DOWN_SECONDS) {
            return cg_oauth_fail(r, HTTP_TOO_MANY_REQUESTS, "slow_down", NULL);
        }
        return cg_oauth_fail(r, HTTP_BAD_REQUEST, "authorization_pending", NULL);
    }
    /* approved or denied: the row is consumed, so the code works once */
    if (cg_db_query(r->pool, r->server,
                    "DELETE FROM claude_device_grants WHERE device_hash = $1 "
                    "RETURNING status, sub, email, name, groups::text, idp_refresh_token, "
                    "user_code",
                    1, params, &res) != APR_SUCCESS) {
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    if (PQntuples(res) != 1) {
        return cg_oauth_fail(r, HTTP_BAD_REQUEST, "expired_token", NULL); /* a racing poll won */
    }
    user_code = cg_user_code_display(r->pool, PQgetvalue(res, 0, 6));
    if (strcmp(PQgetvalue(res, 0, 0), "approved") != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0304) "device grant denied");
        cg_audit(r, "token_denied",
                 apr_pstrcat(r->pool, "access_denied: user_code ", user_code, NULL), NULL, NULL);
        return cg_oauth_fail(r, HTTP_BAD_REQUEST, "access_denied", NULL);
    }
    groups = PQgetisnull(res, 0, 4) ? NULL : json_loads(PQgetvalue(res, 0, 4), 0, NULL);
    token = cg_session_mint(r, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                            groups);
    json_decref(groups);
    if (token == NULL) {
        return cg_oauth_fail(r, HTTP_INTERNAL_SERVER_ERROR, "server_error", NULL);
    }
    refresh = PQgetisnull(res, 0, 5) ? NULL : PQgetvalue(res, 0, 5);
    j = json_object();
    json_object_set_new(j, "access_token", json_string(token));
    if (refresh != NULL && *refresh != '\0') {
        json_object_set_new(j, "refresh_token", json_string(refresh));
    }
    json_object_set_new(j, "token_type", json_string("Bearer"));
    json_object_set_new(j, "expires_in", json_integer(cg_srv_session_ttl(cg_srv_get(r->server))));
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0305) "session minted for %s",
                  PQgetvalue(res, 0, 1));
    cg_audit(r, "token_minted",
             apr_pstrcat(r->pool, "device_code grant, user_code ", user_code, NULL),
             PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    return cg_json_reply(r, HTTP_OK, j, 1);
}

/* --- the refresh grant: back to the IdP ----------------------------------- */

#define CG_IDP_TIMEOUT_MS 10000
#define CG_IDP_MAX_BODY (256 * 1024)

typedef struct cg_buf_t {
    apr_pool_t *pool;
    char *data;
    apr_size_t len, cap;
    int overflow;
} cg_buf_t;

static size_t cg_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    cg_buf_t *b = userdata;
    apr_size_t n = size * nmemb;

    if (b->len + n + 1 > CG_IDP_MAX_BODY) {
        b->overflow = 1;
        return 0; /* abort the transfer */
    }
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap ? b->cap * 2 : 4096;
        char *grown;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        grown = apr_palloc(b->pool, cap);
        if (b->len) {
            memcpy(grown, b->data, b->len);
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static apr_status_t cg_json_cleanup(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

static apr_status_t cg_curl_cleanup(void *h)
{
    curl_easy_cleanup(h);
    return APR_SUCCESS;
}

static apr_status_t cg_curl_slist_cleanup(void *l)
{
    curl_slist_free_all(l);
    return APR_SUCCESS;
}

static const char *cg_form_escape(apr_pool_t *p, CURL *h, const char *v)
{
    char *e = curl_easy_escape(h, v, 0);
    const char *out = e ? apr_pstrdup(p, e) : "";

    curl_free(e);
    return out;
}

/* The payload of a JWT the IdP's token endpoint just handed us over its own
 * TLS connection (OIDC Core 3.1.3.7: the TLS check stands in for the
 * signature check here), as JSON owned by a cleanup on p; NULL when absent. */
static json_t *cg_id_token_claims(apr_pool_t *p, const char *jwt)
{
    const char *dot1, *dot2;
    unsigned char *raw;
    apr_size_t rawlen;
    json_t *j;

    if (jwt == NULL || (dot1 = strchr(jwt, '.')) == NULL ||
        (dot2 = strchr(dot1 + 1, '.')) == NULL) {
        return NULL;
    }
    if (cg_jwt_b64url_decode(p, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), &raw, &rawlen) !=
        APR_SUCCESS) {
        return NULL;
    }
    j = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    apr_pool_cleanup_register(p, j, cg_json_cleanup, apr_pool_cleanup_null);
    return j;
}

static int cg_token_refresh_grant(request_rec *r, const char *refresh_token)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);
    cg_buf_t buf = {r->pool, NULL, 0, 0, 0};
    struct curl_slist *hdrs = NULL;
    const char *form, *token, *email = NULL, *name = NULL, *sub, *gate;
    apr_array_header_t *garr;
    json_t *resp, *claims, *v, *out, *groups;
    long http_status = 0;
    CURLcode cc;
    CURL *h;

    if (sc->oidc_token_endpoint == NULL || sc->oidc_client_id == NULL) {
        return cg_oauth_fail(r, HTTP_BAD_REQUEST, "unsupported_grant_type", NULL);
    }
    else {
        const char *params[1];
        PGresult *res;

        params[0] = cg_jwt_sha256_hex(r->pool, refresh_token, strlen(refresh_token));
        if (cg_db_query(r->pool, r->server,
                        "SELECT 1 FROM claude_refresh_revocations WHERE token_hash = $1", 1, params,
                        &res) != APR_SUCCESS) {
            return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
        }
        if (PQntuples(res) > 0) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          CG_LOGNO(0316) "refresh with a revoked refresh token refused");
            cg_audit(r, "token_denied", "invalid_grant: refresh token revoked", NULL, NULL);
            return cg_oauth_fail(r, HTTP_UNAUTHORIZED, "invalid_grant", NULL);
        }
    }
    h = curl_easy_init();
    if (h == NULL) {
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    apr_pool_cleanup_register(r->pool, h, cg_curl_cleanup, apr_pool_cleanup_null);
    /* client_secret_post, as the reference sends it */
    form = apr_pstrcat(r->pool, "grant_type=refresh_token&refresh_token=",
                       cg_form_escape(r->pool, h, refresh_token),
                       "&client_id=", cg_form_escape(r->pool, h, sc->oidc_client_id),
                       "&client_secret=", cg_form_escape(r->pool, h, sc->oidc_client_secret), NULL);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    apr_pool_cleanup_register(r->pool, hdrs, cg_curl_slist_cleanup, apr_pool_cleanup_null);
    curl_easy_setopt(h, CURLOPT_URL, sc->oidc_token_endpoint);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cg_curl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CG_IDP_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threaded MPM: no SIGALRM */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
    if (cc != CURLE_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0310) "IdP token endpoint unreachable: %s", curl_easy_strerror(cc));
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    resp = buf.data ? json_loadb(buf.data, buf.len, 0, NULL) : NULL;
    if (resp != NULL) {
        apr_pool_cleanup_register(r->pool, resp, cg_json_cleanup, apr_pool_cleanup_null);
    }
    if (http_status != 200) {
        v = resp ? json_object_get(resp, "error") : NULL;
        if ((http_status == 400 || http_status == 401) && json_is_string(v) &&
            strcmp(json_string_value(v), "invalid_grant") == 0) {
            /* the deprovisioning path: the client signs in again */
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          CG_LOGNO(0311) "IdP refused the refresh token (invalid_grant)");
            cg_audit(r, "token_denied", "invalid_grant: refused by the IdP", NULL, NULL);
            return cg_oauth_fail(r, HTTP_UNAUTHORIZED, "invalid_grant", NULL);
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0312) "IdP token endpoint answered %ld", http_status);
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    claims = resp
                 ? cg_id_token_claims(r->pool, json_string_value(json_object_get(resp, "id_token")))
                 : NULL;
    sub = claims ? json_string_value(json_object_get(claims, "sub")) : NULL;
    if (sub == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0313) "IdP refresh answer carries no usable id_token");
        return cg_oauth_fail(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable", NULL);
    }
    if ((v = json_object_get(claims, "email_verified")) != NULL && json_is_false(v)) {
        cg_audit(r, "token_denied", "invalid_grant: email not verified", sub, NULL);
        return cg_oauth_fail(r, HTTP_UNAUTHORIZED, "invalid_grant", NULL);
    }
    email = cg_claims_email(r->pool, claims, cg_srv_email_claims(sc));
    name = json_string_value(json_object_get(claims, "name"));
    garr = cg_claims_groups(r->pool, claims, cg_srv_groups_claim(sc));
    gate = cg_claims_gate(email, garr, sc->allowed_domains, sc->allowed_groups);
    if (gate != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0315) "refresh of %s refused: %s", sub,
                      gate);
        cg_audit(r, "token_denied", apr_pstrcat(r->pool, "invalid_grant: ", gate, NULL), sub,
                 email);
        return cg_oauth_fail(r, HTTP_UNAUTHORIZED, "invalid_grant", NULL);
    }
    groups = cg_groups_json(garr);
    token = cg_session_mint(r, sub, email, name, groups);
    json_decref(groups);
    if (token == NULL) {
        return cg_oauth_fail(r, HTTP_INTERNAL_SERVER_ERROR, "server_error", NULL);
    }
    out = json_object();
    json_object_set_new(out, "access_token", json_string(token));
    v = json_object_get(resp, "refresh_token");
    json_object_set_new(out, "refresh_token",
                        json_string(json_is_string(v) ? json_string_value(v) : refresh_token));
    json_object_set_new(out, "token_type", json_string("Bearer"));
    json_object_set_new(out, "expires_in", json_integer(cg_srv_session_ttl(sc)));
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0314) "session refreshed for %s", sub);
    cg_audit(r, "token_refreshed", "refresh_token grant", sub, email);
    return cg_json_reply(r, HTTP_OK, out, 1);
}

static int cg_token(request_rec *r)
{
    apr_table_t *form;
    const char *grant, *device_code;

    if (r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    form = cg_form_read(r);
    if (form == NULL) {
        return cg_oauth_fail(r, HTTP_BAD_REQUEST, "invalid_request", NULL);
    }
    grant = apr_table_get(form, "grant_type");
    if (grant == NULL || *grant == '\0') {
        return cg_oauth_fail(r, HTTP_BAD_REQUEST, "invalid_request", NULL);
    }
    if (strcmp(grant, "urn:ietf:params:oauth:grant-type:device_code") == 0) {
        device_code = apr_table_get(form, "device_code");
        if (device_code == NULL || *device_code == '\0' || strlen(device_code) > 256) {
            return cg_oauth_fail(r, HTTP_BAD_REQUEST, "invalid_request", NULL);
        }
        return cg_token_device_grant(r, device_code);
    }
    if (strcmp(grant, "refresh_token") == 0) {
        const char *rt = apr_table_get(form, "refresh_token");
        if (rt == NULL || *rt == '\0' || strlen(rt) > 4096) {
            return cg_oauth_fail(r, HTTP_BAD_REQUEST, "invalid_request", NULL);
        }
        return cg_token_refresh_grant(r, rt);
    }
    return cg_oauth_fail(r, HTTP_BAD_REQUEST, "unsupported_grant_type", NULL);
}

/* --- the /device pages --------------------------------------------------- */

static int cg_page(request_rec *r, const char *title, const char *html)
{
    const char *body = apr_psprintf(
        r->pool,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<title>Claude Code</title><style>"
        "body{font:15px/1.5 system-ui,sans-serif;max-width:30em;margin:3em auto;padding:0 1em}"
        ".code{font:24px monospace;letter-spacing:.2em;padding:.5em;border:1px solid #999;"
        "text-align:center;margin:1em 0}button{font:inherit;padding:.6em 1.2em;margin:.3em 0;"
        "width:100%%}.refused{color:#a63244}</style></head><body><main><h1>%s</h1>%s"
        "</main></body></html>",
        ap_escape_html2(r->pool, title, 0), html);

    cg_response_headers(r);
    apr_table_setn(r->err_headers_out, "Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                   "form-action 'self'; base-uri 'none'");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "Pragma", "no-cache");
    r->status = HTTP_OK; /* the reference answers refusals as 200 pages too */
    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

/* The entry form, optionally with a refusal message. */
static int cg_page_code_form(request_rec *r, const char *who, const char *refused)
{
    return cg_page(
        r, "Connect Claude Code",
        apr_psprintf(
            r->pool,
            "<p>Signed in as <strong>%s</strong>. Enter the code Claude Code shows.</p>"
            "<form method=\"post\" action=\"/device\">"
            "<input class=\"code\" name=\"user_code\" aria-label=\"code\" "
            "placeholder=\"XXXX-XXXX\" maxlength=\"9\" autocomplete=\"off\" required>"
            "<button type=\"submit\" name=\"step\" value=\"confirm\">Continue</button>"
            "%s</form>",
            ap_escape_html2(r->pool, who, 0),
            refused ? apr_psprintf(r->pool, "<p class=\"refused\" role=\"alert\">%s</p>", refused)
                    : ""));
}

/* Who mod_auth_openidc says is at the browser. */
typedef struct cg_browser_user_t {
    const char *sub, *email, *name, *refresh_token, *email_verified;
    apr_array_header_t *groups;
} cg_browser_user_t;

/* mod_auth_openidc's claims (OIDC_CLAIM_*) back as a JSON object: objects
 * arrive JSON-encoded, arrays comma-joined, the rest as strings. */
static json_t *cg_env_claims(request_rec *r)
{
    const apr_array_header_t *arr = apr_table_elts(r->subprocess_env);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    json_t *claims = json_object(), *v;
    int i;

    for (i = 0; i < arr->nelts; i++) {
        if (e[i].key == NULL || strncmp(e[i].key, "OIDC_CLAIM_", 11) != 0 || e[i].val == NULL) {
            continue;
        }
        v = NULL;
        if (e[i].val[0] == '{') {
            v = json_loads(e[i].val, 0, NULL);
        }
        json_object_set_new(claims, e[i].key + 11, v ? v : json_string(e[i].val));
    }
    apr_pool_cleanup_register(r->pool, claims, cg_json_cleanup, apr_pool_cleanup_null);
    return claims;
}

static int cg_browser_user(request_rec *r, cg_browser_user_t *u)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);
    json_t *claims = cg_env_claims(r);

    u->sub = json_string_value(json_object_get(claims, "sub"));
    if (u->sub == NULL) {
        u->sub = r->user;
    }
    u->email = cg_claims_email(r->pool, claims, cg_srv_email_claims(sc));
    u->name = json_string_value(json_object_get(claims, "name"));
    u->groups = cg_claims_groups(r->pool, claims, cg_srv_groups_claim(sc));
    u->email_verified = json_string_value(json_object_get(claims, "email_verified"));
    u->refresh_token = apr_table_get(r->subprocess_env, "OIDC_refresh_token"); /* secret */
    return u->sub != NULL && *u->sub != '\0';
}

/* The reference's CSRF rule: Sec-Fetch-Site when the browser sends it, else
 * an exact Origin. */
static int cg_same_origin(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *origin = apr_table_get(r->headers_in, "Origin");

    if (site != NULL) {
        return strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0;
    }
    return origin != NULL && strcmp(origin, cg_base_url(r)) == 0;
}

static int cg_device_decide(request_rec *r, const cg_browser_user_t *u, const char *code,
                            int approve)
{
    const char *params[6], *shown = cg_user_code_display(r->pool, code);
    PGresult *res;
    json_t *groups;
    char *gtext;

    params[0] = code;
    if (approve) {
        groups = cg_groups_json(u->groups);
        gtext = json_dumps(groups, JSON_COMPACT);
        params[1] = u->sub;
        params[2] = u->email;
        params[3] = u->name;
        params[4] = gtext ? apr_pstrdup(r->pool, gtext) : "[]";
        params[5] = u->refresh_token;
        free(gtext);
        json_decref(groups);
        if (cg_db_query(r->pool, r->server,
                        "UPDATE claude_device_grants SET status = 'approved', sub = $2, "
                        "email = $3, name = $4, groups = $5::jsonb, idp_refresh_token = $6 "
                        "WHERE user_code = $1 AND status = 'pending' AND expires_at > now() "
                        "RETURNING 1",
                        6, params, &res) != APR_SUCCESS) {
            cg_audit(r, "signin_unavailable", "store unavailable", u->sub, u->email);
            return cg_page(r, "Sign-in unavailable",
                           "<p>The sign-in service is unavailable. Try again shortly.</p>");
        }
    }
    else if (cg_db_query(r->pool, r->server,
                         "UPDATE claude_device_grants SET status = 'denied' "
                         "WHERE user_code = $1 AND status = 'pending' AND expires_at > now() "
                         "RETURNING 1",
                         1, params, &res) != APR_SUCCESS) {
        cg_audit(r, "signin_unavailable", "store unavailable", u->sub, u->email);
        return cg_page(r, "Sign-in unavailable",
                       "<p>The sign-in service is unavailable. Try again shortly.</p>");
    }
    if (PQntuples(res) != 1) {
        cg_audit(r, "device_code_unknown", apr_pstrcat(r->pool, "user_code ", shown, NULL), u->sub,
                 u->email);
        return cg_page_code_form(r, u->email ? u->email : u->sub,
                                 "That code was not recognized — it may have expired. Check your "
                                 "device and try again.");
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0306) "device %s %s by %s", shown,
                  approve ? "approved" : "denied", u->sub);
    cg_audit(r, approve ? "device_approved" : "device_denied",
             apr_pstrcat(r->pool, "user_code ", shown, NULL), u->sub, u->email);
    if (approve) {
        return cg_page(r, "You're signed in",
                       "<p>You're signed in. Return to your device to continue.</p>");
    }
    return cg_page(r, "Sign-in denied",
                   "<p>The request was denied. Nothing was signed in. You can close this "
                   "page.</p>");
}

static int cg_device(request_rec *r)
{
    cg_browser_user_t u;
    apr_table_t *form;
    const char *code, *who, *step, *gate;
    int deny, hits;

    if (!cg_browser_user(r, &u)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0307) "/device has no signed-in user: protect it with "
                                     "AuthType openid-connect and OIDCPassClaimsAs environment");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    who = u.email ? u.email : u.sub;
    cg_audit(r, "allowed", NULL, u.sub, u.email);
    if (u.email_verified != NULL &&
        (strcmp(u.email_verified, "0") == 0 || strcmp(u.email_verified, "false") == 0)) {
        cg_audit(r, "signin_refused", "email not verified", u.sub, u.email);
        return cg_page(r, "Sign-in refused",
                       "<p>Your identity provider has not verified your email address.</p>");
    }
    if ((gate = cg_claims_gate(u.email, u.groups, cg_srv_get(r->server)->allowed_domains,
                               cg_srv_get(r->server)->allowed_groups)) != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, CG_LOGNO(0309) "sign-in of %s refused: %s",
                      u.sub, gate);
        cg_audit(r, "signin_refused", gate, u.sub, u.email);
        return cg_page(r, "Sign-in refused", apr_psprintf(r->pool, "<p>%s</p>", gate));
    }
    deny = strcmp(r->uri, "/device/deny") == 0;
    if (r->method_number == M_GET && !deny) {
        apr_table_t *q = NULL;
        ap_args_to_table(r, &q);
        code = cg_user_code_normalize(r->pool, q ? apr_table_get(q, "user_code") : NULL);
        if (code == NULL) {
            return cg_page_code_form(r, who, NULL);
        }
        cg_audit(r, "device_verify",
                 apr_pstrcat(r->pool, "user_code ", cg_user_code_display(r->pool, code), NULL),
                 u.sub, u.email);
        return cg_page(
            r, "Approve sign-in?",
            apr_psprintf(r->pool,
                         "<p>Signed in as <strong>%s</strong>. A device is requesting access to "
                         "Claude Code. <strong>Only continue if this code matches the one "
                         "shown on your device.</strong> If you didn't start this, select "
                         "Deny.</p><form method=\"post\" action=\"/device\">"
                         "<div class=\"code\">%s</div>"
                         "<input type=\"hidden\" name=\"user_code\" value=\"%s\">"
                         "<button type=\"submit\" name=\"step\" value=\"approve\">"
                         "This matches my device — approve</button>"
                         "<button type=\"submit\" formaction=\"/device/deny\">Deny</button>"
                         "</form>",
                         ap_escape_html2(r->pool, who, 0), cg_user_code_display(r->pool, code),
                         cg_user_code_display(r->pool, code)));
    }
    if (r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!cg_same_origin(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      CG_LOGNO(0308) "cross-site device POST refused");
        cg_audit(r, "device_csrf_refused", "cross-site POST", u.sub, u.email);
        return cg_page_code_form(r, who,
                                 "This request came from another site and was blocked. Open the "
                                 "verification link directly.");
    }
    hits = cg_rate_hit(r, apr_pstrcat(r->pool, "verify:", r->useragent_ip, NULL), CG_DEVICE_TTL);
    if (hits < 0) {
        cg_audit(r, "signin_unavailable", "store unavailable", u.sub, u.email);
        return cg_page(r, "Sign-in unavailable",
                       "<p>The sign-in service is unavailable. Try again shortly.</p>");
    }
    if (hits > CG_VERIFY_RATE) {
        cg_audit(r, "device_verify_refused", "rate limited", u.sub, u.email);
        return cg_page_code_form(r, who, "Too many attempts. Wait a few minutes and try again.");
    }
    form = cg_form_read(r);
    code = cg_user_code_normalize(r->pool, form ? apr_table_get(form, "user_code") : NULL);
    if (code == NULL) {
        cg_audit(r, "device_code_unknown", "not a user code", u.sub, u.email);
        return cg_page_code_form(r, who,
                                 "That code was not recognized — it may have expired. Check your "
                                 "device and try again.");
    }
    step = form ? apr_table_get(form, "step") : NULL;
    if (!deny && (step == NULL || strcmp(step, "approve") != 0)) {
        /* a typed code is confirmed on the next page, never approved at once */
        apr_table_setn(r->subprocess_env, "QUERY_STRING", "");
        r->args = apr_pstrcat(r->pool, "user_code=", code, NULL);
        r->method_number = M_GET;
        r->method = "GET";
        return cg_device(r);
    }
    return cg_device_decide(r, &u, code, !deny);
}

int cg_oauth_handler(request_rec *r)
{
    if (strcmp(r->handler, CG_HANDLER_DISCOVERY) == 0) {
        return cg_discovery(r);
    }
    if (strcmp(r->handler, CG_HANDLER_DEVICE_AUTHZ) == 0) {
        return cg_device_authorization(r);
    }
    if (strcmp(r->handler, CG_HANDLER_TOKEN) == 0) {
        return cg_token(r);
    }
    if (strcmp(r->handler, CG_HANDLER_DEVICE) == 0) {
        return cg_device(r);
    }
    return DECLINED;
}
