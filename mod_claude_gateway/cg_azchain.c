/* cg_azchain: where a Foundry upstream with auth {use_azure_ad: true} gets
 * its Microsoft Entra token, in the order of azure-identity's
 * DefaultAzureCredential, as far as a server has them:
 *   1. a service principal: AZURE_TENANT_ID, AZURE_CLIENT_ID and its
 *      AZURE_CLIENT_SECRET, else its certificate, AZURE_CLIENT_CERTIFICATE_PATH
 *      (a PEM with the unencrypted key; AZURE_CLIENT_SEND_CERTIFICATE_CHAIN
 *      sends the certificate along);
 *   2. workload identity (AKS): AZURE_TENANT_ID, AZURE_CLIENT_ID and the
 *      federated token in AZURE_FEDERATED_TOKEN_FILE, read at each fetch
 *      (the kubelet rotates it);
 *   3. a managed identity: App Service and Container Apps through
 *      IDENTITY_ENDPOINT and IDENTITY_HEADER, else the VM instance metadata
 *      service (AZURE_POD_IDENTITY_AUTHORITY_HOST moves it); AZURE_CLIENT_ID
 *      picks a user-assigned identity.
 * AZURE_AUTHORITY_HOST moves the Entra endpoint (sovereign clouds, tests).
 * As in azure-identity, a source whose variables are set and that fails
 * ends the search with its reason; one whose variables are absent is
 * skipped. The developer tools' credentials (Azure CLI, PowerShell) are
 * not used: a server has no user signed in.
 *
 * The token is kept per child until five minutes before it expires, as
 * azure-identity refreshes; cg_tokcache.c says how. */
#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>

#include "cg_private.h"
#include "cg_azchain.h"
#include "cg_azure.h"
#include "cg_fetch.h"
#include "cg_tokcache.h"
#include "cg_util.h"

#define CG_AZ_REFRESH apr_time_from_sec(300) /* before expiry */
#define CG_AZ_PAUSE apr_time_from_sec(5)     /* after nothing was found */
#define CG_AZ_IMDS_TIMEOUT_MS 2000L          /* link-local: answers at once or not at all */
#define CG_AZ_HTTP_TIMEOUT_MS 10000L         /* Entra and the App Service endpoint */
#define CG_AZ_CERT_MAX (256 * 1024)          /* a PEM with its chain */

static cg_tokcache_t *cg_az_cache;

void cg_az_chain_child_init(apr_pool_t *pchild)
{
    cg_az_cache = cg_tokcache_create(pchild, CG_AZ_REFRESH, CG_AZ_PAUSE);
}

/* One token request; 1 with *token and *expires, else 0 with *why. */
static int cg_az_request(request_rec *r, cg_fetch_t *f, apr_time_t now, const char **token,
                         apr_time_t *expires, const char **why)
{
    const char *err;

    if (!cg_fetch(r->pool, f, why)) {
        return 0;
    }
    err = cg_azure_token_parse(r->pool, f->body, f->len, now, token, expires);
    if (f->status != 200) {
        *token = NULL;
        *why = err != NULL && !strncmp(err, "the endpoint refused", 20)
                   ? apr_psprintf(r->pool, "%s (%ld)", err, f->status)
                   : apr_psprintf(r->pool, "the endpoint answered %ld", f->status);
        return 0;
    }
    *why = err;
    return err == NULL;
}

/* 1 and 2: the client credentials grant at Entra, with a secret, a
 * federated token, or an assertion signed with a certificate. */
static int cg_az_entra(request_rec *r, apr_time_t now, const char *tenant, const char *client_id,
                       const char *secret, const char *assertion, const cg_azure_cert_t *cert,
                       cg_tokcache_value_t *out, const char **why)
{
    const char *url = cg_azure_token_url(r->pool, cg_cred_env("AZURE_AUTHORITY_HOST"), tenant);
    cg_fetch_t f = {.method = "POST", .timeout_ms = CG_AZ_HTTP_TIMEOUT_MS};
    int ok;

    if (url == NULL) {
        *why = "AZURE_TENANT_ID is not a tenant id";
        return 0;
    }
    if (cert != NULL) {
        const char *chain = cg_cred_env("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN");
        assertion = cg_azure_cert_assertion(
            r->pool, cert, client_id, url, now,
            chain != NULL && (!strcasecmp(chain, "true") || !strcmp(chain, "1")));
        if (assertion == NULL) {
            *why = "the certificate's assertion could not be signed";
            return 0;
        }
    }
    f.url = url;
    f.form = cg_azure_client_form(r->pool, client_id, secret, assertion);
    f.headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    ok = cg_az_request(r, &f, now, &out->token, &out->expires, why);
    curl_slist_free_all(f.headers);
    return ok;
}

/* 3: a managed identity endpoint. */
static int cg_az_msi(request_rec *r, apr_time_t now, const char *url, const char *header,
                     cg_tokcache_value_t *out, const char **why)
{
    cg_fetch_t f = {.method = "GET", .url = url, .timeout_ms = CG_AZ_HTTP_TIMEOUT_MS};
    int ok;

    if (url == NULL) {
        *why = "the endpoint is not an http(s) URL";
        return 0;
    }
    if (header == NULL) { /* IMDS: link-local, never through a proxy */
        f.direct = 1;
        f.timeout_ms = CG_AZ_IMDS_TIMEOUT_MS;
        f.headers = curl_slist_append(NULL, "Metadata: true");
    }
    else if (strpbrk(header, "\r\n") != NULL) {
        *why = "IDENTITY_HEADER holds a line break";
        return 0;
    }
    else {
        f.headers =
            curl_slist_append(NULL, apr_pstrcat(r->pool, "X-IDENTITY-HEADER: ", header, NULL));
    }
    ok = cg_az_request(r, &f, now, &out->token, &out->expires, why);
    curl_slist_free_all(f.headers);
    return ok;
}

/* The chain, in order; the source that answered in out->source, or why
 * the search ended in *why. */
static int cg_az_resolve(void *baton, apr_pool_t *p, apr_time_t now, cg_tokcache_value_t *out,
                         const char **why)
{
    request_rec *r = baton;
    const char *tenant = cg_cred_env("AZURE_TENANT_ID"),
               *client_id = cg_cred_env("AZURE_CLIENT_ID");
    const char *secret = cg_cred_env("AZURE_CLIENT_SECRET");
    const char *fedfile = cg_cred_env("AZURE_FEDERATED_TOKEN_FILE");
    const char *endpoint = cg_cred_env("IDENTITY_ENDPOINT"),
               *header = cg_cred_env("IDENTITY_HEADER");
    const char *imds = cg_cred_env("AZURE_POD_IDENTITY_AUTHORITY_HOST"), *skipped = "", *w = NULL;
    const char *certfile = cg_cred_env("AZURE_CLIENT_CERTIFICATE_PATH"), *assertion;

    if (tenant != NULL && client_id != NULL && secret != NULL) {
        out->source = "service principal's client secret";
        if (!cg_az_entra(r, now, tenant, client_id, secret, NULL, NULL, out, &w)) {
            *why = apr_pstrcat(p, "service principal (AZURE_CLIENT_SECRET): ", w, NULL);
            return 0;
        }
        return 1;
    }
    if (certfile != NULL && tenant != NULL && client_id != NULL) {
        cg_azure_cert_t *cert = NULL;
        const char *pem;
        apr_size_t len;
        out->source = "service principal's certificate";
        /* read as bytes: a PKCS#12 file is refused by name, not as "binary" */
        if ((w = cg_file_read(p, certfile, CG_AZ_CERT_MAX, &pem, &len)) == NULL &&
            (w = cg_azure_cert_load(p, pem, len, &cert)) == NULL &&
            cg_az_entra(r, now, tenant, client_id, NULL, NULL, cert, out, &w)) {
            return 1;
        }
        *why = apr_pstrcat(p, "service principal (AZURE_CLIENT_CERTIFICATE_PATH): ", w, NULL);
        return 0;
    }
    if (certfile != NULL) {
        skipped = "AZURE_CLIENT_CERTIFICATE_PATH without AZURE_TENANT_ID and AZURE_CLIENT_ID; ";
    }
    if (tenant != NULL && client_id != NULL && fedfile != NULL) {
        out->source = "workload identity";
        w = cg_secret_resolve(p, apr_pstrcat(p, "file:", fedfile, NULL), &assertion);
        if (w != NULL || !cg_az_entra(r, now, tenant, client_id, NULL, assertion, NULL, out, &w)) {
            *why = apr_pstrcat(p, skipped, "workload identity: ", w, NULL);
            return 0;
        }
        return 1;
    }
    if (endpoint != NULL && header != NULL) {
        out->source = "App Service managed identity";
        if (!cg_az_msi(r, now, cg_azure_msi_url(p, endpoint, 1, client_id), header, out, &w)) {
            *why = apr_pstrcat(p, skipped, "managed identity (IDENTITY_ENDPOINT): ", w, NULL);
            return 0;
        }
        return 1;
    }
    out->source = "instance metadata service's managed identity";
    if (!cg_az_msi(r, now, cg_azure_msi_url(p, imds ? imds : CG_AZURE_IMDS, 0, client_id), NULL,
                   out, &w)) {
        *why = apr_pstrcat(p, skipped,
                           tenant || client_id ? "" : "no AZURE_TENANT_ID/AZURE_CLIENT_ID; ",
                           "managed identity (instance metadata): ", w, NULL);
        return 0;
    }
    return 1;
}

int cg_az_chain_token(request_rec *r, const char **token)
{
    cg_tokcache_value_t v;
    const char *why = NULL;

    *token = NULL;
    if (cg_az_cache == NULL) {
        return 0;
    }
    switch (cg_tokcache_get(cg_az_cache, r->pool, apr_time_now(), cg_az_resolve, r, &v, &why)) {
    case CG_TOKCACHE_NEW_SOURCE:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      CG_LOGNO(0149) "Microsoft Entra token from the %s", v.source);
        break;
    case CG_TOKCACHE_KEPT:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      CG_LOGNO(0150) "Microsoft Entra token not refreshed (%s); using the "
                                     "current one until it expires",
                      why);
        break;
    case CG_TOKCACHE_FAILED:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      CG_LOGNO(0148) "Could not get a Microsoft Entra token: %s", why);
        return 0;
    case CG_TOKCACHE_PAUSED:
        return 0;
    default:
        break;
    }
    *token = v.token;
    return 1;
}

void cg_az_chain_forget(void)
{
    if (cg_az_cache != NULL) {
        cg_tokcache_forget(cg_az_cache);
    }
}
