/* cg_vertex: the Google Cloud Vertex AI upstream, see cg_vertex.h.
 *
 * The token exchange is Google's "OAuth 2.0 for server to server
 * applications": an RS256 JWT signed with the service account's key, posted
 * with grant_type urn:ietf:params:oauth:grant-type:jwt-bearer to the
 * account's token_uri. The private key is parsed once (at configuration or
 * on first use) and kept as an EVP_PKEY owned by a pool cleanup; signing
 * with it from several threads is read-only use, which OpenSSL 3 allows. */
#include <string.h>
#include <strings.h>

#include <apr_escape.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cg_awscred.h"
#include "cg_jwt.h"
#include "cg_provider.h"
#include "cg_util.h"
#include "cg_vertex.h"

/* The longest access token accepted: it goes into a header. */
#define CG_VERTEX_TOKEN_MAX 8192

struct cg_vertex_sa_t {
    const char *client_email;
    const char *token_uri;
    const char *project_id;
    const char *private_key_id; /* may be NULL */
    EVP_PKEY *key;              /* secret: never logged */
};

/* ---- requests ------------------------------------------------------------------------- */

/* Whether every character of s is a letter, a digit or one of extra. */
static int cg_vertex_chars_ok(const char *s, const char *extra)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(extra, *s) != NULL)) {
            return 0;
        }
    }
    return 1;
}

const char *cg_vertex_url(apr_pool_t *p, const char *base_url, const char *region,
                          const char *project, const char *model, cg_vertex_op_e op)
{
    const char *base, *method;

    /* ids as Google spells them: regions "us-east5", projects "my-proj" or
     * "example.com:my-proj", models "claude-sonnet-4-5@20250929" */
    if (!cg_vertex_chars_ok(region, "-") || !cg_vertex_chars_ok(project, "-.:")) {
        return NULL;
    }
    switch (op) {
    case CG_VERTEX_RAW_PREDICT:
        method = ":rawPredict";
        break;
    case CG_VERTEX_STREAM_RAW_PREDICT:
        method = ":streamRawPredict";
        break;
    case CG_VERTEX_COUNT_TOKENS:
        model = "count-tokens";
        method = ":rawPredict";
        break;
    default:
        return NULL;
    }
    if (!cg_vertex_chars_ok(model, "-._@")) {
        return NULL;
    }
    if (base_url != NULL && *base_url != '\0') {
        apr_size_t n = strlen(base_url);

        while (n > 0 && base_url[n - 1] == '/') {
            n--;
        }
        base = apr_pstrmemdup(p, base_url, n);
    }
    else if (strcmp(region, "global") == 0) {
        base = "https://aiplatform.googleapis.com";
    }
    else {
        base = apr_pstrcat(p, "https://", region, "-aiplatform.googleapis.com", NULL);
    }
    return apr_pstrcat(p, base, "/v1/projects/", project, "/locations/", region,
                       "/publishers/anthropic/models/", model, method, NULL);
}

const char *cg_vertex_body(apr_pool_t *p, const char *buf, apr_size_t len, cg_vertex_op_e op,
                           const char *model, apr_size_t *out_len)
{
    json_t *j = cg_provider_body_parse(p, buf, len);

    if (j == NULL) {
        return NULL;
    }
    if (op == CG_VERTEX_COUNT_TOKENS && model != NULL) {
        json_object_set_new(j, "model", json_string(model));
    }
    else if (op != CG_VERTEX_COUNT_TOKENS) {
        json_object_del(j, "model");
    }
    json_object_del(j, "tags"); /* Vertex refuses request tags */
    json_object_set_new(j, "anthropic_version", json_string(CG_VERTEX_ANTHROPIC_VERSION));
    return cg_provider_body_dump(p, j, out_len);
}

const char *cg_vertex_beta_header(apr_pool_t *p, const char *anthropic_beta)
{
    return cg_provider_betas_join(
        p, cg_provider_betas(p, anthropic_beta, CG_PROVIDER_REQUEST_TAGS_BETA));
}

/* ---- service account ------------------------------------------------------------------- */

static apr_status_t cg_vertex_key_free(void *key)
{
    EVP_PKEY_free(key);
    return APR_SUCCESS;
}

/* An encrypted key would make OpenSSL ask a terminal for a passphrase: say no. */
static int cg_vertex_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static const char *cg_vertex_jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

const char *cg_vertex_sa_parse(apr_pool_t *p, const char *json, apr_size_t len,
                               cg_vertex_sa_t **out)
{
    json_t *j = json ? json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    cg_vertex_sa_t *sa;
    const char *type, *pem, *err = NULL;
    BIO *bio;

    *out = NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return "the service account file is not a JSON object";
    }
    sa = apr_pcalloc(p, sizeof(*sa));
    type = cg_vertex_jstr(j, "type");
    pem = cg_vertex_jstr(j, "private_key");
    if (type == NULL || strcmp(type, "service_account") != 0) {
        err = "the service account file's type is not \"service_account\"";
    }
    else if (cg_vertex_jstr(j, "client_email") == NULL) {
        err = "the service account file has no client_email";
    }
    else if (pem == NULL) {
        err = "the service account file has no private_key";
    }
    if (err != NULL) {
        json_decref(j);
        return err;
    }
    sa->client_email = apr_pstrdup(p, cg_vertex_jstr(j, "client_email"));
    sa->token_uri = apr_pstrdup(p, cg_vertex_jstr(j, "token_uri") ? cg_vertex_jstr(j, "token_uri")
                                                                  : CG_VERTEX_DEFAULT_TOKEN_URI);
    sa->project_id =
        cg_vertex_jstr(j, "project_id") ? apr_pstrdup(p, cg_vertex_jstr(j, "project_id")) : NULL;
    sa->private_key_id = cg_vertex_jstr(j, "private_key_id")
                             ? apr_pstrdup(p, cg_vertex_jstr(j, "private_key_id"))
                             : NULL;
    bio = BIO_new_mem_buf(pem, (int)strlen(pem));
    sa->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, cg_vertex_no_passphrase, NULL) : NULL;
    BIO_free(bio);
    json_decref(j); /* after the PEM is read: pem points into it */
    if (sa->key == NULL) {
        return "the service account's private_key is not a PEM private key";
    }
    apr_pool_cleanup_register(p, sa->key, cg_vertex_key_free, apr_pool_cleanup_null);
    if (EVP_PKEY_get_base_id(sa->key) != EVP_PKEY_RSA) {
        return "the service account's private_key is not an RSA key";
    }
    if (strncmp(sa->token_uri, "https://", 8) != 0 && strncmp(sa->token_uri, "http://", 7) != 0) {
        return "the service account's token_uri is not an http(s) URL";
    }
    *out = sa;
    return NULL;
}

const char *cg_vertex_sa_email(const cg_vertex_sa_t *sa)
{
    return sa->client_email;
}

const char *cg_vertex_sa_token_uri(const cg_vertex_sa_t *sa)
{
    return sa->token_uri;
}

const char *cg_vertex_sa_project(const cg_vertex_sa_t *sa)
{
    return sa->project_id;
}

/* ---- token exchange --------------------------------------------------------------------- */

const char *cg_vertex_assertion(apr_pool_t *p, const cg_vertex_sa_t *sa, apr_time_t now)
{
    json_int_t iat = (json_int_t)apr_time_sec(now);
    json_t *header = sa->private_key_id ? json_pack("{s:s, s:s, s:s}", "alg", "RS256", "kid",
                                                    sa->private_key_id, "typ", "JWT")
                                        : json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", sa->client_email, "scope", CG_VERTEX_SCOPE,
                  "aud", sa->token_uri, "iat", iat, "exp", iat + CG_VERTEX_ASSERTION_TTL);
    const char *jws = header && claims ? cg_jwt_sign_rs256(p, sa->key, header, claims) : NULL;

    json_decref(header);
    json_decref(claims);
    return jws;
}

const char *cg_vertex_token_request(apr_pool_t *p, const char *assertion)
{
    /* a JWS is base64url and dots: nothing in it needs form encoding */
    return apr_pstrcat(p, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
                       "&assertion=", assertion ? assertion : "", NULL);
}

const char *cg_vertex_token_parse(apr_pool_t *p, const char *buf, apr_size_t len, apr_time_t now,
                                  const char **token, apr_time_t *expires)
{
    json_t *j = buf ? json_loadb(buf, len, 0, NULL) : NULL;
    const char *tok, *type, *err = NULL;
    const json_t *exp;

    *token = NULL;
    *expires = 0;
    if (!json_is_object(j)) {
        json_decref(j);
        return "the token endpoint's answer is not a JSON object";
    }
    tok = cg_vertex_jstr(j, "access_token");
    exp = json_object_get(j, "expires_in");
    type = cg_vertex_jstr(j, "token_type");
    if (tok == NULL) {
        const char *e = cg_vertex_jstr(j, "error"), *d = cg_vertex_jstr(j, "error_description");

        err = e ? apr_psprintf(p, "the token endpoint refused: %s%s%.200s", e, d ? ": " : "",
                               d ? d : "")
                : "the token endpoint's answer has no access_token";
    }
    else if (!json_is_integer(exp) || json_integer_value(exp) <= 0 ||
             json_integer_value(exp) > 86400 * 366) {
        err = "the token endpoint's answer has no valid expires_in";
    }
    else if (type != NULL && strcasecmp(type, "Bearer") != 0) {
        err = "the token endpoint's token_type is not Bearer";
    }
    else {
        err = cg_bearer_check(tok, CG_VERTEX_TOKEN_MAX);
    }
    if (err == NULL) {
        *token = apr_pstrdup(p, tok);
        *expires = now + apr_time_from_sec(json_integer_value(exp));
    }
    json_decref(j);
    return err;
}

/* ---- application default credentials -------------------------------------------------------- */

static int cg_vertex_is_url(const char *s)
{
    return s != NULL && (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7));
}

/* Whether a header name and value can be sent as they are. */
static int cg_vertex_header_ok(const char *name, const char *value)
{
    const char *c;

    if (!cg_vertex_chars_ok(name, "-_")) {
        return 0;
    }
    for (c = value; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* An "external_account" file: workload identity federation, google-auth's
 * identity pool credentials (a subject token from a file or a URL). */
static const char *cg_vertex_external_parse(apr_pool_t *p, const json_t *j, cg_vertex_adc_t *adc)
{
    const json_t *src = json_object_get(j, "credential_source"), *fmt, *hdrs, *v;
    const char *key, *type;

    adc->audience = cg_vertex_jstr(j, "audience");
    adc->subject_token_type = cg_vertex_jstr(j, "subject_token_type");
    adc->token_uri = cg_vertex_jstr(j, "token_url");
    adc->impersonation_url = cg_vertex_jstr(j, "service_account_impersonation_url");
    if (adc->audience == NULL || adc->subject_token_type == NULL) {
        return "the external account needs audience and subject_token_type";
    }
    if (!cg_vertex_is_url(adc->token_uri)) {
        return "the external account's token_url is not an http(s) URL";
    }
    if (adc->impersonation_url != NULL && !cg_vertex_is_url(adc->impersonation_url)) {
        return "the external account's service_account_impersonation_url is not an http(s) URL";
    }
    if (!json_is_object(src)) {
        return "the external account has no credential_source";
    }
    if (json_object_get(src, "environment_id") != NULL) {
        return "external_account credentials sourced from AWS (environment_id) are not supported";
    }
    if (json_object_get(src, "executable") != NULL) {
        return "external_account credentials sourced from an executable are not supported";
    }
    adc->source_file = cg_vertex_jstr(src, "file");
    adc->source_url = cg_vertex_jstr(src, "url");
    if ((adc->source_file == NULL) == (adc->source_url == NULL)) {
        return "the external account's credential_source needs a file or a url";
    }
    if (adc->source_url != NULL && !cg_vertex_is_url(adc->source_url)) {
        return "the external account's credential_source url is not an http(s) URL";
    }
    adc->source_headers = apr_array_make(p, 2, sizeof(const char *));
    if ((hdrs = json_object_get(src, "headers")) != NULL) {
        if (!json_is_object(hdrs)) {
            return "the external account's credential_source headers are not an object";
        }
        json_object_foreach((json_t *)hdrs, key, v)
        {
            if (!json_is_string(v) || !cg_vertex_header_ok(key, json_string_value(v))) {
                return "the external account's credential_source headers hold one that cannot "
                       "be sent";
            }
            APR_ARRAY_PUSH(adc->source_headers, const char *) =
                apr_pstrcat(p, key, ": ", json_string_value(v), NULL);
        }
    }
    if ((fmt = json_object_get(src, "format")) != NULL) {
        type = cg_vertex_jstr(fmt, "type");
        if (type != NULL && !strcmp(type, "json")) {
            if ((adc->source_field = cg_vertex_jstr(fmt, "subject_token_field_name")) == NULL) {
                return "the external account's json format needs subject_token_field_name";
            }
            adc->source_field = apr_pstrdup(p, adc->source_field);
        }
        else if (type != NULL && strcmp(type, "text") != 0) {
            return "the external account's credential_source format is neither text nor json";
        }
    }
    adc->audience = apr_pstrdup(p, adc->audience);
    adc->subject_token_type = apr_pstrdup(p, adc->subject_token_type);
    adc->token_uri = apr_pstrdup(p, adc->token_uri);
    adc->impersonation_url = adc->impersonation_url ? apr_pstrdup(p, adc->impersonation_url) : NULL;
    adc->source_file = adc->source_file ? apr_pstrdup(p, adc->source_file) : NULL;
    adc->source_url = adc->source_url ? apr_pstrdup(p, adc->source_url) : NULL;
    return NULL;
}

const char *cg_vertex_adc_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                cg_vertex_adc_t *adc)
{
    static const char *const unsupported[] = {
        "external_account_authorized_user", "impersonated_service_account", "gdch_service_account"};
    json_t *j = json ? json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *type, *err = NULL, *quota;
    apr_size_t i;

    memset(adc, 0, sizeof(*adc));
    if (!json_is_object(j)) {
        json_decref(j);
        return "the credentials file is not a JSON object";
    }
    type = cg_vertex_jstr(j, "type");
    quota = cg_vertex_jstr(j, "quota_project_id");
    if (quota != NULL && !cg_vertex_chars_ok(quota, "-.:")) {
        err = "the credentials file's quota_project_id is not a project id";
    }
    else if (type == NULL) {
        err = "the credentials file has no type";
    }
    else if (!strcmp(type, "service_account")) {
        err = cg_vertex_sa_parse(p, json, len, &adc->sa);
        adc->token_uri = adc->sa ? adc->sa->token_uri : NULL;
    }
    else if (!strcmp(type, "authorized_user")) {
        const char *uri = cg_vertex_jstr(j, "token_uri");
        adc->client_id = cg_vertex_jstr(j, "client_id");
        adc->client_secret = cg_vertex_jstr(j, "client_secret");
        adc->refresh_token = cg_vertex_jstr(j, "refresh_token");
        if (adc->client_id == NULL || adc->client_secret == NULL || adc->refresh_token == NULL) {
            err = "the user credentials need client_id, client_secret and refresh_token";
        }
        else if (uri != NULL && strncmp(uri, "https://", 8) != 0 && strncmp(uri, "http://", 7)) {
            err = "the user credentials' token_uri is not an http(s) URL";
        }
        else {
            adc->client_id = apr_pstrdup(p, adc->client_id);
            adc->client_secret = apr_pstrdup(p, adc->client_secret);
            adc->refresh_token = apr_pstrdup(p, adc->refresh_token);
            adc->token_uri = apr_pstrdup(p, uri ? uri : CG_VERTEX_DEFAULT_TOKEN_URI);
        }
    }
    else if (!strcmp(type, "external_account")) {
        err = cg_vertex_external_parse(p, j, adc);
    }
    else {
        err = apr_psprintf(p, "credentials of type \"%.64s\" are unknown", type);
        for (i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
            if (!strcmp(type, unsupported[i])) {
                err = apr_psprintf(p,
                                   "%s credentials are not supported; use a service account "
                                   "key, gcloud's user credentials or the metadata server",
                                   type);
            }
        }
    }
    if (err == NULL && quota != NULL) {
        adc->quota_project = apr_pstrdup(p, quota);
    }
    json_decref(j);
    if (err != NULL) {
        memset(adc, 0, sizeof(*adc));
    }
    return err;
}

const char *cg_vertex_adc_token_request(apr_pool_t *p, const cg_vertex_adc_t *adc, apr_time_t now)
{
    if (adc->audience != NULL) {
        return NULL; /* an external account: cg_vertex_sts_request */
    }
    if (adc->sa != NULL) {
        const char *assertion = cg_vertex_assertion(p, adc->sa, now);
        return assertion ? cg_vertex_token_request(p, assertion) : NULL;
    }
    /* user credentials keep the scopes they were granted: none is asked */
    return apr_pstrcat(
        p, "grant_type=refresh_token&client_id=", apr_pescape_urlencoded(p, adc->client_id),
        "&client_secret=", apr_pescape_urlencoded(p, adc->client_secret),
        "&refresh_token=", apr_pescape_urlencoded(p, adc->refresh_token), NULL);
}

const char *cg_vertex_metadata_url(apr_pool_t *p, const char *host)
{
    if (host == NULL || strlen(host) > 255 || !cg_vertex_chars_ok(host, ".-:[]")) {
        return NULL;
    }
    return apr_pstrcat(p, "http://", host,
                       "/computeMetadata/v1/instance/service-accounts/default/token?scopes="
                       "https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform",
                       NULL);
}

const char *cg_vertex_subject_token(apr_pool_t *p, const cg_vertex_adc_t *adc, const char *raw,
                                    apr_size_t len, const char **token)
{
    const char *t = NULL;
    apr_size_t b = 0, e = len;

    *token = NULL;
    if (adc->source_field != NULL) {
        json_t *j = raw ? json_loadb(raw, len, 0, NULL) : NULL;
        if ((t = cg_vertex_jstr(j, adc->source_field)) != NULL) {
            t = apr_pstrdup(p, t);
        }
        json_decref(j);
        if (t == NULL) {
            return apr_psprintf(p, "the subject token source holds no \"%.64s\" string",
                                adc->source_field);
        }
    }
    else {
        while (b < e && apr_isspace(raw[b])) {
            b++;
        }
        while (e > b && apr_isspace(raw[e - 1])) {
            e--;
        }
        if (e > b && memchr(raw + b, '\0', e - b) == NULL) {
            t = apr_pstrmemdup(p, raw + b, e - b);
        }
        if (t == NULL) {
            return "the subject token source is empty";
        }
    }
    *token = t;
    return NULL;
}

const char *cg_vertex_sts_request(apr_pool_t *p, const cg_vertex_adc_t *adc,
                                  const char *subject_token)
{
    return apr_pstrcat(p, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
                       "&audience=", apr_pescape_urlencoded(p, adc->audience),
                       "&scope=", apr_pescape_urlencoded(p, CG_VERTEX_SCOPE),
                       "&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_"
                       "token",
                       "&subject_token=", apr_pescape_urlencoded(p, subject_token),
                       "&subject_token_type=", apr_pescape_urlencoded(p, adc->subject_token_type),
                       NULL);
}

const char *cg_vertex_impersonation_parse(apr_pool_t *p, const char *buf, apr_size_t len,
                                          const char **token, apr_time_t *expires)
{
    json_t *j = buf ? json_loadb(buf, len, 0, NULL) : NULL;
    const char *tok, *exp, *err = NULL;
    const json_t *e;

    *token = NULL;
    *expires = 0;
    if (!json_is_object(j)) {
        json_decref(j);
        return "the generateAccessToken answer is not a JSON object";
    }
    tok = cg_vertex_jstr(j, "accessToken");
    exp = cg_vertex_jstr(j, "expireTime");
    if (tok == NULL) {
        e = json_object_get(j, "error");
        err = json_is_object(e)
                  ? apr_psprintf(p, "generateAccessToken refused: %.32s: %.200s",
                                 cg_vertex_jstr(e, "status") ? cg_vertex_jstr(e, "status") : "?",
                                 cg_vertex_jstr(e, "message") ? cg_vertex_jstr(e, "message") : "")
                  : "the generateAccessToken answer has no accessToken";
    }
    else if (exp == NULL || !cg_aws_time(exp, expires)) {
        err = "the generateAccessToken answer has no RFC 3339 expireTime";
    }
    else {
        err = cg_bearer_check(tok, CG_VERTEX_TOKEN_MAX);
    }
    if (err == NULL) {
        *token = apr_pstrdup(p, tok);
    }
    else {
        *expires = 0;
    }
    json_decref(j);
    return err;
}
