/* Unit tests of the policy file's telemetry: section (cg_policy: strict
 * validation, never quoting a header value) and of the OTEL env the served
 * managed settings get when telemetry is forwarded (capture 24 reproduced
 * byte for byte, checksum included). */
#include <string.h>

#include <apr_strings.h>

#include "unit.h"
#include "cg_yaml.h"
#include "cg_policy.h"

static const char *tel_env(void *baton, const char *name)
{
    (void)baton;
    return strcmp(name, "OTEL_TOKEN") == 0 ? "s3cr3t-token-value" : NULL;
}

static const char *tel_compile(const char *text, cg_policy_t **pol)
{
    json_t *j = NULL;
    const char *err = cg_yaml_parse(unit_pool, text, strlen(text), "t.yaml", tel_env, NULL, &j);

    ck_assert_msg(err == NULL, "yaml: %s", err);
    *pol = NULL;
    err = cg_policy_compile(unit_pool, j, "t.yaml", pol);
    json_decref(j);
    return err;
}

static const cg_policy_t *tel_policy(const char *text)
{
    cg_policy_t *pol;
    const char *err = tel_compile(text, &pol);

    ck_assert_msg(err == NULL, "unexpected error: %s", err);
    return pol;
}

START_TEST(test_telemetry_section_compiled)
{
    const cg_policy_t *pol =
        tel_policy("telemetry:\n"
                   "  forward_to:\n"
                   "    - url: https://otel.example.com:4318/\n"
                   "      headers: {Authorization: \"Bearer ${OTEL_TOKEN}\", X-Scope: team-a}\n"
                   "      logs: true\n"
                   "    - url: http://127.0.0.1:4318/otlp\n"
                   "      metrics: false\n"
                   "      traces: true\n"
                   "    - {url: \"http://[::1]:9/\"}\n"
                   "  resource_attributes: {deployment.environment: prod, team: platform}\n");
    const cg_telemetry_dest_t *d;

    ck_assert_ptr_nonnull(pol->telemetry);
    ck_assert_int_eq(pol->telemetry->dests->nelts, 3);
    d = &APR_ARRAY_IDX(pol->telemetry->dests, 0, cg_telemetry_dest_t);
    ck_assert_str_eq(d->url, "https://otel.example.com:4318");
    ck_assert_str_eq(d->label, "telemetry.forward_to[0] (otel.example.com:4318)");
    ck_assert_int_eq(d->headers->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(d->headers, 0, const char *),
                     "Authorization: Bearer s3cr3t-token-value");
    ck_assert(d->metrics && d->logs && !d->traces);
    d = &APR_ARRAY_IDX(pol->telemetry->dests, 1, cg_telemetry_dest_t);
    ck_assert_str_eq(d->url, "http://127.0.0.1:4318/otlp");
    ck_assert(!d->metrics && !d->logs && d->traces);
    ck_assert_int_eq(d->headers->nelts, 0);
    d = &APR_ARRAY_IDX(pol->telemetry->dests, 2, cg_telemetry_dest_t);
    ck_assert(d->metrics && !d->logs && !d->traces); /* the reference's defaults */
    ck_assert_int_eq(pol->telemetry->resource_attributes->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(pol->telemetry->resource_attributes, 1, cg_policy_kv_t).key,
                     "team");
    /* no note: the section is implemented */
    ck_assert_int_eq(pol->notes->nelts, 0);
    /* an empty section is fine too */
    pol = tel_policy("telemetry: {}\n");
    ck_assert_int_eq(pol->telemetry->dests->nelts, 0);
}
END_TEST

START_TEST(test_telemetry_section_refused)
{
    static const char *const cases[][2] = {
        {"telemetry: []\n", "t.yaml: telemetry: Expected object, received array"},
        {"telemetry: {forward: []}\n", "t.yaml: telemetry: Unrecognized key: \"forward\""},
        {"telemetry: {forward_to: {}}\n", "telemetry.forward_to: Expected array"},
        {"telemetry: {forward_to: [{}]}\n", "telemetry.forward_to[0].url: Required"},
        {"telemetry: {forward_to: [{url: 5}]}\n",
         "telemetry.forward_to[0].url: Expected string, received number"},
        {"telemetry: {forward_to: [{url: \"ftp://x.example.com\"}]}\n",
         "telemetry.forward_to[0].url: Invalid url"},
        {"telemetry: {forward_to: [{url: \"http://otel.example.com\"}]}\n",
         "telemetry.forward_to[0].url: must use https://"},
        {"telemetry: {forward_to: [{url: \"http://127.0.0.1.example.com\"}]}\n",
         "must use https://"},
        {"telemetry: {forward_to: [{url: \"https://u:p@otel.example.com\"}]}\n",
         "credentials do not belong in the URL"},
        {"telemetry: {forward_to: [{url: \"https://otel.example.com/?k=v\"}]}\n",
         "must not have a query or fragment"},
        {"telemetry: {forward_to: [{url: \"https://169.254.169.254/\"}]}\n",
         "must not target a cloud metadata endpoint"},
        {"telemetry: {forward_to: [{url: \"https://o.example.com\", auth: {google: {}}}]}\n",
         "telemetry.forward_to[0].auth: not supported by mod_claude"},
        {"telemetry: {forward_to: [{url: \"https://o.example.com\", tls: {}}]}\n",
         "telemetry.forward_to[0]: Unrecognized key: \"tls\""},
        {"telemetry: {forward_to: [{url: \"https://o.example.com\", logs: \"yes\"}]}\n",
         "telemetry.forward_to[0].logs: Expected boolean, received string"},
        {"telemetry: {forward_to: [{url: \"https://o.example.com\", headers: [a]}]}\n",
         "telemetry.forward_to[0].headers: Expected object, received array"},
        {"telemetry: {forward_to: [{url: \"https://o.example.com\", headers: {a: 1}}]}\n",
         "telemetry.forward_to[0].headers.a: Expected string, received number"},
        {"telemetry: {forward_to: [{url: \"https://o.example.com\", headers: "
         "{Content-Type: application/json}}]}\n",
         "telemetry.forward_to[0].headers.Content-Type: this header is set by the gateway"},
        {"telemetry: {forward_to: [{url: \"https://o.example.com\", headers: {\"a b\": x}}]}\n",
         "telemetry.forward_to[0].headers.a b: not a valid header name"},
        {"telemetry: {resource_attributes: {a=b: c}}\n",
         "telemetry.resource_attributes.a=b: keys must be non-empty"},
        {"telemetry: {resource_attributes: {a: 1}}\n",
         "telemetry.resource_attributes.a: Expected string, received number"},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cg_policy_t *pol;
        const char *err = tel_compile(cases[i][0], &pol);
        ck_assert_msg(err != NULL, "accepted: %s", cases[i][0]);
        ck_assert_msg(strstr(err, cases[i][1]) != NULL, "%s: got '%s'", cases[i][0], err);
    }
}
END_TEST

/* A header value is a secret: the message names the header, never quotes it. */
START_TEST(test_telemetry_header_value_never_quoted)
{
    cg_policy_t *pol;
    const char *err = tel_compile("telemetry:\n  forward_to:\n    - url: https://o.example.com\n"
                                  "      headers: {Authorization: \"Bearer ${OTEL_TOKEN}\\r\\nX: "
                                  "y\"}\n",
                                  &pol);

    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "headers.Authorization: header values must not contain"));
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
}
END_TEST

/* The policy of capture 24 (PROTOCOL.md §6): the served document is the
 * reference's byte for byte, checksum and ETag included. */
START_TEST(test_telemetry_env_capture_24)
{
    static const char capture[] =
        "{\"uuid\":\"sha256:2cb034c585764c6de7357adfe3cca8eb7eeb469c70f1f4f54916e7b6b03e0a72\","
        "\"checksum\":\"sha256:2cb034c585764c6de7357adfe3cca8eb7eeb469c70f1f4f54916e7b6b03e0a72\","
        "\"settings\":{\"availableModels\":[\"claude-sonnet-4-5\",\"claude-haiku-4-5\","
        "\"claude-custom-1\"],\"env\":{\"CLAUDE_CODE_ENABLE_TELEMETRY\":\"1\","
        "\"OTEL_METRICS_EXPORTER\":\"otlp\",\"OTEL_LOGS_EXPORTER\":\"otlp\","
        "\"OTEL_TRACES_EXPORTER\":\"otlp\",\"OTEL_EXPORTER_OTLP_ENDPOINT\":"
        "\"http://127.0.0.1:18000\",\"OTEL_EXPORTER_OTLP_PROTOCOL\":\"http/protobuf\","
        "\"OTEL_RESOURCE_ATTRIBUTES\":\"deployment.environment=loopback-test\","
        "\"FOO_FROM_GATEWAY\":\"bar\"},\"permissions\":{\"deny\":[\"Bash(rm -rf:*)\"]}}}";
    const cg_policy_t *pol = tel_policy(
        "managed:\n"
        "  policies:\n"
        "    - match: {email_domain: example.com}\n"
        "      cli:\n"
        "        availableModels: [claude-sonnet-4-5, claude-haiku-4-5, claude-custom-1]\n"
        "        env: {FOO_FROM_GATEWAY: bar}\n"
        "        permissions: {deny: [\"Bash(rm -rf:*)\"]}\n"
        "telemetry:\n"
        "  forward_to:\n"
        "    - {url: \"http://127.0.0.1:18040\", metrics: true, logs: true, traces: true}\n"
        "  resource_attributes: {deployment.environment: loopback-test}\n");
    const cg_policy_t *served;
    const cg_settings_t *s;

    /* without a public URL there is nothing to point the client at */
    ck_assert_ptr_eq(cg_policy_with_telemetry_env(unit_pool, pol, NULL), pol);
    served = cg_policy_with_telemetry_env(unit_pool, pol, "http://127.0.0.1:18000");
    ck_assert_ptr_ne(served, pol);
    /* applied once */
    ck_assert_ptr_eq(cg_policy_with_telemetry_env(unit_pool, served, "http://x"), served);
    s = cg_policy_settings(served, unit_pool, "alice@example.com", NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s->response, capture);
    ck_assert_str_eq(s->checksum,
                     "sha256:2cb034c585764c6de7357adfe3cca8eb7eeb469c70f1f4f54916e7b6b03e0a72");
    /* the original is untouched */
    s = cg_policy_settings(pol, unit_pool, "alice@example.com", NULL);
    ck_assert_ptr_null(json_object_get(json_object_get(s->doc, "env"), "OTEL_METRICS_EXPORTER"));
}
END_TEST

START_TEST(test_telemetry_env_rules)
{
    const cg_policy_t *pol =
        tel_policy("managed:\n"
                   "  policy_mode: layered\n"
                   "  policies:\n"
                   "    - match: {groups: [eng]}\n"
                   "      cli: {env: {OTEL_METRICS_EXPORTER: none, A: \"1\"}}\n"
                   "    - match: {}\n"
                   "      cli: {permissions: {deny: [WebFetch]}}\n"
                   "telemetry:\n"
                   "  forward_to: [{url: \"https://o.example.com\"}]\n"
                   "  resource_attributes: {team: \"a b,c=d%\\u00e9\"}\n");
    const cg_policy_t *served = cg_policy_with_telemetry_env(unit_pool, pol, "https://gw.example");
    apr_array_header_t *groups = apr_array_make(unit_pool, 1, sizeof(const char *));
    const cg_settings_t *s;
    const char *key;
    json_t *env, *val;
    int n = 0;

    APR_ARRAY_PUSH(groups, const char *) = "eng";
    s = cg_policy_settings(served, unit_pool, "a@example.com", groups);
    env = json_object_get(s->doc, "env");
    /* metrics only: no logs or traces exporter; the policy's value wins in place */
    json_object_foreach(env, key, val)
    {
        static const char *const order[] = {
            "CLAUDE_CODE_ENABLE_TELEMETRY", "OTEL_METRICS_EXPORTER",
            "OTEL_EXPORTER_OTLP_ENDPOINT",  "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_RESOURCE_ATTRIBUTES",     "A"};
        ck_assert_int_lt(n, 6);
        ck_assert_str_eq(key, order[n]);
        n++;
    }
    ck_assert_int_eq(n, 6);
    ck_assert_str_eq(json_string_value(json_object_get(env, "OTEL_METRICS_EXPORTER")), "none");
    ck_assert_str_eq(json_string_value(json_object_get(env, "OTEL_RESOURCE_ATTRIBUTES")),
                     "team=a%20b%2Cc=d%25%C3%A9");
    ck_assert_str_eq(s->checksum, cg_json_checksum(unit_pool, s->doc));
    /* the base layer alone gets it too */
    s = cg_policy_settings(served, unit_pool, "b@example.com", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(s->doc, "env"),
                                                       "OTEL_EXPORTER_OTLP_ENDPOINT")),
                     "https://gw.example");
    /* no destination: nothing injected */
    pol = tel_policy("managed: {policies: [{match: {}, cli: {}}]}\ntelemetry: {forward_to: []}\n");
    ck_assert_ptr_eq(cg_policy_with_telemetry_env(unit_pool, pol, "https://gw.example"), pol);
}
END_TEST

Suite *unit_suite_cg_telemetry(void)
{
    Suite *s = suite_create("cg_telemetry");
    TCase *tc = tcase_create("policy");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, test_telemetry_section_compiled);
    tcase_add_test(tc, test_telemetry_section_refused);
    tcase_add_test(tc, test_telemetry_header_value_never_quoted);
    tcase_add_test(tc, test_telemetry_env_capture_24);
    tcase_add_test(tc, test_telemetry_env_rules);
    suite_add_tcase(s, tc);
    return s;
}
