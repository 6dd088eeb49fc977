/* cg_config: directives of mod_claude_gateway, their merge rules and the one
 * place each default lives (the getters). */
#ifndef CG_CONFIG_H
#define CG_CONFIG_H

#include <httpd.h>
#include <http_config.h>

#include "mod_claude_gateway.h"
#include "cg_jwt.h"
#include "cg_policy.h"

#define CG_UNSET (-1)
#define CG_DEFAULT_MAX_BODY ((apr_off_t)32 * 1024 * 1024)

typedef enum { CG_UPSTREAM_AUTH_API_KEY = 1, CG_UPSTREAM_AUTH_BEARER = 2 } cg_upstream_auth_e;

/** Per-directory configuration (<Location> of the proxied API). */
typedef struct cg_dir_conf_t {
    int enabled;                  /* ClaudeGateway */
    apr_off_t max_body;           /* ClaudeGatewayMaxBody */
    const char *upstream_key;     /* ClaudeGatewayUpstreamKey, resolved; secret: never logged */
    const char *upstream_key_ref; /* what the admin wrote (env:/file:), for messages */
    int upstream_auth;            /* ClaudeGatewayUpstreamAuth */
    const cg_identity_t *dev_identity; /* ClaudeGatewayDevIdentity: development only */
    const char *upstream_name;         /* ClaudeGatewayUpstreamName: for model mapping */
    int route;                         /* ClaudeGatewayRoute: the policy's upstreams, failover */
    int upstream_timeout_ms;           /* ClaudeGatewayUpstreamTimeout: time to first byte */
    int sse_keepalive;                 /* ClaudeGatewaySSEKeepalive, seconds (0: off) */
} cg_dir_conf_t;

#define CG_DEFAULT_SESSION_TTL 3600

/** Per-server configuration. */
typedef struct cg_srv_conf_t {
    const char *public_url;                 /* ClaudeGatewayPublicURL: issuer and endpoint base */
    apr_array_header_t *session_keys;       /* ClaudeGatewaySessionSecret, cg_jwt_key_t; secret */
    int session_ttl;                        /* ClaudeGatewaySessionTTL, seconds */
    const char *login_notice;               /* ClaudeGatewayLoginNotice */
    int device_rate;                        /* ClaudeGatewayDeviceRateLimit per 600 s per IP */
    int revocation_refresh_ms;              /* ClaudeGatewayRevocationRefresh */
    apr_array_header_t *email_claims;       /* ClaudeGatewayEmailClaim, const char * */
    const char *groups_claim;               /* ClaudeGatewayGroupsClaim: name or JSON pointer */
    apr_array_header_t *allowed_domains;    /* ClaudeGatewayAllowedEmailDomains */
    apr_array_header_t *allowed_groups;     /* ClaudeGatewayAllowedGroups */
    const char *oidc_token_endpoint;        /* ClaudeGatewayOIDCTokenEndpoint: the refresh grant */
    const char *oidc_client_id;             /* ClaudeGatewayOIDCClient */
    const char *oidc_client_secret;         /* ClaudeGatewayOIDCClient, resolved; secret */
    const char *db_conninfo;                /* ClaudeGatewayDatabase; secret: may hold a password */
    int db_max;                             /* ClaudeGatewayDatabasePool max */
    apr_interval_time_t db_acquire_timeout; /* ClaudeGatewayDatabasePool timeout */
    const cg_policy_t *policy;              /* ClaudeGatewayPolicy, compiled */
    apr_array_header_t *admin_keys;         /* ClaudeGatewayAdminKey, cg_admin_key_t; secret */
    apr_array_header_t *admin_groups;       /* ClaudeGatewayAdminGroups, const char * */
    int breaker_failures;                   /* ClaudeGatewayCircuitBreaker failures (0: off) */
    apr_interval_time_t breaker_cooldown;   /* ClaudeGatewayCircuitBreaker cool-down */
    struct cg_tel_conf_t *tel;              /* ClaudeGatewayTelemetry* (global): cg_telemetry.c */
} cg_srv_conf_t;

extern const command_rec cg_cmds[];

void *cg_dir_create(apr_pool_t *p, char *dir);
void *cg_dir_merge(apr_pool_t *p, void *basev, void *addv);
void *cg_srv_create(apr_pool_t *p, server_rec *s);
void *cg_srv_merge(apr_pool_t *p, void *basev, void *addv);

/** The per-dir configuration of r. */
const cg_dir_conf_t *cg_dir_get(const request_rec *r);
/** The server configuration of s. */
const cg_srv_conf_t *cg_srv_get(const server_rec *s);

int cg_dir_enabled(const cg_dir_conf_t *dc);
apr_off_t cg_dir_max_body(const cg_dir_conf_t *dc);
cg_upstream_auth_e cg_dir_upstream_auth(const cg_dir_conf_t *dc);
/** The upstream this location proxies to, by its policy name; "anthropic" by default. */
const char *cg_dir_upstream_name(const cg_dir_conf_t *dc);
/** Whether this location routes through the policy's upstreams itself. */
int cg_dir_route(const cg_dir_conf_t *dc);
/** Time to first byte allowed per upstream attempt, ms (120000). */
int cg_dir_upstream_timeout_ms(const cg_dir_conf_t *dc);
/** Seconds of silence on a cloud upstream's stream before a ping (15; 0: never). */
int cg_dir_sse_keepalive(const cg_dir_conf_t *dc);
/** Consecutive failures that open an upstream's circuit (5; 0: never). */
int cg_srv_breaker_failures(const cg_srv_conf_t *sc);
/** How long an open circuit skips its upstream (30 s). */
apr_interval_time_t cg_srv_breaker_cooldown(const cg_srv_conf_t *sc);
int cg_srv_db_max(const cg_srv_conf_t *sc);
int cg_srv_session_ttl(const cg_srv_conf_t *sc);
int cg_srv_device_rate(const cg_srv_conf_t *sc);
int cg_srv_revocation_refresh_ms(const cg_srv_conf_t *sc);
const char *cg_srv_groups_claim(const cg_srv_conf_t *sc);
/** The email claim names in order; "email" when none is configured. */
const apr_array_header_t *cg_srv_email_claims(const cg_srv_conf_t *sc);
apr_interval_time_t cg_srv_db_acquire_timeout(const cg_srv_conf_t *sc);

#endif
