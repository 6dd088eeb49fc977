/* cg_azure: Microsoft Entra token requests and answers, see cg_azure.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_escape.h>
#include <apr_strings.h>
#include <jansson.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cg_azure.h"
#include "cg_jwt.h"
#include "cg_util.h"

/* The longest access token taken: it goes into a header. Entra's run to a few KB. */
#define CG_AZURE_TOKEN_MAX 16384
/* The longest lifetime believed: managed identity tokens live up to a day. */
#define CG_AZURE_LIFETIME_MAX (86400 * 2)

const char *cg_azure_token_url(apr_pool_t *p, const char *authority, const char *tenant)
{
    const char *c;
    apr_size_t n;

    if (tenant == NULL || *tenant == '\0') {
        return NULL;
    }
    for (c = tenant; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.' || *c == '_')) {
            return NULL;
        }
    }
    if (authority == NULL || *authority == '\0') {
        authority = CG_AZURE_AUTHORITY;
    }
    else if (strncasecmp(authority, "https://", 8) != 0 &&
             strncasecmp(authority, "http://", 7) != 0) {
        authority = apr_pstrcat(p, "https://", authority, NULL);
    }
    n = strlen(authority);
    while (n > 0 && authority[n - 1] == '/') {
        n--;
    }
    return apr_psprintf(p, "%.*s/%s/oauth2/v2.0/token", (int)n, authority, tenant);
}

const char *cg_azure_client_form(apr_pool_t *p, const char *client_id, const char *secret,
                                 const char *assertion)
{
    const char *cred =
        secret != NULL
            ? apr_pstrcat(p, "&client_secret=", apr_pescape_urlencoded(p, secret), NULL)
            : apr_pstrcat(p,
                          "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-"
                          "type%3Ajwt-bearer&client_assertion=",
                          apr_pescape_urlencoded(p, assertion ? assertion : ""), NULL);

    return apr_pstrcat(
        p, "grant_type=client_credentials&client_id=", apr_pescape_urlencoded(p, client_id), cred,
        "&scope=", apr_pescape_urlencoded(p, CG_AZURE_SCOPE), NULL);
}

const char *cg_azure_msi_url(apr_pool_t *p, const char *base, int app_service,
                             const char *client_id)
{
    const char *id =
        client_id ? apr_pstrcat(p, "&client_id=", apr_pescape_urlencoded(p, client_id), NULL) : "";
    const char *resource = apr_pescape_urlencoded(p, CG_AZURE_RESOURCE);
    apr_size_t n;

    if (base == NULL ||
        (strncasecmp(base, "https://", 8) != 0 && strncasecmp(base, "http://", 7) != 0) ||
        strpbrk(base, " \r\n#") != NULL) {
        return NULL;
    }
    if (app_service) {
        return apr_pstrcat(p, base, strchr(base, '?') ? "&" : "?",
                           "api-version=2019-08-01&resource=", resource, id, NULL);
    }
    n = strlen(base);
    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    return apr_psprintf(p,
                        "%.*s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%s%s",
                        (int)n, base, resource, id);
}

/* A number, or a string of digits as the managed identity endpoints send them. */
static int cg_azure_seconds(const json_t *v, json_int_t *out)
{
    const char *s;
    char *end;
    long long n;

    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (!json_is_string(v) || (s = json_string_value(v))[0] < '0' || s[0] > '9' || strlen(s) > 12) {
        return 0;
    }
    n = strtoll(s, &end, 10);
    if (*end != '\0') {
        return 0;
    }
    *out = (json_int_t)n;
    return 1;
}

static const char *cg_azure_jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

const char *cg_azure_token_parse(apr_pool_t *p, const char *buf, apr_size_t len, apr_time_t now,
                                 const char **token, apr_time_t *expires)
{
    json_t *j = buf ? json_loadb(buf, len, 0, NULL) : NULL;
    const char *tok, *type, *err = NULL;
    json_int_t in = 0, on = 0;
    int have_in, have_on;
    apr_time_t at = 0;

    *token = NULL;
    *expires = 0;
    if (!json_is_object(j)) {
        json_decref(j);
        return "the answer is not a JSON object";
    }
    tok = cg_azure_jstr(j, "access_token");
    type = cg_azure_jstr(j, "token_type");
    have_in = cg_azure_seconds(json_object_get(j, "expires_in"), &in);
    have_on = cg_azure_seconds(json_object_get(j, "expires_on"), &on);
    if (have_in && in > 0 && in <= CG_AZURE_LIFETIME_MAX) {
        at = now + apr_time_from_sec(in);
    }
    else if (have_on && on > apr_time_sec(now) && on - apr_time_sec(now) <= CG_AZURE_LIFETIME_MAX) {
        at = apr_time_from_sec(on);
    }
    if (tok == NULL) {
        const char *e = cg_azure_jstr(j, "error"), *d = cg_azure_jstr(j, "error_description");
        /* Entra's descriptions run on with trace and correlation ids */
        int dlen = d ? (int)strcspn(d, "\r\n") : 0;
        err = e ? apr_psprintf(p, "the endpoint refused: %.64s%s%.*s", e, d ? ": " : "",
                               dlen > 300 ? 300 : dlen, d ? d : "")
                : "the answer has no access_token";
    }
    else if (at == 0) {
        err = "the answer has no valid expires_in or expires_on";
    }
    else if (type != NULL && strcasecmp(type, "Bearer") != 0) {
        err = "the token_type is not Bearer";
    }
    else {
        err = cg_bearer_check(tok, CG_AZURE_TOKEN_MAX);
    }
    if (err == NULL) {
        *token = apr_pstrdup(p, tok);
        *expires = at;
    }
    json_decref(j);
    return err;
}

/* ---- a service principal's certificate ------------------------------------------------- */

#define CG_AZURE_ASSERTION_TTL 600 /* seconds: MSAL's ten minutes */

struct cg_azure_cert_t {
    X509 *cert;
    EVP_PKEY *key;      /* secret: never logged */
    const char *x5t;    /* base64url SHA-1 of the DER */
    const char *x5t256; /* base64url SHA-256 of the DER */
    const char *x5c;    /* base64 of the DER */
};

static apr_status_t cg_azure_cert_free(void *data)
{
    cg_azure_cert_t *c = data;

    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    return APR_SUCCESS;
}

/* An encrypted key would make OpenSSL ask a terminal for a passphrase: say no. */
static int cg_azure_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static const char *cg_azure_thumbprint(apr_pool_t *p, X509 *cert, const EVP_MD *md)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    return X509_digest(cert, md, d, &n) == 1 ? cg_jwt_b64url_encode(p, d, n) : NULL;
}

const char *cg_azure_cert_load(apr_pool_t *p, const char *pem, apr_size_t len,
                               cg_azure_cert_t **out)
{
    cg_azure_cert_t *c = apr_pcalloc(p, sizeof(*c));
    unsigned char *der = NULL;
    BIO *bio;
    int n;

    *out = NULL;
    if (pem == NULL || len == 0 || len > 1024 * 1024 || memchr(pem, '\0', len) != NULL ||
        strstr(pem, "-----BEGIN ") == NULL) {
        return "not a PEM file (PKCS#12/PFX certificates are not supported: convert with "
               "openssl pkcs12 -nodes)";
    }
    apr_pool_cleanup_register(p, c, cg_azure_cert_free, apr_pool_cleanup_null);
    /* either order: each read starts from the top and skips other blocks */
    if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL) {
        c->cert = PEM_read_bio_X509(bio, NULL, cg_azure_no_passphrase, NULL);
        BIO_free(bio);
    }
    if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL) {
        c->key = PEM_read_bio_PrivateKey(bio, NULL, cg_azure_no_passphrase, NULL);
        BIO_free(bio);
    }
    if (c->cert == NULL) {
        return "the PEM file holds no certificate";
    }
    if (c->key == NULL) {
        return strstr(pem, "ENCRYPTED") != NULL
                   ? "the private key is encrypted (AZURE_CLIENT_CERTIFICATE_PASSWORD is not "
                     "supported)"
                   : "the PEM file holds no private key";
    }
    if (EVP_PKEY_get_base_id(c->key) != EVP_PKEY_RSA) {
        return "the private key is not an RSA key";
    }
    if (X509_check_private_key(c->cert, c->key) != 1) {
        return "the private key does not belong to the certificate";
    }
    c->x5t = cg_azure_thumbprint(p, c->cert, EVP_sha1());
    c->x5t256 = cg_azure_thumbprint(p, c->cert, EVP_sha256());
    if ((n = i2d_X509(c->cert, &der)) > 0) {
        char *b64 = apr_palloc(p, (apr_size_t)(n + 2) / 3 * 4 + 1);
        EVP_EncodeBlock((unsigned char *)b64, der, n);
        c->x5c = b64;
    }
    OPENSSL_free(der);
    if (c->x5t == NULL || c->x5t256 == NULL || c->x5c == NULL) {
        return "the certificate could not be encoded";
    }
    *out = c;
    return NULL;
}

const char *cg_azure_cert_assertion(apr_pool_t *p, const cg_azure_cert_t *cert,
                                    const char *client_id, const char *token_url, apr_time_t now,
                                    int send_chain)
{
    json_int_t t = (json_int_t)apr_time_sec(now);
    json_t *header = json_pack("{s:s, s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "x5t",
                               cert->x5t, "x5t#S256", cert->x5t256);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "aud", token_url, "iss",
                               client_id, "sub", client_id, "jti", cg_uuid4(p), "nbf", t, "iat", t,
                               "exp", t + CG_AZURE_ASSERTION_TTL);
    const char *jws = NULL;

    if (header != NULL && claims != NULL) {
        if (send_chain) {
            json_object_set_new(header, "x5c", json_pack("[s]", cert->x5c));
        }
        jws = cg_jwt_sign_rs256(p, cert->key, header, claims);
    }
    json_decref(header);
    json_decref(claims);
    return jws;
}
