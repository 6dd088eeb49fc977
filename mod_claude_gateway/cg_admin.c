/* cg_admin: admin authentication, for the gateway's own admin handlers and,
 * through claude_gateway_admin_auth, for mod_claude_spend's admin API.
 *
 *   ClaudeGatewayAdminKey read|write <id> env:NAME|file:/path   (server)
 *   ClaudeGatewayAdminGroups <group>...                         (server)
 *
 * As the reference's admin.write_keys/read_keys/admin_groups: keys of at
 * least 32 characters compared in constant time, a read key only reads, and
 * a session of an admin group writes. Keys are read at configuration time,
 * never written inline in httpd.conf. */
#include <stdlib.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <jansson.h>

#include "cg_private.h"
#include "cg_config.h"
#include "cg_admin.h"
#include "cg_claims.h"
#include "cg_oauth.h"
#include "cg_revoke.h"
#include "cg_util.h"

#define CG_ADMIN_KEY_MIN 32
#define CG_ADMIN_REQUEST_ID_NOTE "claude-admin-request-id"

static cg_srv_conf_t *cg_admin_srv(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &claude_gateway_module);
}

static int cg_admin_id_valid(const char *id)
{
    apr_size_t n;

    for (n = 0; id[n] != '\0'; n++) {
        if (!apr_isalnum(id[n]) && id[n] != '.' && id[n] != '_' && id[n] != '-') {
            return 0;
        }
    }
    return n >= 1 && n <= 64;
}

const char *cg_admin_set_key(cmd_parms *cmd, void *dcv, const char *mode, const char *id,
                             const char *ref)
{
    cg_srv_conf_t *sc = cg_admin_srv(cmd);
    cg_admin_key_t *key;
    const char *value, *err;
    int i, can_write;

    (void)dcv;
    if (strcmp(mode, "write") == 0 || strcmp(mode, "read") == 0) {
        can_write = strcmp(mode, "write") == 0;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: '%s' is neither read nor write", cmd->cmd->name, mode);
    }
    if (!cg_admin_id_valid(id)) {
        return apr_psprintf(cmd->pool, "%s: the id '%s' is not 1 to 64 of [A-Za-z0-9._-]",
                            cmd->cmd->name, id);
    }
    if (strncmp(ref, "file:", 5) == 0) {
        ref =
            apr_pstrcat(cmd->pool, "file:", ap_server_root_relative(cmd->temp_pool, ref + 5), NULL);
    }
    /* resolved in the parent, so `apachectl -t` reports a missing key */
    err = cg_secret_resolve(cmd->pool, ref, &value);
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s %s: %s", cmd->cmd->name, id, err);
    }
    if (strlen(value) < CG_ADMIN_KEY_MIN) {
        return apr_psprintf(cmd->pool, "%s %s: the key from %s is shorter than %d characters",
                            cmd->cmd->name, id, ref, CG_ADMIN_KEY_MIN);
    }
    if (sc->admin_keys == NULL) {
        sc->admin_keys = apr_array_make(cmd->pool, 4, sizeof(cg_admin_key_t));
    }
    for (i = 0; i < sc->admin_keys->nelts; i++) {
        const cg_admin_key_t *k = &APR_ARRAY_IDX(sc->admin_keys, i, cg_admin_key_t);
        if (strcmp(k->id, id) == 0) {
            return apr_psprintf(cmd->pool, "%s: the id '%s' is given twice", cmd->cmd->name, id);
        }
        if (strcmp(k->key, value) == 0) {
            return apr_psprintf(cmd->pool, "%s %s: the same key as %s", cmd->cmd->name, id, k->id);
        }
    }
    key = apr_array_push(sc->admin_keys);
    key->id = apr_pstrdup(cmd->pool, id);
    key->key = value;
    key->can_write = can_write;
    return NULL;
}

const char *cg_admin_set_group(cmd_parms *cmd, void *dcv, const char *group)
{
    cg_srv_conf_t *sc = cg_admin_srv(cmd);

    (void)dcv;
    if (*group == '\0') {
        return apr_psprintf(cmd->pool, "%s: empty group name", cmd->cmd->name);
    }
    if (sc->admin_groups == NULL) {
        sc->admin_groups = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(sc->admin_groups, const char *) = group;
    return NULL;
}

static int cg_admin_group_member(const cg_srv_conf_t *sc, const apr_array_header_t *groups)
{
    int i, j;

    for (i = 0; sc->admin_groups != NULL && i < sc->admin_groups->nelts; i++) {
        const char *want = APR_ARRAY_IDX(sc->admin_groups, i, const char *);
        for (j = 0; groups != NULL && j < groups->nelts; j++) {
            if (strcmp(APR_ARRAY_IDX(groups, j, const char *), want) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* Every key is compared, whatever matched, so timing does not tell which. */
static const cg_admin_key_t *cg_admin_key_find(const cg_srv_conf_t *sc, const char *candidate)
{
    const cg_admin_key_t *found = NULL;
    int i;

    for (i = 0; sc->admin_keys != NULL && i < sc->admin_keys->nelts; i++) {
        const cg_admin_key_t *k = &APR_ARRAY_IDX(sc->admin_keys, i, cg_admin_key_t);
        if (cg_secret_equal(candidate, k->key) && found == NULL) {
            found = k;
        }
    }
    return found;
}

static apr_status_t cg_admin_json_cleanup(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

/* The groups mod_auth_openidc passed for the browser user (OIDC_CLAIM_*),
 * by the same claim name or JSON pointer as sign-in uses. */
static apr_array_header_t *cg_admin_browser_groups(request_rec *r, const cg_srv_conf_t *sc)
{
    const apr_array_header_t *arr = apr_table_elts(r->subprocess_env);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    json_t *claims = json_object(), *v;
    int i;

    apr_pool_cleanup_register(r->pool, claims, cg_admin_json_cleanup, apr_pool_cleanup_null);
    for (i = 0; i < arr->nelts; i++) {
        if (e[i].key == NULL || strncmp(e[i].key, "OIDC_CLAIM_", 11) != 0 || e[i].val == NULL) {
            continue;
        }
        v = e[i].val[0] == '{' ? json_loads(e[i].val, 0, NULL) : NULL;
        json_object_set_new(claims, e[i].key + 11, v ? v : json_string(e[i].val));
    }
    return cg_claims_groups(r->pool, claims, cg_srv_groups_claim(sc));
}

static int cg_admin_refused(request_rec *r, const char *why)
{
    /* why is a static reason, never key or token bytes */
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "admin request refused: %s", why);
    cg_note_set(r, "claude-decision", "auth_failed");
    cg_note_set(r, "claude-reason", why);
    return HTTP_UNAUTHORIZED;
}

int cg_admin_auth(request_rec *r, const char **actor, int *can_write)
{
    const cg_srv_conf_t *sc = cg_srv_get(r->server);
    const char *key = apr_table_get(r->headers_in, "x-api-key");
    const char *auth = apr_table_get(r->headers_in, "Authorization");
    const char *type = ap_auth_type(r);

    cg_response_headers(r);
    cg_admin_request_id(r);
    *actor = NULL;
    *can_write = 0;
    if (key != NULL) {
        /* as the reference: with x-api-key present, nothing else is tried */
        const cg_admin_key_t *k = cg_admin_key_find(sc, key);
        if (k == NULL) {
            return cg_admin_refused(r, "unknown admin key");
        }
        *actor = apr_pstrcat(r->pool, "admin-key:", k->id, NULL);
        *can_write = k->can_write;
        return OK;
    }
    if (auth != NULL) {
        cg_identity_t id;
        const char *why = "not a bearer token";

        if (strncasecmp(auth, "Bearer ", 7) != 0 || !cg_session_verify(r, auth + 7, &id, &why)) {
            return cg_admin_refused(r, why);
        }
        if (cg_revoked(r, &id)) {
            return cg_admin_refused(r, "revoked");
        }
        if (!cg_admin_group_member(sc, id.groups)) {
            return cg_admin_refused(r, "not in an admin group");
        }
        *actor = apr_pstrcat(r->pool, "oidc:", id.sub, NULL);
        *can_write = 1;
        return OK;
    }
    /* a browser admin, signed in on this location by mod_auth_openidc */
    if (r->user != NULL && *r->user != '\0' &&
        (type == NULL || strcasecmp(type, "claude-session") != 0) &&
        cg_admin_group_member(sc, cg_admin_browser_groups(r, sc))) {
        *actor = apr_pstrcat(r->pool, "oidc:", r->user, NULL);
        *can_write = 1;
        return OK;
    }
    return cg_admin_refused(r, "no admin credentials");
}

const char *cg_admin_request_id(request_rec *r)
{
    const char *id = cg_note_get(r, CG_ADMIN_REQUEST_ID_NOTE);
    unsigned char b[16];
    char *hex;
    int i;

    if (id != NULL) {
        return id;
    }
    hex = apr_palloc(r->pool, 4 + 2 * sizeof(b) + 1);
    memcpy(hex, "req_", 4);
    if (apr_generate_random_bytes(b, sizeof(b)) != APR_SUCCESS) {
        memset(b, 0, sizeof(b));
    }
    for (i = 0; i < (int)sizeof(b); i++) {
        apr_snprintf(hex + 4 + 2 * i, 3, "%02x", b[i]);
    }
    cg_note_set(r, CG_ADMIN_REQUEST_ID_NOTE, hex);
    apr_table_setn(r->err_headers_out, "request-id", hex);
    return hex;
}

int cg_admin_error(request_rec *r, int status, const char *type, const char *message)
{
    json_t *j = json_pack("{s:s,s:{s:s,s:s},s:s}", "type", "error", "error", "type", type,
                          "message", message, "request_id", cg_admin_request_id(r));
    char *s = json_dumps(j, JSON_COMPACT);
    const char *body = apr_pstrdup(r->pool, s ? s : "{}");

    free(s);
    json_decref(j);
    if (r->method_number != M_GET && ap_discard_request_body(r) != OK) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    cg_response_headers(r);
    r->status = status;
    ap_set_content_type(r, "application/json;charset=utf-8");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}
