/* cg_azure: Microsoft Entra tokens for Foundry upstreams with
 * auth {use_azure_ad: true} (PURE: APR + jansson).
 *
 * The requests azure-identity's DefaultAzureCredential makes on a server,
 * for the Cognitive Services resource Foundry takes tokens for: the client
 * credentials grant at the Entra token endpoint (with a client secret, or a
 * federated token as the client assertion: AKS workload identity), and the
 * managed identity endpoints (App Service and Container Apps, the VM
 * instance metadata service); and the answers of both kinds. Which of them
 * is asked, sending, and caching the token are cg_azchain.c's. */
#ifndef CG_AZURE_H
#define CG_AZURE_H

#include <apr_pools.h>
#include <apr_time.h>

/** The resource Foundry's tokens are for, and the scope asked for it. */
#define CG_AZURE_RESOURCE "https://cognitiveservices.azure.com"
#define CG_AZURE_SCOPE CG_AZURE_RESOURCE "/.default"
/** The Entra authority when AZURE_AUTHORITY_HOST is unset. */
#define CG_AZURE_AUTHORITY "https://login.microsoftonline.com"
/** The VM instance metadata service when AZURE_POD_IDENTITY_AUTHORITY_HOST is unset. */
#define CG_AZURE_IMDS "http://169.254.169.254"

/**
 * The Entra token endpoint of a tenant.
 * @param authority AZURE_AUTHORITY_HOST ("https://login.microsoftonline.us", a
 *        scheme-less host gets https://), or NULL for CG_AZURE_AUTHORITY
 * @param tenant the tenant id or domain
 * @return {authority}/{tenant}/oauth2/v2.0/token owned by p, or NULL when the
 *         tenant is empty or holds characters no tenant has
 */
const char *cg_azure_token_url(apr_pool_t *p, const char *authority, const char *tenant);

/**
 * The client credentials grant's form: with a client secret, or (secret NULL)
 * with assertion, a federated token, as the JWT-bearer client assertion.
 * @return the form body owned by p (secret: never logged)
 */
const char *cg_azure_client_form(apr_pool_t *p, const char *client_id, const char *secret,
                                 const char *assertion);

/**
 * A managed identity endpoint's URL for the Cognitive Services resource.
 * @param base IDENTITY_ENDPOINT (app_service), or the IMDS base URL
 * @param app_service non-zero: App Service / Container Apps (api-version
 *        2019-08-01, base is the whole endpoint); zero: IMDS (2018-02-01)
 * @param client_id a user-assigned identity's client id, or NULL
 * @return the URL owned by p, or NULL when base is not an http(s) URL
 */
const char *cg_azure_msi_url(apr_pool_t *p, const char *base, int app_service,
                             const char *client_id);

/**
 * Read a token answer, of the Entra endpoint ({"access_token", "expires_in"})
 * or of a managed identity endpoint ({"access_token", "expires_on" as epoch
 * seconds, "expires_in"}, numbers given as strings there).
 * @param now the time the request was sent
 * @param token receives the access token (secret: never logged)
 * @param expires receives when it expires
 * @return NULL on success, else a message for the log ("the endpoint refused:
 *         invalid_client: AADSTS7000215: ..." when it refused); never the token
 */
const char *cg_azure_token_parse(apr_pool_t *p, const char *buf, apr_size_t len, apr_time_t now,
                                 const char **token, apr_time_t *expires);

/** A service principal's certificate with its private key (opaque: holds the key). */
typedef struct cg_azure_cert_t cg_azure_cert_t;

/**
 * Read AZURE_CLIENT_CERTIFICATE_PATH's file: a PEM holding the certificate
 * and its unencrypted RSA private key, in either order.
 * @param p pool owning the result; the key and certificate are freed by its cleanups
 * @param pem the file's contents (secret: never logged)
 * @return NULL on success, else what is wrong (PKCS#12 and encrypted keys are
 *         refused by name); never key material
 */
const char *cg_azure_cert_load(apr_pool_t *p, const char *pem, apr_size_t len,
                               cg_azure_cert_t **cert);

/**
 * The client assertion a certificate's service principal signs, as MSAL
 * makes it: RS256 with the certificate's SHA-1 and SHA-256 thumbprints (x5t,
 * x5t#S256), and with send_chain the certificate itself (x5c: subject
 * name/issuer authentication); claims aud = the token endpoint, iss = sub =
 * client_id, a fresh jti, nbf = iat = now, exp = now + 10 minutes.
 * @return the compact JWS owned by p (secret: never logged), or NULL if signing fails
 */
const char *cg_azure_cert_assertion(apr_pool_t *p, const cg_azure_cert_t *cert,
                                    const char *client_id, const char *token_url, apr_time_t now,
                                    int send_chain);

#endif
