/* cg_policy: validation and compilation of the policy file, see cg_policy.h.
 *
 * Messages follow the reference gateway (zod's "path: message"), so an admin
 * moving a gateway.yaml over sees the complaints they already know. Sections
 * of gateway.yaml that this module takes from httpd directives instead, or
 * does not implement yet, are reported in pol->notes, never silently
 * ignored. */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <openssl/sha.h>

#include "cg_policy.h"

/* The catalogue of the Claude Code client 2.1.328 (its provider_ids table),
 * limited to the models it routes through a gateway. */
static const cg_builtin_model_t cg_catalog[] = {
    {"claude-3-5-haiku", "haiku", "Haiku 3.5", "claude-3-5-haiku-20241022",
     "us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku@20241022",
     "claude-3-5-haiku"},
    {"claude-3-5-sonnet", "sonnet", "Sonnet 3.5", "claude-3-5-sonnet-20241022",
     "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-v2@20241022",
     "claude-3-5-sonnet"},
    {"claude-3-7-sonnet", "sonnet", "Sonnet 3.7", "claude-3-7-sonnet-20250219",
     "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet@20250219",
     "claude-3-7-sonnet"},
    {"claude-fable-5", "fable", "Fable 5", "claude-fable-5", "us.anthropic.claude-fable-5",
     "claude-fable-5", "claude-fable-5"},
    {"claude-fable-5-1", "fable", "Fable 5.1", "claude-fable-5-1", "us.anthropic.claude-fable-5-1",
     "claude-fable-5-1", "claude-fable-5-1"},
    {"claude-fable-5-2", "fable", "Fable 5.2", "claude-fable-5-2", "us.anthropic.claude-fable-5-2",
     "claude-fable-5-2", "claude-fable-5-2"},
    {"claude-haiku-4-5", "haiku", "Haiku 4.5", "claude-haiku-4-5-20251001",
     "us.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5@20251001",
     "claude-haiku-4-5"},
    {"claude-haiku-5-5", "haiku", "Haiku 5.5", "claude-haiku-5-5", "us.anthropic.claude-haiku-5-5",
     "claude-haiku-5-5", "claude-haiku-5-5"},
    {"claude-opus-4-0", "opus", "Opus 4", "claude-opus-4-20250514",
     "us.anthropic.claude-opus-4-20250514-v1:0", "claude-opus-4@20250514", "claude-opus-4"},
    {"claude-opus-4-1", "opus", "Opus 4.1", "claude-opus-4-1-20250805",
     "us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1@20250805", "claude-opus-4-1"},
    {"claude-opus-4-5", "opus", "Opus 4.5", "claude-opus-4-5-20251101",
     "us.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5@20251101", "claude-opus-4-5"},
    {"claude-opus-4-6", "opus", "Opus 4.6", "claude-opus-4-6", "us.anthropic.claude-opus-4-6-v1",
     "claude-opus-4-6", "claude-opus-4-6"},
    {"claude-opus-4-7", "opus", "Opus 4.7", "claude-opus-4-7", "us.anthropic.claude-opus-4-7",
     "claude-opus-4-7", "claude-opus-4-7"},
    {"claude-opus-4-8", "opus", "Opus 4.8", "claude-opus-4-8", "us.anthropic.claude-opus-4-8",
     "claude-opus-4-8", "claude-opus-4-8"},
    {"claude-opus-5", "opus", "Opus 5", "claude-opus-5", "us.anthropic.claude-opus-5",
     "claude-opus-5", "claude-opus-5"},
    {"claude-opus-5-5", "opus", "Opus 5.5", "claude-opus-5-5", "us.anthropic.claude-opus-5-5",
     "claude-opus-5-5", "claude-opus-5-5"},
    {"claude-sonnet-4-0", "sonnet", "Sonnet 4", "claude-sonnet-4-20250514",
     "us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4@20250514", "claude-sonnet-4"},
    {"claude-sonnet-4-5", "sonnet", "Sonnet 4.5", "claude-sonnet-4-5-20250929",
     "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5@20250929",
     "claude-sonnet-4-5"},
    {"claude-sonnet-4-6", "sonnet", "Sonnet 4.6", "claude-sonnet-4-6",
     "us.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6", "claude-sonnet-4-6"},
    {"claude-sonnet-5", "sonnet", "Sonnet 5", "claude-sonnet-5", "us.anthropic.claude-sonnet-5",
     "claude-sonnet-5", "claude-sonnet-5"},
    {"claude-sonnet-5-5", "sonnet", "Sonnet 5.5", "claude-sonnet-5-5",
     "us.anthropic.claude-sonnet-5-5", "claude-sonnet-5-5", "claude-sonnet-5-5"},
};
#define CG_CATALOG_N (sizeof(cg_catalog) / sizeof(cg_catalog[0]))

/* Top-level keys of managed-settings.json, from the settings schema bundled
 * in the Claude Code client 2.1.328. The reference validates `cli` against
 * that schema at boot; so do we, as far as the key names go. */
static const char *const cg_cli_keys[] = {
    "$schema",
    "additionalMarketplaces",
    "advisorModel",
    "agent",
    "agentPushNotifEnabled",
    "allowAllClaudeAiMcps",
    "allowClaudeInChromeWithManagedMcp",
    "allowManagedHooksOnly",
    "allowManagedMcpServersOnly",
    "allowManagedPermissionRulesOnly",
    "allowNestedModelAccessUnderForceLogin",
    "allowedChannelPlugins",
    "allowedHttpHookUrls",
    "allowedMarketplaces",
    "allowedMcpServers",
    "allowedProviders",
    "alwaysThinkingEnabled",
    "apiKeyHelper",
    "appendPlugins",
    "askUserQuestionTimeout",
    "attribution",
    "attributionProject",
    "attributionProjectPolicy",
    "autoCompactEnabled",
    "autoCompactOfferAnswer",
    "autoCompactRaisedForLoad",
    "autoCompactWindow",
    "autoContinueAtUsageLimit",
    "autoDreamEnabled",
    "autoMemoryDirectory",
    "autoMemoryEnabled",
    "autoScrollEnabled",
    "autoUpdatesChannel",
    "autoUploadSessions",
    "availableModels",
    "availableModelsMatch",
    "awaySummaryEnabled",
    "awsAuthRefresh",
    "awsCredentialExport",
    "bashEditDiffEnabled",
    "bashOutputMaxChars",
    "blockedMarketplaces",
    "breakReminder",
    "channelsEnabled",
    "claudeMd",
    "claudeMdExcludes",
    "clawdFileProgressEnabled",
    "cleanupPeriodDays",
    "companyAnnouncements",
    "crossSessionInbound",
    "daemonColdStart",
    "defaultShell",
    "deniedMcpServers",
    "deniedModels",
    "desktopSessionCleanupPeriodDays",
    "dialogExpiry",
    "disableAgentView",
    "disableAllHooks",
    "disableArtifact",
    "disableAutoMode",
    "disableBundledSkills",
    "disableClaudeAiConnectors",
    "disableCommandPluginSources",
    "disableRemoteControl",
    "disableReplyCheck",
    "disableSideloadFlags",
    "disableSkillShellExecution",
    "disableWindowsBashCommandSplit",
    "disableWorkflows",
    "disabledMcpjsonServers",
    "doneMeansMerged",
    "editorMode",
    "effortLevel",
    "emojiCompletionEnabled",
    "enableAllProjectMcpServers",
    "enableArtifact",
    "enableWorkflows",
    "enabledMcpjsonServers",
    "enabledPlugins",
    "enforceAvailableModels",
    "env",
    "extraKnownMarketplaces",
    "fallbackModel",
    "fastMode",
    "fastModePerSessionOptIn",
    "feedbackDrafts",
    "feedbackSurveyRate",
    "fileCheckpointingEnabled",
    "fileSuggestion",
    "footerLinksRegexes",
    "forceLoginGatewayUrl",
    "forceLoginMethod",
    "forceLoginOrgUUID",
    "forceRemoteSettingsRefresh",
    "gatewayInternalNetworks",
    "gcpAuthRefresh",
    "hooks",
    "httpHookAllowedEnvVars",
    "idleCompaction",
    "includeCoAuthoredBy",
    "includeGitInstructions",
    "inputNeededNotifEnabled",
    "isolatePeerMachines",
    "keybindingFlavor",
    "language",
    "managedMcpServers",
    "managedSourcesBehavior",
    "maxEffortLevel",
    "maxProseWidth",
    "minimumVersion",
    "model",
    "modelOverrides",
    "modelPicker",
    "modelPricing",
    "modelProposedGoals",
    "modelSettings",
    "otelHeadersHelper",
    "outputStyle",
    "parentSettingsBehavior",
    "permissions",
    "plansDirectory",
    "pluginConfigs",
    "pluginSuggestionMarketplaces",
    "pluginTrustMessage",
    "policyHelper",
    "policyHelpers",
    "prUrlTemplate",
    "precomputeArmTokens",
    "precomputeCompactionEnabled",
    "preferredNotifChannel",
    "prefersReducedMotion",
    "prependPlugins",
    "processWrapper",
    "promptCacheTtl",
    "promptSuggestionEnabled",
    "proxyAuthHelper",
    "quietHours",
    "remote",
    "remoteControl",
    "remoteControlAtStartup",
    "remoteMessageReceipts",
    "remoteTools",
    "requiredMaximumVersion",
    "requiredMinimumVersion",
    "respectGitignore",
    "respondToBashCommands",
    "responseComparisonEnabled",
    "sandbox",
    "showClearContextOnPlanAccept",
    "showMessageTimestamps",
    "showThinkingSummaries",
    "showTurnDuration",
    "skillListingBudgetFraction",
    "skillListingMaxDescChars",
    "skillOverrides",
    "skipDangerousModePermissionPrompt",
    "skipWebFetchPreflight",
    "skipWorkflowUsageWarning",
    "spellcheck",
    "spinnerTipsEnabled",
    "spinnerTipsOverride",
    "spinnerVerbs",
    "sshConfigs",
    "sshHostCommands",
    "statusLine",
    "strictKnownMarketplaces",
    "strictPluginOnlyCustomization",
    "subagentPromptCacheTtl",
    "subagentStatusLine",
    "switchModelsOnFlag",
    "syncClaudeAiPlugins",
    "syncClaudeAiSkills",
    "syntaxHighlightingDisabled",
    "taskOutputMaxChars",
    "teammateMode",
    "terminalProgressBarEnabled",
    "terminalTitleFromRename",
    "theme",
    "timeFormat",
    "timeZone",
    "todoFeatureEnabled",
    "totalTokensReminder",
    "totalTokensReminderAfterUserTurn",
    "totalTokensReminderBudget",
    "tui",
    "ultracode",
    "verbose",
    "viewMode",
    "vimInsertModeRemaps",
    "voice",
    "wheelScrollAccelerationEnabled",
    "workflowKeywordTriggerEnabled",
    "workflowSizeGuideline",
    "worktree",
    "wslInheritsWindowsSettings",
    "xaaIdp",
};

/* gateway.yaml sections this module reads from httpd directives instead, with
 * the directive to use; reported at load so nothing is silently ignored. */
static const char *const cg_directive_sections[][2] = {
    {"listen", "Listen, VirtualHost, SSLEngine and ClaudeGatewayPublicURL"},
    {"oidc", "mod_auth_openidc (OIDC*) and ClaudeGatewayOIDCClient, ClaudeGatewayEmailClaim, "
             "ClaudeGatewayGroupsClaim, ClaudeGatewayAllowedEmailDomains, "
             "ClaudeGatewayAllowedGroups"},
    {"session", "ClaudeGatewaySessionSecret and ClaudeGatewaySessionTTL"},
    {"store", "ClaudeGatewayDatabase and ClaudeGatewayDatabasePool"},
    {"limits", "ClaudeGatewayMaxBody, LimitRequestFieldSize and LimitRequestLine"},
    {"login_notice", "ClaudeGatewayLoginNotice"},
    {"access_control", "Require ip / Require not ip"},
    {"timeouts", "ProxyTimeout"},
    {"admin", "ClaudeGatewayAdminKey, ClaudeGatewayAdminGroups, ClaudeSpendGroupLimitMode and "
              "ClaudeSpendBlockedMessage"},
    {"enforcement", "ClaudeSpendOnError"},
    {"$schema", NULL},
};

/* Sections that belong to features not built yet. */
static const char *const cg_later_sections[] = {"cri", "load_test_mode"};

static const char *const cg_providers[] = {
    "anthropic", "bedrock", "mantle", "anthropicAws", "anthropicGoogleCloud", "vertex", "foundry"};

/* --- the catalogue ------------------------------------------------------ */

static int cg_ieq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcasecmp(a, b) == 0;
}

/* The length of id without one trailing "[1m]" context hint. */
static apr_size_t cg_model_len(const char *id)
{
    apr_size_t len = strlen(id);

    if (len >= 4 && strcasecmp(id + len - 4, "[1m]") == 0) {
        len -= 4;
    }
    return len;
}

/* len bytes of id, lower case, into dst (len + 1 bytes) */
static void cg_model_fold(char *dst, const char *id, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        dst[i] = (char)tolower((unsigned char)id[i]);
    }
    dst[len] = '\0';
}

/* A copy of id, lower case, without one trailing "[1m]" context hint. */
static char *cg_model_norm(apr_pool_t *p, const char *id)
{
    apr_size_t len = cg_model_len(id);
    char *s = apr_palloc(p, len + 1);

    cg_model_fold(s, id, len);
    return s;
}

/* The catalogue's ids in an open-addressing table, so a lookup (twice per
 * request: allowlist and upstream id) hashes the id once instead of running
 * strcasecmp on every id of every entry. Built once, at first use. */
#define CG_CATALOG_SLOTS 256 /* a power of two, over twice the ids */

typedef struct cg_catalog_slot_t {
    const char *id; /* NULL: empty */
    apr_uint32_t hash;
    const cg_builtin_model_t *m;
} cg_catalog_slot_t;

static cg_catalog_slot_t cg_catalog_index[CG_CATALOG_SLOTS];
static int cg_catalog_indexed; /* 0: a catalogue id is not lower case; lookups scan */
static pthread_once_t cg_catalog_once = PTHREAD_ONCE_INIT;

static apr_uint32_t cg_catalog_hash(const char *s, apr_size_t len)
{
    apr_uint32_t h = 2166136261u; /* FNV-1a */
    apr_size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

static void cg_catalog_index_build(void)
{
    apr_size_t i, k, j;

    for (i = 0; i < CG_CATALOG_N; i++) {
        const cg_builtin_model_t *m = &cg_catalog[i];
        const char *ids[] = {m->id, m->first_party, m->bedrock, m->vertex, m->foundry};

        for (k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
            apr_size_t len;
            apr_uint32_t h;

            if (ids[k] == NULL) {
                continue;
            }
            len = strlen(ids[k]);
            for (j = 0; j < len; j++) {
                /* lookups fold the id asked for, not the stored one */
                if (tolower((unsigned char)ids[k][j]) != (unsigned char)ids[k][j]) {
                    return;
                }
            }
            h = cg_catalog_hash(ids[k], len);
            for (j = h; cg_catalog_index[j % CG_CATALOG_SLOTS].id != NULL; j++) {
                if (!strcmp(cg_catalog_index[j % CG_CATALOG_SLOTS].id, ids[k])) {
                    break; /* the first entry naming an id keeps it, as the scan did */
                }
            }
            if (cg_catalog_index[j % CG_CATALOG_SLOTS].id == NULL) {
                cg_catalog_index[j % CG_CATALOG_SLOTS].id = ids[k];
                cg_catalog_index[j % CG_CATALOG_SLOTS].hash = h;
                cg_catalog_index[j % CG_CATALOG_SLOTS].m = m;
            }
        }
    }
    cg_catalog_indexed = 1;
}

#define CG_CATALOG_ID_MAX 256 /* ids this long or longer are in no catalogue */

/* The entry for id, already lower case and len bytes long. */
static const cg_builtin_model_t *cg_catalog_probe(const char *buf, apr_size_t len)
{
    apr_size_t i;
    apr_uint32_t h;

    if (len == 0 || len >= CG_CATALOG_ID_MAX) {
        return NULL;
    }
    pthread_once(&cg_catalog_once, cg_catalog_index_build);
    if (!cg_catalog_indexed) {
        for (i = 0; i < CG_CATALOG_N; i++) {
            const cg_builtin_model_t *m = &cg_catalog[i];
            if (cg_ieq(buf, m->id) || cg_ieq(buf, m->first_party) || cg_ieq(buf, m->bedrock) ||
                cg_ieq(buf, m->vertex) || cg_ieq(buf, m->foundry)) {
                return m;
            }
        }
        return NULL;
    }
    /* the catalogue is lower case: strcasecmp against it is strcmp of the
     * id folded by the same tolower() */
    h = cg_catalog_hash(buf, len);
    for (i = h;; i++) {
        const cg_catalog_slot_t *s = &cg_catalog_index[i % CG_CATALOG_SLOTS];
        if (s->id == NULL) {
            return NULL;
        }
        if (s->hash == h && !strcmp(s->id, buf)) {
            return s->m;
        }
    }
}

/* strip_hint: ignore one trailing "[1m]" (callers that already did pass 0) */
static const cg_builtin_model_t *cg_catalog_lookup(const char *id, int strip_hint)
{
    char buf[CG_CATALOG_ID_MAX];
    apr_size_t len;

    if (id == NULL) {
        return NULL;
    }
    len = strip_hint ? cg_model_len(id) : strlen(id);
    if (len == 0 || len >= sizeof(buf)) {
        return NULL;
    }
    cg_model_fold(buf, id, len);
    return cg_catalog_probe(buf, len);
}

const cg_builtin_model_t *cg_catalog_find(const char *id)
{
    return cg_catalog_lookup(id, 1);
}

const char *cg_catalog_provider_id(const cg_builtin_model_t *m, const char *provider)
{
    if (!strcmp(provider, "bedrock")) {
        return m->bedrock;
    }
    if (!strcmp(provider, "vertex")) {
        return m->vertex;
    }
    if (!strcmp(provider, "foundry")) {
        return m->foundry;
    }
    /* anthropic, anthropicAws and anthropicGoogleCloud take first-party ids */
    return m->first_party;
}

/* --- canonical JSON ----------------------------------------------------- */

static void cg_canon_string(apr_array_header_t *out, const char *s, apr_size_t len)
{
    apr_size_t i;

    *(char *)apr_array_push(out) = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[8];

        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof(hex), "\\u%04x", c);
                esc = hex;
            }
        }
        if (esc != NULL) {
            apr_size_t n = strlen(esc);
            memcpy(apr_array_push(out), esc, 1);
            if (n > 1) {
                char *dst;
                apr_size_t k;
                for (k = 1; k < n; k++) {
                    dst = apr_array_push(out);
                    *dst = esc[k];
                }
            }
        }
        else {
            *(char *)apr_array_push(out) = (char)c;
        }
    }
    *(char *)apr_array_push(out) = '"';
}

static void cg_canon_append(apr_array_header_t *out, const char *s)
{
    for (; *s; s++) {
        *(char *)apr_array_push(out) = *s;
    }
}

/* Number::toString: the shortest digits that read back, in JS's layout. */
static void cg_canon_real(apr_array_header_t *out, double v)
{
    char buf[64], digits[32], res[64];
    int prec, k = 0, n, e, i;
    char *mant, *exp;

    if (!isfinite(v)) {
        cg_canon_append(out, "null");
        return;
    }
    if (v == 0) {
        cg_canon_append(out, "0");
        return;
    }
    if (v < 0) {
        cg_canon_append(out, "-");
        v = -v;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    mant = buf;
    exp = strchr(buf, 'e');
    *exp++ = '\0';
    e = atoi(exp);
    for (; *mant; mant++) {
        if (*mant != '.') {
            digits[k++] = *mant;
        }
    }
    while (k > 1 && digits[k - 1] == '0') {
        k--;
    }
    digits[k] = '\0';
    n = e + 1;
    if (k <= n && n <= 21) {
        snprintf(res, sizeof(res), "%s", digits);
        for (i = 0; i < n - k; i++) {
            strcat(res, "0");
        }
    }
    else if (0 < n && n <= 21) {
        snprintf(res, sizeof(res), "%.*s.%s", n, digits, digits + n);
    }
    else if (-6 < n && n <= 0) {
        snprintf(res, sizeof(res), "0.");
        for (i = 0; i < -n; i++) {
            strcat(res, "0");
        }
        strcat(res, digits);
    }
    else {
        snprintf(res, sizeof(res), "%c%s%s%se%c%d", digits[0], k > 1 ? "." : "", digits + 1, "",
                 n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    cg_canon_append(out, res);
}

static int cg_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void cg_canon(apr_pool_t *p, apr_array_header_t *out, const json_t *j)
{
    char num[32];

    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char **keys = apr_palloc(p, sizeof(char *) * (json_object_size(j) + 1));
        const char *key;
        json_t *val;
        apr_size_t n = 0, i;

        json_object_foreach((json_t *)j, key, val)
        {
            keys[n++] = key;
        }
        qsort(keys, n, sizeof(char *), cg_key_cmp);
        cg_canon_append(out, "{");
        for (i = 0; i < n; i++) {
            if (i > 0) {
                cg_canon_append(out, ",");
            }
            cg_canon_string(out, keys[i], strlen(keys[i]));
            cg_canon_append(out, ":");
            cg_canon(p, out, json_object_get(j, keys[i]));
        }
        cg_canon_append(out, "}");
        break;
    }
    case JSON_ARRAY: {
        apr_size_t i;
        cg_canon_append(out, "[");
        for (i = 0; i < json_array_size(j); i++) {
            if (i > 0) {
                cg_canon_append(out, ",");
            }
            cg_canon(p, out, json_array_get(j, i));
        }
        cg_canon_append(out, "]");
        break;
    }
    case JSON_STRING:
        cg_canon_string(out, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        cg_canon_append(out, num);
        break;
    case JSON_REAL:
        cg_canon_real(out, json_real_value(j));
        break;
    case JSON_TRUE:
        cg_canon_append(out, "true");
        break;
    case JSON_FALSE:
        cg_canon_append(out, "false");
        break;
    case JSON_NULL:
        cg_canon_append(out, "null");
        break;
    }
}

char *cg_json_canonical(apr_pool_t *p, const json_t *j)
{
    apr_array_header_t *out = apr_array_make(p, 256, 1);

    cg_canon(p, out, j);
    *(char *)apr_array_push(out) = '\0';
    return out->elts;
}

const char *cg_json_checksum(apr_pool_t *p, const json_t *j)
{
    const char *canon = cg_json_canonical(p, j);
    unsigned char md[SHA256_DIGEST_LENGTH];
    char *hex = apr_palloc(p, 7 + 2 * SHA256_DIGEST_LENGTH + 1);
    int i;

    SHA256((const unsigned char *)canon, strlen(canon), md);
    memcpy(hex, "sha256:", 7);
    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        snprintf(hex + 7 + 2 * i, 3, "%02x", md[i]);
    }
    return hex;
}

/* --- validation --------------------------------------------------------- */

typedef struct cg_val_t {
    apr_pool_t *p;
    const char *file;
    const char *err;
    cg_policy_t *pol;
} cg_val_t;

static int cg_fail(cg_val_t *v, const char *path, const char *msg)
{
    if (v->err == NULL) {
        v->err = apr_psprintf(v->p, "%s: %s: %s", v->file, path, msg);
    }
    return 0;
}

static const char *cg_idx(cg_val_t *v, const char *path, apr_size_t i)
{
    return apr_psprintf(v->p, "%s[%lu]", path, (unsigned long)i);
}

static const char *cg_sub(cg_val_t *v, const char *path, const char *key)
{
    return *path ? apr_pstrcat(v->p, path, ".", key, NULL) : key;
}

static const char *cg_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static int cg_want(cg_val_t *v, const char *path, const json_t *j, json_type t, const char *name)
{
    int ok = json_typeof(j) == t || (t == JSON_TRUE && json_is_boolean(j)) ||
             (t == JSON_REAL && json_is_number(j));
    if (!ok) {
        return cg_fail(v, path,
                       apr_psprintf(v->p, "Expected %s, received %s", name, cg_type_name(j)));
    }
    return 1;
}

/* Only the listed keys may appear (zod's strict objects). */
static int cg_keys_only(cg_val_t *v, const char *path, const json_t *obj, const char *const *keys)
{
    const char *key;
    json_t *val;

    json_object_foreach((json_t *)obj, key, val)
    {
        const char *const *k;
        for (k = keys; *k; k++) {
            if (!strcmp(*k, key)) {
                break;
            }
        }
        if (*k == NULL) {
            return cg_fail(v, path, apr_psprintf(v->p, "Unrecognized key: \"%s\"", key));
        }
    }
    return 1;
}

static int cg_string_list(cg_val_t *v, const char *path, const json_t *j, int nonempty)
{
    apr_size_t i;

    if (!cg_want(v, path, j, JSON_ARRAY, "array")) {
        return 0;
    }
    if (nonempty && json_array_size(j) == 0) {
        return cg_fail(v, path, "must contain at least 1 element");
    }
    for (i = 0; i < json_array_size(j); i++) {
        const json_t *e = json_array_get(j, i);
        if (!cg_want(v, cg_idx(v, path, i), e, JSON_STRING, "string")) {
            return 0;
        }
        if (nonempty && json_string_length(e) == 0) {
            return cg_fail(v, cg_idx(v, path, i), "must not be empty");
        }
    }
    return 1;
}

/* A non-empty list of non-empty strings, as an array of them (owned by the
 * tree); NULL after a validation failure. */
static apr_array_header_t *cg_strings_of(cg_val_t *v, const char *path, const json_t *j)
{
    apr_array_header_t *out;
    apr_size_t i;

    if (!cg_string_list(v, path, j, 1)) {
        return NULL;
    }
    out = apr_array_make(v->p, (int)json_array_size(j), sizeof(char *));
    for (i = 0; i < json_array_size(j); i++) {
        APR_ARRAY_PUSH(out, const char *) = json_string_value(json_array_get(j, i));
    }
    return out;
}

static int cg_string_map(cg_val_t *v, const char *path, const json_t *j)
{
    const char *key;
    json_t *val;

    if (!cg_want(v, path, j, JSON_OBJECT, "object")) {
        return 0;
    }
    json_object_foreach((json_t *)j, key, val)
    {
        if (!cg_want(v, cg_sub(v, path, key), val, JSON_STRING, "string")) {
            return 0;
        }
    }
    return 1;
}

static int cg_is_cli_key(const char *key)
{
    apr_size_t i;
    for (i = 0; i < sizeof(cg_cli_keys) / sizeof(cg_cli_keys[0]); i++) {
        if (!strcmp(cg_cli_keys[i], key)) {
            return 1;
        }
    }
    return 0;
}

/* A managed-settings.json document: the client's key names, and the types of
 * the keys the gateway itself reads or merges. */
static int cg_check_cli(cg_val_t *v, const char *path, const json_t *doc)
{
    const char *key;
    json_t *val;
    const char *bad = NULL;

    if (!cg_want(v, path, doc, JSON_OBJECT, "object")) {
        return 0;
    }
    json_object_foreach((json_t *)doc, key, val)
    {
        if (!strcmp(key, "mcpServers")) {
            return cg_fail(v, cg_sub(v, path, key),
                           "mcpServers cannot be pushed through managed settings; use "
                           "managedMcpServers or allowedMcpServers");
        }
        if (!cg_is_cli_key(key)) {
            bad = bad ? apr_pstrcat(v->p, bad, ", \"", key, "\"", NULL)
                      : apr_pstrcat(v->p, "\"", key, "\"", NULL);
        }
    }
    if (bad != NULL) {
        return cg_fail(v, path,
                       apr_psprintf(v->p, "Unrecognized key(s) in managed settings: %s", bad));
    }
    if ((val = json_object_get(doc, "availableModels")) != NULL &&
        !cg_string_list(v, cg_sub(v, path, "availableModels"), val, 0)) {
        return 0;
    }
    if ((val = json_object_get(doc, "availableModelsMatch")) != NULL &&
        (!json_is_string(val) || (strcmp(json_string_value(val), "prefix") != 0 &&
                                  strcmp(json_string_value(val), "exact") != 0))) {
        return cg_fail(v, cg_sub(v, path, "availableModelsMatch"),
                       "Invalid enum value. Expected 'prefix' | 'exact'");
    }
    if ((val = json_object_get(doc, "env")) != NULL &&
        !cg_string_map(v, cg_sub(v, path, "env"), val)) {
        return 0;
    }
    if ((val = json_object_get(doc, "permissions")) != NULL) {
        static const char *const lists[] = {"allow", "deny", "ask", "additionalDirectories"};
        const char *pp = cg_sub(v, path, "permissions");
        apr_size_t i;
        if (!cg_want(v, pp, val, JSON_OBJECT, "object")) {
            return 0;
        }
        for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
            json_t *l = json_object_get(val, lists[i]);
            if (l != NULL && !cg_string_list(v, cg_sub(v, pp, lists[i]), l, 0)) {
                return 0;
            }
        }
    }
    if ((val = json_object_get(doc, "hooks")) != NULL) {
        const char *hp = cg_sub(v, path, "hooks"), *ev;
        json_t *arr;
        if (!cg_want(v, hp, val, JSON_OBJECT, "object")) {
            return 0;
        }
        json_object_foreach(val, ev, arr)
        {
            if (!cg_want(v, cg_sub(v, hp, ev), arr, JSON_ARRAY, "array")) {
                return 0;
            }
        }
    }
    if ((val = json_object_get(doc, "modelOverrides")) != NULL &&
        !cg_want(v, cg_sub(v, path, "modelOverrides"), val, JSON_OBJECT, "object")) {
        return 0;
    }
    return 1;
}

/* email_domain as the reference checks it (v2.1.232+): one leading @ is
 * stripped; empty, or containing @, whitespace or a comma, fails. */
static const char *cg_check_domain(cg_val_t *v, const char *path, const json_t *j)
{
    const char *d, *c;

    if (!cg_want(v, path, j, JSON_STRING, "string")) {
        return NULL;
    }
    d = json_string_value(j);
    if (*d == '@') {
        d++;
    }
    if (*d == '\0') {
        cg_fail(v, path, "email_domain must not be empty");
        return NULL;
    }
    for (c = d; *c; c++) {
        if (*c == '@' || *c == ',' || isspace((unsigned char)*c)) {
            cg_fail(v, path,
                    apr_psprintf(v->p,
                                 "email_domain must be a bare domain such as example.com "
                                 "(got \"%s\")",
                                 json_string_value(j)));
            return NULL;
        }
    }
    return cg_model_norm(v->p, d);
}

static int cg_in(const char *key, const char *const *set);

/* A string member, or NULL; a non-string fails the validation. */
static const char *cg_opt_string(cg_val_t *v, const char *path, const json_t *obj, const char *key,
                                 int *ok)
{
    json_t *j = json_object_get(obj, key);

    if (j == NULL || !*ok) {
        return NULL;
    }
    if (!cg_want(v, cg_sub(v, path, key), j, JSON_STRING, "string") || json_string_length(j) == 0) {
        cg_fail(v, cg_sub(v, path, key), "must be a non-empty string");
        *ok = 0;
        return NULL;
    }
    return json_string_value(j);
}

/* The reference's upstreams[] entry, strictly: keys by provider, the auth
 * forms each provider takes, complete AWS key pairs, reserved headers. */
static int cg_check_upstream(cg_val_t *v, const char *path, const json_t *u, cg_upstream_decl_t *d)
{
    static const char *const common[] = {"provider", "name",   "base_url", "headers",
                                         "groups",   "models", "auth",     NULL};
    static const char *const reserved[] = {
        "authorization",     "x-api-key",  "host",    "content-length", "content-type",
        "transfer-encoding", "connection", "api-key", "x-amz-date",     "x-amz-security-token",
        "anthropic-version", NULL};
    const char *const *extra;
    static const char *const ex_anthropic[] = {"forward_user_identity", NULL};
    static const char *const ex_bedrock[] = {"region", "guardrail", "guardrail_trace",
                                             "assume_role", NULL};
    static const char *const ex_vertex[] = {"region", "project_id", NULL};
    static const char *const ex_foundry[] = {"resource", NULL};
    static const char *const ex_aws[] = {"region", "workspace_id", NULL};
    static const char *const ex_gcp[] = {"project_id", "workspace_id", "location", NULL};
    const char *key, *apath = cg_sub(v, path, "auth");
    json_t *val, *auth = json_object_get(u, "auth");
    int ok = 1;

    if (!strcmp(d->provider, "anthropic")) {
        extra = ex_anthropic;
    }
    else if (!strcmp(d->provider, "bedrock") || !strcmp(d->provider, "mantle")) {
        extra = ex_bedrock;
    }
    else if (!strcmp(d->provider, "vertex")) {
        extra = ex_vertex;
    }
    else if (!strcmp(d->provider, "foundry")) {
        extra = ex_foundry;
    }
    else if (!strcmp(d->provider, "anthropicAws")) {
        extra = ex_aws;
    }
    else {
        extra = ex_gcp;
    }
    json_object_foreach((json_t *)u, key, val)
    {
        if (!cg_in(key, common) && !cg_in(key, extra)) {
            return cg_fail(v, path, apr_psprintf(v->p, "Unrecognized key: \"%s\"", key));
        }
    }
    d->base_url = cg_opt_string(v, path, u, "base_url", &ok);
    d->region = cg_opt_string(v, path, u, "region", &ok);
    d->project_id = cg_opt_string(v, path, u, "project_id", &ok);
    d->resource = cg_opt_string(v, path, u, "resource", &ok);
    d->workspace_id = cg_opt_string(v, path, u, "workspace_id", &ok);
    if (!ok) {
        return 0;
    }
    if (d->base_url && strncmp(d->base_url, "https://", 8) != 0 &&
        strncmp(d->base_url, "http://", 7) != 0) {
        return cg_fail(v, cg_sub(v, path, "base_url"), "Invalid url");
    }
    if ((!strcmp(d->provider, "bedrock") || !strcmp(d->provider, "vertex") ||
         !strcmp(d->provider, "anthropicAws")) &&
        d->region == NULL) {
        return cg_fail(v, cg_sub(v, path, "region"), "Required");
    }
    if (!strcmp(d->provider, "anthropicAws") && d->workspace_id == NULL) {
        return cg_fail(v, cg_sub(v, path, "workspace_id"), "Required");
    }
    if (!strcmp(d->provider, "vertex") && d->project_id == NULL) {
        return cg_fail(v, cg_sub(v, path, "project_id"), "Required");
    }
    if (!strcmp(d->provider, "foundry") && d->resource == NULL && d->base_url == NULL) {
        return cg_fail(v, cg_sub(v, path, "resource"), "Required");
    }
    if ((val = json_object_get(u, "forward_user_identity")) != NULL) {
        if (!cg_want(v, cg_sub(v, path, "forward_user_identity"), val, JSON_TRUE, "boolean")) {
            return 0;
        }
        d->forward_user_identity = json_is_true(val);
        if (d->forward_user_identity &&
            (d->base_url == NULL || strstr(d->base_url, "anthropic.com") != NULL)) {
            return cg_fail(v, cg_sub(v, path, "forward_user_identity"),
                           "forward_user_identity cannot be sent to the Anthropic API");
        }
    }
    if ((val = json_object_get(u, "headers")) != NULL) {
        const char *hk;
        json_t *hv;
        if (!cg_string_map(v, cg_sub(v, path, "headers"), val)) {
            return 0;
        }
        json_object_foreach(val, hk, hv)
        {
            char *lower = cg_model_norm(v->p, hk);
            if (cg_in(lower, reserved)) {
                return cg_fail(v, cg_sub(v, cg_sub(v, path, "headers"), hk),
                               "this header is set by the gateway");
            }
        }
        d->headers = val;
    }
    if ((val = json_object_get(u, "guardrail")) != NULL) {
        static const char *const guard_keys[] = {"id", "version", "input_tagging", NULL};
        const char *gpath = cg_sub(v, path, "guardrail"), *c;
        json_t *tag;
        if (!cg_want(v, gpath, val, JSON_OBJECT, "object") ||
            !cg_keys_only(v, gpath, val, guard_keys)) {
            return 0;
        }
        d->guardrail_id = cg_opt_string(v, gpath, val, "id", &ok);
        d->guardrail_version = cg_opt_string(v, gpath, val, "version", &ok);
        if (!ok) {
            return 0;
        }
        if (d->guardrail_id == NULL) {
            return cg_fail(v, cg_sub(v, gpath, "id"), "Required");
        }
        if (d->guardrail_version == NULL) {
            return cg_fail(v, cg_sub(v, gpath, "version"), "Required");
        }
        /* Bedrock's patterns: an id or a guardrail ARN; a number or DRAFT */
        for (c = d->guardrail_id; *c; c++) {
            if (!apr_isalnum(*c) && strchr(":/-", *c) == NULL) {
                return cg_fail(v, cg_sub(v, gpath, "id"), "not a guardrail id or ARN");
            }
        }
        if (strcmp(d->guardrail_version, "DRAFT") != 0 &&
            (strspn(d->guardrail_version, "0123456789") != strlen(d->guardrail_version) ||
             d->guardrail_version[0] == '0' || strlen(d->guardrail_version) > 8)) {
            return cg_fail(v, cg_sub(v, gpath, "version"), "a version number or DRAFT");
        }
        if ((tag = json_object_get(val, "input_tagging")) != NULL) {
            if (!cg_want(v, cg_sub(v, gpath, "input_tagging"), tag, JSON_TRUE, "boolean")) {
                return 0;
            }
            d->guardrail_tagging = json_is_true(tag);
        }
    }
    if ((val = json_object_get(u, "guardrail_trace")) != NULL) {
        if (!cg_want(v, cg_sub(v, path, "guardrail_trace"), val, JSON_TRUE, "boolean")) {
            return 0;
        }
        d->guardrail_trace = json_is_true(val);
    }
    if ((val = json_object_get(u, "assume_role")) != NULL) {
        static const char *const role_keys[] = {"role_arn", "external_id", "session_name", NULL};
        const char *rpath = cg_sub(v, path, "assume_role");
        if (!cg_want(v, rpath, val, JSON_OBJECT, "object") ||
            !cg_keys_only(v, rpath, val, role_keys)) {
            return 0;
        }
        d->role_arn = cg_opt_string(v, rpath, val, "role_arn", &ok);
        d->role_external_id = cg_opt_string(v, rpath, val, "external_id", &ok);
        d->role_session = cg_opt_string(v, rpath, val, "session_name", &ok);
        if (!ok) {
            return 0;
        }
        if (d->role_arn == NULL) {
            return cg_fail(v, cg_sub(v, rpath, "role_arn"), "Required");
        }
        if (strncmp(d->role_arn, "arn:", 4) != 0) {
            return cg_fail(v, cg_sub(v, rpath, "role_arn"), "not an IAM role ARN");
        }
        if (d->role_session != NULL && strcmp(d->role_session, "email") != 0 &&
            strcmp(d->role_session, "sub") != 0) {
            return cg_fail(v, cg_sub(v, rpath, "session_name"),
                           "Invalid enum value. Expected 'email' | 'sub'");
        }
    }
    if ((val = json_object_get(u, "groups")) != NULL &&
        (d->groups = cg_strings_of(v, cg_sub(v, path, "groups"), val)) == NULL) {
        return 0;
    }
    if ((val = json_object_get(u, "models")) != NULL &&
        (d->models = cg_strings_of(v, cg_sub(v, path, "models"), val)) == NULL) {
        return 0;
    }
    if (auth == NULL) {
        return 1;
    }
    if (!cg_want(v, apath, auth, JSON_OBJECT, "object")) {
        return 0;
    }
    d->api_key = cg_opt_string(v, apath, auth, "api_key", &ok);
    d->oauth_token = cg_opt_string(v, apath, auth, "oauth_token", &ok);
    d->aws_access_key_id = cg_opt_string(v, apath, auth, "aws_access_key_id", &ok);
    d->aws_secret_access_key = cg_opt_string(v, apath, auth, "aws_secret_access_key", &ok);
    d->aws_session_token = cg_opt_string(v, apath, auth, "aws_session_token", &ok);
    d->aws_bearer_token = cg_opt_string(v, apath, auth, "aws_bearer_token", &ok);
    d->service_account_json = cg_opt_string(v, apath, auth, "service_account_json", &ok);
    d->access_token = cg_opt_string(v, apath, auth, "access_token", &ok);
    if (!ok) {
        return 0;
    }
    if ((d->aws_access_key_id == NULL) != (d->aws_secret_access_key == NULL) ||
        (d->aws_session_token != NULL && d->aws_access_key_id == NULL)) {
        return cg_fail(v, apath,
                       "aws_access_key_id and aws_secret_access_key must be given together");
    }
    if (d->api_key != NULL && d->oauth_token != NULL) {
        return cg_fail(v, apath, "give api_key or oauth_token, not both");
    }
    d->wif_rule = cg_opt_string(v, apath, auth, "federation_rule_id", &ok);
    d->wif_organization = cg_opt_string(v, apath, auth, "organization_id", &ok);
    d->wif_token_file = cg_opt_string(v, apath, auth, "identity_token_file", &ok);
    d->wif_service_account = cg_opt_string(v, apath, auth, "service_account_id", &ok);
    d->wif_workspace = cg_opt_string(v, apath, auth, "workspace_id", &ok);
    if (!ok) {
        return 0;
    }
    if (d->wif_rule || d->wif_organization || d->wif_token_file || d->wif_service_account ||
        d->wif_workspace) {
        static const char *const need[] = {"federation_rule_id", "organization_id",
                                           "identity_token_file"};
        const char *have[] = {d->wif_rule, d->wif_organization, d->wif_token_file};
        apr_size_t n;
        if (strcmp(d->provider, "anthropic") != 0) {
            return cg_fail(v, apath, "workload identity federation is for anthropic upstreams");
        }
        for (n = 0; n < 3; n++) {
            if (have[n] == NULL) {
                return cg_fail(v, cg_sub(v, apath, need[n]), "Required");
            }
        }
        if (d->api_key != NULL || d->oauth_token != NULL) {
            return cg_fail(v, apath, "give api_key, oauth_token or federation_rule_id, only one");
        }
    }
    if (d->role_arn != NULL && d->aws_bearer_token != NULL) {
        return cg_fail(v, cg_sub(v, path, "assume_role"),
                       "a role is assumed with AWS keys, not with aws_bearer_token");
    }
    if ((val = json_object_get(auth, "use_azure_ad")) != NULL) {
        if (!cg_want(v, cg_sub(v, apath, "use_azure_ad"), val, JSON_TRUE, "boolean")) {
            return 0;
        }
        d->use_azure_ad = json_is_true(val);
        if (d->use_azure_ad && strcmp(d->provider, "foundry") != 0) {
            return cg_fail(v, cg_sub(v, apath, "use_azure_ad"), "only foundry upstreams take it");
        }
        if (d->use_azure_ad && (d->api_key != NULL || d->oauth_token != NULL)) {
            return cg_fail(v, apath, "give api_key or use_azure_ad, not both");
        }
    }
    return 1;
}

static int cg_same_guardrail(const cg_upstream_decl_t *a, const cg_upstream_decl_t *b)
{
    if (a->guardrail_id == NULL || b->guardrail_id == NULL) {
        return a->guardrail_id == b->guardrail_id;
    }
    return !strcmp(a->guardrail_id, b->guardrail_id) &&
           !strcmp(a->guardrail_version, b->guardrail_version) &&
           a->guardrail_tagging == b->guardrail_tagging;
}

static int cg_check_upstreams(cg_val_t *v, const json_t *ups)
{
    const cg_upstream_decl_t *first;
    apr_size_t i, k;

    if (!cg_want(v, "upstreams", ups, JSON_ARRAY, "array")) {
        return 0;
    }
    if (json_array_size(ups) == 0) {
        return cg_fail(v, "upstreams", "must contain at least 1 element");
    }
    for (i = 0; i < json_array_size(ups); i++) {
        const char *path = cg_idx(v, "upstreams", i);
        json_t *u = json_array_get(ups, i), *prov, *name;
        cg_upstream_decl_t *d;

        if (!cg_want(v, path, u, JSON_OBJECT, "object")) {
            return 0;
        }
        prov = json_object_get(u, "provider");
        if (prov == NULL) {
            return cg_fail(v, cg_sub(v, path, "provider"), "Required");
        }
        for (k = 0; k < sizeof(cg_providers) / sizeof(cg_providers[0]); k++) {
            if (json_is_string(prov) && !strcmp(json_string_value(prov), cg_providers[k])) {
                break;
            }
        }
        if (k == sizeof(cg_providers) / sizeof(cg_providers[0])) {
            return cg_fail(v, cg_sub(v, path, "provider"),
                           "Invalid discriminator value. Expected 'anthropic' | 'bedrock' | "
                           "'mantle' | 'anthropicAws' | 'anthropicGoogleCloud' | 'vertex' | "
                           "'foundry'");
        }
        name = json_object_get(u, "name");
        if (name != NULL && (!cg_want(v, cg_sub(v, path, "name"), name, JSON_STRING, "string") ||
                             json_string_length(name) == 0)) {
            return cg_fail(v, cg_sub(v, path, "name"), "must not be empty");
        }
        d = apr_array_push(v->pol->upstreams);
        memset(d, 0, sizeof(*d));
        d->provider = apr_pstrdup(v->p, json_string_value(prov));
        d->name = name ? apr_pstrdup(v->p, json_string_value(name)) : d->provider;
        for (k = 0; k + 1 < (apr_size_t)v->pol->upstreams->nelts; k++) {
            if (!strcmp(APR_ARRAY_IDX(v->pol->upstreams, k, cg_upstream_decl_t).name, d->name)) {
                return cg_fail(v, path,
                               apr_psprintf(v->p, "duplicate upstream name '%s'", d->name));
            }
        }
        if (!cg_check_upstream(v, path, u, d)) {
            return 0;
        }
        if (d->base_url == NULL) {
            if (!strcmp(d->provider, "bedrock")) {
                d->base_url =
                    apr_psprintf(v->p, "https://bedrock-runtime.%s.amazonaws.com", d->region);
            }
            else if (!strcmp(d->provider, "vertex")) {
                d->base_url =
                    !strcmp(d->region, "global")
                        ? "https://aiplatform.googleapis.com"
                        : apr_psprintf(v->p, "https://%s-aiplatform.googleapis.com", d->region);
            }
            else if (!strcmp(d->provider, "foundry")) {
                d->base_url =
                    apr_psprintf(v->p, "https://%s.services.ai.azure.com/anthropic", d->resource);
            }
            else if (!strcmp(d->provider, "anthropicAws")) {
                d->base_url =
                    apr_psprintf(v->p, "https://aws-external-anthropic.%s.api.aws", d->region);
            }
            else {
                d->base_url = "https://api.anthropic.com";
            }
        }
    }
    /* a guardrail on one Bedrock upstream and not on another would let a
     * failover bypass it */
    for (i = 0, first = NULL; i < (apr_size_t)v->pol->upstreams->nelts; i++) {
        const cg_upstream_decl_t *d = &APR_ARRAY_IDX(v->pol->upstreams, i, cg_upstream_decl_t);
        if (strcmp(d->provider, "bedrock") != 0) {
            continue;
        }
        if (first == NULL) {
            first = d;
            k = i;
        }
        else if (!cg_same_guardrail(first, d)) {
            return cg_fail(v, cg_sub(v, cg_idx(v, "upstreams", i), "guardrail"),
                           apr_psprintf(v->p,
                                        "differs from upstreams[%" APR_SIZE_T_FMT
                                        "].guardrail: every Bedrock upstream takes the same "
                                        "guardrail, so that failover cannot bypass it",
                                        k));
        }
    }
    return 1;
}

static int cg_upstream_known(const cg_policy_t *pol, const char *name)
{
    int i;

    if (pol->upstreams->nelts == 0) {
        return !strcmp(name, "anthropic"); /* the default upstream's name */
    }
    for (i = 0; i < pol->upstreams->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(pol->upstreams, i, cg_upstream_decl_t).name, name)) {
            return 1;
        }
    }
    return 0;
}

static int cg_check_models(cg_val_t *v, const json_t *models)
{
    static const char *const keys[] = {"id", "label", "description", "upstream_model", NULL};
    apr_size_t i;

    if (!cg_want(v, "models", models, JSON_ARRAY, "array")) {
        return 0;
    }
    for (i = 0; i < json_array_size(models); i++) {
        const char *path = cg_idx(v, "models", i), *up;
        json_t *m = json_array_get(models, i), *id, *label, *desc, *map, *target;
        cg_custom_model_t *cm;
        int k;

        if (!cg_want(v, path, m, JSON_OBJECT, "object") || !cg_keys_only(v, path, m, keys)) {
            return 0;
        }
        id = json_object_get(m, "id");
        label = json_object_get(m, "label");
        desc = json_object_get(m, "description");
        map = json_object_get(m, "upstream_model");
        if (id == NULL) {
            return cg_fail(v, cg_sub(v, path, "id"), "Required");
        }
        if (!cg_want(v, cg_sub(v, path, "id"), id, JSON_STRING, "string")) {
            return 0;
        }
        if (json_string_length(id) == 0) {
            return cg_fail(v, cg_sub(v, path, "id"), "must not be empty");
        }
        if ((label && !cg_want(v, cg_sub(v, path, "label"), label, JSON_STRING, "string")) ||
            (desc && !cg_want(v, cg_sub(v, path, "description"), desc, JSON_STRING, "string"))) {
            return 0;
        }
        if (map == NULL) {
            return cg_fail(v, cg_sub(v, path, "upstream_model"), "Required");
        }
        if (!cg_string_map(v, cg_sub(v, path, "upstream_model"), map)) {
            return 0;
        }
        if (json_object_size(map) == 0) {
            return cg_fail(v, cg_sub(v, path, "upstream_model"), "must map at least one upstream");
        }
        json_object_foreach(map, up, target)
        {
            if (!cg_upstream_known(v->pol, up)) {
                return cg_fail(v, cg_sub(v, cg_sub(v, path, "upstream_model"), up),
                               apr_psprintf(v->p, "references unknown upstream '%s'", up));
            }
        }
        for (k = 0; k < v->pol->models->nelts; k++) {
            if (cg_ieq(APR_ARRAY_IDX(v->pol->models, k, cg_custom_model_t).id,
                       json_string_value(id))) {
                return cg_fail(
                    v, cg_sub(v, path, "id"),
                    apr_psprintf(v->p, "duplicate model id '%s'", json_string_value(id)));
            }
        }
        cm = apr_array_push(v->pol->models);
        cm->id = json_string_value(id);
        cm->label = label ? json_string_value(label) : NULL;
        cm->description = desc ? json_string_value(desc) : NULL;
        cm->upstream_model = map;
    }
    return 1;
}

/* A positive count, or fail. */
static int cg_want_count(cg_val_t *v, const char *path, const json_t *j, apr_int64_t *out)
{
    if (!json_is_integer(j) || json_integer_value(j) < 1) {
        return cg_fail(v, path, "must be a positive integer");
    }
    *out = (apr_int64_t)json_integer_value(j);
    return 1;
}

static int cg_check_rl_pair(cg_val_t *v, const char *path, const json_t *obj, apr_int64_t *rpm,
                            apr_int64_t *tpm)
{
    json_t *j;

    if ((j = json_object_get(obj, "requests_per_minute")) != NULL &&
        !cg_want_count(v, cg_sub(v, path, "requests_per_minute"), j, rpm)) {
        return 0;
    }
    if ((j = json_object_get(obj, "tokens_per_minute")) != NULL &&
        !cg_want_count(v, cg_sub(v, path, "tokens_per_minute"), j, tpm)) {
        return 0;
    }
    return 1;
}

/* The reference's rate_limits (device endpoints, configured by directive
 * here) plus this module's per-principal and per-group limits. */
static int cg_check_rate_limits(cg_val_t *v, const json_t *rl)
{
    static const char *const keys[] = {"device_authorization",
                                       "device_verify",
                                       "requests_per_minute",
                                       "tokens_per_minute",
                                       "groups",
                                       "store",
                                       NULL};
    static const char *const pair[] = {"requests_per_minute", "tokens_per_minute", NULL};
    json_t *j;

    if (!cg_want(v, "rate_limits", rl, JSON_OBJECT, "object") ||
        !cg_keys_only(v, "rate_limits", rl, keys)) {
        return 0;
    }
    if (json_object_get(rl, "device_authorization") || json_object_get(rl, "device_verify")) {
        *(const char **)apr_array_push(v->pol->notes) =
            "rate_limits.device_*: not read from the policy file; httpd configures it "
            "(ClaudeGatewayDeviceRateLimit)";
    }
    if (!cg_check_rl_pair(v, "rate_limits", rl, &v->pol->rl_rpm, &v->pol->rl_tpm)) {
        return 0;
    }
    if ((j = json_object_get(rl, "store")) != NULL) {
        if (!json_is_string(j) || (strcmp(json_string_value(j), "node") != 0 &&
                                   strcmp(json_string_value(j), "postgres") != 0)) {
            return cg_fail(v, "rate_limits.store",
                           "Invalid enum value. Expected 'node' | "
                           "'postgres'");
        }
        v->pol->rl_postgres = !strcmp(json_string_value(j), "postgres");
    }
    if ((j = json_object_get(rl, "groups")) != NULL) {
        const char *g;
        json_t *lim;
        if (!cg_want(v, "rate_limits.groups", j, JSON_OBJECT, "object")) {
            return 0;
        }
        json_object_foreach(j, g, lim)
        {
            const char *path = cg_sub(v, "rate_limits.groups", g);
            cg_rl_group_t *rg;
            if (!cg_want(v, path, lim, JSON_OBJECT, "object") ||
                !cg_keys_only(v, path, lim, pair)) {
                return 0;
            }
            rg = apr_array_push(v->pol->rl_groups);
            memset(rg, 0, sizeof(*rg));
            rg->group = g;
            if (!cg_check_rl_pair(v, path, lim, &rg->rpm, &rg->tpm)) {
                return 0;
            }
        }
    }
    return 1;
}

static int cg_check_pricing(cg_val_t *v, const json_t *pr)
{
    static const char *const keys[] = {"multiplier", "overrides", NULL};
    static const char *const row_keys[] = {"upstream",   "model",       "input", "output",
                                           "cache_read", "cache_write", NULL};
    json_t *mul, *rows;
    apr_size_t i, k;

    if (!cg_want(v, "pricing", pr, JSON_OBJECT, "object") ||
        !cg_keys_only(v, "pricing", pr, keys)) {
        return 0;
    }
    mul = json_object_get(pr, "multiplier");
    if (mul != NULL && (!cg_want(v, "pricing.multiplier", mul, JSON_REAL, "number") ||
                        json_number_value(mul) <= 0 || json_number_value(mul) > 10)) {
        return cg_fail(v, "pricing.multiplier", "must be greater than 0 and at most 10");
    }
    if (mul != NULL) {
        v->pol->multiplier_ppm = llround(json_number_value(mul) * 1e6);
    }
    rows = json_object_get(pr, "overrides");
    if (rows == NULL) {
        return 1;
    }
    if (!cg_want(v, "pricing.overrides", rows, JSON_ARRAY, "array")) {
        return 0;
    }
    for (i = 0; i < json_array_size(rows); i++) {
        const char *path = cg_idx(v, "pricing.overrides", i);
        json_t *row = json_array_get(rows, i), *up, *model;

        if (!cg_want(v, path, row, JSON_OBJECT, "object") ||
            !cg_keys_only(v, path, row, row_keys)) {
            return 0;
        }
        for (k = 0; row_keys[k]; k++) {
            json_t *f = json_object_get(row, row_keys[k]);
            if (f == NULL) {
                return cg_fail(v, cg_sub(v, path, row_keys[k]), "Required");
            }
            if (k < 2 ? !cg_want(v, cg_sub(v, path, row_keys[k]), f, JSON_STRING, "string")
                      : !cg_want(v, cg_sub(v, path, row_keys[k]), f, JSON_REAL, "number")) {
                return 0;
            }
            if (k >= 2 && (json_number_value(f) < 0 || json_number_value(f) > 1e6)) {
                return cg_fail(v, cg_sub(v, path, row_keys[k]),
                               "must be a price in USD per million tokens (0 to 1000000)");
            }
        }
        up = json_object_get(row, "upstream");
        model = json_object_get(row, "model");
        if (!cg_upstream_known(v->pol, json_string_value(up))) {
            return cg_fail(
                v, cg_sub(v, path, "upstream"),
                apr_psprintf(v->p, "references unknown upstream '%s'", json_string_value(up)));
        }
        for (k = 0; k < i; k++) {
            json_t *o = json_array_get(rows, k);
            const cg_builtin_model_t *a = cg_catalog_find(json_string_value(model));
            const char *om = json_string_value(json_object_get(o, "model"));
            if (cg_ieq(json_string_value(json_object_get(o, "upstream")), json_string_value(up)) &&
                (cg_ieq(om, json_string_value(model)) || (a != NULL && a == cg_catalog_find(om)))) {
                return cg_fail(v, path, "duplicate pricing row for this upstream and model");
            }
        }
        {
            cg_price_row_t *row_out = apr_array_push(v->pol->prices);
            /* $/MTok to integer micro-USD/MTok once, here; metering never
             * sees a floating-point number */
            row_out->upstream = json_string_value(up);
            row_out->model = json_string_value(model);
            row_out->input = llround(json_number_value(json_object_get(row, "input")) * 1e6);
            row_out->output = llround(json_number_value(json_object_get(row, "output")) * 1e6);
            row_out->cache_read =
                llround(json_number_value(json_object_get(row, "cache_read")) * 1e6);
            row_out->cache_write =
                llround(json_number_value(json_object_get(row, "cache_write")) * 1e6);
        }
    }
    return 1;
}

/* --- merging ------------------------------------------------------------ */

static int cg_in(const char *key, const char *const *set)
{
    for (; *set; set++) {
        if (!strcmp(*set, key)) {
            return 1;
        }
    }
    return 0;
}

/* base's items, then add's items not already there */
static json_t *cg_union(const json_t *base, const json_t *add)
{
    json_t *out = json_deep_copy(base);
    apr_size_t i, k;

    for (i = 0; i < json_array_size(add); i++) {
        json_t *e = json_array_get(add, i);
        for (k = 0; k < json_array_size(out); k++) {
            if (json_equal(json_array_get(out, k), e)) {
                break;
            }
        }
        if (k == json_array_size(out)) {
            json_array_append_new(out, json_deep_copy(e));
        }
    }
    return out;
}

/* The documented merge of a policy onto the base layer: allow-lists
 * replaced, deny-lists and hooks unioned, record keys shallow-merged with the
 * policy winning, everything else replaced. */
static json_t *cg_merge(const json_t *base, const json_t *over)
{
    static const char *const unioned[] = {"disabledMcpjsonServers", "deniedMcpServers",
                                          "blockedMarketplaces", NULL};
    static const char *const records[] = {"env", "modelOverrides", "skillOverrides", NULL};
    static const char *const perm_unioned[] = {"deny", "ask", NULL};
    json_t *out = json_deep_copy(base);
    const char *key;
    json_t *val;

    json_object_foreach((json_t *)over, key, val)
    {
        json_t *b = json_object_get(out, key);
        json_t *merged = NULL;

        if (b != NULL && json_is_array(b) && json_is_array(val) && cg_in(key, unioned)) {
            merged = cg_union(b, val);
        }
        else if (b != NULL && json_is_object(b) && json_is_object(val) && cg_in(key, records)) {
            merged = json_deep_copy(b);
            json_object_update(merged, val);
        }
        else if (b != NULL && json_is_object(b) && json_is_object(val) &&
                 (!strcmp(key, "permissions") || !strcmp(key, "hooks"))) {
            const char *k2;
            json_t *v2;
            int hooks = !strcmp(key, "hooks");

            merged = json_deep_copy(b);
            json_object_foreach(val, k2, v2)
            {
                json_t *b2 = json_object_get(merged, k2);
                if (b2 != NULL && json_is_array(b2) && json_is_array(v2) &&
                    (hooks || cg_in(k2, perm_unioned))) {
                    json_object_set_new(merged, k2, cg_union(b2, v2));
                }
                else {
                    json_object_set_new(merged, k2, json_deep_copy(v2));
                }
            }
        }
        json_object_set_new(out, key, merged ? merged : json_deep_copy(val));
    }
    return out;
}

static apr_status_t cg_json_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

/* The served form of a settings document; doc is owned by p afterwards. */
static cg_settings_t *cg_settings_make(apr_pool_t *p, json_t *doc)
{
    cg_settings_t *s = apr_pcalloc(p, sizeof(*s));
    json_t *resp, *models, *match;
    char *dump;
    apr_size_t i;

    apr_pool_cleanup_register(p, doc, cg_json_cleanup, apr_pool_cleanup_null);
    s->doc = doc;
    s->checksum = cg_json_checksum(p, doc);
    resp =
        json_pack("{s:s,s:s,s:O}", "uuid", s->checksum, "checksum", s->checksum, "settings", doc);
    dump = json_dumps(resp, JSON_COMPACT);
    s->response = apr_pstrdup(p, dump);
    free(dump);
    json_decref(resp);
    models = json_object_get(doc, "availableModels");
    if (json_is_array(models)) {
        s->available_models = apr_array_make(p, (int)json_array_size(models), sizeof(char *));
        for (i = 0; i < json_array_size(models); i++) {
            const char *m = json_string_value(json_array_get(models, i));
            *(const char **)apr_array_push(s->available_models) = cg_model_norm(p, m ? m : "");
        }
    }
    match = json_object_get(doc, "availableModelsMatch");
    s->match_exact = json_is_string(match) && !strcmp(json_string_value(match), "exact");
    return s;
}

/* --- managed ------------------------------------------------------------ */

static int cg_check_managed(cg_val_t *v, const json_t *mg)
{
    static const char *const keys[] = {"settings", "policy_mode", "policies", NULL};
    static const char *const rule_keys[] = {
        "match", "cli", "settings", "code", "desktop", "serve_to_desktop", NULL};
    static const char *const match_keys[] = {"groups", "email_domain", NULL};
    cg_policy_t *pol = v->pol;
    json_t *mode, *rules, *file;
    apr_size_t i;
    int desktop = 0;

    if (!cg_want(v, "managed", mg, JSON_OBJECT, "object") ||
        !cg_keys_only(v, "managed", mg, keys)) {
        return 0;
    }
    mode = json_object_get(mg, "policy_mode");
    if (mode != NULL) {
        if (!json_is_string(mode) || (strcmp(json_string_value(mode), "first_match") != 0 &&
                                      strcmp(json_string_value(mode), "layered") != 0)) {
            return cg_fail(v, "managed.policy_mode",
                           "Invalid enum value. Expected 'first_match' | 'layered'");
        }
        pol->layered = !strcmp(json_string_value(mode), "layered");
    }
    file = json_object_get(mg, "settings");
    rules = json_object_get(mg, "policies");
    if (file != NULL && rules != NULL) {
        return cg_fail(v, "managed.settings",
                       "give either managed.settings (one JSON file for everyone) or "
                       "managed.policies, not both");
    }
    if (file != NULL) {
        json_error_t jerr;
        json_t *doc;
        cg_policy_rule_t *r;

        if (!cg_want(v, "managed.settings", file, JSON_STRING, "string")) {
            return 0;
        }
        if (json_string_value(file)[0] != '/') {
            return cg_fail(v, "managed.settings", "must be an absolute path to a JSON file");
        }
        doc = json_load_file(json_string_value(file), JSON_REJECT_DUPLICATES, &jerr);
        if (doc == NULL) {
            return cg_fail(
                v, "managed.settings",
                apr_psprintf(v->p, "%s:%d: %s", json_string_value(file), jerr.line, jerr.text));
        }
        apr_pool_cleanup_register(v->p, doc, cg_json_cleanup, apr_pool_cleanup_null);
        if (!cg_check_cli(v, "managed.settings", doc)) {
            return 0;
        }
        r = apr_array_push(pol->rules);
        memset(r, 0, sizeof(*r));
        r->settings = doc;
        pol->base = 0;
        pol->configured = 1;
        return 1;
    }
    if (rules == NULL) {
        return 1;
    }
    if (!cg_want(v, "managed.policies", rules, JSON_ARRAY, "array")) {
        return 0;
    }
    pol->configured = 1;
    for (i = 0; i < json_array_size(rules); i++) {
        const char *path = cg_idx(v, "managed.policies", i), *which = NULL;
        json_t *rule = json_array_get(rules, i), *match, *groups, *domain, *block = NULL;
        cg_policy_rule_t *r;
        static const char *const blocks[] = {"cli", "settings", "code"};
        apr_size_t b;

        if (!cg_want(v, path, rule, JSON_OBJECT, "object") ||
            !cg_keys_only(v, path, rule, rule_keys)) {
            return 0;
        }
        r = apr_array_push(pol->rules);
        memset(r, 0, sizeof(*r));
        match = json_object_get(rule, "match");
        if (match != NULL) {
            const char *mp = cg_sub(v, path, "match");
            if (!cg_want(v, mp, match, JSON_OBJECT, "object") ||
                !cg_keys_only(v, mp, match, match_keys)) {
                return 0;
            }
            groups = json_object_get(match, "groups");
            domain = json_object_get(match, "email_domain");
            if (groups != NULL &&
                (r->groups = cg_strings_of(v, cg_sub(v, mp, "groups"), groups)) == NULL) {
                return 0;
            }
            if (domain != NULL) {
                r->email_domain = cg_check_domain(v, cg_sub(v, mp, "email_domain"), domain);
                if (r->email_domain == NULL) {
                    return 0;
                }
            }
        }
        for (b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++) {
            json_t *blk = json_object_get(rule, blocks[b]);
            if (blk == NULL) {
                continue;
            }
            if (block != NULL) {
                return cg_fail(v, path,
                               apr_psprintf(v->p,
                                            "give one of cli, settings or code, not both "
                                            "%s and %s",
                                            which, blocks[b]));
            }
            block = blk;
            which = blocks[b];
        }
        if (block != NULL && !cg_check_cli(v, cg_sub(v, path, which), block)) {
            return 0;
        }
        r->settings = block;
        if (r->settings == NULL) {
            r->settings = json_object();
            apr_pool_cleanup_register(v->p, r->settings, cg_json_cleanup, apr_pool_cleanup_null);
        }
        if (json_object_get(rule, "desktop") != NULL) {
            if (!cg_want(v, cg_sub(v, path, "desktop"), json_object_get(rule, "desktop"),
                         JSON_OBJECT, "object")) {
                return 0;
            }
            desktop = 1;
        }
        if (json_object_get(rule, "serve_to_desktop") != NULL &&
            !cg_want(v, cg_sub(v, path, "serve_to_desktop"),
                     json_object_get(rule, "serve_to_desktop"), JSON_TRUE, "boolean")) {
            return 0;
        }
        if (r->groups == NULL && r->email_domain == NULL && pol->base < 0) {
            pol->base = (int)i;
        }
    }
    if (desktop) {
        *(const char **)apr_array_push(pol->notes) =
            "managed.policies[].desktop: accepted, but Claude Desktop's /user/bootstrap is not "
            "served by mod_claude, so these blocks reach no client";
    }
    return 1;
}

/* The reference's telemetry env (cg_policy_with_telemetry_env) in front of
 * the document's own env, which wins key by key (PROTOCOL.md §6); doc is
 * changed in place and returned. */
static json_t *cg_settings_env(const cg_policy_t *pol, json_t *doc)
{
    json_t *env, *own;

    if (pol->telemetry_env == NULL || doc == NULL) {
        return doc;
    }
    env = json_deep_copy(pol->telemetry_env);
    own = json_object_get(doc, "env");
    if (json_is_object(own)) {
        json_object_update(env, own);
    }
    json_object_set_new(doc, "env", env);
    return doc;
}

static void cg_compile_rules(apr_pool_t *p, cg_policy_t *pol)
{
    const json_t *base =
        pol->base >= 0 ? APR_ARRAY_IDX(pol->rules, pol->base, cg_policy_rule_t).settings : NULL;
    int i;

    if (pol->layered) {
        return; /* built per request from the rules that match */
    }
    for (i = 0; i < pol->rules->nelts; i++) {
        cg_policy_rule_t *r = &APR_ARRAY_IDX(pol->rules, i, cg_policy_rule_t);
        json_t *doc =
            (base && i != pol->base) ? cg_merge(base, r->settings) : json_deep_copy(r->settings);
        r->compiled = cg_settings_make(p, cg_settings_env(pol, doc));
    }
}

/* --- telemetry ------------------------------------------------------------ */

static int cg_host_loopback(const char *h)
{
    int dots = 0;
    const char *c;

    if (strcasecmp(h, "localhost") == 0 || strcmp(h, "::1") == 0) {
        return 1;
    }
    if (strncmp(h, "127.", 4) != 0) {
        return 0;
    }
    for (c = h; *c; c++) {
        if (*c == '.') {
            dots++;
        }
        else if (!isdigit((unsigned char)*c)) {
            return 0;
        }
    }
    return dots == 3;
}

/* RFC 9110 token characters */
static int cg_header_name_ok(const char *n)
{
    if (*n == '\0') {
        return 0;
    }
    for (; *n; n++) {
        if (!isalnum((unsigned char)*n) && strchr("!#$%&'*+-.^_`|~", *n) == NULL) {
            return 0;
        }
    }
    return 1;
}

/* telemetry.forward_to[i].url: http(s), plain http only to a loopback
 * collector; /v1/<signal> is appended, so no query or fragment. */
static const char *cg_check_otlp_url(cg_val_t *v, const char *path, const json_t *j,
                                     const char **host)
{
    const char *s = json_string_value(j);
    apr_uri_t u;
    apr_size_t n;

    if (!cg_want(v, path, j, JSON_STRING, "string")) {
        return NULL;
    }
    if (apr_uri_parse(v->p, s, &u) != APR_SUCCESS || u.scheme == NULL || u.hostname == NULL ||
        *u.hostname == '\0' || (strcmp(u.scheme, "https") != 0 && strcmp(u.scheme, "http") != 0)) {
        cg_fail(v, path, "Invalid url: give an http(s) URL such as https://otel.example.com:4318");
        return NULL;
    }
    if (u.user != NULL || u.password != NULL) {
        cg_fail(v, path, "credentials do not belong in the URL; put them in headers");
        return NULL;
    }
    if (u.query != NULL || u.fragment != NULL) {
        cg_fail(v, path, "must not have a query or fragment: /v1/<signal> is appended to it");
        return NULL;
    }
    if (!strcmp(u.hostname, "169.254.169.254") ||
        !strcasecmp(u.hostname, "metadata.google.internal") ||
        !strcasecmp(u.hostname, "fd00:ec2::254")) {
        cg_fail(v, path, "must not target a cloud metadata endpoint");
        return NULL;
    }
    if (strcmp(u.scheme, "http") == 0 && !cg_host_loopback(u.hostname)) {
        cg_fail(v, path, "must use https:// (plain http is only allowed to a loopback collector)");
        return NULL;
    }
    *host = u.port_str ? apr_pstrcat(v->p, u.hostname, ":", u.port_str, NULL) : u.hostname;
    n = strlen(s);
    while (n > 0 && s[n - 1] == '/') {
        n--;
    }
    return apr_pstrmemdup(v->p, s, n);
}

/* Header names and values of a destination. Values are often secrets: no
 * message here ever quotes one. */
static int cg_check_otlp_headers(cg_val_t *v, const char *path, const json_t *j,
                                 apr_array_header_t **out)
{
    static const char *const reserved[] = {"host",
                                           "content-length",
                                           "content-type",
                                           "content-encoding",
                                           "transfer-encoding",
                                           "connection",
                                           "te",
                                           "trailer",
                                           "upgrade",
                                           "expect",
                                           "keep-alive",
                                           "proxy-connection",
                                           NULL};
    const char *key;
    json_t *val;

    if (!cg_string_map(v, path, j)) {
        return 0;
    }
    *out = apr_array_make(v->p, (int)json_object_size(j) + 1, sizeof(const char *));
    json_object_foreach((json_t *)j, key, val)
    {
        const char *hp = cg_sub(v, path, key), *c;
        if (!cg_header_name_ok(key)) {
            return cg_fail(v, hp, "not a valid header name");
        }
        if (cg_in(cg_model_norm(v->p, key), reserved)) {
            return cg_fail(v, hp, "this header is set by the gateway");
        }
        for (c = json_string_value(val); *c; c++) {
            if (*c == '\r' || *c == '\n') {
                return cg_fail(v, hp, "header values must not contain line breaks");
            }
        }
        if (json_string_length(val) != strlen(json_string_value(val))) {
            return cg_fail(v, hp, "header values must not contain NUL");
        }
        APR_ARRAY_PUSH(*out, const char *) =
            apr_pstrcat(v->p, key, ": ", json_string_value(val), NULL);
    }
    return 1;
}

/* telemetry: {forward_to: [...], resource_attributes: {k: v}} as the
 * reference reads it, strictly. */
static int cg_check_telemetry(cg_val_t *v, const json_t *t)
{
    static const char *const keys[] = {"forward_to", "resource_attributes", NULL};
    static const char *const dest_keys[] = {"url",    "headers", "metrics", "logs",
                                            "traces", "auth",    NULL};
    static const char *const flags[] = {"metrics", "logs", "traces"};
    cg_telemetry_t *tel = apr_pcalloc(v->p, sizeof(*tel));
    json_t *fwd, *ra, *val;
    const char *key;
    apr_size_t i, f;

    if (!cg_want(v, "telemetry", t, JSON_OBJECT, "object") ||
        !cg_keys_only(v, "telemetry", t, keys)) {
        return 0;
    }
    tel->dests = apr_array_make(v->p, 2, sizeof(cg_telemetry_dest_t));
    tel->resource_attributes = apr_array_make(v->p, 2, sizeof(cg_policy_kv_t));
    fwd = json_object_get(t, "forward_to");
    if (fwd != NULL && !cg_want(v, "telemetry.forward_to", fwd, JSON_ARRAY, "array")) {
        return 0;
    }
    for (i = 0; i < json_array_size(fwd); i++) {
        const char *path = cg_idx(v, "telemetry.forward_to", i), *host = NULL;
        json_t *d = json_array_get(fwd, i);
        cg_telemetry_dest_t *dest;

        if (!cg_want(v, path, d, JSON_OBJECT, "object") || !cg_keys_only(v, path, d, dest_keys)) {
            return 0;
        }
        if (json_object_get(d, "auth") != NULL) {
            return cg_fail(v, cg_sub(v, path, "auth"),
                           "not supported by mod_claude; put the credential in headers");
        }
        dest = apr_array_push(tel->dests);
        memset(dest, 0, sizeof(*dest));
        if ((val = json_object_get(d, "url")) == NULL) {
            return cg_fail(v, cg_sub(v, path, "url"), "Required");
        }
        if ((dest->url = cg_check_otlp_url(v, cg_sub(v, path, "url"), val, &host)) == NULL) {
            return 0;
        }
        dest->label = apr_psprintf(v->p, "telemetry.forward_to[%lu] (%s)", (unsigned long)i, host);
        dest->headers = apr_array_make(v->p, 1, sizeof(const char *));
        if ((val = json_object_get(d, "headers")) != NULL &&
            !cg_check_otlp_headers(v, cg_sub(v, path, "headers"), val, &dest->headers)) {
            return 0;
        }
        dest->metrics = 1; /* the reference's defaults: metrics only */
        for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
            if ((val = json_object_get(d, flags[f])) == NULL) {
                continue;
            }
            if (!cg_want(v, cg_sub(v, path, flags[f]), val, JSON_TRUE, "boolean")) {
                return 0;
            }
            *(f == 0 ? &dest->metrics : f == 1 ? &dest->logs : &dest->traces) = json_is_true(val);
        }
    }
    ra = json_object_get(t, "resource_attributes");
    if (ra != NULL && !cg_string_map(v, "telemetry.resource_attributes", ra)) {
        return 0;
    }
    json_object_foreach(ra, key, val)
    {
        cg_policy_kv_t *kv;
        const char *c;

        for (c = key; *c; c++) {
            if (*c == ',' || *c == '=' || *c == '%' || isspace((unsigned char)*c) ||
                (unsigned char)*c < 0x20) {
                break;
            }
        }
        if (*key == '\0' || *c != '\0') {
            return cg_fail(v, cg_sub(v, "telemetry.resource_attributes", key),
                           "keys must be non-empty without ',', '=', '%' or whitespace");
        }
        kv = apr_array_push(tel->resource_attributes);
        kv->key = key;
        kv->value = json_string_value(val);
    }
    v->pol->telemetry = tel;
    return 1;
}

/* OTEL_RESOURCE_ATTRIBUTES: k=v pairs, values percent-encoded outside the
 * W3C baggage octets (and '%' itself), as the OpenTelemetry SDKs read it. */
static const char *cg_otel_resource_attributes(apr_pool_t *p, const apr_array_header_t *kvs)
{
    apr_array_header_t *out = apr_array_make(p, 64, 1);
    int i;

    for (i = 0; i < kvs->nelts; i++) {
        const cg_policy_kv_t *kv = &APR_ARRAY_IDX(kvs, i, cg_policy_kv_t);
        const unsigned char *c;
        if (i > 0) {
            cg_canon_append(out, ",");
        }
        cg_canon_append(out, kv->key);
        cg_canon_append(out, "=");
        for (c = (const unsigned char *)kv->value; *c; c++) {
            if (*c <= 0x20 || *c >= 0x7f || *c == '"' || *c == ',' || *c == ';' || *c == '\\' ||
                *c == '%') {
                char hex[4];
                snprintf(hex, sizeof(hex), "%%%02X", *c);
                cg_canon_append(out, hex);
            }
            else {
                *(char *)apr_array_push(out) = (char)*c;
            }
        }
    }
    *(char *)apr_array_push(out) = '\0';
    return out->elts;
}

const cg_policy_t *cg_policy_with_telemetry_env(apr_pool_t *p, const cg_policy_t *pol,
                                                const char *public_url)
{
    const cg_telemetry_t *tel = pol ? pol->telemetry : NULL;
    cg_policy_t *copy;
    json_t *env;
    int i, logs = 0, traces = 0;

    if (tel == NULL || tel->dests->nelts == 0 || public_url == NULL || pol->telemetry_env) {
        return pol;
    }
    for (i = 0; i < tel->dests->nelts; i++) {
        const cg_telemetry_dest_t *d = &APR_ARRAY_IDX(tel->dests, i, cg_telemetry_dest_t);
        logs |= d->logs;
        traces |= d->traces;
    }
    /* the reference's order: ours first, the policy's own env after */
    env = json_object();
    json_object_set_new(env, "CLAUDE_CODE_ENABLE_TELEMETRY", json_string("1"));
    json_object_set_new(env, "OTEL_METRICS_EXPORTER", json_string("otlp"));
    if (logs) {
        json_object_set_new(env, "OTEL_LOGS_EXPORTER", json_string("otlp"));
    }
    if (traces) {
        json_object_set_new(env, "OTEL_TRACES_EXPORTER", json_string("otlp"));
    }
    json_object_set_new(env, "OTEL_EXPORTER_OTLP_ENDPOINT", json_string(public_url));
    json_object_set_new(env, "OTEL_EXPORTER_OTLP_PROTOCOL", json_string("http/protobuf"));
    if (tel->resource_attributes->nelts > 0) {
        json_object_set_new(env, "OTEL_RESOURCE_ATTRIBUTES",
                            json_string(cg_otel_resource_attributes(p, tel->resource_attributes)));
    }
    apr_pool_cleanup_register(p, env, cg_json_cleanup, apr_pool_cleanup_null);
    copy = apr_pmemdup(p, pol, sizeof(*pol));
    copy->telemetry_env = env;
    copy->rules = apr_array_copy(p, pol->rules);
    cg_compile_rules(p, copy);
    return copy;
}

const char *cg_policy_compile(apr_pool_t *p, json_t *root, const char *file, cg_policy_t **out)
{
    static const char *const known[] = {"managed",   "models",  "auto_include_builtin_models",
                                        "upstreams", "pricing", "rate_limits",
                                        NULL};
    cg_val_t v;
    cg_policy_t *pol = apr_pcalloc(p, sizeof(*pol));
    const char *key;
    json_t *val;
    apr_size_t i;

    pol->file = apr_pstrdup(p, file);
    pol->rules = apr_array_make(p, 4, sizeof(cg_policy_rule_t));
    pol->models = apr_array_make(p, 4, sizeof(cg_custom_model_t));
    pol->upstreams = apr_array_make(p, 4, sizeof(cg_upstream_decl_t));
    pol->notes = apr_array_make(p, 4, sizeof(char *));
    pol->prices = apr_array_make(p, 2, sizeof(cg_price_row_t));
    pol->multiplier_ppm = 1000000;
    pol->rl_groups = apr_array_make(p, 2, sizeof(cg_rl_group_t));
    pol->base = -1;
    pol->auto_builtin = 1;
    pol->root = json_incref(root);
    apr_pool_cleanup_register(p, root, cg_json_cleanup, apr_pool_cleanup_null);
    memset(&v, 0, sizeof(v));
    v.p = p;
    v.file = pol->file;
    v.pol = pol;
    *out = NULL;

    if (json_is_null(root)) {
        root = NULL; /* an empty file: no policy, every default */
    }
    else if (!json_is_object(root)) {
        return apr_psprintf(p, "%s: the policy file must be a mapping, not a %s", file,
                            cg_type_name(root));
    }
    if (root != NULL) {
        if (json_object_get(root, "dev") != NULL) {
            return apr_psprintf(p, "%s: dev: `dev:` was removed — the gateway is Postgres-only",
                                file);
        }
        json_object_foreach(root, key, val)
        {
            int found = cg_in(key, known) || !strcmp(key, "telemetry");
            for (i = 0;
                 !found && i < sizeof(cg_directive_sections) / sizeof(cg_directive_sections[0]);
                 i++) {
                if (!strcmp(key, cg_directive_sections[i][0])) {
                    found = 1;
                    if (cg_directive_sections[i][1] != NULL) {
                        *(const char **)apr_array_push(pol->notes) = apr_psprintf(
                            p, "%s: not read from the policy file; httpd configures it (%s)", key,
                            cg_directive_sections[i][1]);
                    }
                }
            }
            for (i = 0; !found && i < sizeof(cg_later_sections) / sizeof(cg_later_sections[0]);
                 i++) {
                if (!strcmp(key, cg_later_sections[i])) {
                    found = 1;
                    *(const char **)apr_array_push(pol->notes) = apr_psprintf(
                        p, "%s: not implemented by this version of mod_claude; ignored", key);
                }
            }
            if (!found) {
                return apr_psprintf(p, "%s: %s: Unrecognized key: \"%s\"", file, key, key);
            }
        }
        /* upstreams first: models and pricing refer to their names */
        if ((val = json_object_get(root, "upstreams")) != NULL && !cg_check_upstreams(&v, val)) {
            return v.err;
        }
        if ((val = json_object_get(root, "auto_include_builtin_models")) != NULL) {
            if (!cg_want(&v, "auto_include_builtin_models", val, JSON_TRUE, "boolean")) {
                return v.err;
            }
            pol->auto_builtin = json_is_true(val);
        }
        if ((val = json_object_get(root, "models")) != NULL && !cg_check_models(&v, val)) {
            return v.err;
        }
        if ((val = json_object_get(root, "rate_limits")) != NULL &&
            !cg_check_rate_limits(&v, val)) {
            return v.err;
        }
        if ((val = json_object_get(root, "pricing")) != NULL && !cg_check_pricing(&v, val)) {
            return v.err;
        }
        if ((val = json_object_get(root, "managed")) != NULL && !cg_check_managed(&v, val)) {
            return v.err;
        }
        if ((val = json_object_get(root, "telemetry")) != NULL && !cg_check_telemetry(&v, val)) {
            return v.err;
        }
    }
    cg_compile_rules(p, pol);
    *out = pol;
    return NULL;
}

/* --- requests ----------------------------------------------------------- */

static int cg_rule_matches(const cg_policy_rule_t *r, const char *email,
                           const apr_array_header_t *groups)
{
    if (r->groups != NULL) {
        int i, k, hit = 0;
        for (i = 0; groups != NULL && i < groups->nelts && !hit; i++) {
            for (k = 0; k < r->groups->nelts && !hit; k++) {
                hit = !strcmp(APR_ARRAY_IDX(groups, i, const char *),
                              APR_ARRAY_IDX(r->groups, k, const char *));
            }
        }
        if (!hit) {
            return 0;
        }
    }
    if (r->email_domain != NULL) {
        const char *at = email ? strrchr(email, '@') : NULL;
        if (at == NULL || strcasecmp(at + 1, r->email_domain) != 0) {
            return 0;
        }
    }
    return 1;
}

const cg_settings_t *cg_policy_settings(const cg_policy_t *pol, apr_pool_t *p, const char *email,
                                        const apr_array_header_t *groups)
{
    int i, matched = 0;
    json_t *doc = NULL;

    if (pol == NULL || !pol->configured) {
        return NULL;
    }
    if (!pol->layered) {
        for (i = 0; i < pol->rules->nelts; i++) {
            const cg_policy_rule_t *r = &APR_ARRAY_IDX(pol->rules, i, cg_policy_rule_t);
            if (cg_rule_matches(r, email, groups)) {
                return r->compiled;
            }
        }
        return NULL;
    }
    /* layered: the base, then every other matching rule from the last to the
     * first, so that an earlier rule wins as it does in first_match */
    if (pol->base >= 0) {
        doc = json_deep_copy(APR_ARRAY_IDX(pol->rules, pol->base, cg_policy_rule_t).settings);
        matched = 1;
    }
    for (i = pol->rules->nelts - 1; i >= 0; i--) {
        const cg_policy_rule_t *r = &APR_ARRAY_IDX(pol->rules, i, cg_policy_rule_t);
        if (i == pol->base || !cg_rule_matches(r, email, groups)) {
            continue;
        }
        if (doc == NULL) {
            doc = json_deep_copy(r->settings);
        }
        else {
            json_t *next = cg_merge(doc, r->settings);
            json_decref(doc);
            doc = next;
        }
        matched = 1;
    }
    return matched ? cg_settings_make(p, cg_settings_env(pol, doc)) : NULL;
}

/* The id a client asked for, lower case and without its "[1m]", and what
 * the allowlist asks of it, worked out once per call rather than per entry. */
typedef struct cg_model_view_t {
    const char *id;
    const cg_builtin_model_t *m; /* its catalogue entry; NULL: none */
    const char *family;          /* family_len bytes, not terminated; NULL: none */
    apr_size_t family_len;
} cg_model_view_t;

/* The family of a model id: from the catalogue, else the first word of
 * "claude-..." that is not a version number. */
static const char *cg_model_family(const char *model, const cg_builtin_model_t *m, apr_size_t *len)
{
    const char *s, *e;

    if (m != NULL) {
        *len = strlen(m->family);
        return m->family;
    }
    s = strstr(model, "claude-");
    if (s == NULL) {
        return NULL;
    }
    s += 7;
    while (*s) {
        e = strchr(s, '-');
        if (e == NULL) {
            e = s + strlen(s);
        }
        if (e > s && !isdigit((unsigned char)*s)) {
            *len = (apr_size_t)(e - s);
            return s;
        }
        s = *e ? e + 1 : e;
    }
    return NULL;
}

/* "-20250929" style suffix of 8 digits, possibly followed by more (-v1:0) */
static int cg_is_dated(const char *rest)
{
    int i;

    if (*rest != '-' && *rest != '@') {
        return 0;
    }
    for (i = 1; i <= 8; i++) {
        if (!isdigit((unsigned char)rest[i])) {
            return 0;
        }
    }
    return rest[9] == '\0' || rest[9] == '-';
}

/* Whether id starts with "claude-" (when claude is set) then entry's n bytes:
 * the prefix test of the entry's full name, without building that name. */
static int cg_model_extends(const char *id, int claude, const char *entry, apr_size_t n)
{
    if (claude) {
        if (strncmp(id, "claude-", 7) != 0) {
            return 0;
        }
        id += 7;
    }
    return strncmp(id, entry, n) == 0;
}

static int cg_entry_allows(const char *entry, const cg_model_view_t *v, int exact)
{
    const char *model = v->id;
    apr_size_t n;
    int claude;

    if (!strcmp(entry, "best") || !strcmp(entry, "opusplan") || !strcmp(entry, "default") ||
        *entry == '\0') {
        return 0; /* depend on the client's release and settings: ignored */
    }
    if (!strcmp(entry, model)) {
        return 1;
    }
    if (strchr(entry, '-') == NULL && strchr(entry, '/') == NULL) {
        /* a family alias */
        return v->family != NULL && strncmp(entry, v->family, v->family_len) == 0 &&
               entry[v->family_len] == '\0';
    }
    if (v->m != NULL && cg_catalog_lookup(entry, 0) == v->m) {
        return 1; /* one model under two of its names */
    }
    /* an entry without "claude-" (and no provider path) is matched as if it had it */
    claude = strncmp(entry, "claude-", 7) != 0 && strchr(entry, '/') == NULL;
    n = strlen(entry);
    if (!cg_model_extends(model, claude, entry, n)) {
        /* a dated or provider id of a catalogue model matches by its canonical id */
        if (v->m == NULL || !cg_model_extends(v->m->id, claude, entry, n)) {
            return 0;
        }
        model = v->m->id;
    }
    n += claude ? 7 : 0;
    if (model[n] == '\0') {
        return 1;
    }
    if (model[n] != '-' && model[n] != '@') {
        return 0;
    }
    if (!exact) {
        return 1; /* a version prefix allows every id that extends it */
    }
    /* exact: the entry's own dated and -fast ids, not later versions */
    return cg_is_dated(model + n) || !strcmp(model + n, "-fast");
}

int cg_policy_model_allowed(const cg_settings_t *s, const char *model)
{
    char buf[CG_CATALOG_ID_MAX];
    apr_pool_t *p = NULL;
    cg_model_view_t v;
    apr_size_t len;
    char *id = buf;
    int i, ok = 0;

    if (s == NULL || s->available_models == NULL) {
        return 1;
    }
    /* on the stack: a pool parented on the global pool would take the
     * global allocator's mutex twice per request, in every thread */
    len = cg_model_len(model);
    if (len >= sizeof(buf)) {
        if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
            return 0;
        }
        id = apr_palloc(p, len + 1); /* longer than any real id: rare */
    }
    cg_model_fold(id, model, len);
    v.id = id;
    v.m = cg_catalog_probe(id, len);
    v.family_len = 0;
    v.family = cg_model_family(id, v.m, &v.family_len);
    for (i = 0; i < s->available_models->nelts && !ok; i++) {
        ok = cg_entry_allows(APR_ARRAY_IDX(s->available_models, i, const char *), &v,
                             s->match_exact);
    }
    if (p != NULL) {
        apr_pool_destroy(p);
    }
    return ok;
}

static const cg_custom_model_t *cg_custom_find(const cg_policy_t *pol, const char *model)
{
    apr_size_t len = strlen(model);
    int i;

    if (pol == NULL) {
        return NULL;
    }
    if (len >= 4 && strcasecmp(model + len - 4, "[1m]") == 0) {
        len -= 4;
    }
    for (i = 0; i < pol->models->nelts; i++) {
        const cg_custom_model_t *cm = &APR_ARRAY_IDX(pol->models, i, cg_custom_model_t);
        if (strlen(cm->id) == len && strncasecmp(cm->id, model, len) == 0) {
            return cm;
        }
    }
    return NULL;
}

const char *cg_policy_upstream_model(const cg_policy_t *pol, const char *model,
                                     const char *upstream, const char *provider)
{
    const cg_custom_model_t *cm = cg_custom_find(pol, model);
    const cg_builtin_model_t *bm = cg_catalog_find(model);
    json_t *target;

    if (cm != NULL) {
        target = json_object_get(cm->upstream_model, upstream);
        if (target != NULL) {
            return json_string_value(target);
        }
        if (bm == NULL) {
            return NULL; /* a custom id: upstreams absent from its map are skipped */
        }
    }
    if (bm != NULL) {
        const char *id = cg_catalog_provider_id(bm, provider);
        return id ? id : NULL;
    }
    return model;
}

const cg_price_row_t *cg_policy_price(const cg_policy_t *pol, const char *upstream,
                                      const char *requested, const char *served)
{
    const cg_price_row_t *by_client = NULL, *by_family = NULL;
    const cg_builtin_model_t *bs, *br;
    int i;

    if (pol == NULL || upstream == NULL || pol->prices->nelts == 0) {
        return NULL; /* no overrides: skip the catalogue searches, on every request */
    }
    bs = cg_catalog_find(served);
    br = cg_catalog_find(requested);
    for (i = 0; i < pol->prices->nelts; i++) {
        const cg_price_row_t *row = &APR_ARRAY_IDX(pol->prices, i, cg_price_row_t);
        const cg_builtin_model_t *bm;

        if (strcmp(row->upstream, upstream) != 0) {
            continue;
        }
        if (cg_ieq(row->model, served)) {
            return row; /* the upstream's own string: the most specific */
        }
        if (cg_ieq(row->model, requested)) {
            by_client = row;
            continue;
        }
        bm = cg_catalog_find(row->model);
        if (bm != NULL && (bm == bs || bm == br) && by_family == NULL) {
            by_family = row;
        }
    }
    return by_client ? by_client : by_family;
}

const char *cg_policy_upstream_provider(const cg_policy_t *pol, const char *upstream)
{
    int i;

    for (i = 0; pol != NULL && i < pol->upstreams->nelts; i++) {
        const cg_upstream_decl_t *d = &APR_ARRAY_IDX(pol->upstreams, i, cg_upstream_decl_t);
        if (!strcmp(d->name, upstream)) {
            return d->provider;
        }
    }
    return upstream;
}

json_t *cg_policy_models_list(const cg_policy_t *pol, const cg_settings_t *s)
{
    json_t *data = json_array();
    apr_size_t i;
    int k;

    for (k = 0; pol != NULL && k < pol->models->nelts; k++) {
        const cg_custom_model_t *cm = &APR_ARRAY_IDX(pol->models, k, cg_custom_model_t);
        json_t *e;
        if (!cg_policy_model_allowed(s, cm->id)) {
            continue;
        }
        e = json_pack("{s:s,s:s,s:s}", "type", "model", "id", cm->id, "display_name",
                      cm->label ? cm->label : cm->id);
        if (cm->description != NULL) {
            json_object_set_new(e, "description", json_string(cm->description));
        }
        json_array_append_new(data, e);
    }
    for (i = 0; (pol == NULL || pol->auto_builtin) && i < CG_CATALOG_N; i++) {
        const cg_builtin_model_t *m = &cg_catalog[i];
        if (cg_custom_find(pol, m->id) != NULL || !cg_policy_model_allowed(s, m->id)) {
            continue;
        }
        json_array_append_new(data, json_pack("{s:s,s:s,s:s}", "type", "model", "id",
                                              m->first_party, "display_name", m->first_party));
    }
    return json_pack("{s:o,s:b,s:n,s:n}", "data", data, "has_more", 0, "first_id", "last_id");
}
