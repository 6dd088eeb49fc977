/* cg_config: directives of mod_claude_gateway.
 *
 *   ClaudeGateway On|Off                 (dir) run the Messages API pipeline here
 *   ClaudeGatewayMaxBody <bytes>         (dir) request body bound, default 32 MiB
 *   ClaudeGatewayUpstreamKey env:N|file:P (dir) the provider credential
 *   ClaudeGatewayUpstreamAuth x-api-key|bearer (dir) how it is sent, default x-api-key
 *   ClaudeGatewayDevIdentity sub email [group...] (dir) DEVELOPMENT ONLY: serve
 *                                        unauthenticated requests as this user
 *   ClaudeGatewayDatabase <conninfo>     (global) PostgreSQL, libpq syntax
 *   ClaudeGatewayDatabasePool <max> [timeout-ms] (global) per-child pool
 *   ClaudeGatewayPolicy <file>           (server) gateway.yaml: managed settings, models
 *   ClaudeGatewayUpstreamName <name>     (dir) the policy's name for this upstream
 *   ClaudeGatewayAdminKey read|write <id> env:N|file:P (server) an admin API key
 *   ClaudeGatewayAdminGroups <group>...  (server) IdP groups whose sessions administer
 *
 *   ClaudeGatewayTelemetry{Queue,Timeout,Breaker,Interval} (global) see cg_telemetry.h
 *
 * Every field starts UNSET, merges "inner if set", and has its default in one
 * getter, so an inner section can always restate the default. */
#include <apr_strings.h>
#include <http_core.h>
#include <apr_uri.h>

#include "cg_private.h"
#include "cg_config.h"
#include "cg_admin.h"
#include "cg_util.h"
#include "cg_jwt.h"
#include "cg_yaml.h"
#include "cg_telemetry.h"

#define CG_MERGE(f, unset) n->f = (add->f != (unset)) ? add->f : base->f

void *cg_dir_create(apr_pool_t *p, char *dir)
{
    cg_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    (void)dir;
    dc->enabled = CG_UNSET;
    dc->max_body = CG_UNSET;
    dc->upstream_auth = CG_UNSET;
    dc->route = CG_UNSET;
    dc->upstream_timeout_ms = CG_UNSET;
    dc->sse_keepalive = CG_UNSET;
    return dc;
}

void *cg_dir_merge(apr_pool_t *p, void *basev, void *addv)
{
    const cg_dir_conf_t *base = basev, *add = addv;
    cg_dir_conf_t *n = apr_pcalloc(p, sizeof(*n));

    CG_MERGE(enabled, CG_UNSET);
    CG_MERGE(max_body, CG_UNSET);
    CG_MERGE(upstream_key, NULL);
    CG_MERGE(upstream_key_ref, NULL);
    CG_MERGE(upstream_auth, CG_UNSET);
    CG_MERGE(dev_identity, NULL);
    CG_MERGE(upstream_name, NULL);
    CG_MERGE(route, CG_UNSET);
    CG_MERGE(upstream_timeout_ms, CG_UNSET);
    CG_MERGE(sse_keepalive, CG_UNSET);
    return n;
}

void *cg_srv_create(apr_pool_t *p, server_rec *s)
{
    cg_srv_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    (void)s;
    sc->db_max = CG_UNSET;
    sc->db_acquire_timeout = CG_UNSET;
    sc->session_ttl = CG_UNSET;
    sc->device_rate = CG_UNSET;
    sc->revocation_refresh_ms = CG_UNSET;
    sc->breaker_failures = CG_UNSET;
    sc->breaker_cooldown = CG_UNSET;
    return sc;
}

void *cg_srv_merge(apr_pool_t *p, void *basev, void *addv)
{
    const cg_srv_conf_t *base = basev, *add = addv;
    cg_srv_conf_t *n = apr_pcalloc(p, sizeof(*n));

    CG_MERGE(db_conninfo, NULL);
    CG_MERGE(db_max, CG_UNSET);
    CG_MERGE(db_acquire_timeout, CG_UNSET);
    CG_MERGE(public_url, NULL);
    CG_MERGE(session_keys, NULL);
    CG_MERGE(session_ttl, CG_UNSET);
    CG_MERGE(login_notice, NULL);
    CG_MERGE(device_rate, CG_UNSET);
    CG_MERGE(revocation_refresh_ms, CG_UNSET);
    CG_MERGE(email_claims, NULL);
    CG_MERGE(groups_claim, NULL);
    CG_MERGE(allowed_domains, NULL);
    CG_MERGE(allowed_groups, NULL);
    CG_MERGE(oidc_token_endpoint, NULL);
    CG_MERGE(oidc_client_id, NULL);
    CG_MERGE(oidc_client_secret, NULL);
    CG_MERGE(policy, NULL);
    CG_MERGE(tel, NULL);
    CG_MERGE(admin_keys, NULL);
    CG_MERGE(admin_groups, NULL);
    CG_MERGE(breaker_failures, CG_UNSET);
    CG_MERGE(breaker_cooldown, CG_UNSET);
    return n;
}

const cg_dir_conf_t *cg_dir_get(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &claude_gateway_module);
}

const cg_srv_conf_t *cg_srv_get(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &claude_gateway_module);
}

int cg_dir_enabled(const cg_dir_conf_t *dc)
{
    return dc->enabled == CG_UNSET ? 0 : dc->enabled;
}

apr_off_t cg_dir_max_body(const cg_dir_conf_t *dc)
{
    return dc->max_body == CG_UNSET ? CG_DEFAULT_MAX_BODY : dc->max_body;
}

cg_upstream_auth_e cg_dir_upstream_auth(const cg_dir_conf_t *dc)
{
    return dc->upstream_auth == CG_UNSET ? CG_UPSTREAM_AUTH_API_KEY
                                         : (cg_upstream_auth_e)dc->upstream_auth;
}

int cg_dir_route(const cg_dir_conf_t *dc)
{
    return dc->route == 1;
}

int cg_dir_upstream_timeout_ms(const cg_dir_conf_t *dc)
{
    return dc->upstream_timeout_ms == CG_UNSET ? 120000 : dc->upstream_timeout_ms;
}

int cg_dir_sse_keepalive(const cg_dir_conf_t *dc)
{
    return dc->sse_keepalive == CG_UNSET ? 15 : dc->sse_keepalive;
}

int cg_srv_breaker_failures(const cg_srv_conf_t *sc)
{
    return sc->breaker_failures == CG_UNSET ? 5 : sc->breaker_failures;
}

apr_interval_time_t cg_srv_breaker_cooldown(const cg_srv_conf_t *sc)
{
    return sc->breaker_cooldown == CG_UNSET ? apr_time_from_sec(30) : sc->breaker_cooldown;
}

const char *cg_dir_upstream_name(const cg_dir_conf_t *dc)
{
    return dc->upstream_name ? dc->upstream_name : "anthropic";
}

int cg_srv_db_max(const cg_srv_conf_t *sc)
{
    return sc->db_max == CG_UNSET ? 8 : sc->db_max;
}

int cg_srv_session_ttl(const cg_srv_conf_t *sc)
{
    return sc->session_ttl == CG_UNSET ? CG_DEFAULT_SESSION_TTL : sc->session_ttl;
}

int cg_srv_device_rate(const cg_srv_conf_t *sc)
{
    return sc->device_rate == CG_UNSET ? 30 : sc->device_rate;
}

int cg_srv_revocation_refresh_ms(const cg_srv_conf_t *sc)
{
    return sc->revocation_refresh_ms == CG_UNSET ? 1000 : sc->revocation_refresh_ms;
}

const char *cg_srv_groups_claim(const cg_srv_conf_t *sc)
{
    return sc->groups_claim ? sc->groups_claim : "groups";
}

const apr_array_header_t *cg_srv_email_claims(const cg_srv_conf_t *sc)
{
    static const char *const def = "email";
    static const apr_array_header_t defaults = {NULL, sizeof(const char *), 1, 1, (char *)&def};

    return sc->email_claims ? sc->email_claims : &defaults;
}

apr_interval_time_t cg_srv_db_acquire_timeout(const cg_srv_conf_t *sc)
{
    return sc->db_acquire_timeout == CG_UNSET ? apr_time_from_msec(1000) : sc->db_acquire_timeout;
}

static const char *cg_set_enabled(cmd_parms *cmd, void *dcv, int flag)
{
    cg_dir_conf_t *dc = dcv;

    (void)cmd;
    dc->enabled = flag;
    return NULL;
}

static const char *cg_set_max_body(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_dir_conf_t *dc = dcv;
    apr_off_t v;
    char *end;

    if (apr_strtoff(&v, arg, &end, 10) != APR_SUCCESS || *end != '\0' || v < 1024 ||
        v > (apr_off_t)1024 * 1024 * 1024) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a byte count between 1024 and 1073741824",
                            cmd->cmd->name, arg);
    }
    dc->max_body = v;
    return NULL;
}

static const char *cg_set_upstream_key(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_dir_conf_t *dc = dcv;
    const char *value, *err;

    if (strncmp(arg, "file:", 5) == 0) {
        arg =
            apr_pstrcat(cmd->pool, "file:", ap_server_root_relative(cmd->temp_pool, arg + 5), NULL);
    }
    /* Resolved now, in the parent, so `apachectl -t` reports a missing key and
     * the children never read the environment or the file again. */
    err = cg_secret_resolve(cmd->pool, arg, &value);
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    dc->upstream_key = value;
    dc->upstream_key_ref = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *cg_set_upstream_auth(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_dir_conf_t *dc = dcv;

    if (strcasecmp(arg, "x-api-key") == 0) {
        dc->upstream_auth = CG_UPSTREAM_AUTH_API_KEY;
    }
    else if (strcasecmp(arg, "bearer") == 0) {
        dc->upstream_auth = CG_UPSTREAM_AUTH_BEARER;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: '%s' is not x-api-key or bearer", cmd->cmd->name, arg);
    }
    return NULL;
}

static const char *cg_set_dev_identity(cmd_parms *cmd, void *dcv, int argc, char *const argv[])
{
    cg_dir_conf_t *dc = dcv;
    cg_identity_t *id;
    apr_array_header_t *groups;
    int i;

    if (argc < 2) {
        return apr_psprintf(cmd->pool, "%s takes a subject, an email and optional groups",
                            cmd->cmd->name);
    }
    if (ap_strchr_c(argv[1], '@') == NULL) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an email address", cmd->cmd->name, argv[1]);
    }
    id = apr_pcalloc(cmd->pool, sizeof(*id));
    groups = apr_array_make(cmd->pool, argc, sizeof(const char *));
    id->sub = apr_pstrdup(cmd->pool, argv[0]);
    id->email = apr_pstrdup(cmd->pool, argv[1]);
    for (i = 2; i < argc; i++) {
        APR_ARRAY_PUSH(groups, const char *) = apr_pstrdup(cmd->pool, argv[i]);
    }
    id->groups = groups;
    id->source = "dev";
    dc->dev_identity = id;
    apr_pool_userdata_setn("1", CG_DEV_IDENTITY_KEY, NULL, cmd->pool);
    return NULL;
}

static const char *cg_set_route(cmd_parms *cmd, void *dcv, int flag)
{
    cg_dir_conf_t *dc = dcv;

    (void)cmd;
    dc->route = flag;
    return NULL;
}

static const char *cg_set_int_range(cmd_parms *cmd, const char *arg, int lo, int hi, int *out);

static const char *cg_set_upstream_timeout(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_dir_conf_t *dc = dcv;

    return cg_set_int_range(cmd, arg, 100, 3600000, &dc->upstream_timeout_ms);
}

static const char *cg_set_sse_keepalive(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_dir_conf_t *dc = dcv;

    return cg_set_int_range(cmd, arg, 0, 3600, &dc->sse_keepalive);
}

static const char *cg_set_breaker(cmd_parms *cmd, void *dcv, const char *failures,
                                  const char *cooldown)
{
    cg_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_gateway_module);
    const char *err = cg_set_int_range(cmd, failures, 0, 1000, &sc->breaker_failures);
    int seconds;

    (void)dcv;
    if (err == NULL && cooldown != NULL &&
        (err = cg_set_int_range(cmd, cooldown, 1, 86400, &seconds)) == NULL) {
        sc->breaker_cooldown = apr_time_from_sec(seconds);
    }
    return err;
}

static const char *cg_set_upstream_name(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_dir_conf_t *dc = dcv;

    (void)cmd;
    if (*arg == '\0') {
        return "ClaudeGatewayUpstreamName: give the name of an upstream of the policy file";
    }
    dc->upstream_name = arg;
    return NULL;
}

/* Loaded and compiled here, in the configuration pool, so that `apachectl
 * -t` (which never reaches post_config) rejects a bad policy file. */
static const char *cg_set_policy(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_gateway_module);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    cg_policy_t *pol;
    json_t *root;
    const char *err;

    (void)dcv;
    if (path == NULL) {
        return apr_psprintf(cmd->pool, "ClaudeGatewayPolicy: invalid path '%s'", arg);
    }
    if (sc->policy != NULL) {
        return "ClaudeGatewayPolicy: given twice for this server";
    }
    err = cg_yaml_load_file(cmd->pool, path, NULL, NULL, &root);
    if (err == NULL) {
        err = cg_policy_compile(cmd->pool, root, path, &pol);
        json_decref(root);
    }
    if (err != NULL) {
        return apr_pstrcat(cmd->pool, "ClaudeGatewayPolicy: ", err, NULL);
    }
    sc->policy = pol;
    return NULL;
}

static const char *cg_set_database(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_gateway_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dcv;
    if (err != NULL) {
        return err;
    }
    if (*arg == '\0') {
        return apr_psprintf(cmd->pool, "%s: the connection string is empty", cmd->cmd->name);
    }
    sc->db_conninfo = arg; /* secret: may carry a password, never logged */
    return NULL;
}

static const char *cg_set_database_pool(cmd_parms *cmd, void *dcv, const char *max,
                                        const char *timeout)
{
    cg_srv_conf_t *sc = ap_get_module_config(cmd->server->module_config, &claude_gateway_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_int64_t v;
    char *end;

    (void)dcv;
    if (err != NULL) {
        return err;
    }
    v = apr_strtoi64(max, &end, 10);
    if (*end != '\0' || v < 1 || v > 256) {
        return apr_psprintf(cmd->pool, "%s: max '%s' is not between 1 and 256", cmd->cmd->name,
                            max);
    }
    sc->db_max = (int)v;
    if (timeout != NULL) {
        v = apr_strtoi64(timeout, &end, 10);
        if (*end != '\0' || v < 1 || v > 60000) {
            return apr_psprintf(cmd->pool, "%s: timeout '%s' is not between 1 and 60000 ms",
                                cmd->cmd->name, timeout);
        }
        sc->db_acquire_timeout = apr_time_from_msec(v);
    }
    return NULL;
}

static cg_srv_conf_t *cg_srv_of(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &claude_gateway_module);
}

static const char *cg_set_public_url(cmd_parms *cmd, void *dcv, const char *arg)
{
    apr_uri_t u;
    apr_size_t n = strlen(arg);

    (void)dcv;
    if (apr_uri_parse(cmd->pool, arg, &u) != APR_SUCCESS || u.scheme == NULL ||
        u.hostname == NULL || (strcmp(u.scheme, "https") != 0 && strcmp(u.scheme, "http") != 0) ||
        (u.path != NULL && strcmp(u.path, "/") != 0 && *u.path != '\0') || u.query != NULL) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not an http(s) origin such as "
                            "https://claude.example.com",
                            cmd->cmd->name, arg);
    }
    while (n > 0 && arg[n - 1] == '/') {
        n--;
    }
    cg_srv_of(cmd)->public_url = apr_pstrmemdup(cmd->pool, arg, n);
    return NULL;
}

static const char *cg_set_session_secret(cmd_parms *cmd, void *dcv, const char *arg)
{
    cg_srv_conf_t *sc = cg_srv_of(cmd);
    const char *value, *err;
    cg_jwt_key_t *key;

    (void)dcv;
    if (strncmp(arg, "file:", 5) == 0) {
        arg =
            apr_pstrcat(cmd->pool, "file:", ap_server_root_relative(cmd->temp_pool, arg + 5), NULL);
    }
    err = cg_secret_resolve(cmd->pool, arg, &value);
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (strlen(value) < 32) {
        return apr_psprintf(cmd->pool, "%s: the secret from %s is shorter than 32 characters",
                            cmd->cmd->name, arg);
    }
    if (sc->session_keys == NULL) {
        sc->session_keys = apr_array_make(cmd->pool, 2, sizeof(cg_jwt_key_t));
    }
    key = apr_array_push(sc->session_keys);
    key->secret = (const unsigned char *)value;
    key->secret_len = strlen(value);
    key->kid = cg_jwt_kid(cmd->pool, key->secret, key->secret_len);
    return NULL;
}

static const char *cg_set_int_range(cmd_parms *cmd, const char *arg, int lo, int hi, int *out)
{
    apr_int64_t v;
    char *end;

    v = apr_strtoi64(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < lo || v > hi) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number between %d and %d", cmd->cmd->name,
                            arg, lo, hi);
    }
    *out = (int)v;
    return NULL;
}

static const char *cg_set_session_ttl(cmd_parms *cmd, void *dcv, const char *arg)
{
    (void)dcv;
    return cg_set_int_range(cmd, arg, 60, 86400 * 30, &cg_srv_of(cmd)->session_ttl);
}

static const char *cg_set_device_rate(cmd_parms *cmd, void *dcv, const char *arg)
{
    (void)dcv;
    return cg_set_int_range(cmd, arg, 1, 100000, &cg_srv_of(cmd)->device_rate);
}

static const char *cg_set_revocation_refresh(cmd_parms *cmd, void *dcv, const char *arg)
{
    (void)dcv;
    return cg_set_int_range(cmd, arg, 0, 60000, &cg_srv_of(cmd)->revocation_refresh_ms);
}

static const char *cg_push_list(cmd_parms *cmd, apr_array_header_t **list, const char *arg)
{
    if (*arg == '\0') {
        return apr_psprintf(cmd->pool, "%s: empty value", cmd->cmd->name);
    }
    if (*list == NULL) {
        *list = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(*list, const char *) = arg;
    return NULL;
}

static const char *cg_set_email_claim(cmd_parms *cmd, void *dcv, const char *arg)
{
    (void)dcv;
    return cg_push_list(cmd, &cg_srv_of(cmd)->email_claims, arg);
}

static const char *cg_set_groups_claim(cmd_parms *cmd, void *dcv, const char *arg)
{
    (void)dcv;
    if (*arg == '\0' || strcmp(arg, "/") == 0) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a claim name or JSON pointer",
                            cmd->cmd->name, arg);
    }
    cg_srv_of(cmd)->groups_claim = arg;
    return NULL;
}

static const char *cg_set_allowed_domain(cmd_parms *cmd, void *dcv, const char *arg)
{
    (void)dcv;
    if (ap_strchr_c(arg, '@') != NULL || ap_strchr_c(arg, '.') == NULL || *arg == '.') {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a domain such as example.com",
                            cmd->cmd->name, arg);
    }
    return cg_push_list(cmd, &cg_srv_of(cmd)->allowed_domains, arg);
}

static const char *cg_set_allowed_group(cmd_parms *cmd, void *dcv, const char *arg)
{
    (void)dcv;
    return cg_push_list(cmd, &cg_srv_of(cmd)->allowed_groups, arg);
}

static const char *cg_set_login_notice(cmd_parms *cmd, void *dcv, const char *arg)
{
    (void)dcv;
    if (strlen(arg) > 500) {
        return apr_psprintf(cmd->pool, "%s: longer than the 500 characters the client shows",
                            cmd->cmd->name);
    }
    cg_srv_of(cmd)->login_notice = arg;
    return NULL;
}

static const char *cg_set_oidc_token_endpoint(cmd_parms *cmd, void *dcv, const char *arg)
{
    apr_uri_t u;

    (void)dcv;
    if (apr_uri_parse(cmd->pool, arg, &u) != APR_SUCCESS || u.scheme == NULL ||
        u.hostname == NULL || (strcmp(u.scheme, "https") != 0 && strcmp(u.scheme, "http") != 0)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an http(s) URL", cmd->cmd->name, arg);
    }
    cg_srv_of(cmd)->oidc_token_endpoint = arg;
    return NULL;
}

static const char *cg_set_oidc_client(cmd_parms *cmd, void *dcv, const char *id,
                                      const char *secret_ref)
{
    cg_srv_conf_t *sc = cg_srv_of(cmd);
    const char *value, *err;

    (void)dcv;
    if (strncmp(secret_ref, "file:", 5) == 0) {
        secret_ref = apr_pstrcat(
            cmd->pool, "file:", ap_server_root_relative(cmd->temp_pool, secret_ref + 5), NULL);
    }
    err = cg_secret_resolve(cmd->pool, secret_ref, &value);
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    sc->oidc_client_id = id;
    sc->oidc_client_secret = value;
    return NULL;
}

/* clang-format off */
const command_rec cg_cmds[] = {
    AP_INIT_FLAG("ClaudeGateway", cg_set_enabled, NULL, ACCESS_CONF | RSRC_CONF,
                 "On to run the Claude Messages API pipeline (body check, header hygiene, "
                 "upstream credential) in this location; default Off"),
    AP_INIT_TAKE1("ClaudeGatewayMaxBody", cg_set_max_body, NULL, ACCESS_CONF | RSRC_CONF,
                  "largest accepted request body in bytes; default 33554432 (32 MiB)"),
    AP_INIT_TAKE1("ClaudeGatewayUpstreamKey", cg_set_upstream_key, NULL, ACCESS_CONF | RSRC_CONF,
                  "the provider credential as env:NAME or file:/path; never inline"),
    AP_INIT_TAKE1("ClaudeGatewayUpstreamAuth", cg_set_upstream_auth, NULL, ACCESS_CONF | RSRC_CONF,
                  "x-api-key or bearer: how the credential is sent; default x-api-key"),
    AP_INIT_TAKE_ARGV("ClaudeGatewayDevIdentity", cg_set_dev_identity, NULL,
                      ACCESS_CONF | RSRC_CONF,
                      "DEVELOPMENT ONLY: subject, email and groups that requests without a "
                      "session are served as"),
    AP_INIT_TAKE1("ClaudeGatewayUpstreamName", cg_set_upstream_name, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "the policy file's name of the upstream this location proxies to"),
    AP_INIT_FLAG("ClaudeGatewayRoute", cg_set_route, NULL, ACCESS_CONF | RSRC_CONF,
                 "serve this location through the policy's upstreams, in order, with failover, "
                 "instead of ProxyPass"),
    AP_INIT_TAKE1("ClaudeGatewayUpstreamTimeout", cg_set_upstream_timeout, NULL,
                  ACCESS_CONF | RSRC_CONF, "time to first byte per upstream attempt, ms (120000)"),
    AP_INIT_TAKE1("ClaudeGatewaySSEKeepalive", cg_set_sse_keepalive, NULL, ACCESS_CONF | RSRC_CONF,
                  "seconds of silence on a cloud upstream's stream before an SSE ping (15; 0: "
                  "off)"),
    AP_INIT_TAKE12("ClaudeGatewayCircuitBreaker", cg_set_breaker, NULL, RSRC_CONF,
                   "consecutive failures that open an upstream's circuit (5; 0: off) and the "
                   "seconds it stays open (30)"),
    AP_INIT_TAKE1("ClaudeGatewayPolicy", cg_set_policy, NULL, RSRC_CONF,
                  "the policy file (gateway.yaml: managed settings, models, upstream names)"),
    AP_INIT_TAKE1("ClaudeGatewayDatabase", cg_set_database, NULL, RSRC_CONF,
                  "PostgreSQL connection string (libpq keywords or URI)"),
    AP_INIT_TAKE12("ClaudeGatewayDatabasePool", cg_set_database_pool, NULL, RSRC_CONF,
                   "per-child connections (default 8) and acquire timeout in ms (default 1000)"),
    AP_INIT_TAKE1("ClaudeGatewayPublicURL", cg_set_public_url, NULL, RSRC_CONF,
                  "the gateway's origin (https://host[:port]): token issuer and endpoint base; "
                  "default: the request's origin"),
    AP_INIT_ITERATE("ClaudeGatewaySessionSecret", cg_set_session_secret, NULL, RSRC_CONF,
                    "session token secrets (env:NAME or file:/path, 32+ characters); the first "
                    "signs, all verify"),
    AP_INIT_TAKE1("ClaudeGatewaySessionTTL", cg_set_session_ttl, NULL, RSRC_CONF,
                  "session token lifetime in seconds; default 3600"),
    AP_INIT_TAKE1("ClaudeGatewayLoginNotice", cg_set_login_notice, NULL, RSRC_CONF,
                  "text the client shows at sign-in (500 characters at most)"),
    AP_INIT_TAKE1("ClaudeGatewayDeviceRateLimit", cg_set_device_rate, NULL, RSRC_CONF,
                  "device authorizations per client address per 10 minutes; default 30"),
    AP_INIT_TAKE1("ClaudeGatewayRevocationRefresh", cg_set_revocation_refresh, NULL, RSRC_CONF,
                  "ms a child may use its copy of the revocation list; 0 checks the database "
                  "on every request; default 1000"),
    AP_INIT_ITERATE("ClaudeGatewayEmailClaim", cg_set_email_claim, NULL, RSRC_CONF,
                    "claims that carry the email, in order of preference; default email"),
    AP_INIT_TAKE1("ClaudeGatewayGroupsClaim", cg_set_groups_claim, NULL, RSRC_CONF,
                  "claim name or JSON pointer (/realm_access/roles) of the groups; default "
                  "groups"),
    AP_INIT_ITERATE("ClaudeGatewayAllowedEmailDomains", cg_set_allowed_domain, NULL, RSRC_CONF,
                    "only these email domains may sign in; default any"),
    AP_INIT_ITERATE("ClaudeGatewayAllowedGroups", cg_set_allowed_group, NULL, RSRC_CONF,
                    "only members of one of these groups may sign in; default any"),
    AP_INIT_TAKE1("ClaudeGatewayOIDCTokenEndpoint", cg_set_oidc_token_endpoint, NULL, RSRC_CONF,
                  "the IdP's token endpoint, used for the refresh grant"),
    AP_INIT_TAKE2("ClaudeGatewayOIDCClient", cg_set_oidc_client, NULL, RSRC_CONF,
                  "client id and secret (env:NAME or file:/path) for the IdP's token endpoint"),
    AP_INIT_TAKE3("ClaudeGatewayAdminKey", cg_admin_set_key, NULL, RSRC_CONF,
                  "read|write, an id and the key (env:NAME or file:/path, 32+ characters) of "
                  "the admin API; repeatable"),
    AP_INIT_ITERATE("ClaudeGatewayAdminGroups", cg_admin_set_group, NULL, RSRC_CONF,
                    "IdP groups whose members may change spend limits and revoke sessions"),
    AP_INIT_TAKE12("ClaudeGatewayTelemetryQueue", cg_telemetry_set_queue, NULL, RSRC_CONF,
                   "client exports waiting per child (256) and transfers at once per child (16); "
                   "a full queue drops"),
    AP_INIT_TAKE1("ClaudeGatewayTelemetryTimeout", cg_telemetry_set_timeout, NULL, RSRC_CONF,
                  "ms one delivery to a telemetry destination may take; default 10000"),
    AP_INIT_TAKE2("ClaudeGatewayTelemetryBreaker", cg_telemetry_set_breaker, NULL, RSRC_CONF,
                  "failures in a row after which a telemetry destination is skipped, and for "
                  "how many seconds; default 5 30"),
    AP_INIT_TAKE1("ClaudeGatewayTelemetryInterval", cg_telemetry_set_interval, NULL, RSRC_CONF,
                  "seconds between exports of the gateway's own metrics, or Off; default 60"),
    {NULL}
};
/* clang-format on */
