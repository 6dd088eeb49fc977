/* Unit tests for cg_azure: the Entra and managed identity requests as
 * azure-identity makes them, and both kinds of token answer. */
#include <string.h>

#include "unit.h"
#include "cg_azure.h"

START_TEST(requests)
{
    ck_assert_str_eq(cg_azure_token_url(unit_pool, NULL, "contoso.onmicrosoft.com"),
                     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    ck_assert_str_eq(cg_azure_token_url(unit_pool, "login.microsoftonline.us/", "t-1"),
                     "https://login.microsoftonline.us/t-1/oauth2/v2.0/token");
    ck_assert_str_eq(cg_azure_token_url(unit_pool, "http://127.0.0.1:9//", "t"),
                     "http://127.0.0.1:9/t/oauth2/v2.0/token");
    ck_assert_ptr_null(cg_azure_token_url(unit_pool, NULL, ""));
    ck_assert_ptr_null(cg_azure_token_url(unit_pool, NULL, "t/../x"));
    ck_assert_ptr_null(cg_azure_token_url(unit_pool, NULL, "t?x=1"));
    ck_assert_str_eq(cg_azure_client_form(unit_pool, "cid", "s3cr+t/=", NULL),
                     "grant_type=client_credentials&client_id=cid&client_secret=s3cr%2bt%2f%3d"
                     "&scope=https%3a%2f%2fcognitiveservices.azure.com%2f.default");
    ck_assert_str_eq(cg_azure_client_form(unit_pool, "cid", NULL, "eyJ.a.b"),
                     "grant_type=client_credentials&client_id=cid&client_assertion_type="
                     "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                     "&client_assertion=eyJ.a.b"
                     "&scope=https%3a%2f%2fcognitiveservices.azure.com%2f.default");
    ck_assert_str_eq(cg_azure_msi_url(unit_pool, "http://169.254.169.254/", 0, NULL),
                     "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
                     "&resource=https%3a%2f%2fcognitiveservices.azure.com");
    ck_assert_str_eq(cg_azure_msi_url(unit_pool, "http://127.0.0.1:41/msi/token", 1, "c i"),
                     "http://127.0.0.1:41/msi/token?api-version=2019-08-01"
                     "&resource=https%3a%2f%2fcognitiveservices.azure.com&client_id=c+i");
    ck_assert_ptr_null(cg_azure_msi_url(unit_pool, "169.254.169.254", 0, NULL));
    ck_assert_ptr_null(cg_azure_msi_url(unit_pool, "http://x/\r\nEvil: 1", 1, NULL));
    ck_assert_ptr_null(cg_azure_msi_url(unit_pool, NULL, 1, NULL));
}
END_TEST

START_TEST(answers)
{
    apr_time_t now = apr_time_from_sec(1764547200), exp;
    const char *tok;

#define TOK(s) cg_azure_token_parse(unit_pool, (s), strlen(s), now, &tok, &exp)
    /* Entra */
    ck_assert_ptr_null(TOK("{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":"
                           "3599,\"access_token\":\"eyJ0eXAi.x.y\"}"));
    ck_assert_str_eq(tok, "eyJ0eXAi.x.y");
    ck_assert_int_eq(exp, now + apr_time_from_sec(3599));
    /* IMDS: numbers as strings */
    ck_assert_ptr_null(TOK("{\"access_token\":\"m\",\"client_id\":\"c\",\"expires_in\":\"86399\","
                           "\"expires_on\":\"1764633599\",\"resource\":\"https://"
                           "cognitiveservices.azure.com\",\"token_type\":\"Bearer\"}"));
    ck_assert_int_eq(exp, now + apr_time_from_sec(86399));
    /* App Service: expires_on only */
    ck_assert_ptr_null(TOK("{\"access_token\":\"a\",\"expires_on\":\"1764550800\",\"resource\":"
                           "\"r\",\"token_type\":\"Bearer\"}"));
    ck_assert_int_eq(exp, apr_time_from_sec(1764550800));
    /* refusals */
    ck_assert_str_eq(TOK("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: "
                         "Invalid client secret provided.\\r\\nTrace ID: 1\",\"error_codes\":"
                         "[7000215]}"),
                     "the endpoint refused: invalid_client: AADSTS7000215: Invalid client "
                     "secret provided.");
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(exp, 0);
    ck_assert_str_eq(TOK("{\"error\":\"invalid_request\",\"error_description\":\"Identity not "
                         "found\"}"),
                     "the endpoint refused: invalid_request: Identity not found");
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"a\"}"), "expires"));
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"a\",\"expires_on\":\"1764547100\"}"),
                                 "expires")); /* already past */
    ck_assert_ptr_nonnull(
        strstr(TOK("{\"access_token\":\"a\",\"expires_in\":\"12x\"}"), "expires"));
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"a\",\"expires_in\":-5}"), "expires"));
    ck_assert_ptr_nonnull(
        strstr(TOK("{\"access_token\":\"a\",\"expires_in\":60,\"token_type\":\"pop\"}"), "Bearer"));
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"a b\",\"expires_in\":60}"), "header"));
    ck_assert_ptr_nonnull(TOK("nope"));
#undef TOK
}
END_TEST

Suite *unit_suite_cg_azure(void)
{
    Suite *s = suite_create("cg_azure");
    TCase *tc = tcase_create("azure");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, requests);
    tcase_add_test(tc, answers);
    suite_add_tcase(s, tc);
    return s;
}
