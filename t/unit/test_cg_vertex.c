/* Unit tests for cg_vertex: URLs, the body, the beta header, the service
 * account, the RS256 assertion (byte for byte what PyJWT makes with the same
 * key, claims and time: RSASSA-PKCS1-v1_5 is deterministic), and the token
 * answer. The key below is a throwaway made for this test. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "unit.h"
#include "cg_vertex.h"

static const char TEST_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCO7zU+VsfG/83S\n"
                               "WpG009efYg8lgM1tsRa6Moc49Ugoj+7x4RSusPPGTRmWRagIOQJQqd1Z3kIAfRFY\n"
                               "N2ezkEgAdVQAMxKPyRCHliYdOzg8iEOIDJEz2gkiIjkt0fywD41huDdxx9FgbrXr\n"
                               "koox4Y7zGFJ1sFudZbmDUgh7F5yuNJNph+K5tWcACqk9O5eGGTMpKhmZ3Q2YnI0s\n"
                               "VQwx+2ZtVgwvgrcw5rOogyKNy30omFgiLLE+0K7I/tkJhC2zi4wDHPiVefFZdOtt\n"
                               "v7AaZhvuKBJQlerwX8+XMmLRhMVaeKrCEgBw6a//0IC8oY1zgy0RcF3uKIQ20RP+\n"
                               "HMLWnRtpAgMBAAECggEAASE25IU/Ev2WnOEGYc2C2MmnoP5BoWpS6anYk8Ssi1WH\n"
                               "5/WFelP/uUOGvj9Ssq3wrL6K91jgYKycZHwbn7m2N/q1bUL6FJTcQpYXOwfqy9+v\n"
                               "2PVweF5y0AhBN3F/c8zLq0gPeCDCMObvHSuNWBOWU6mPjUqVjsrtCnKtinuHS4Ev\n"
                               "2vWxKtmxU3i37EbQ5nVNCy0RCu1kjOFmTZj3GZKp6t/bf5kosVY+rYV5ClQF+tzo\n"
                               "Z5ukvI6IiPbrVXa8hRZa2xGcwPEqsxbDbsWNFzz7oSn1UonL4ueiY5g2UEd2oF71\n"
                               "XRIxZ+5d4OjP32/SVt8VAswsU4XpOcM491pE3Gw7GQKBgQDAZkRCRCmmAkhGHyjL\n"
                               "PFqJgO+28myP2RGtqBhg9qhKwyH4dZMXGpnopzEMow2yhXo0NZCxAEMn4q91k7/x\n"
                               "FNKpvYDzIJcaT9xFSghHjoT75J9mhGYLfpatDpf53kVqhgF76hlGuLEgd1c/wumi\n"
                               "D8nPuxJht01+Q5rdYH/4QfksywKBgQC+LvprzhQRd1AHsPt7mLf9b9V1b99zuqAI\n"
                               "iYpovemZbAteIGgRgo//gb2Lowy2bkr7JOzhgSM6DSDJE+DosRHemmHK3bKVrPNT\n"
                               "V53HC1lIfWHh6kZlhcp46C63x94K2ZzfwXUHvkOG/r4OcXfIc9MfIGhNaiLOwo7P\n"
                               "iTvSJWXmGwKBgFVx1WScguaP4usJUYOYpRil40+bL+1eWISHv3Podurk6ARAqvc6\n"
                               "wBlbjuPu0dlzf8cJ9t00oZ5oBMYxvK9jMP9jAo527cQorUk0TKMCvzpi2QudRvhZ\n"
                               "2q62aXX1aVyacLRITbtjsH4boerWNA3d9yFDEjHFRywI+BDSl2J4YiGrAoGAfKtt\n"
                               "C1hm/WAaPUB+SnI9QkyaQEaa01FmcNJAwhKkXCdgeE6ECd5tqM+SwkObJMe+LU3y\n"
                               "Xoz526cZc9atG7xfe232ZzbXR5i9VUfdLMq6t3NBxAeAKDMBHCsP3PePDcvDM0at\n"
                               "AetudsLtMaieHfAXWJM07HKD6MfPOCq85TAQ0TsCgYEAjMOsc9MQ156a2mWPNgQa\n"
                               "hbfHany9xci6VIZYXETH8u+M9n1vSqld3y6TxaPkSC1tK+aZNh/y/YBwqlOtpLZ0\n"
                               "pLfYOE86lTQpUL95MKBhPl9KYgEqAGR8GZEHRMOPSjr4Z5AE5TXDtCWjy5MG6eex\n"
                               "reZKyWUD8am7Lu9w8VHw+eU=\n"
                               "-----END PRIVATE KEY-----\n";

/* The same key's assertion, by PyJWT 2.6: jwt.encode({"iss": EMAIL, "scope": ...,
 * "aud": "https://oauth2.googleapis.com/token", "iat": 1700000000, "exp":
 * 1700003600}, key, algorithm="RS256", headers={"kid": "a1b2c3"}) */
static const char PYJWT_ASSERTION[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImExYjJjMyIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJnd0Bwcm9qLTEuaWFtLmd"
    "zZXJ2aWNlYWNjb3VudC5jb20iLCJzY29wZSI6Imh0dHBzOi8vd3d3Lmdvb2dsZWFwaXMuY29tL2F1dGgvY2xvdWQ"
    "tcGxhdGZvcm0iLCJhdWQiOiJodHRwczovL29hdXRoMi5nb29nbGVhcGlzLmNvbS90b2tlbiIsImlhdCI6MTcwMDA"
    "wMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ.Py9B5nRX4Ub6wbiR9WUygrYMQ1myaxXYuJ_Ob-PSvndaM1v6oLTEIOrA"
    "OnXdq8hzZ-M1vvBWN7YguuD7uNoeH9s-3Mr1XdZfdgjIcL2qR146oJOa8k3DSUmATliL4MPP2z2TZBMikxATpOL5"
    "SgN8jYtWCux_DyToAkAZUjGUgN4bBimA7LMHgNsZgmzxhym41oNHtQnaa_TQa-xURmp-qtA6L4fCA544NNf-X9lK"
    "1yNqRWkgSmNwTnUwLdPUzmkYJxYgWoRqlIzSpT8TsR9T1Y-KqEeuIytUPMW-ADGQLy1XaWEm8CrWIR3fv8Nq_Wh0"
    "Yl_Ujp8JzK-wEW1vSLD5Vg";

#define EMAIL "gw@proj-1.iam.gserviceaccount.com"

static const char EC_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                             "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgV6wavBhFHgSvBdBE\n"
                             "iZqtpreopT1eCXQghcJZxCWbYnihRANCAAS9wV2G35zofrEGUS7wx2Sq7WkD78K1\n"
                             "h7jkXMB8CJZwJyQsnc8m+XPEozV9Wc9N9OgrFirUeHFUBsMAlHrGhSAW\n"
                             "-----END PRIVATE KEY-----\n";

/* A service-account file; fields NULL are left out. */
static const char *sa_json(const char *type, const char *key, const char *email,
                           const char *token_uri)
{
    json_t *j = json_object();
    char *s;
    const char *out;

    if (type) {
        json_object_set_new(j, "type", json_string(type));
    }
    json_object_set_new(j, "project_id", json_string("proj-1"));
    json_object_set_new(j, "private_key_id", json_string("a1b2c3"));
    if (key) {
        json_object_set_new(j, "private_key", json_string(key));
    }
    if (email) {
        json_object_set_new(j, "client_email", json_string(email));
    }
    if (token_uri) {
        json_object_set_new(j, "token_uri", json_string(token_uri));
    }
    s = json_dumps(j, JSON_INDENT(2));
    out = apr_pstrdup(unit_pool, s);
    free(s);
    json_decref(j);
    return out;
}

START_TEST(urls)
{
    ck_assert_str_eq(cg_vertex_url(unit_pool, NULL, "us-east5", "proj-1",
                                   "claude-sonnet-4-5@20250929", CG_VERTEX_RAW_PREDICT),
                     "https://us-east5-aiplatform.googleapis.com/v1/projects/proj-1/locations/"
                     "us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict");
    ck_assert_str_eq(cg_vertex_url(unit_pool, NULL, "global", "proj-1", "claude-opus-4-5@20251101",
                                   CG_VERTEX_STREAM_RAW_PREDICT),
                     "https://aiplatform.googleapis.com/v1/projects/proj-1/locations/global/"
                     "publishers/anthropic/models/claude-opus-4-5@20251101:streamRawPredict");
    ck_assert_str_eq(cg_vertex_url(unit_pool, "http://127.0.0.1:8099/", "europe-west1",
                                   "example.com:proj", "ignored", CG_VERTEX_COUNT_TOKENS),
                     "http://127.0.0.1:8099/v1/projects/example.com:proj/locations/europe-west1/"
                     "publishers/anthropic/models/count-tokens:rawPredict");
    ck_assert_ptr_null(
        cg_vertex_url(unit_pool, NULL, "us-east5/../x", "p", "m", CG_VERTEX_RAW_PREDICT));
    ck_assert_ptr_null(
        cg_vertex_url(unit_pool, NULL, "us-east5", "p/q", "m", CG_VERTEX_RAW_PREDICT));
    ck_assert_ptr_null(cg_vertex_url(unit_pool, NULL, "us-east5", "p", "m:streamRawPredict?x",
                                     CG_VERTEX_RAW_PREDICT));
    ck_assert_ptr_null(cg_vertex_url(unit_pool, NULL, "", "p", "m", CG_VERTEX_RAW_PREDICT));
}
END_TEST

START_TEST(body_and_betas)
{
    const char *in = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":8,\"stream\":true,"
                     "\"messages\":[],\"tags\":{\"a\":\"b\"},\"safeguards\":{}}";
    apr_size_t len;

    ck_assert_str_eq(cg_vertex_body(unit_pool, in, strlen(in), CG_VERTEX_STREAM_RAW_PREDICT,
                                    "claude-sonnet-4-5@20250929", &len),
                     "{\"max_tokens\":8,\"stream\":true,\"messages\":[],\"safeguards\":{},"
                     "\"anthropic_version\":\"vertex-2023-10-16\"}");
    ck_assert_str_eq(
        cg_vertex_body(unit_pool, in, strlen(in), CG_VERTEX_COUNT_TOKENS,
                       "claude-sonnet-4-5@20250929", &len),
        "{\"model\":\"claude-sonnet-4-5@20250929\",\"max_tokens\":8,\"stream\":true,"
        "\"messages\":[],\"safeguards\":{},\"anthropic_version\":\"vertex-2023-10-16\"}");
    ck_assert_ptr_null(cg_vertex_body(unit_pool, "1", 1, CG_VERTEX_RAW_PREDICT, NULL, &len));
    ck_assert_str_eq(cg_vertex_beta_header(unit_pool, "a, request-tags-2026-08-21,b"), "a,b");
    ck_assert_ptr_null(cg_vertex_beta_header(unit_pool, "request-tags-2026-08-21"));
    ck_assert_ptr_null(cg_vertex_beta_header(unit_pool, NULL));
}
END_TEST

START_TEST(assertion_is_pyjwt_s)
{
    cg_vertex_sa_t *sa;
    const char *j = sa_json("service_account", TEST_KEY, EMAIL, NULL);

    ck_assert_ptr_null(cg_vertex_sa_parse(unit_pool, j, strlen(j), &sa));
    ck_assert_str_eq(cg_vertex_sa_email(sa), EMAIL);
    ck_assert_str_eq(cg_vertex_sa_token_uri(sa), "https://oauth2.googleapis.com/token");
    ck_assert_str_eq(cg_vertex_sa_project(sa), "proj-1");
    ck_assert_str_eq(cg_vertex_assertion(unit_pool, sa, apr_time_from_sec(1700000000)),
                     PYJWT_ASSERTION);
    ck_assert_str_eq(cg_vertex_token_request(unit_pool, "h.c.s"),
                     "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                     "&assertion=h.c.s");
}
END_TEST

START_TEST(service_account_refusals)
{
    cg_vertex_sa_t *sa;
    const char *j;

#define SA_ERR(json) cg_vertex_sa_parse(unit_pool, (json), strlen(json), &sa)
    ck_assert_str_eq(SA_ERR("[]"), "the service account file is not a JSON object");
    ck_assert_ptr_null(sa);
    j = sa_json("authorized_user", TEST_KEY, EMAIL, NULL);
    ck_assert_ptr_nonnull(strstr(SA_ERR(j), "service_account"));
    j = sa_json("service_account", TEST_KEY, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(SA_ERR(j), "client_email"));
    j = sa_json("service_account", NULL, EMAIL, NULL);
    ck_assert_ptr_nonnull(strstr(SA_ERR(j), "no private_key"));
    j = sa_json("service_account", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                EMAIL, NULL);
    ck_assert_str_eq(SA_ERR(j), "the service account's private_key is not a PEM private key");
    j = sa_json(
        "service_account",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQww"
        "\n-----END ENCRYPTED PRIVATE KEY-----\n",
        EMAIL, NULL);
    ck_assert_str_eq(SA_ERR(j), "the service account's private_key is not a PEM private key");
    j = sa_json("service_account", EC_KEY, EMAIL, NULL);
    ck_assert_str_eq(SA_ERR(j), "the service account's private_key is not an RSA key");
    j = sa_json("service_account", TEST_KEY, EMAIL, "file:///etc/passwd");
    ck_assert_ptr_nonnull(strstr(SA_ERR(j), "token_uri"));
    j = sa_json("service_account", TEST_KEY, EMAIL, "http://127.0.0.1:9/token");
    ck_assert_ptr_null(SA_ERR(j));
    ck_assert_str_eq(cg_vertex_sa_token_uri(sa), "http://127.0.0.1:9/token");
#undef SA_ERR
}
END_TEST

START_TEST(token_answers)
{
    const char *tok;
    apr_time_t exp;
    apr_time_t now = apr_time_from_sec(1700000000);

#define TOK(s) cg_vertex_token_parse(unit_pool, (s), strlen(s), now, &tok, &exp)
    ck_assert_ptr_null(TOK("{\"access_token\":\"ya29.c.abc\",\"expires_in\":3599,"
                           "\"token_type\":\"Bearer\"}"));
    ck_assert_str_eq(tok, "ya29.c.abc");
    ck_assert_int_eq(exp, now + apr_time_from_sec(3599));
    ck_assert_str_eq(TOK("{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT "
                         "Signature.\"}"),
                     "the token endpoint refused: invalid_grant: Invalid JWT Signature.");
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(exp, 0);
    ck_assert_str_eq(TOK("{\"error\":\"invalid_client\"}"),
                     "the token endpoint refused: invalid_client");
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"x\"}"), "expires_in"));
    ck_assert_ptr_nonnull(
        strstr(TOK("{\"access_token\":\"x\",\"expires_in\":\"3599\"}"), "expires_in"));
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"x\",\"expires_in\":60,"
                                     "\"token_type\":\"mac\"}"),
                                 "Bearer"));
    ck_assert_ptr_nonnull(
        strstr(TOK("{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":60}"), "header"));
    ck_assert_ptr_nonnull(TOK("<html>"));
#undef TOK
}
END_TEST

START_TEST(adc_files)
{
    cg_vertex_adc_t adc;
    const char *form;

#define ADC(s) cg_vertex_adc_parse(unit_pool, (s), strlen(s), &adc)
    /* gcloud auth application-default login writes this */
    ck_assert_ptr_null(ADC("{\"account\": \"\", \"client_id\": \"764.apps.googleusercontent.com\","
                           "\"client_secret\": \"d-FL95Q\", \"quota_project_id\": "
                           "\"proj-1\", \"refresh_token\": \"1//0e+x/y=\", \"type\": "
                           "\"authorized_user\", \"universe_domain\": \"googleapis.com\"}"));
    ck_assert_ptr_null(adc.sa);
    ck_assert_str_eq(adc.token_uri, CG_VERTEX_DEFAULT_TOKEN_URI);
    ck_assert_str_eq(adc.quota_project, "proj-1");
    form = cg_vertex_adc_token_request(unit_pool, &adc, 0);
    ck_assert_str_eq(form, "grant_type=refresh_token&client_id=764.apps.googleusercontent.com"
                           "&client_secret=d-FL95Q&refresh_token=1%2f%2f0e%2bx%2fy%3d");
    ck_assert_ptr_null(ADC("{\"type\": \"authorized_user\", \"client_id\": \"c\", "
                           "\"client_secret\": \"s\", \"refresh_token\": \"r\", "
                           "\"token_uri\": \"http://127.0.0.1:9/token\"}"));
    ck_assert_str_eq(adc.token_uri, "http://127.0.0.1:9/token");
    ck_assert_ptr_null(adc.quota_project);
    /* a service account key: its token_uri, the JWT-bearer grant */
    ck_assert_ptr_null(ADC(sa_json("service_account", TEST_KEY, EMAIL, "http://127.0.0.1:9/t")));
    ck_assert_ptr_nonnull(adc.sa);
    ck_assert_str_eq(adc.token_uri, "http://127.0.0.1:9/t");
    form = cg_vertex_adc_token_request(unit_pool, &adc, apr_time_from_sec(1700000000));
    ck_assert_ptr_nonnull(strstr(form, "grant-type%3Ajwt-bearer&assertion=eyJ"));
    /* refusals name what is wrong, and never a secret */
    ck_assert_str_eq(ADC("[1]"), "the credentials file is not a JSON object");
    ck_assert_str_eq(ADC("{\"client_id\": \"c\"}"), "the credentials file has no type");
    ck_assert_ptr_nonnull(strstr(ADC("{\"type\": \"authorized_user\", \"client_id\": \"c\", "
                                     "\"refresh_token\": \"r\"}"),
                                 "client_secret"));
    ck_assert_ptr_null(adc.client_id); /* nothing half-filled on a refusal */
    ck_assert_ptr_nonnull(strstr(ADC("{\"type\": \"authorized_user\", \"client_id\": \"c\", "
                                     "\"client_secret\": \"hush\", \"refresh_token\": \"r\", "
                                     "\"token_uri\": \"file:///etc/passwd\"}"),
                                 "token_uri"));
    ck_assert_str_eq(ADC("{\"type\": \"external_account\", \"audience\": \"//iam\"}"),
                     "the external account needs audience and subject_token_type");
    ck_assert_ptr_nonnull(
        strstr(ADC("{\"type\": \"impersonated_service_account\"}"), "not supported"));
    ck_assert_str_eq(ADC("{\"type\": \"mystery\"}"), "credentials of type \"mystery\" are unknown");
    ck_assert_ptr_nonnull(strstr(ADC("{\"type\": \"authorized_user\", \"client_id\": \"c\", "
                                     "\"client_secret\": \"s\", \"refresh_token\": \"r\", "
                                     "\"quota_project_id\": \"p\\r\\nX-Evil: 1\"}"),
                                 "quota_project_id"));
    ck_assert_ptr_nonnull(ADC(sa_json("service_account", NULL, EMAIL, NULL)));
    ck_assert_ptr_null(adc.sa);
#undef ADC
}
END_TEST

START_TEST(external_accounts)
{
    cg_vertex_adc_t adc;
    const char *tok, *form;
    apr_time_t exp;

#define EXT(src)                                                                                   \
    "{\"type\": \"external_account\", \"audience\": \"//iam.googleapis.com/projects/1/locations/"  \
    "global/workloadIdentityPools/p/providers/q\", \"subject_token_type\": "                       \
    "\"urn:ietf:params:oauth:token-type:jwt\", \"token_url\": \"https://sts.googleapis.com/v1/"    \
    "token\", \"service_account_impersonation_url\": \"https://iamcredentials.googleapis.com/v1/"  \
    "projects/-/serviceAccounts/gw@p.iam.gserviceaccount.com:generateAccessToken\", "              \
    "\"credential_source\": " src "}"
#define ADC(s) cg_vertex_adc_parse(unit_pool, (s), strlen(s), &adc)
    ck_assert_ptr_null(ADC(EXT("{\"file\": \"/var/run/token\"}")));
    ck_assert_str_eq(adc.source_file, "/var/run/token");
    ck_assert_str_eq(adc.token_uri, "https://sts.googleapis.com/v1/token");
    ck_assert_ptr_nonnull(strstr(adc.impersonation_url, ":generateAccessToken"));
    ck_assert_ptr_null(cg_vertex_adc_token_request(unit_pool, &adc, 0));
    ck_assert_ptr_null(cg_vertex_subject_token(unit_pool, &adc, " eyJ.a.b\n", 9, &tok));
    ck_assert_str_eq(tok, "eyJ.a.b");
    form = cg_vertex_sts_request(unit_pool, &adc, tok);
    ck_assert_str_eq(form, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
                           "&audience=%2f%2fiam.googleapis.com%2fprojects%2f1%2flocations%2fglobal"
                           "%2fworkloadIdentityPools%2fp%2fproviders%2fq"
                           "&scope=https%3a%2f%2fwww.googleapis.com%2fauth%2fcloud-platform"
                           "&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3A"
                           "access_token&subject_token=eyJ.a.b"
                           "&subject_token_type=urn%3aietf%3aparams%3aoauth%3atoken-type%3ajwt");
    ck_assert_ptr_nonnull(cg_vertex_subject_token(unit_pool, &adc, " \n", 2, &tok));
    /* a URL source with headers and the json format */
    ck_assert_ptr_null(ADC(EXT("{\"url\": \"http://169.254.169.254/token\", \"headers\": "
                               "{\"Metadata\": \"True\"}, \"format\": {\"type\": \"json\", "
                               "\"subject_token_field_name\": \"access_token\"}}")));
    ck_assert_int_eq(adc.source_headers->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(adc.source_headers, 0, const char *), "Metadata: True");
    ck_assert_ptr_null(
        cg_vertex_subject_token(unit_pool, &adc, "{\"access_token\":\"t1\"}", 21, &tok));
    ck_assert_str_eq(tok, "t1");
    ck_assert_ptr_nonnull(cg_vertex_subject_token(unit_pool, &adc, "{\"id\":1}", 8, &tok));
    /* refusals name what is wrong */
    ck_assert_ptr_nonnull(strstr(ADC(EXT("{\"environment_id\": \"aws1\"}")), "not supported"));
    ck_assert_ptr_nonnull(
        strstr(ADC(EXT("{\"executable\": {\"command\": \"x\"}}")), "not supported"));
    ck_assert_ptr_nonnull(strstr(ADC(EXT("{}")), "a file or a url"));
    ck_assert_ptr_nonnull(
        strstr(ADC(EXT("{\"url\": \"http://x/\", \"headers\": {\"A\": \"b\\r\\nC: d\"}}")),
               "cannot be sent"));
    ck_assert_ptr_nonnull(
        strstr(ADC(EXT("{\"file\": \"/t\", \"format\": {\"type\": \"json\"}}")), "field_name"));
    ck_assert_ptr_null(adc.audience);
#undef ADC
#undef EXT
    /* generateAccessToken's answers */
#define IMP(s) cg_vertex_impersonation_parse(unit_pool, (s), strlen(s), &tok, &exp)
    ck_assert_ptr_null(
        IMP("{\"accessToken\": \"ya29.imp\", \"expireTime\": \"2026-12-01T06:00:00.5Z\"}"));
    ck_assert_str_eq(tok, "ya29.imp");
    ck_assert_int_eq(apr_time_sec(exp), 1796104800); /* 2026-12-01T06:00:00Z */
    ck_assert_str_eq(IMP("{\"error\": {\"code\": 403, \"message\": \"Permission denied\", "
                         "\"status\": \"PERMISSION_DENIED\"}}"),
                     "generateAccessToken refused: PERMISSION_DENIED: Permission denied");
    ck_assert_ptr_null(tok);
    ck_assert_ptr_nonnull(IMP("{\"accessToken\": \"a\", \"expireTime\": \"tomorrow\"}"));
    ck_assert_ptr_nonnull(
        IMP("{\"accessToken\": \"a b\", \"expireTime\": \"2026-12-01T06:00:00Z\"}"));
#undef IMP
}
END_TEST

START_TEST(metadata_urls)
{
    ck_assert_str_eq(cg_vertex_metadata_url(unit_pool, CG_VERTEX_METADATA_HOST),
                     "http://metadata.google.internal/computeMetadata/v1/instance/"
                     "service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2F"
                     "auth%2Fcloud-platform");
    ck_assert_ptr_nonnull(strstr(cg_vertex_metadata_url(unit_pool, "127.0.0.1:8080"),
                                 "http://127.0.0.1:8080/computeMetadata/"));
    ck_assert_ptr_nonnull(cg_vertex_metadata_url(unit_pool, "[::1]:80"));
    ck_assert_ptr_null(cg_vertex_metadata_url(unit_pool, ""));
    ck_assert_ptr_null(cg_vertex_metadata_url(unit_pool, NULL));
    ck_assert_ptr_null(cg_vertex_metadata_url(unit_pool, "http://evil/"));
    ck_assert_ptr_null(cg_vertex_metadata_url(unit_pool, "host/path?x"));
    ck_assert_ptr_null(cg_vertex_metadata_url(unit_pool, "a b"));
}
END_TEST

Suite *unit_suite_cg_vertex(void)
{
    Suite *s = suite_create("cg_vertex");
    TCase *tc = tcase_create("vertex");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, urls);
    tcase_add_test(tc, body_and_betas);
    tcase_add_test(tc, assertion_is_pyjwt_s);
    tcase_add_test(tc, service_account_refusals);
    tcase_add_test(tc, token_answers);
    tcase_add_test(tc, adc_files);
    tcase_add_test(tc, external_accounts);
    tcase_add_test(tc, metadata_urls);
    suite_add_tcase(s, tc);
    return s;
}
