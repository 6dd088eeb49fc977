/* cg_keys: service keys, the per-app tokens of callers that cannot sign in
 * through a browser (CI running `claude -p`, internal tools, SDK scripts).
 *
 * A key is presented like an Anthropic credential (`Authorization: Bearer`
 * or `x-api-key`), carries the recognisable prefix sk-cg-, and stands for the
 * principal key:<id> with its own groups (so group policies and caps apply)
 * and an optional narrower model list. Only SHA-256 hashes are stored; the
 * lookup is by hash, so no secret is ever compared byte by byte, and each
 * request reads the key's row: revocation and expiry apply to the next
 * request. The admin endpoints (create, list, get, rotate, revoke) use the
 * admin authentication of cg_admin.c and write the admin audit table. */
#include <apr_strings.h>
#include <http_protocol.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/sha.h>

#include "cg_private.h"
#include "cg_admin.h"
#include "cg_db.h"
#include "cg_handler.h"
#include "cg_keys.h"
#include "cg_util.h"

#define CG_KEY_ROW                                                                                 \
    "k.id, k.name, k.owner, k.groups::text, k.models::text, "                                      \
    "to_char(k.created_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "              \
    "to_char(k.expires_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "              \
    "to_char(k.revoked_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), k.created_by"

static const char *cg_key_hash(apr_pool_t *p, const char *secret)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char *hex = apr_palloc(p, 2 * SHA256_DIGEST_LENGTH + 1);
    int i;

    SHA256((const unsigned char *)secret, strlen(secret), md);
    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    return hex;
}

static const char *cg_key_random_hex(apr_pool_t *p, apr_size_t bytes)
{
    unsigned char b[32];
    char *hex = apr_palloc(p, bytes * 2 + 1);
    apr_size_t i;

    apr_generate_random_bytes(b, bytes);
    for (i = 0; i < bytes; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", b[i]);
    }
    return hex;
}

int cg_key_looks_like(const char *credential)
{
    return credential != NULL && strncmp(credential, CG_KEY_PREFIX, sizeof(CG_KEY_PREFIX) - 1) == 0;
}

static apr_array_header_t *cg_json_strings(apr_pool_t *p, const char *text, int lower)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    apr_array_header_t *out = NULL;
    size_t i;

    if (json_is_array(j)) {
        out = apr_array_make(p, (int)json_array_size(j), sizeof(char *));
        for (i = 0; i < json_array_size(j); i++) {
            const char *s = json_string_value(json_array_get(j, i));
            if (s != NULL) {
                char *c = apr_pstrdup(p, s);
                if (lower) {
                    ap_str_tolower(c);
                }
                APR_ARRAY_PUSH(out, const char *) = c;
            }
        }
    }
    json_decref(j);
    return out;
}

int cg_key_authenticate(request_rec *r, const char *secret, cg_identity_t *id, const char **why)
{
    const char *params[1];
    PGresult *res;
    apr_status_t rv;

    params[0] = cg_key_hash(r->pool, secret);
    rv = cg_db_query(r->pool, r->server,
                     "SELECT k.id, k.owner, k.groups::text, k.models::text FROM "
                     "claude_service_key_secrets s JOIN claude_service_keys k ON k.id = s.key_id "
                     "WHERE s.hash = $1 AND (s.valid_until IS NULL OR s.valid_until > now()) AND "
                     "k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())",
                     1, params, &res);
    if (rv != APR_SUCCESS) {
        *why = "service keys unavailable";
        return 0;
    }
    if (PQntuples(res) != 1) {
        *why = "unknown, revoked or expired service key";
        return 0;
    }
    memset(id, 0, sizeof(*id));
    id->sub = apr_pstrcat(r->pool, "key:", PQgetvalue(res, 0, 0), NULL);
    id->email = PQgetisnull(res, 0, 1) ? NULL : apr_pstrdup(r->pool, PQgetvalue(res, 0, 1));
    id->groups = cg_json_strings(r->pool, PQgetvalue(res, 0, 2), 0);
    if (id->groups == NULL) {
        id->groups = apr_array_make(r->pool, 1, sizeof(char *));
    }
    id->models = PQgetisnull(res, 0, 3) ? NULL : cg_json_strings(r->pool, PQgetvalue(res, 0, 3), 1);
    id->source = "key";
    return 1;
}

/* --- the admin endpoints ---------------------------------------------------- */

static json_t *cg_key_json(PGresult *res, int row)
{
    json_t *k = json_object(), *v;
    int c;

    json_object_set_new(k, "type", json_string("service_key"));
    json_object_set_new(k, "id", json_string(PQgetvalue(res, row, 0)));
    json_object_set_new(k, "name", json_string(PQgetvalue(res, row, 1)));
    json_object_set_new(
        k, "owner", PQgetisnull(res, row, 2) ? json_null() : json_string(PQgetvalue(res, row, 2)));
    for (c = 3; c <= 4; c++) {
        v = PQgetisnull(res, row, c) ? json_null() : json_loads(PQgetvalue(res, row, c), 0, NULL);
        json_object_set_new(k, c == 3 ? "groups" : "models", v ? v : json_null());
    }
    json_object_set_new(k, "created_at", json_string(PQgetvalue(res, row, 5)));
    json_object_set_new(k, "expires_at",
                        PQgetisnull(res, row, 6) ? json_null()
                                                 : json_string(PQgetvalue(res, row, 6)));
    json_object_set_new(k, "revoked_at",
                        PQgetisnull(res, row, 7) ? json_null()
                                                 : json_string(PQgetvalue(res, row, 7)));
    json_object_set_new(k, "created_by",
                        PQgetisnull(res, row, 8) ? json_null()
                                                 : json_string(PQgetvalue(res, row, 8)));
    return k;
}

static int cg_key_reply(request_rec *r, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    const char *body = apr_pstrdup(r->pool, text ? text : "{}");

    free(text);
    json_decref(j);
    return cg_reply_json(r, HTTP_OK, body, 1);
}

static json_t *cg_key_read_body(request_rec *r, const char **err)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    char *buf;
    apr_size_t len = 65536;
    json_t *j;

    *err = NULL;
    if (ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ, 65536) !=
            APR_SUCCESS ||
        apr_brigade_pflatten(bb, &buf, &len, r->pool) != APR_SUCCESS) {
        *err = "invalid JSON body";
        return NULL;
    }
    if (len == 0) {
        return json_object();
    }
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        *err = "invalid JSON body";
        return NULL;
    }
    return j;
}

static int cg_key_audit(request_rec *r, const char *actor, const char *action, const char *id)
{
    const char *params[3] = {actor, action, id};
    PGresult *res;

    return cg_db_query(r->pool, r->server,
                       "INSERT INTO claude_admin_audit (actor, action, target, after) "
                       "SELECT $1, $2, $3, to_jsonb(k) - 'seq' FROM claude_service_keys k "
                       "WHERE k.id = $3",
                       3, params, &res) == APR_SUCCESS;
}

/* A string array member, or NULL; err is set when it is something else. */
static const char *cg_key_strings(apr_pool_t *p, json_t *body, const char *key, const char **err)
{
    json_t *v = json_object_get(body, key);
    size_t i;
    char *dump;
    const char *out;

    if (v == NULL || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_array(v)) {
        *err = apr_psprintf(p, "%s: Expected array, received %s", key,
                            json_is_string(v) ? "string" : "other");
        return NULL;
    }
    for (i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (s == NULL || *s == '\0') {
            *err = apr_psprintf(p, "%s[%lu]: Expected a non-empty string", key, (unsigned long)i);
            return NULL;
        }
    }
    dump = json_dumps(v, JSON_COMPACT);
    out = apr_pstrdup(p, dump);
    free(dump);
    return out;
}

static int cg_key_create(request_rec *r, const char *actor)
{
    const char *err = NULL, *params[7], *secret, *hparams[2];
    json_t *body = cg_key_read_body(r, &err), *name, *owner, *exp, *out;
    PGresult *res;

    if (body == NULL) {
        return cg_admin_error(r, HTTP_BAD_REQUEST, "invalid_request_error", err);
    }
    name = json_object_get(body, "name");
    owner = json_object_get(body, "owner");
    exp = json_object_get(body, "expires_at");
    if (!json_is_string(name) || json_string_length(name) == 0) {
        json_decref(body);
        return cg_admin_error(r, HTTP_BAD_REQUEST, "invalid_request_error", "name: Required");
    }
    params[0] = apr_pstrcat(r->pool, "key_", cg_key_random_hex(r->pool, 12), NULL);
    params[1] = apr_pstrdup(r->pool, json_string_value(name));
    params[2] = json_is_string(owner) ? apr_pstrdup(r->pool, json_string_value(owner)) : NULL;
    params[3] = cg_key_strings(r->pool, body, "groups", &err);
    params[4] = err ? NULL : cg_key_strings(r->pool, body, "models", &err);
    params[5] = json_is_string(exp) ? apr_pstrdup(r->pool, json_string_value(exp)) : NULL;
    params[6] = actor;
    json_decref(body);
    if (err != NULL) {
        return cg_admin_error(r, HTTP_BAD_REQUEST, "invalid_request_error", err);
    }
    if (params[3] == NULL) {
        params[3] = "[]";
    }
    if (cg_db_query(r->pool, r->server,
                    "INSERT INTO claude_service_keys (id, name, owner, groups, models, expires_at, "
                    "created_by) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::timestamptz, $7)",
                    7, params, &res) != APR_SUCCESS) {
        return cg_admin_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                              "expires_at: Invalid datetime");
    }
    secret = apr_pstrcat(r->pool, CG_KEY_PREFIX, cg_key_random_hex(r->pool, 24), NULL);
    hparams[0] = cg_key_hash(r->pool, secret);
    hparams[1] = params[0];
    if (cg_db_query(r->pool, r->server,
                    "INSERT INTO claude_service_key_secrets (hash, key_id) VALUES ($1, $2)", 2,
                    hparams, &res) != APR_SUCCESS ||
        !cg_key_audit(r, actor, "service_key.create", params[0]) ||
        cg_db_query(r->pool, r->server,
                    "SELECT " CG_KEY_ROW " FROM claude_service_keys k WHERE k.id = $1", 1, params,
                    &res) != APR_SUCCESS ||
        PQntuples(res) != 1) {
        return cg_admin_error(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
    }
    out = cg_key_json(res, 0);
    /* the secret, once: only its hash is kept */
    json_object_set_new(out, "secret", json_string(secret));
    cg_note_set(r, "claude-decision", "service_key_created");
    return cg_key_reply(r, out);
}

static int cg_key_one(request_rec *r, const char *id)
{
    const char *params[1] = {id};
    PGresult *res;

    if (cg_db_query(r->pool, r->server,
                    "SELECT " CG_KEY_ROW " FROM claude_service_keys k WHERE k.id = $1", 1, params,
                    &res) != APR_SUCCESS) {
        return cg_admin_error(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
    }
    if (PQntuples(res) != 1) {
        return cg_admin_error(r, HTTP_NOT_FOUND, "not_found_error", "service key not found");
    }
    return cg_key_reply(r, cg_key_json(res, 0));
}

static int cg_key_list(request_rec *r)
{
    json_t *data = json_array();
    PGresult *res;
    int i;

    if (cg_db_query(r->pool, r->server,
                    "SELECT " CG_KEY_ROW " FROM claude_service_keys k ORDER BY k.seq", 0, NULL,
                    &res) != APR_SUCCESS) {
        json_decref(data);
        return cg_admin_error(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
    }
    for (i = 0; i < PQntuples(res); i++) {
        json_array_append_new(data, cg_key_json(res, i));
    }
    return cg_key_reply(r, json_pack("{s:o,s:b}", "data", data, "has_more", 0));
}

static int cg_key_rotate(request_rec *r, const char *actor, const char *id)
{
    const char *err = NULL, *params[3], *secret;
    json_t *body = cg_key_read_body(r, &err), *grace, *out;
    apr_int64_t grace_s = CG_KEY_ROTATION_GRACE;
    PGresult *res;

    if (body == NULL) {
        return cg_admin_error(r, HTTP_BAD_REQUEST, "invalid_request_error", err);
    }
    grace = json_object_get(body, "grace_seconds");
    if (grace != NULL) {
        if (!json_is_integer(grace) || json_integer_value(grace) < 0 ||
            json_integer_value(grace) > 30 * 86400) {
            json_decref(body);
            return cg_admin_error(r, HTTP_BAD_REQUEST, "invalid_request_error",
                                  "grace_seconds: a number of seconds from 0 to 2592000");
        }
        grace_s = json_integer_value(grace);
    }
    json_decref(body);
    params[0] = id;
    params[1] = apr_psprintf(r->pool, "%" APR_INT64_T_FMT, grace_s);
    /* the old secrets end after the grace period; the key must be live */
    if (cg_db_query(r->pool, r->server,
                    "UPDATE claude_service_key_secrets s SET valid_until = least(coalesce("
                    "s.valid_until, 'infinity'), now() + make_interval(secs => $2::bigint)) "
                    "FROM claude_service_keys k WHERE s.key_id = k.id AND k.id = $1 AND "
                    "k.revoked_at IS NULL RETURNING 1",
                    2, params, &res) != APR_SUCCESS) {
        return cg_admin_error(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
    }
    if (PQntuples(res) == 0) {
        return cg_admin_error(r, HTTP_NOT_FOUND, "not_found_error", "service key not found");
    }
    secret = apr_pstrcat(r->pool, CG_KEY_PREFIX, cg_key_random_hex(r->pool, 24), NULL);
    params[0] = cg_key_hash(r->pool, secret);
    params[1] = id;
    if (cg_db_query(r->pool, r->server,
                    "INSERT INTO claude_service_key_secrets (hash, key_id) VALUES ($1, $2)", 2,
                    params, &res) != APR_SUCCESS ||
        !cg_key_audit(r, actor, "service_key.rotate", id)) {
        return cg_admin_error(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
    }
    params[0] = id;
    if (cg_db_query(r->pool, r->server,
                    "SELECT " CG_KEY_ROW " FROM claude_service_keys k WHERE k.id = $1", 1, params,
                    &res) != APR_SUCCESS ||
        PQntuples(res) != 1) {
        return cg_admin_error(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
    }
    out = cg_key_json(res, 0);
    json_object_set_new(out, "secret", json_string(secret));
    cg_note_set(r, "claude-decision", "service_key_rotated");
    return cg_key_reply(r, out);
}

static int cg_key_revoke(request_rec *r, const char *actor, const char *id)
{
    const char *params[1] = {id};
    PGresult *res;

    if (cg_db_query(r->pool, r->server,
                    "UPDATE claude_service_keys SET revoked_at = coalesce(revoked_at, now()) "
                    "WHERE id = $1 RETURNING 1",
                    1, params, &res) != APR_SUCCESS) {
        return cg_admin_error(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
    }
    if (PQntuples(res) == 0) {
        return cg_admin_error(r, HTTP_NOT_FOUND, "not_found_error", "service key not found");
    }
    if (!cg_key_audit(r, actor, "service_key.revoke", id)) {
        return cg_admin_error(r, HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal server error");
    }
    cg_note_set(r, "claude-decision", "service_key_revoked");
    return cg_key_one(r, id);
}

int cg_keys_handler(request_rec *r)
{
    const char *actor = NULL, *rest, *id, *slash;
    int can_write = 0;

    if (cg_admin_auth(r, &actor, &can_write) != OK) {
        return cg_admin_error(r, HTTP_UNAUTHORIZED, "authentication_error",
                              "missing or invalid admin credentials");
    }
    cg_note_set(r, "claude-user", actor);
    /* the path below .../service_keys: "", "/<id>", "/<id>/rotate", "/<id>/revoke" */
    rest = strstr(r->uri, "/service_keys");
    rest = rest ? rest + sizeof("/service_keys") - 1 : "";
    if (r->method_number != M_GET && !can_write) {
        return cg_admin_error(r, HTTP_FORBIDDEN, "permission_error", "requires write:service_keys");
    }
    if (*rest == '\0' || !strcmp(rest, "/")) {
        if (r->method_number == M_GET) {
            return cg_key_list(r);
        }
        if (r->method_number == M_POST) {
            return cg_key_create(r, actor);
        }
        return cg_admin_error(r, HTTP_NOT_FOUND, "not_found_error", "not found");
    }
    id = rest + 1;
    slash = strchr(id, '/');
    if (slash == NULL) {
        if (r->method_number == M_GET) {
            return cg_key_one(r, id);
        }
        if (r->method_number == M_DELETE) {
            return cg_key_revoke(r, actor, id);
        }
    }
    else if (r->method_number == M_POST) {
        const char *key = apr_pstrmemdup(r->pool, id, (apr_size_t)(slash - id));
        if (!strcmp(slash, "/rotate")) {
            return cg_key_rotate(r, actor, key);
        }
        if (!strcmp(slash, "/revoke")) {
            return cg_key_revoke(r, actor, key);
        }
    }
    return cg_admin_error(r, HTTP_NOT_FOUND, "not_found_error", "not found");
}
