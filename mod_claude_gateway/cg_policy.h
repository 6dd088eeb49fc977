/* cg_policy: the policy file compiled for requests (PURE: APR, jansson, OpenSSL).
 *
 * The file is the reference gateway's gateway.yaml (read by cg_yaml). This
 * file validates it with the reference's rules and messages, then compiles
 * what requests need: which managed settings a user gets (first_match or
 * layered, merged onto the `match: {}` base layer), the model allowlist,
 * the model catalogue and the per-upstream model mapping. Everything is
 * computed once per configuration generation; requests only look up. */
#ifndef CG_POLICY_H
#define CG_POLICY_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/** A built-in model, as the Claude Code client 2.1.328 ships its catalogue. */
typedef struct cg_builtin_model_t {
    const char *id;          /* canonical id, e.g. claude-sonnet-4-5 */
    const char *family;      /* opus, sonnet, haiku, ... */
    const char *display;     /* Sonnet 4.5 */
    const char *first_party; /* Anthropic API id, e.g. claude-sonnet-4-5-20250929 */
    const char *bedrock;
    const char *vertex;
    const char *foundry;
} cg_builtin_model_t;

/**
 * The built-in model that id names: its canonical id, its Anthropic API id
 * (dated or not) or one of its provider ids; case-insensitive; one trailing
 * "[1m]" is ignored.
 * @return the entry, or NULL for an unknown id
 */
const cg_builtin_model_t *cg_catalog_find(const char *id);

/** The id a provider knows a built-in model by; NULL when it has none. */
const char *cg_catalog_provider_id(const cg_builtin_model_t *m, const char *provider);

/** The managed settings one user gets. */
typedef struct cg_settings_t {
    json_t *doc;                          /* the settings object */
    const char *response;                 /* {"uuid","checksum","settings"} serialised */
    const char *checksum;                 /* "sha256:" + hex of the canonical settings */
    apr_array_header_t *available_models; /* const char *, lower case; NULL: unrestricted */
    int match_exact;                      /* availableModelsMatch: exact */
} cg_settings_t;

/** A policy rule (managed.policies[] entry). */
typedef struct cg_policy_rule_t {
    apr_array_header_t *groups; /* const char *, any-of; NULL: no group condition */
    const char *email_domain;   /* lower case; NULL: no domain condition */
    json_t *settings;           /* the rule's own cli/settings/code block */
    cg_settings_t *compiled;    /* first_match: merged onto the base layer */
} cg_policy_rule_t;

/** A models[] entry. */
typedef struct cg_custom_model_t {
    const char *id;
    const char *label;
    const char *description;
    json_t *upstream_model; /* object: upstream name -> provider model id */
} cg_custom_model_t;

/** An upstreams[] entry as far as the policy needs it (names, providers). */
typedef struct cg_upstream_decl_t {
    const char *name;
    const char *provider;
    const char *base_url; /* the provider's default when not given */
    /* auth: secrets, never logged */
    const char *api_key;
    const char *oauth_token;
    const char *aws_access_key_id, *aws_secret_access_key, *aws_session_token, *aws_bearer_token;
    const char *service_account_json; /* vertex: path of the key file */
    const char *access_token;         /* vertex: a static token */
    int use_azure_ad; /* foundry: a Microsoft Entra token (DefaultAzureCredential) */
    /* anthropic: workload identity federation, the token file exchanged for an
     * access token at {base_url}/v1/oauth/token; NULL: none */
    const char *wif_rule, *wif_organization, *wif_token_file, *wif_service_account, *wif_workspace;
    /* bedrock assume_role: the role the requests are signed as, NULL: none */
    const char *role_arn, *role_external_id;
    const char *role_session; /* "email", "sub", or NULL: one session for everyone */
    /* bedrock guardrail: applied to every invocation, NULL: none */
    const char *guardrail_id, *guardrail_version;
    int guardrail_tagging; /* input_tagging: only the user's latest turn is judged */
    int guardrail_trace;   /* guardrail_trace: Bedrock's trace in the answers */
    const char *region, *project_id, *resource, *workspace_id;
    json_t *headers;            /* static headers; object, may be NULL */
    apr_array_header_t *groups; /* const char *: who may use it; NULL: everyone */
    apr_array_header_t *models; /* const char *: what it serves ('*' globs); NULL: all */
    int forward_user_identity;
} cg_upstream_decl_t;

/** A rate limit of a group's members together (rate_limits.groups). */
typedef struct cg_rl_group_t {
    const char *group;
    apr_int64_t rpm, tpm; /* 0: unlimited */
} cg_rl_group_t;

/** A pricing.overrides row: rates in micro-USD per million tokens. */
typedef struct cg_price_row_t {
    const char *upstream;
    const char *model;
    apr_int64_t input, output, cache_read, cache_write;
} cg_price_row_t;

/** A key and a string value, in file order. */
typedef struct cg_policy_kv_t {
    const char *key;
    const char *value;
} cg_policy_kv_t;

/** A telemetry.forward_to[] entry. */
typedef struct cg_telemetry_dest_t {
    const char *url;             /* http(s), no trailing slash; /v1/<signal> is appended */
    const char *label;           /* "telemetry.forward_to[i] (host)": what logs may name */
    apr_array_header_t *headers; /* const char * "Name: value"; secret: never logged */
    int metrics, logs, traces;   /* which signals it receives (true, false, false) */
} cg_telemetry_dest_t;

/** The telemetry: section. */
typedef struct cg_telemetry_t {
    apr_array_header_t *dests;               /* cg_telemetry_dest_t */
    apr_array_header_t *resource_attributes; /* cg_policy_kv_t */
} cg_telemetry_t;

typedef struct cg_policy_t {
    const char *file;
    int configured;                /* a managed: section with settings or policies exists */
    int layered;                   /* policy_mode: layered */
    apr_array_header_t *rules;     /* cg_policy_rule_t */
    int base;                      /* index of the first match: {} rule, -1 when none */
    apr_array_header_t *models;    /* cg_custom_model_t */
    int auto_builtin;              /* auto_include_builtin_models */
    apr_array_header_t *upstreams; /* cg_upstream_decl_t; empty when the file names none */
    apr_array_header_t *notes;     /* const char *: what the admin should know at load */
    apr_array_header_t *prices;    /* cg_price_row_t: pricing.overrides */
    apr_int64_t multiplier_ppm;    /* pricing.multiplier in millionths (1000000 = 1) */
    apr_int64_t rl_rpm, rl_tpm;    /* rate_limits per principal, per minute; 0: none */
    apr_array_header_t *rl_groups; /* cg_rl_group_t */
    int rl_postgres;               /* rate_limits.store: postgres (across nodes) */
    json_t *root;
    const cg_telemetry_t *telemetry; /* NULL without a telemetry: section */
    json_t *telemetry_env;           /* env put in front of every served env; NULL: none */
} cg_policy_t;

/**
 * Validate and compile a parsed policy file.
 * @param p pool the policy lives in; the JSON trees are released with it
 * @param root the parsed file (a reference is taken)
 * @param file its name, for messages
 * @param out receives the policy
 * @return NULL, or "file: path: message" naming the first problem
 */
const char *cg_policy_compile(apr_pool_t *p, json_t *root, const char *file, cg_policy_t **out);

/**
 * The managed settings of a user.
 * @param pol the policy
 * @param p request pool (layered mode builds the result there)
 * @param email the user's email, or NULL
 * @param groups the user's groups (const char *), or NULL
 * @return the settings, or NULL when no policy matched (or none is configured)
 */
const cg_settings_t *cg_policy_settings(const cg_policy_t *pol, apr_pool_t *p, const char *email,
                                        const apr_array_header_t *groups);

/**
 * Whether the settings allow a model (availableModels, with family aliases,
 * version prefixes and availableModelsMatch as the client documents them).
 * @param s the user's settings; NULL allows every model
 * @param model the requested model; one trailing "[1m]" is ignored
 */
int cg_policy_model_allowed(const cg_settings_t *s, const char *model);

/**
 * The model id to send to an upstream.
 * @param pol the policy (may be NULL: built-in catalogue only)
 * @param model the requested model
 * @param upstream the upstream's name
 * @param provider its provider (anthropic, bedrock, vertex, foundry, ...)
 * @return the id to send (model itself when nothing maps it), or NULL when
 *         the model is a custom one this upstream has no mapping for
 */
const char *cg_policy_upstream_model(const cg_policy_t *pol, const char *model,
                                     const char *upstream, const char *provider);

/**
 * The pricing.overrides row for a request, most specific first: the
 * upstream's own model string, then the client's id, then the built-in model
 * both name. Only rows of the upstream that served the request apply.
 * @param requested the model the client asked for (may be NULL)
 * @param served the model the upstream reported (may be NULL)
 * @return the row, or NULL for list prices
 */
const cg_price_row_t *cg_policy_price(const cg_policy_t *pol, const char *upstream,
                                      const char *requested, const char *served);

/** The provider of a named upstream: from upstreams[], else the name itself. */
const char *cg_policy_upstream_provider(const cg_policy_t *pol, const char *upstream);

/**
 * The /v1/models answer for a user, in the reference's shape.
 * @param pol the policy (may be NULL)
 * @param s the user's settings (NULL: unrestricted)
 * @return a new JSON object (the caller owns it)
 */
json_t *cg_policy_models_list(const cg_policy_t *pol, const cg_settings_t *s);

/**
 * Canonical JSON as the client computes it for the checksum: keys sorted at
 * every level, no whitespace, strings and numbers as JavaScript's
 * JSON.stringify writes them.
 */
char *cg_json_canonical(apr_pool_t *p, const json_t *j);

/** "sha256:" + lower-case hex of the SHA-256 of the canonical JSON of j. */
const char *cg_json_checksum(apr_pool_t *p, const json_t *j);

/**
 * The policy as served behind public_url when telemetry is forwarded: every
 * settings document it serves gets the reference's OTEL env in front of its
 * own env (CLAUDE_CODE_ENABLE_TELEMETRY, OTEL_*_EXPORTER for the signals some
 * destination takes, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL,
 * OTEL_RESOURCE_ATTRIBUTES), the policy's own entries winning; checksums are
 * those of the result (PROTOCOL.md §6).
 * @param p the configuration pool
 * @param pol a compiled policy (may be NULL)
 * @param public_url ClaudeGatewayPublicURL, or NULL
 * @return a new policy, or pol itself when there is nothing to inject (no
 *         destination, no public URL, or pol already has it)
 */
const cg_policy_t *cg_policy_with_telemetry_env(apr_pool_t *p, const cg_policy_t *pol,
                                                const char *public_url);

#endif
