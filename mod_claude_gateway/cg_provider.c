/* cg_provider: what every cloud upstream shares, see cg_provider.h.
 *
 * The error hygiene rules come from OFFICIAL-DOCS §2.3 ("Error message
 * hygiene", v2.1.233+) and the gateway's own /protocol text of v2.1.328, which
 * is newer and says the client's recovery matches Bedrock's whole "Input is
 * too long." sentence: that sentence is relayed as it is (and Vertex's size
 * refusal becomes it), while longer too-long texts get the documented
 * capability_rejected: prompt_too_long token. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "cg_provider.h"

/* The longest upstream text kept for the operational log. */
#define CG_PROVIDER_LOG_TEXT_MAX 2048

static const struct {
    const char *name;
    cg_provider_e kind;
} cg_provider_names[] = {
    {"anthropic", CG_PROVIDER_ANTHROPIC}, {"anthropicAws", CG_PROVIDER_ANTHROPIC_AWS},
    {"bedrock", CG_PROVIDER_BEDROCK},     {"vertex", CG_PROVIDER_VERTEX},
    {"foundry", CG_PROVIDER_FOUNDRY},
};

cg_provider_e cg_provider_parse(const char *name)
{
    apr_size_t i;

    for (i = 0; name != NULL && i < sizeof(cg_provider_names) / sizeof(cg_provider_names[0]); i++) {
        if (strcmp(name, cg_provider_names[i].name) == 0) {
            return cg_provider_names[i].kind;
        }
    }
    return CG_PROVIDER_UNKNOWN;
}

const char *cg_provider_name(cg_provider_e provider)
{
    apr_size_t i;

    for (i = 0; i < sizeof(cg_provider_names) / sizeof(cg_provider_names[0]); i++) {
        if (cg_provider_names[i].kind == provider) {
            return cg_provider_names[i].name;
        }
    }
    return "unknown";
}

apr_array_header_t *cg_provider_betas(apr_pool_t *p, const char *header, const char *drop)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(const char *));
    const char *s = header;

    while (s != NULL && *s != '\0') {
        const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s);
        const char *b = s, *item;
        int i, dup = 0;

        while (b < end && (*b == ' ' || *b == '\t')) {
            b++;
        }
        while (end > b && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }
        if (end > b) {
            item = apr_pstrmemdup(p, b, (apr_size_t)(end - b));
            for (i = 0; i < out->nelts && !dup; i++) {
                dup = strcmp(APR_ARRAY_IDX(out, i, const char *), item) == 0;
            }
            if (!dup && (drop == NULL || strcmp(item, drop) != 0)) {
                APR_ARRAY_PUSH(out, const char *) = item;
            }
        }
        s = comma ? comma + 1 : NULL;
    }
    return out;
}

const char *cg_provider_betas_join(apr_pool_t *p, const apr_array_header_t *betas)
{
    if (betas == NULL || betas->nelts == 0) {
        return NULL;
    }
    return apr_array_pstrcat(p, betas, ',');
}

static apr_status_t cg_provider_json_release(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

json_t *cg_provider_body_parse(apr_pool_t *p, const char *buf, apr_size_t len)
{
    json_t *j;

    if (buf == NULL) {
        return NULL;
    }
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (j == NULL) {
        return NULL;
    }
    apr_pool_cleanup_register(p, j, cg_provider_json_release, apr_pool_cleanup_null);
    return json_is_object(j) ? j : NULL;
}

const char *cg_provider_body_dump(apr_pool_t *p, const json_t *body, apr_size_t *len)
{
    size_t need = json_dumpb(body, NULL, 0, JSON_COMPACT);
    char *out;

    if (need == 0) {
        return NULL;
    }
    out = apr_palloc(p, need + 1);
    if (json_dumpb(body, out, need, JSON_COMPACT) != need) {
        return NULL;
    }
    out[need] = '\0';
    if (len != NULL) {
        *len = need;
    }
    return out;
}

const char *cg_foundry_url(apr_pool_t *p, const char *base_url, const char *resource,
                           int count_tokens)
{
    const char *base, *c;

    if (base_url != NULL && *base_url != '\0') {
        apr_size_t n = strlen(base_url);

        while (n > 0 && base_url[n - 1] == '/') {
            n--;
        }
        base = apr_pstrmemdup(p, base_url, n);
    }
    else {
        if (resource == NULL || *resource == '\0') {
            return NULL;
        }
        for (c = resource; *c; c++) {
            if (!apr_isalnum(*c) && *c != '-') {
                return NULL;
            }
        }
        base = apr_pstrcat(p, "https://", resource, ".services.ai.azure.com", NULL);
    }
    return apr_pstrcat(p, base, CG_FOUNDRY_MESSAGES_PATH, count_tokens ? "/count_tokens" : "",
                       NULL);
}

const char *cg_provider_error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 501:
        return "not_supported";
    case 529:
        return "overloaded_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
    }
}

/* Case-insensitive substring search. */
static int cg_provider_has(const char *hay, const char *needle)
{
    apr_size_t n = strlen(needle);

    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Whole message equal to s, blanks around it ignored. */
static int cg_provider_is(const char *msg, const char *s)
{
    apr_size_t n = strlen(s), m;

    while (apr_isspace(*msg)) {
        msg++;
    }
    m = strlen(msg);
    while (m > 0 && apr_isspace(msg[m - 1])) {
        m--;
    }
    return m == n && strncmp(msg, s, n) == 0;
}

static const char *cg_provider_capability(const char *m)
{
    if (cg_provider_has(m, "too long") || cg_provider_has(m, "context window") ||
        cg_provider_has(m, "context length") || cg_provider_has(m, "too many tokens") ||
        cg_provider_has(m, "too many input tokens")) {
        return "capability_rejected: prompt_too_long";
    }
    if (cg_provider_has(m, "thinking") && cg_provider_has(m, "signature")) {
        return "capability_rejected: thinking_signature";
    }
    if (cg_provider_has(m, "effort")) {
        return "capability_rejected: effort_unsupported";
    }
    if (cg_provider_has(m, "image")) {
        return "capability_rejected: image_block";
    }
    return NULL;
}

const char *cg_provider_error_message(int status, const char *m)
{
    if (status == 400 || status == 413) {
        const char *cap;

        if (m != NULL) {
            if (cg_provider_is(m, "Input is too long.")) {
                return "Input is too long.";
            }
            /* Vertex: "The request size (30037042 bytes) exceeds 30.000MB limit." */
            if ((strncmp(m, "The request size (", 18) == 0 ||
                 strncmp(m, "The message size (", 18) == 0) &&
                strstr(m, " exceeds ") != NULL) {
                return "Input is too long.";
            }
            if ((cap = cg_provider_capability(m)) != NULL) {
                return cap;
            }
        }
        return status == 400 ? "upstream rejected the request"
                             : "request too large for this upstream";
    }
    switch (status) {
    case 401:
        return "upstream authentication failed";
    case 403:
        return "upstream refused access";
    case 404:
        return "model not found on this upstream";
    case 408:
    case 504:
        return "upstream timed out";
    case 429:
        return "upstream rate limit exceeded";
    case 501:
        return "not supported by this upstream";
    case 503:
        return "upstream unavailable";
    case 529:
        return "upstream overloaded";
    default:
        return status >= 500 ? "upstream error" : "upstream rejected the request";
    }
}

static const char *cg_provider_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

void cg_provider_error(apr_pool_t *p, cg_provider_e provider, int status, const char *body,
                       apr_size_t len, cg_provider_error_t *out)
{
    json_t *j = NULL;
    const json_t *root, *err;
    const char *anth_type = NULL, *anth_msg = NULL, *msg = NULL;

    memset(out, 0, sizeof(*out));
    out->status = status;
    if (provider == CG_PROVIDER_ANTHROPIC || provider == CG_PROVIDER_ANTHROPIC_AWS) {
        out->passthrough = 1;
        return;
    }
    if (body != NULL && len > 0) {
        j = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    }
    /* Vertex answers some errors as a one-element array */
    root = json_is_array(j) ? json_array_get(j, 0) : j;
    if (json_is_object(root)) {
        err = json_object_get(root, "error");
        if (json_is_object(err) && json_is_string(json_object_get(root, "type")) &&
            strcmp(cg_provider_str(root, "type"), "error") == 0) {
            /* Anthropic's envelope: {"type":"error","error":{"type","message"}} */
            anth_type = cg_provider_str(err, "type");
            anth_msg = cg_provider_str(err, "message");
            msg = anth_msg;
        }
        else if (json_is_object(err)) {
            msg = cg_provider_str(err, "message"); /* Google: {"error":{"code","message"}} */
        }
        else {
            msg = cg_provider_str(root, "message"); /* Bedrock: {"message": ...} */
            if (msg == NULL) {
                msg = cg_provider_str(root, "Message");
            }
        }
    }
    if (msg != NULL) {
        out->upstream_text = apr_pstrndup(p, msg, CG_PROVIDER_LOG_TEXT_MAX);
    }
    else if (body != NULL && len > 0) {
        out->upstream_text =
            apr_pstrndup(p, body, len < CG_PROVIDER_LOG_TEXT_MAX ? len : CG_PROVIDER_LOG_TEXT_MAX);
    }
    out->type = apr_pstrdup(p, anth_type ? anth_type : cg_provider_error_type(status));
    if ((status == 400 || status == 413) && anth_type != NULL && anth_msg != NULL) {
        out->message = apr_pstrdup(p, anth_msg);
    }
    else {
        out->message = cg_provider_error_message(status, msg);
    }
    json_decref(j);
}

const char *cg_provider_sse_error(apr_pool_t *p, const char *type, const char *message)
{
    json_t *j = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                          type ? type : "api_error", "message", message ? message : "");
    const char *data = j ? cg_provider_body_dump(p, j, NULL) : NULL;

    json_decref(j);
    return apr_pstrcat(p, "event: error\ndata: ",
                       data ? data
                            : "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                              "\"message\":\"upstream error\"}}",
                       "\n\n", NULL);
}

const char *cg_provider_wif_request(apr_pool_t *p, const char *assertion, const char *rule,
                                    const char *organization, const char *service_account,
                                    const char *workspace)
{
    json_t *j;
    const char *out;

    if (assertion == NULL || rule == NULL || organization == NULL) {
        return NULL;
    }
    j = json_pack("{s:s, s:s, s:s, s:s}", "grant_type",
                  "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion", assertion,
                  "federation_rule_id", rule, "organization_id", organization);
    if (j != NULL && service_account != NULL) {
        json_object_set_new(j, "service_account_id", json_string(service_account));
    }
    if (j != NULL && workspace != NULL) {
        json_object_set_new(j, "workspace_id", json_string(workspace));
    }
    out = j ? cg_provider_body_dump(p, j, NULL) : NULL;
    json_decref(j);
    return out;
}

int cg_provider_secure_endpoint(const char *url)
{
    static const char *const loopback[] = {"http://127.0.0.1", "http://localhost", "http://[::1]"};
    apr_size_t i, n;

    if (url == NULL) {
        return 0;
    }
    if (!strncasecmp(url, "https://", 8)) {
        return 1;
    }
    for (i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        n = strlen(loopback[i]);
        if (!strncasecmp(url, loopback[i], n) &&
            (url[n] == '\0' || url[n] == ':' || url[n] == '/')) {
            return 1;
        }
    }
    return 0;
}

const char *cg_provider_beta_with(apr_pool_t *p, const char *header, const char *beta)
{
    apr_array_header_t *betas = cg_provider_betas(p, header, NULL);
    int i;

    for (i = 0; i < betas->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(betas, i, const char *), beta)) {
            return cg_provider_betas_join(p, betas);
        }
    }
    APR_ARRAY_PUSH(betas, const char *) = beta;
    return cg_provider_betas_join(p, betas);
}
