/* Unit tests for cg_awscred: the shared files' profiles as the AWS SDKs
 * read them, the container and instance metadata JSON, STS's XML (the
 * example answer of the AssumeRoleWithWebIdentity documentation) and AWS's
 * ISO 8601 times. */
#include <string.h>

#include "unit.h"
#include "cg_awscred.h"

static int ini(const char *text, const char *profile, int config, cg_aws_creds_t *c,
               const char **why)
{
    *why = NULL;
    return cg_aws_ini_creds(unit_pool, text, strlen(text), profile, config, c, why);
}

START_TEST(credentials_file_profiles)
{
    static const char text[] = "# comment\n"
                               "[default]\n"
                               "aws_access_key_id = AKIDDEFAULT\r\n"
                               "aws_secret_access_key=secret/default+key\n"
                               "\n"
                               "[ci]\n"
                               "  ; indented comment\n"
                               "AWS_ACCESS_KEY_ID = AKIDCI\n"
                               "aws_secret_access_key = secret-ci\n"
                               "aws_session_token = token-ci==\n"
                               "s3 =\n"
                               "  max_concurrent_requests = 20\n"
                               "[profile ci]\n"
                               "aws_access_key_id = AKIDWRONG\n";
    cg_aws_creds_t c;
    const char *why;

    ck_assert_int_eq(ini(text, "default", 0, &c, &why), 1);
    ck_assert_str_eq(c.access_key_id, "AKIDDEFAULT");
    ck_assert_str_eq(c.secret_access_key, "secret/default+key");
    ck_assert_ptr_null(c.session_token);
    ck_assert(c.expires == 0);

    ck_assert_int_eq(ini(text, "ci", 0, &c, &why), 1);
    ck_assert_str_eq(c.access_key_id, "AKIDCI"); /* "[profile ci]" is not ci's in this file */
    ck_assert_str_eq(c.session_token, "token-ci==");

    ck_assert_int_eq(ini(text, "nope", 0, &c, &why), 0);
    ck_assert_ptr_nonnull(strstr(why, "no profile \"nope\""));
    ck_assert_ptr_null(c.access_key_id);
}
END_TEST

START_TEST(config_file_profiles)
{
    static const char text[] = "[default]\n"
                               "region = us-east-1\n"
                               "aws_access_key_id = AKIDCONFDEF\n"
                               "aws_secret_access_key = s1\n"
                               "[profile  dev ]\n"
                               "aws_access_key_id = AKIDDEV\n"
                               "aws_secret_access_key = s2\n"
                               "[dev]\n"
                               "aws_access_key_id = AKIDNOTDEV\n"
                               "aws_secret_access_key = s3\n"
                               "[profile sso]\n"
                               "sso_start_url = https://example.awsapps.com/start\n";
    cg_aws_creds_t c;
    const char *why;

    ck_assert_int_eq(ini(text, "default", 1, &c, &why), 1);
    ck_assert_str_eq(c.access_key_id, "AKIDCONFDEF");
    ck_assert_int_eq(ini(text, "dev", 1, &c, &why), 1);
    ck_assert_str_eq(c.access_key_id, "AKIDDEV"); /* "[dev]" is not a profile in config */
    ck_assert_str_eq(c.secret_access_key, "s2");
    ck_assert_int_eq(ini(text, "sso", 1, &c, &why), 0);
    ck_assert_ptr_nonnull(strstr(why, "has no aws_access_key_id"));
    ck_assert_ptr_null(c.access_key_id);
}
END_TEST

START_TEST(ini_refusals_and_merges)
{
    cg_aws_creds_t c;
    const char *why;

    /* a later line, and a repeated section, win */
    ck_assert_int_eq(ini("[a]\naws_access_key_id=A1\n[b]\nx=1\n[a]\naws_access_key_id=A2\n"
                         "aws_secret_access_key=S\n",
                         "a", 0, &c, &why),
                     1);
    ck_assert_str_eq(c.access_key_id, "A2");
    /* a key a header cannot carry */
    ck_assert_int_eq(ini("[a]\naws_access_key_id=A B\naws_secret_access_key=S\n", "a", 0, &c, &why),
                     0);
    ck_assert_ptr_nonnull(strstr(why, "not printable ASCII"));
    ck_assert_int_eq(
        ini("[a]\naws_access_key_id=A\naws_secret_access_key=S\xc3\xa9\n", "a", 0, &c, &why), 0);
    /* only one of the two */
    ck_assert_int_eq(ini("[a]\naws_access_key_id=A\n", "a", 0, &c, &why), 0);
    /* empty and unterminated */
    ck_assert_int_eq(ini("", "default", 0, &c, &why), 0);
    ck_assert_int_eq(ini("[default", "default", 0, &c, &why), 0);
    ck_assert_int_eq(cg_aws_ini_creds(unit_pool, NULL, 0, "default", 0, &c, &why), 0);
    /* no newline at the end */
    ck_assert_int_eq(
        ini("[default]\naws_access_key_id=A\naws_secret_access_key=S", "default", 0, &c, &why), 1);
    ck_assert_str_eq(c.secret_access_key, "S");
}
END_TEST

START_TEST(metadata_json)
{
    static const char imds[] = "{\n  \"Code\" : \"Success\",\n"
                               "  \"LastUpdated\" : \"2026-11-30T23:01:11Z\",\n"
                               "  \"Type\" : \"AWS-HMAC\",\n"
                               "  \"AccessKeyId\" : \"ASIAIMDS\",\n"
                               "  \"SecretAccessKey\" : \"imds/secret\",\n"
                               "  \"Token\" : \"imds-token==\",\n"
                               "  \"Expiration\" : \"2026-12-01T05:23:45Z\"\n}";
    static const char ecs[] =
        "{\"RoleArn\":\"arn:aws:iam::123456789012:role/task\","
        "\"AccessKeyId\":\"ASIAECS\",\"SecretAccessKey\":\"ecs-secret\","
        "\"Token\":\"ecs-token\",\"Expiration\":\"2026-12-01T05:23:45.123Z\"}";
    cg_aws_creds_t c;
    const char *why;
    apr_time_t t;

    ck_assert_int_eq(cg_aws_json_creds(unit_pool, imds, strlen(imds), &c, &why), 1);
    ck_assert_str_eq(c.access_key_id, "ASIAIMDS");
    ck_assert_str_eq(c.secret_access_key, "imds/secret");
    ck_assert_str_eq(c.session_token, "imds-token==");
    ck_assert_int_eq(cg_aws_time("2026-12-01T05:23:45Z", &t), 1);
    ck_assert(c.expires == t);
    ck_assert_int_eq(cg_aws_json_creds(unit_pool, ecs, strlen(ecs), &c, &why), 1);
    ck_assert(c.expires == t); /* the fraction does not count */
    ck_assert_str_eq(c.access_key_id, "ASIAECS");

#define REFUSED(json, text)                                                                        \
    do {                                                                                           \
        ck_assert_int_eq(cg_aws_json_creds(unit_pool, json, strlen(json), &c, &why), 0);           \
        ck_assert_msg(strstr(why, text) != NULL, "%s: %s", json, why);                             \
        ck_assert_ptr_null(c.access_key_id);                                                       \
    } while (0)
    REFUSED("{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":\"A\","
            "\"SecretAccessKey\":\"S\"}",
            "Code is AssumeRoleUnauthorizedAccess");
    REFUSED("{\"Code\":1}", "Code is not a string");
    REFUSED("{\"AccessKeyId\":\"A\"}", "no usable AccessKeyId");
    REFUSED("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":7}", "no usable AccessKeyId");
    REFUSED("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"a\\nb\"}",
            "Token is not usable");
    REFUSED("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":\"tomorrow\"}",
            "Expiration");
    REFUSED("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":null}", "Expiration");
    REFUSED("[1]", "not a JSON object");
    REFUSED("{", "not a JSON object");
    /* no Token and no Expiration: long-term keys (some container agents) */
    {
        static const char plain[] = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}";
        ck_assert_int_eq(cg_aws_json_creds(unit_pool, plain, strlen(plain), &c, &why), 1);
    }
    ck_assert_ptr_null(c.session_token);
    ck_assert(c.expires == 0);
#undef REFUSED
}
END_TEST

START_TEST(sts_answer)
{
    /* the documentation's example, shortened */
    static const char ok[] =
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <AssumeRoleWithWebIdentityResult>\n"
        "    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A"
        "</SubjectFromWebIdentityToken>\n"
        "    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>\n"
        "    <AssumedRoleUser>\n"
        "      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>\n"
        "      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>\n"
        "    </AssumedRoleUser>\n"
        "    <Credentials>\n"
        "      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE&amp;x</SessionToken>\n"
        "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
        "      <Expiration>2014-10-24T23:00:23Z</Expiration>\n"
        "      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
        "    </Credentials>\n"
        "    <SourceIdentity>SourceIdentityValue</SourceIdentity>\n"
        "    <Provider>www.amazon.com</Provider>\n"
        "  </AssumeRoleWithWebIdentityResult>\n"
        "</AssumeRoleWithWebIdentityResponse>\n";
    static const char refused[] =
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <Error>\n    <Type>Sender</Type>\n    <Code>InvalidIdentityToken</Code>\n"
        "    <Message>Couldn&apos;t retrieve verification key from your identity provider"
        "</Message>\n  </Error>\n  <RequestId>c7a7c9a4</RequestId>\n</ErrorResponse>\n";
    static const char outside[] = "<X><AccessKeyId>A</AccessKeyId><Credentials>"
                                  "<SecretAccessKey>S</SecretAccessKey><SessionToken>T"
                                  "</SessionToken><Expiration>2014-10-24T23:00:23Z</Expiration>"
                                  "</Credentials></X>";
    cg_aws_creds_t c;
    const char *why;
    apr_time_t t;

    ck_assert_int_eq(cg_aws_sts_creds(unit_pool, ok, strlen(ok), &c, &why), 1);
    ck_assert_str_eq(c.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
    ck_assert_str_eq(c.secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
    ck_assert_str_eq(c.session_token, "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE&x");
    ck_assert_int_eq(cg_aws_time("2014-10-24T23:00:23Z", &t), 1);
    ck_assert(c.expires == t);

    ck_assert_int_eq(cg_aws_sts_creds(unit_pool, refused, strlen(refused), &c, &why), 0);
    ck_assert_str_eq(why, "STS refused: InvalidIdentityToken: Couldn't retrieve verification key "
                          "from your identity provider");
    /* a field outside Credentials is not taken */
    ck_assert_int_eq(cg_aws_sts_creds(unit_pool, outside, strlen(outside), &c, &why), 0);
    ck_assert_ptr_null(c.access_key_id);
    ck_assert_int_eq(cg_aws_sts_creds(unit_pool, "<Credentials>", 13, &c, &why), 0);
    ck_assert_int_eq(cg_aws_sts_creds(unit_pool, ok, 200, &c, &why), 0); /* cut short */
    ck_assert_int_eq(cg_aws_sts_creds(unit_pool, NULL, 0, &c, &why), 0);
}
END_TEST

START_TEST(times_and_roles)
{
    apr_time_t t;

    ck_assert_int_eq(cg_aws_time("1970-01-01T00:00:00Z", &t), 1);
    ck_assert(t == 0);
    ck_assert_int_eq(cg_aws_time("2026-12-01T06:00:00Z", &t), 1);
    ck_assert(apr_time_sec(t) == 1796104800);
    ck_assert_int_eq(cg_aws_time("2026-12-01T06:00:00+00:00", &t), 1);
    ck_assert(apr_time_sec(t) == 1796104800);
    ck_assert_int_eq(cg_aws_time("2026-12-01T06:00:00.5Z", &t), 1);
    ck_assert(apr_time_sec(t) == 1796104800);
    ck_assert_int_eq(cg_aws_time("2026-12-01T06:00:00+01:00", &t), 0);
    ck_assert_int_eq(cg_aws_time("2026-12-01 06:00:00Z", &t), 0);
    ck_assert_int_eq(cg_aws_time("2026-13-01T06:00:00Z", &t), 0);
    ck_assert_int_eq(cg_aws_time("2026-12-01T24:00:00Z", &t), 0);
    ck_assert_int_eq(cg_aws_time("2026-12-01T06:00:0xZ", &t), 0);
    ck_assert_int_eq(cg_aws_time("2026-12-01T06:00:00", &t), 0);
    ck_assert_int_eq(cg_aws_time(NULL, &t), 0);

    ck_assert_str_eq(cg_aws_imds_role(unit_pool, "gateway-role\n", 13), "gateway-role");
    ck_assert_str_eq(cg_aws_imds_role(unit_pool, " r1\nr2\n", 7), "r1");
    ck_assert_ptr_null(cg_aws_imds_role(unit_pool, "\n", 1));
    ck_assert_ptr_null(cg_aws_imds_role(unit_pool, "a b", 3));
    ck_assert_ptr_null(cg_aws_imds_role(unit_pool, NULL, 0));
}
END_TEST

START_TEST(assume_role_requests)
{
    /* STS: [\w+=,.@-]{2,64} */
    ck_assert_str_eq(cg_aws_session_name(unit_pool, "ada.lovelace+gw@example.com"),
                     "ada.lovelace+gw@example.com");
    ck_assert_str_eq(cg_aws_session_name(unit_pool, "auth0|5f/7 x"), "auth0-5f-7-x");
    ck_assert_str_eq(cg_aws_session_name(unit_pool, "caf\xc3\xa9"), "caf--");
    ck_assert_int_eq(
        strlen(cg_aws_session_name(unit_pool, "0123456789012345678901234567890123456789"
                                              "01234567890123456789012345678901234567"
                                              "89")),
        64);
    ck_assert_ptr_null(cg_aws_session_name(unit_pool, "x"));
    ck_assert_ptr_null(cg_aws_session_name(unit_pool, NULL));
    ck_assert_str_eq(
        cg_aws_assume_role_form(unit_pool, "arn:aws:iam::123456789012:role/gw", "ext id/1",
                                "a@b.c"),
        "Action=AssumeRole&DurationSeconds=3600&ExternalId=ext%20id%2F1"
        "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fgw&RoleSessionName=a%40b.c"
        "&Version=2011-06-15");
    ck_assert_str_eq(cg_aws_assume_role_form(unit_pool, "arn:r", NULL, "mod_claude"),
                     "Action=AssumeRole&DurationSeconds=3600&RoleArn=arn%3Ar"
                     "&RoleSessionName=mod_claude&Version=2011-06-15");
}
END_TEST

Suite *unit_suite_cg_awscred(void)
{
    Suite *s = suite_create("cg_awscred");
    TCase *tc = tcase_create("awscred");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, credentials_file_profiles);
    tcase_add_test(tc, config_file_profiles);
    tcase_add_test(tc, ini_refusals_and_merges);
    tcase_add_test(tc, metadata_json);
    tcase_add_test(tc, sts_answer);
    tcase_add_test(tc, times_and_roles);
    tcase_add_test(tc, assume_role_requests);
    suite_add_tcase(s, tc);
    return s;
}
