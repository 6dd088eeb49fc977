/* Unit tests of cg_yaml (YAML into JSON with the reference's expansion rules)
 * and cg_policy (validation messages, merge rules, matchers, the canonical
 * JSON checksum, model allowlists and model resolution). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <apr_strings.h>

#include "unit.h"
#include "cg_yaml.h"
#include "cg_policy.h"

static const char *test_env(void *baton, const char *name)
{
    (void)baton;
    if (!strcmp(name, "SECRET")) {
        return "s3cr3t";
    }
    if (!strcmp(name, "PORT")) {
        return "8080";
    }
    if (!strcmp(name, "INJECT")) {
        return "x\nb: 1";
    }
    return NULL;
}

static json_t *yaml(const char *text)
{
    json_t *j = NULL;
    const char *err = cg_yaml_parse(unit_pool, text, strlen(text), "t.yaml", test_env, NULL, &j);
    ck_assert_msg(err == NULL, "unexpected error: %s", err);
    return j;
}

static const char *yaml_err(const char *text)
{
    json_t *j = NULL;
    const char *err = cg_yaml_parse(unit_pool, text, strlen(text), "t.yaml", test_env, NULL, &j);
    ck_assert_msg(err != NULL, "expected an error for %s", text);
    ck_assert_ptr_null(j);
    return err;
}

/* compile, expecting success; the policy owns the tree from here */
static const cg_policy_t *policy(const char *text)
{
    json_t *j = yaml(text);
    cg_policy_t *pol = NULL;
    const char *err = cg_policy_compile(unit_pool, j, "t.yaml", &pol);
    json_decref(j);
    ck_assert_msg(err == NULL, "unexpected error: %s", err);
    return pol;
}

static const char *policy_err(const char *text)
{
    json_t *j = yaml(text);
    cg_policy_t *pol = NULL;
    const char *err = cg_policy_compile(unit_pool, j, "t.yaml", &pol);
    json_decref(j);
    ck_assert_msg(err != NULL, "expected a policy error for:\n%s", text);
    return err;
}

static apr_array_header_t *groups(const char *g1, const char *g2)
{
    apr_array_header_t *a = apr_array_make(unit_pool, 2, sizeof(char *));
    if (g1) {
        APR_ARRAY_PUSH(a, const char *) = g1;
    }
    if (g2) {
        APR_ARRAY_PUSH(a, const char *) = g2;
    }
    return a;
}

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *r = apr_pstrdup(unit_pool, s);
    free(s);
    return r;
}

START_TEST(yaml_scalar_types)
{
    json_t *j = yaml("a: 1\nb: '1'\nc: true\nd: \"true\"\ne: ~\nf: 1.5\ng: 0x10\nh: hello\n"
                     "i: -7\nj: 1e3\nk: .5\nl: 'x: y'\nm: 12abc\n");
    ck_assert_str_eq(dump(j), "{\"a\":1,\"b\":\"1\",\"c\":true,\"d\":\"true\",\"e\":null,"
                              "\"f\":1.5,\"g\":16,\"h\":\"hello\",\"i\":-7,\"j\":1000.0,"
                              "\"k\":0.5,\"l\":\"x: y\",\"m\":\"12abc\"}");
    json_decref(j);
}
END_TEST

START_TEST(yaml_expansion)
{
    json_t *j = yaml("key: ${SECRET}\nport: ${PORT}\nquoted: \"${PORT}\"\nmix: a-${SECRET}-b\n"
                     "open: ${unterminated\n");
    ck_assert_str_eq(dump(j), "{\"key\":\"s3cr3t\",\"mix\":\"a-s3cr3t-b\",\"open\":"
                              "\"${unterminated\",\"port\":8080,\"quoted\":\"8080\"}");
    json_decref(j);
    ck_assert_str_eq(yaml_err("a: 1\nb: ${NOPE}\n"),
                     "t.yaml:2:4: undefined env var in config: NOPE");
    /* in flow context, and in comments (never looked up), as the reference reads them */
    j = yaml("list: [${SECRET}, ${PORT}]\n# old: ${NOPE}\nmap: {k: ${SECRET}} # ${NOPE}\n");
    ck_assert_str_eq(dump(j), "{\"list\":[\"s3cr3t\",8080],\"map\":{\"k\":\"s3cr3t\"}}");
    json_decref(j);
    /* a value never changes the structure */
    j = yaml("a: ${INJECT}\n");
    ck_assert_str_eq(dump(j), "{\"a\":\"x\\nb: 1\"}");
    json_decref(j);
    ck_assert_ptr_nonnull(strstr(yaml_err("a: ${file:relative/x}\n"), "must be absolute"));
    ck_assert_ptr_nonnull(strstr(yaml_err("a: ${file:/nonexistent/x}\n"), "/nonexistent/x"));
}
END_TEST

START_TEST(yaml_file_expansion)
{
    char path[] = "/tmp/cg_yaml_XXXXXX";
    int fd = mkstemp(path);
    json_t *j;
    const char *text;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "  from-file \n", 13), 13);
    close(fd);
    text = apr_psprintf(unit_pool, "pw: ${file:%s}\n", path);
    j = yaml(text);
    unlink(path);
    ck_assert_str_eq(json_string_value(json_object_get(j, "pw")), "from-file");
    json_decref(j);
}
END_TEST

START_TEST(yaml_refusals)
{
    ck_assert_str_eq(yaml_err("a: 1\na: 2\n"), "t.yaml:2:1: duplicate key 'a'");
    ck_assert_ptr_nonnull(strstr(yaml_err("a: 1\n---\nb: 2\n"), "only one YAML document"));
    ck_assert_ptr_nonnull(strstr(yaml_err("a: !custom x\n"), "unsupported tag"));
    ck_assert_ptr_nonnull(strstr(yaml_err("a: [1, 2\n"), "t.yaml:"));
    ck_assert_ptr_nonnull(strstr(yaml_err("? [a]\n: 1\n"), "mapping key must be a scalar"));
    ck_assert_ptr_nonnull(strstr(yaml_err("a: *nope\n"), "t.yaml:1:4"));
    ck_assert_ptr_nonnull(strstr(yaml_err("a: !!int abc\n"), "not a valid"));
}
END_TEST

START_TEST(yaml_aliases_bounded)
{
    json_t *j = yaml("base: &b {x: 1}\nuse: *b\n");
    ck_assert_str_eq(dump(j), "{\"base\":{\"x\":1},\"use\":{\"x\":1}}");
    json_decref(j);
    /* each level multiplies by 10: 10^9 nodes when expanded */
    ck_assert_ptr_nonnull(strstr(yaml_err("a: &a [x,x,x,x,x,x,x,x,x,x]\n"
                                          "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                          "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                                          "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                                          "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                                          "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                                          "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"),
                                 "too many nodes"));
}
END_TEST

START_TEST(yaml_empty_document)
{
    json_t *j = yaml("");
    ck_assert(json_is_null(j));
    json_decref(j);
}
END_TEST

START_TEST(policy_validation_messages)
{
    ck_assert_str_eq(policy_err("bogus: 1\n"), "t.yaml: bogus: Unrecognized key: \"bogus\"");
    ck_assert_ptr_nonnull(strstr(policy_err("dev: {}\n"), "`dev:` was removed"));
    ck_assert_str_eq(policy_err("managed:\n  policies:\n    - match: {groups: []}\n"),
                     "t.yaml: managed.policies[0].match.groups: must contain at least 1 element");
    ck_assert_str_eq(policy_err("managed:\n  policies:\n    - match: {groups: [a, '']}\n"),
                     "t.yaml: managed.policies[0].match.groups[1]: must not be empty");
    ck_assert_ptr_nonnull(
        strstr(policy_err("managed:\n  policies:\n    - match: {email_domain: 'a b.com'}\n"),
               "managed.policies[0].match.email_domain: email_domain must be a bare domain"));
    ck_assert_ptr_nonnull(
        strstr(policy_err("managed:\n  policies:\n    - match: {email_domain: '@'}\n"),
               "must not be empty"));
    ck_assert_str_eq(policy_err("managed:\n  policies:\n    - match: {group: [a]}\n"),
                     "t.yaml: managed.policies[0].match: Unrecognized key: \"group\"");
    ck_assert_str_eq(policy_err("managed:\n  policy_mode: random\n"),
                     "t.yaml: managed.policy_mode: Invalid enum value. Expected 'first_match' "
                     "| 'layered'");
    ck_assert_str_eq(policy_err("managed:\n  policies:\n    - cli: {mcpServers: {}}\n"),
                     "t.yaml: managed.policies[0].cli.mcpServers: mcpServers cannot be pushed "
                     "through managed settings; use managedMcpServers or allowedMcpServers");
    ck_assert_str_eq(policy_err("managed:\n  policies:\n    - cli: {availableModel: [x], "
                                "permisions: {}}\n"),
                     "t.yaml: managed.policies[0].cli: Unrecognized key(s) in managed "
                     "settings: \"availableModel\", \"permisions\"");
    ck_assert_str_eq(policy_err("managed:\n  policies:\n    - cli: {availableModels: opus}\n"),
                     "t.yaml: managed.policies[0].cli.availableModels: Expected array, "
                     "received string");
    ck_assert_str_eq(policy_err("managed:\n  policies:\n    - cli: {env: {A: 1}}\n"),
                     "t.yaml: managed.policies[0].cli.env.A: Expected string, received number");
    ck_assert_ptr_nonnull(
        strstr(policy_err("managed:\n  policies:\n    - cli: {}\n      code: {}\n"),
               "give one of cli, settings or code"));
    ck_assert_str_eq(policy_err("upstreams:\n  - provider: anthropic\n  - provider: anthropic\n"),
                     "t.yaml: upstreams[1]: duplicate upstream name 'anthropic'");
    ck_assert_ptr_nonnull(strstr(policy_err("upstreams:\n  - provider: openai\n"),
                                 "upstreams[0].provider: Invalid discriminator value"));
    ck_assert_str_eq(
        policy_err("upstreams:\n  - {provider: bedrock, name: b1, region: us-east-1}\nmodels:\n"
                   "  - {id: m, upstream_model: {b2: x}}\n"),
        "t.yaml: models[0].upstream_model.b2: references unknown upstream 'b2'");
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: anthropicAws, region: us-west-2}\n"),
                     "t.yaml: upstreams[0].workspace_id: Required");
    /* Anthropic workload identity federation: the three together, alone */
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: anthropic, auth: {federation_rule_id: "
                                "fdrl_1, identity_token_file: /t}}\n"),
                     "t.yaml: upstreams[0].auth.organization_id: Required");
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: anthropic, auth: {federation_rule_id: "
                                "fdrl_1, organization_id: o, identity_token_file: /t, api_key: "
                                "k}}\n"),
                     "t.yaml: upstreams[0].auth: give api_key, oauth_token or "
                     "federation_rule_id, only one");
    ck_assert_str_eq(
        APR_ARRAY_IDX(policy("upstreams:\n  - {provider: anthropic, auth: {federation_rule_id: "
                             "fdrl_1, organization_id: o, identity_token_file: /t, workspace_id: "
                             "default}}\n")
                          ->upstreams,
                      0, cg_upstream_decl_t)
            .wif_workspace,
        "default");
    /* assume_role: the reference's schema, strictly */
    {
        const cg_upstream_decl_t *u = &APR_ARRAY_IDX(
            policy("upstreams:\n  - {provider: bedrock, region: us-east-1, assume_role: "
                   "{role_arn: 'arn:aws:iam::1:role/r', external_id: x, session_name: email}}\n")
                ->upstreams,
            0, cg_upstream_decl_t);
        ck_assert_str_eq(u->role_arn, "arn:aws:iam::1:role/r");
        ck_assert_str_eq(u->role_external_id, "x");
        ck_assert_str_eq(u->role_session, "email");
    }
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: bedrock, region: us-east-1, "
                                "assume_role: {external_id: x}}\n"),
                     "t.yaml: upstreams[0].assume_role.role_arn: Required");
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: bedrock, region: us-east-1, "
                                "assume_role: {role_arn: 'arn:r', session_name: name}}\n"),
                     "t.yaml: upstreams[0].assume_role.session_name: Invalid enum value. "
                     "Expected 'email' | 'sub'");
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: bedrock, region: us-east-1, "
                                "assume_role: {role_arn: 'arn:r', duration: 900}}\n"),
                     "t.yaml: upstreams[0].assume_role: Unrecognized key: \"duration\"");
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: bedrock, region: us-east-1, "
                                "assume_role: {role_arn: 'arn:r'}, auth: {aws_bearer_token: t}}\n"),
                     "t.yaml: upstreams[0].assume_role: a role is assumed with AWS keys, not "
                     "with aws_bearer_token");
    /* Foundry's Entra sign-in: a boolean, Foundry's only, not with a key */
    ck_assert_int_eq(APR_ARRAY_IDX(policy("upstreams:\n  - {provider: foundry, resource: r, auth: "
                                          "{use_azure_ad: true}}\n")
                                       ->upstreams,
                                   0, cg_upstream_decl_t)
                         .use_azure_ad,
                     1);
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: foundry, resource: r, auth: "
                                "{use_azure_ad: 'yes'}}\n"),
                     "t.yaml: upstreams[0].auth.use_azure_ad: Expected boolean, received string");
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: anthropic, auth: {use_azure_ad: "
                                "true}}\n"),
                     "t.yaml: upstreams[0].auth.use_azure_ad: only foundry upstreams take it");
    ck_assert_str_eq(policy_err("upstreams:\n  - {provider: foundry, resource: r, auth: "
                                "{use_azure_ad: true, api_key: k}}\n"),
                     "t.yaml: upstreams[0].auth: give api_key or use_azure_ad, not both");
    ck_assert_str_eq(policy_err("models:\n  - {id: m}\n"), "t.yaml: models[0].upstream_model: "
                                                           "Required");
    ck_assert_str_eq(policy_err("auto_include_builtin_models: yes\n"),
                     "t.yaml: auto_include_builtin_models: Expected boolean, received string");
    ck_assert_ptr_nonnull(strstr(policy_err("pricing: {multiplier: 0}\n"), "pricing.multiplier"));
    ck_assert_str_eq(
        policy_err("pricing:\n  overrides:\n    - {upstream: nope, model: m, input: 1, "
                   "output: 1, cache_read: 1, cache_write: 1}\n"),
        "t.yaml: pricing.overrides[0].upstream: references unknown upstream 'nope'");
    ck_assert_ptr_nonnull(strstr(policy_err("- a\n- b\n"), "must be a mapping"));
}
END_TEST

START_TEST(policy_notes_for_other_sections)
{
    const cg_policy_t *pol = policy("listen: {port: 8080}\ncri: {enabled: false}\n");
    ck_assert_int_eq(pol->notes->nelts, 2);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(pol->notes, 0, const char *), "listen"));
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(pol->notes, 1, const char *), "not implemented"));
    ck_assert_int_eq(pol->configured, 0);
    ck_assert_ptr_null(cg_policy_settings(pol, unit_pool, "a@b.c", groups("x", NULL)));
}
END_TEST

static const char *const merge_yaml =
    "managed:\n"
    "  policies:\n"
    "    - match: {groups: [contractors]}\n"
    "      cli:\n"
    "        availableModels: [claude-haiku-4-5]\n"
    "        permissions: {allow: [Read], deny: [WebFetch, 'Read(./.env)']}\n"
    "        env: {A: policy, C: c}\n"
    "        hooks: {PostToolUse: [{matcher: Bash}]}\n"
    "        deniedMcpServers: [{serverName: x}]\n"
    "    - match: {email_domain: '@Example.com'}\n"
    "      settings: {availableModels: [opus, sonnet]}\n"
    "    - match: {groups: [eng], email_domain: corp.io}\n"
    "      code: {model: claude-sonnet-4-6}\n"
    "    - match: {}\n"
    "      cli:\n"
    "        availableModels: [claude-sonnet-4-6]\n"
    "        permissions: {allow: [Grep], deny: ['Read(./.env)'], defaultMode: plan}\n"
    "        env: {A: base, B: b}\n"
    "        hooks: {PostToolUse: [{matcher: Edit}], Stop: [{matcher: x}]}\n"
    "        deniedMcpServers: [{serverName: y}]\n";

START_TEST(policy_first_match_merges_onto_base)
{
    const cg_policy_t *pol = policy(merge_yaml);
    const cg_settings_t *s =
        cg_policy_settings(pol, unit_pool, "c@else.org", groups("contractors", NULL));

    ck_assert_ptr_nonnull(s);
    /* allow-lists replaced, deny-lists and hooks unioned, env merged */
    ck_assert_str_eq(dump(s->doc),
                     "{\"availableModels\":[\"claude-haiku-4-5\"],\"deniedMcpServers\":"
                     "[{\"serverName\":\"y\"},{\"serverName\":\"x\"}],\"env\":{\"A\":\"policy\","
                     "\"B\":\"b\",\"C\":\"c\"},\"hooks\":{\"PostToolUse\":[{\"matcher\":\"Edit\"},"
                     "{\"matcher\":\"Bash\"}],\"Stop\":[{\"matcher\":\"x\"}]},\"permissions\":{"
                     "\"allow\":[\"Read\"],\"defaultMode\":\"plan\",\"deny\":[\"Read(./.env)\","
                     "\"WebFetch\"]}}");
    ck_assert_ptr_nonnull(strstr(s->response, "\"settings\":{\"availableModels\""));
    ck_assert_ptr_nonnull(strstr(s->response, s->checksum));

    /* domain match is case-insensitive and takes the text after the last @ */
    s = cg_policy_settings(pol, unit_pool, "odd@name@EXAMPLE.COM", NULL);
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(s->doc, "availableModels"), 0)), "opus");
    /* groups and domain together are an AND */
    s = cg_policy_settings(pol, unit_pool, "a@corp.io", groups("ops", NULL));
    ck_assert_ptr_null(json_object_get(s->doc, "model"));
    s = cg_policy_settings(pol, unit_pool, "a@corp.io", groups("ops", "eng"));
    ck_assert_str_eq(json_string_value(json_object_get(s->doc, "model")), "claude-sonnet-4-6");
    /* groups are case-sensitive: falls to the catch-all */
    s = cg_policy_settings(pol, unit_pool, NULL, groups("Contractors", NULL));
    ck_assert_str_eq(dump(json_object_get(s->doc, "availableModels")), "[\"claude-sonnet-4-6\"]");
}
END_TEST

START_TEST(policy_no_match_and_layered)
{
    const cg_policy_t *pol = policy("managed:\n  policies:\n    - match: {groups: [a]}\n"
                                    "      cli: {env: {X: '1'}}\n");
    const cg_settings_t *s;

    ck_assert_int_eq(pol->configured, 1);
    ck_assert_ptr_null(cg_policy_settings(pol, unit_pool, "x@y.z", groups("b", NULL)));
    ck_assert_ptr_nonnull(cg_policy_settings(pol, unit_pool, "x@y.z", groups("b", "a")));

    pol = policy(
        "managed:\n  policy_mode: layered\n  policies:\n"
        "    - match: {groups: [a]}\n      cli: {env: {X: a}, permissions: {deny: [A]}}\n"
        "    - match: {groups: [b]}\n      cli: {env: {X: b, Y: b}, permissions: {deny: [B]}}\n"
        "    - match: {}\n      cli: {env: {Z: base}}\n");
    s = cg_policy_settings(pol, unit_pool, NULL, groups("a", "b"));
    /* earlier rules win, as in first_match; deny-lists union across layers */
    ck_assert_str_eq(dump(s->doc), "{\"env\":{\"X\":\"a\",\"Y\":\"b\",\"Z\":\"base\"},"
                                   "\"permissions\":{\"deny\":[\"B\",\"A\"]}}");
    s = cg_policy_settings(pol, unit_pool, NULL, groups("b", NULL));
    ck_assert_str_eq(dump(s->doc), "{\"env\":{\"X\":\"b\",\"Y\":\"b\",\"Z\":\"base\"},"
                                   "\"permissions\":{\"deny\":[\"B\"]}}");
}
END_TEST

START_TEST(policy_checksum_matches_reference_capture)
{
    /* captures/24_managed_settings.txt: the reference's settings and checksum */
    const char *doc =
        "{\"availableModels\":[\"claude-sonnet-4-5\",\"claude-haiku-4-5\",\"claude-custom-1\"],"
        "\"env\":{\"CLAUDE_CODE_ENABLE_TELEMETRY\":\"1\",\"OTEL_METRICS_EXPORTER\":\"otlp\","
        "\"OTEL_LOGS_EXPORTER\":\"otlp\",\"OTEL_TRACES_EXPORTER\":\"otlp\","
        "\"OTEL_EXPORTER_OTLP_ENDPOINT\":\"http://127.0.0.1:18000\","
        "\"OTEL_EXPORTER_OTLP_PROTOCOL\":\"http/protobuf\","
        "\"OTEL_RESOURCE_ATTRIBUTES\":\"deployment.environment=loopback-test\","
        "\"FOO_FROM_GATEWAY\":\"bar\"},\"permissions\":{\"deny\":[\"Bash(rm -rf:*)\"]}}";
    json_t *j = json_loads(doc, 0, NULL);

    ck_assert_str_eq(cg_json_checksum(unit_pool, j),
                     "sha256:2cb034c585764c6de7357adfe3cca8eb7eeb469c70f1f4f54916e7b6b03e0a72");
    json_decref(j);
}
END_TEST

START_TEST(canonical_json_like_javascript)
{
    json_t *j =
        json_loads("{\"b\":[1,2.5,\"\\u00e9\\n\\u0001\"],\"a\":{\"y\":true,\"x\":null}}", 0, NULL);
    ck_assert_str_eq(cg_json_canonical(unit_pool, j),
                     "{\"a\":{\"x\":null,\"y\":true},\"b\":[1,2.5,\"\xc3\xa9\\n\\u0001\"]}");
    ck_assert_str_eq(cg_json_checksum(unit_pool, j),
                     "sha256:7741cda6201a9af75a17f859c5790c0fe5f6577b3e05a861a3008fccc7b47f83");
    json_decref(j);
    /* Number.prototype.toString layouts */
    j = json_pack("[f,f,f,f,f,f,f,f]", 1.0, 0.1, 1e21, 1.5e-7, 0.000001, 123456789012.5, -2.25,
                  1e300);
    ck_assert_str_eq(cg_json_canonical(unit_pool, j),
                     "[1,0.1,1e+21,1.5e-7,0.000001,123456789012.5,-2.25,1e+300]");
    json_decref(j);
}
END_TEST

static const cg_settings_t *allow(const char *list, const char *match)
{
    const char *text =
        apr_psprintf(unit_pool, "managed:\n  policies:\n    - cli: {availableModels: %s%s}\n", list,
                     match ? apr_pstrcat(unit_pool, ", availableModelsMatch: ", match, NULL) : "");
    return cg_policy_settings(policy(text), unit_pool, NULL, NULL);
}

START_TEST(model_allowlist)
{
    const cg_settings_t *s = allow("[opus, claude-sonnet-4-5, haiku-4]", NULL);

    ck_assert(cg_policy_model_allowed(NULL, "anything"));
    ck_assert(cg_policy_model_allowed(s, "claude-opus-4-7"));
    ck_assert(cg_policy_model_allowed(s, "claude-opus-4-1-20250805"));
    ck_assert(cg_policy_model_allowed(s, "claude-sonnet-4-5"));
    ck_assert(cg_policy_model_allowed(s, "claude-sonnet-4-5-20250929"));
    ck_assert(cg_policy_model_allowed(s, "claude-sonnet-4-5[1m]"));
    ck_assert(cg_policy_model_allowed(s, "CLAUDE-SONNET-4-5"));
    ck_assert(cg_policy_model_allowed(s, "claude-haiku-4-5"));
    ck_assert(!cg_policy_model_allowed(s, "claude-sonnet-4-6"));
    ck_assert(!cg_policy_model_allowed(s, "claude-sonnet-4-5[1m][1m]"));
    ck_assert(!cg_policy_model_allowed(s, "claude-haiku-5-5"));
    ck_assert(!cg_policy_model_allowed(s, "gpt-4"));

    /* a version prefix allows what extends it; exact keeps dated/-fast only */
    s = allow("[claude-opus-5]", NULL);
    ck_assert(cg_policy_model_allowed(s, "claude-opus-5-5"));
    s = allow("[claude-opus-5]", "exact");
    ck_assert(cg_policy_model_allowed(s, "claude-opus-5"));
    ck_assert(cg_policy_model_allowed(s, "claude-opus-5-fast"));
    ck_assert(cg_policy_model_allowed(s, "claude-opus-5-20260101"));
    ck_assert(!cg_policy_model_allowed(s, "claude-opus-5-5"));
    s = allow("[claude-sonnet-4-5-20250929]", "exact");
    ck_assert(cg_policy_model_allowed(s, "claude-sonnet-4-5"));

    /* an empty list allows nothing; release-dependent aliases are ignored */
    s = allow("[]", NULL);
    ck_assert(!cg_policy_model_allowed(s, "claude-sonnet-4-5"));
    s = allow("[default, best]", NULL);
    ck_assert(!cg_policy_model_allowed(s, "claude-opus-4-7"));
}
END_TEST

/* Entries as compiled from a policy (lower case) and as a service key's own
 * list carries them (as stored), against ids in every shape a client sends. */
static const char *const allow_entries[] = {"opus",
                                            "sonnet",
                                            "haiku",
                                            "fable",
                                            "Opus",
                                            "claude-opus-4",
                                            "opus-4",
                                            "opus-4-1",
                                            "claude-opus-4-7",
                                            "claude-Opus-4-7",
                                            "claude-sonnet-4-5-20250929",
                                            "claude-opus-5",
                                            "claude-3-5",
                                            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                                            "claude-haiku-4-5@20251001",
                                            "anthropic/claude-x",
                                            "claude-custom",
                                            "custom",
                                            "best",
                                            "default",
                                            "opusplan",
                                            "",
                                            "claude-sonnet-4-5[1m]",
                                            "x",
                                            "sonnet-4-5",
                                            "4-5",
                                            "claude-",
                                            "claude",
                                            "-",
                                            "claude-opus-",
                                            "claude-opus-4-7-aaaa",
                                            "foo-bar",
                                            "claude-foo"};

static const char *const allow_models[] = {"claude-opus-4-7",
                                           "CLAUDE-OPUS-4-7",
                                           "Claude-Opus-4-7[1m]",
                                           "claude-opus-4-7[1M]",
                                           "claude-opus-4-7[1m][1m]",
                                           "claude-opus-4-1-20250805",
                                           "claude-opus-4-20250514",
                                           "claude-opus-4",
                                           "claude-opus-4-0",
                                           "claude-opus-5",
                                           "claude-opus-5-5",
                                           "claude-opus-5-fast",
                                           "claude-opus-5-20260101",
                                           "claude-opus-5-20260101-v1",
                                           "claude-opus-5@20260101",
                                           "claude-opus-5-2026010",
                                           "claude-sonnet-4-5",
                                           "claude-sonnet-4-5-20250929",
                                           "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                                           "claude-sonnet-4-5@20250929",
                                           "claude-haiku-4-5",
                                           "claude-3-5-haiku",
                                           "claude-3-7-sonnet-latest",
                                           "claude-custom-1",
                                           "Claude-Custom-2",
                                           "my-claude-custom-3",
                                           "claude-foo-bar",
                                           "foo-bar",
                                           "claude-",
                                           "claude",
                                           "",
                                           "[1m]",
                                           "gpt-4",
                                           "anthropic/claude-x",
                                           "anthropic/claude-x-1",
                                           "claude-9-9",
                                           "opus",
                                           "sonnet",
                                           "SONNET",
                                           "claude-sonnet-4-5-fast",
                                           "claude-opus-4-7-aaaa"};

/* one '0' or '1' per model, then the same ids padded to 255..260 bytes
 * (either side of the 256 bytes the catalogue and a stack copy hold) */
static const char *allow_row(const char *entry, int exact)
{
    cg_settings_t s = {0};
    char *row = apr_pcalloc(unit_pool, 64 + 6 * 4);
    const char *pads[] = {"claude-opus-4-7-", "claude-opus-", "claude-sonnet-4-5-20250929-",
                          "CLAUDE-"};
    char id[300];
    size_t i, n = 0, k;

    s.available_models = apr_array_make(unit_pool, 1, sizeof(const char *));
    *(const char **)apr_array_push(s.available_models) = entry;
    s.match_exact = exact;
    for (i = 0; i < sizeof(allow_models) / sizeof(allow_models[0]); i++) {
        row[n++] = cg_policy_model_allowed(&s, allow_models[i]) ? '1' : '0';
    }
    for (k = 0; k < 4; k++) {
        row[n++] = ' ';
        for (i = 255; i <= 260; i++) {
            /* i bytes; from 257 on the last four are a "[1m]" */
            size_t plen = strlen(pads[k]), body = i > 256 ? i - 4 : i;

            memcpy(id, pads[k], plen);
            memset(id + plen, 'z', body - plen);
            strcpy(id + body, i > 256 ? "[1m]" : "");
            ck_assert_uint_eq(strlen(id), i);
            row[n++] = cg_policy_model_allowed(&s, id) ? '1' : '0';
        }
    }
    return row;
}

/* What every entry allows, captured from the implementation that made a
 * pool per call: the rewrite must answer the same, bit for bit. */
START_TEST(model_allowlist_pinned)
{
    static const struct {
        const char *entry, *plain, *exact;
    } want[] = {
        {"opus", "11111111111111110000000000000000000010001 111111 111111 000000 000000",
         "11111111111111110000000000000000000010001 111111 111111 000000 000000"},
        {"sonnet", "00000000000000001111001000000000000001110 000000 000000 111111 000000",
         "00000000000000001111001000000000000001110 000000 000000 111111 000000"},
        {"haiku", "00000000000000000000110000000000000000000 000000 000000 000000 000000",
         "00000000000000000000110000000000000000000 000000 000000 000000 000000"},
        {"fable", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"Opus", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"claude-opus-4", "11111111100000000000000000000000000000001 111111 000000 000000 000000",
         "00000011100000000000000000000000000000000 000000 000000 000000 000000"},
        {"opus-4", "11111111100000000000000000000000000000001 111111 000000 000000 000000",
         "00000011000000000000000000000000000000000 000000 000000 000000 000000"},
        {"opus-4-1", "00000100000000000000000000000000000000000 000000 000000 000000 000000",
         "00000100000000000000000000000000000000000 000000 000000 000000 000000"},
        {"claude-opus-4-7", "11110000000000000000000000000000000000001 111111 000000 000000 000000",
         "11110000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"claude-Opus-4-7", "11110000000000000000000000000000000000000 000000 000000 000000 000000",
         "11110000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"claude-sonnet-4-5-20250929",
         "00000000000000001111000000000000000000000 000000 000000 111111 000000",
         "00000000000000001111000000000000000000000 000000 000000 000000 000000"},
        {"claude-opus-5", "00000000011111110000000000000000000000000 000000 000000 000000 000000",
         "00000000010111100000000000000000000000000 000000 000000 000000 000000"},
        {"claude-3-5", "00000000000000000000010000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"us.anthropic.claude-haiku-4-5-20251001-v1:0",
         "00000000000000000000100000000000000000000 000000 000000 000000 000000",
         "00000000000000000000100000000000000000000 000000 000000 000000 000000"},
        {"claude-haiku-4-5@20251001",
         "00000000000000000000100000000000000000000 000000 000000 000000 000000",
         "00000000000000000000100000000000000000000 000000 000000 000000 000000"},
        {"anthropic/claude-x",
         "00000000000000000000000000000000011000000 000000 000000 000000 000000",
         "00000000000000000000000000000000010000000 000000 000000 000000 000000"},
        {"claude-custom", "00000000000000000000000110000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"custom", "00000000000000000000000111000000000000000 000000 000000 000000 000000",
         "00000000000000000000000111000000000000000 000000 000000 000000 000000"},
        {"best", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"default", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"opusplan", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"claude-sonnet-4-5[1m]",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"x", "00000000000000000000000000000000011000000 000000 000000 000000 000000",
         "00000000000000000000000000000000011000000 000000 000000 000000 000000"},
        {"sonnet-4-5", "00000000000000001111000000000000000000010 000000 000000 111111 000000",
         "00000000000000001111000000000000000000010 000000 000000 111111 000000"},
        {"4-5", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"claude-", "00000000000000000000000000001000000000000 000000 000000 000000 000000",
         "00000000000000000000000000001000000000000 000000 000000 000000 000000"},
        {"claude", "00000000000000000000000000000100000000000 000000 000000 000000 000000",
         "00000000000000000000000000000100000000000 000000 000000 000000 000000"},
        {"-", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"claude-opus-", "00000000000000000000000000000000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
        {"claude-opus-4-7-aaaa",
         "00000000000000000000000000000000000000001 000000 000000 000000 000000",
         "00000000000000000000000000000000000000001 000000 000000 000000 000000"},
        {"foo-bar", "00000000000000000000000000110000000000000 000000 000000 000000 000000",
         "00000000000000000000000000110000000000000 000000 000000 000000 000000"},
        {"claude-foo", "00000000000000000000000000100000000000000 000000 000000 000000 000000",
         "00000000000000000000000000000000000000000 000000 000000 000000 000000"},
    };
    const size_t n = sizeof(want) / sizeof(want[0]);
    char id[301];
    cg_settings_t s = {0};
    size_t i;

    ck_assert_uint_eq(n, sizeof(allow_entries) / sizeof(allow_entries[0]));
    for (i = 0; i < n; i++) {
        ck_assert_str_eq(want[i].entry, allow_entries[i]);
        ck_assert_str_eq(allow_row(want[i].entry, 0), want[i].plain);
        ck_assert_str_eq(allow_row(want[i].entry, 1), want[i].exact);
    }
    /* a long entry allows its own long id, in any case, with "[1m]" */
    memset(id, 'q', 300);
    id[300] = '\0';
    memcpy(id, "claude-", 7);
    s.available_models = apr_array_make(unit_pool, 1, sizeof(const char *));
    *(const char **)apr_array_push(s.available_models) = apr_pstrdup(unit_pool, id);
    ck_assert(cg_policy_model_allowed(&s, id));
    memcpy(id, "CLAUDE-Q", 8);
    ck_assert(cg_policy_model_allowed(&s, id));
    ck_assert(cg_policy_model_allowed(&s, apr_pstrcat(unit_pool, id, "[1M]", NULL)));
    ck_assert(!cg_policy_model_allowed(&s, apr_pstrcat(unit_pool, id, "[1m][1m]", NULL)));
    ck_assert(cg_policy_model_allowed(&s, apr_pstrcat(unit_pool, id, "-fast", NULL)));
    ck_assert(!cg_policy_model_allowed(&s, id + 1));
    s.match_exact = 1;
    ck_assert(cg_policy_model_allowed(&s, apr_pstrcat(unit_pool, id, "-20250101", NULL)));
    ck_assert(!cg_policy_model_allowed(&s, apr_pstrcat(unit_pool, id, "-1", NULL)));
    /* a long family alias: the first word after "claude-" */
    id[7] = 'q';
    *(const char **)apr_array_push(s.available_models) = apr_pstrdup(unit_pool, id + 7);
    ck_assert(cg_policy_model_allowed(&s, apr_pstrcat(unit_pool, "x.claude-", id + 7, NULL)));
    /* no list allows anything; several entries allow what any one does */
    s.available_models = NULL;
    ck_assert(cg_policy_model_allowed(&s, ""));
    s.available_models = apr_array_make(unit_pool, 2, sizeof(const char *));
    *(const char **)apr_array_push(s.available_models) = "haiku";
    *(const char **)apr_array_push(s.available_models) = "claude-opus-5";
    ck_assert(cg_policy_model_allowed(&s, "claude-haiku-4-5"));
    ck_assert(cg_policy_model_allowed(&s, "Claude-Opus-5-20260101[1m]"));
    ck_assert(!cg_policy_model_allowed(&s, "claude-opus-5-5"));
    ck_assert(!cg_policy_model_allowed(&s, "claude-sonnet-4-5"));
}
END_TEST

START_TEST(model_resolution)
{
    const cg_policy_t *pol = policy("upstreams:\n  - {provider: anthropic, name: direct}\n"
                                    "  - {provider: bedrock, name: bed, region: us-east-1}\n"
                                    "models:\n  - {id: claude-custom-1, label: Custom One, "
                                    "description: routed, upstream_model: {bed: arn:aws:x}}\n"
                                    "  - {id: claude-opus-4-8, upstream_model: {bed: eu.opus}}\n");

    ck_assert_str_eq(cg_policy_upstream_model(NULL, "claude-sonnet-4-5", "anthropic", "anthropic"),
                     "claude-sonnet-4-5-20250929");
    ck_assert_str_eq(cg_policy_upstream_model(pol, "claude-sonnet-4-5", "bed", "bedrock"),
                     "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
    ck_assert_str_eq(cg_policy_upstream_model(pol, "claude-custom-1", "bed", "bedrock"),
                     "arn:aws:x");
    ck_assert_ptr_null(cg_policy_upstream_model(pol, "claude-custom-1", "direct", "anthropic"));
    /* a built-in id with a row: the row for mapped upstreams, the default elsewhere */
    ck_assert_str_eq(cg_policy_upstream_model(pol, "claude-opus-4-8", "bed", "bedrock"), "eu.opus");
    ck_assert_str_eq(cg_policy_upstream_model(pol, "claude-opus-4-8", "direct", "anthropic"),
                     "claude-opus-4-8");
    ck_assert_str_eq(cg_policy_upstream_model(pol, "some-future-model", "direct", "anthropic"),
                     "some-future-model");
    /* case and one "[1m]" do not change the mapping; an unknown id goes up as sent */
    ck_assert_str_eq(cg_policy_upstream_model(pol, "CLAUDE-Sonnet-4-5[1M]", "bed", "bedrock"),
                     "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
    ck_assert_str_eq(cg_policy_upstream_model(pol, "Claude-Custom-1[1m]", "bed", "bedrock"),
                     "arn:aws:x");
    ck_assert_ptr_null(cg_policy_upstream_model(pol, "claude-custom-1[1m]", "direct", "anthropic"));
    ck_assert_str_eq(cg_policy_upstream_model(pol, "claude-custom-1[1m][1m]", "bed", "bedrock"),
                     "claude-custom-1[1m][1m]");
    ck_assert_str_eq(cg_policy_upstream_model(pol, "", "bed", "bedrock"), "");
    ck_assert_str_eq(cg_policy_upstream_provider(pol, "bed"), "bedrock");
    ck_assert_str_eq(cg_policy_upstream_provider(NULL, "anthropic"), "anthropic");
    ck_assert_str_eq(cg_catalog_find("us.anthropic.claude-haiku-4-5-20251001-v1:0")->id,
                     "claude-haiku-4-5");
    ck_assert_ptr_null(cg_catalog_find("claude-nonexistent"));
}
END_TEST

/* The catalogue's index answers as a scan with strcasecmp would: every id
 * of every entry, in any case, with and without one "[1m]", finds the first
 * entry naming it; anything else finds nothing. */
START_TEST(catalog_find_every_id)
{
    json_t *list = cg_policy_models_list(NULL, NULL), *e;
    const cg_builtin_model_t *all[64];
    size_t n = 0, i, k, x, j;

    json_array_foreach(json_object_get(list, "data"), i, e)
    {
        ck_assert_uint_lt(n, 64);
        all[n] = cg_catalog_find(json_string_value(json_object_get(e, "id")));
        ck_assert_ptr_nonnull(all[n]);
        n++;
    }
    ck_assert_uint_gt(n, 20);
    for (i = 0; i < n; i++) {
        const char *ids[] = {all[i]->id, all[i]->first_party, all[i]->bedrock, all[i]->vertex,
                             all[i]->foundry};
        for (k = 0; k < 5; k++) {
            const cg_builtin_model_t *want = NULL;
            char *upper = apr_pstrdup(unit_pool, ids[k]);

            for (x = 0; x < n && want == NULL; x++) {
                const char *o[] = {all[x]->id, all[x]->first_party, all[x]->bedrock, all[x]->vertex,
                                   all[x]->foundry};
                for (j = 0; j < 5 && want == NULL; j++) {
                    want = strcasecmp(o[j], ids[k]) == 0 ? all[x] : NULL;
                }
            }
            for (j = 0; upper[j]; j++) {
                upper[j] = (char)toupper((unsigned char)upper[j]);
            }
            ck_assert_ptr_eq(cg_catalog_find(ids[k]), want);
            ck_assert_ptr_eq(cg_catalog_find(upper), want);
            ck_assert_ptr_eq(cg_catalog_find(apr_pstrcat(unit_pool, ids[k], "[1m]", NULL)), want);
            ck_assert_ptr_eq(cg_catalog_find(apr_pstrcat(unit_pool, upper, "[1M]", NULL)), want);
            ck_assert_ptr_null(cg_catalog_find(apr_pstrcat(unit_pool, ids[k], "[1m][1m]", NULL)));
            ck_assert_ptr_null(cg_catalog_find(apr_pstrcat(unit_pool, ids[k], "x", NULL)));
            ck_assert_ptr_null(cg_catalog_find(apr_pstrcat(unit_pool, " ", ids[k], NULL)));
            ck_assert_ptr_null(cg_catalog_find(apr_pstrmemdup(unit_pool, ids[k], 5)));
        }
    }
    ck_assert_ptr_null(cg_catalog_find(NULL));
    ck_assert_ptr_null(cg_catalog_find(""));
    ck_assert_ptr_null(cg_catalog_find("[1m]"));
    ck_assert_ptr_null(cg_catalog_find(apr_psprintf(unit_pool, "%0300d", 7)));
    json_decref(list);
}
END_TEST

START_TEST(models_list_filtered)
{
    const cg_policy_t *pol = policy("models:\n  - {id: claude-custom-1, label: Custom One, "
                                    "description: a custom model, upstream_model: "
                                    "{anthropic: x}}\n"
                                    "managed:\n  policies:\n    - cli: {availableModels: "
                                    "[claude-sonnet-4-5, claude-haiku-4-5, claude-custom-1]}\n");
    const cg_settings_t *s = cg_policy_settings(pol, unit_pool, NULL, NULL);
    json_t *list = cg_policy_models_list(pol, s);
    char *text = json_dumps(list, JSON_COMPACT);

    /* the shape of captures/23_models.txt */
    ck_assert_str_eq(text, "{\"data\":[{\"type\":\"model\",\"id\":\"claude-custom-1\","
                           "\"display_name\":\"Custom One\",\"description\":\"a custom model\"},"
                           "{\"type\":\"model\",\"id\":\"claude-haiku-4-5-20251001\","
                           "\"display_name\":\"claude-haiku-4-5-20251001\"},"
                           "{\"type\":\"model\",\"id\":\"claude-sonnet-4-5-20250929\","
                           "\"display_name\":\"claude-sonnet-4-5-20250929\"}],"
                           "\"has_more\":false,\"first_id\":null,\"last_id\":null}");
    free(text);
    json_decref(list);
}
END_TEST

START_TEST(pricing_rows_most_specific_first)
{
    const cg_policy_t *pol =
        policy("upstreams:\n  - {provider: bedrock, name: bed, region: us-east-1}\n  - {provider: "
               "anthropic}\n"
               "pricing:\n  multiplier: 0.85\n  overrides:\n"
               "    - {upstream: bed, model: claude-sonnet-4-6, input: 3.30, output: 16.50, "
               "cache_read: 0.33, cache_write: 4.125}\n"
               "    - {upstream: bed, model: eu.anthropic.claude-sonnet-4-6, input: 1, output: 2, "
               "cache_read: 0, cache_write: 0}\n"
               "    - {upstream: bed, model: my-alias, input: 7, output: 7, cache_read: 7, "
               "cache_write: 7}\n");
    const cg_price_row_t *row;

    ck_assert_int_eq(pol->multiplier_ppm, 850000);
    /* the built-in id covers its provider forms */
    row = cg_policy_price(pol, "bed", "claude-sonnet-4-6", "us.anthropic.claude-sonnet-4-6");
    ck_assert_ptr_nonnull(row);
    ck_assert_int_eq(row->input, 3300000);
    ck_assert_int_eq(row->cache_write, 4125000);
    /* the upstream's own string wins over the family */
    row = cg_policy_price(pol, "bed", "claude-sonnet-4-6", "EU.anthropic.claude-sonnet-4-6");
    ck_assert_int_eq(row->input, 1000000);
    /* the client's id over the family */
    row = cg_policy_price(pol, "bed", "my-alias", "us.anthropic.claude-sonnet-4-6");
    ck_assert_int_eq(row->input, 7000000);
    /* rows of another upstream never apply */
    ck_assert_ptr_null(cg_policy_price(pol, "anthropic", "claude-sonnet-4-6", NULL));
    ck_assert_ptr_null(cg_policy_price(pol, "bed", "claude-haiku-4-5", NULL));
    ck_assert_ptr_nonnull(strstr(policy_err("upstreams:\n  - {provider: anthropic}\npricing:\n"
                                            "  overrides:\n    - {upstream: anthropic, model: "
                                            "claude-sonnet-4-6, input: 1, output: 1, cache_read: "
                                            "1, cache_write: 1}\n    - {upstream: anthropic, "
                                            "model: claude-sonnet-4-6, input: 1, output: 1, "
                                            "cache_read: 1, cache_write: 1}\n"),
                                 "duplicate pricing row"));
}
END_TEST

Suite *unit_suite_cg_policy(void)
{
    Suite *s = suite_create("cg_policy");
    TCase *tc = tcase_create("yaml");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, yaml_scalar_types);
    tcase_add_test(tc, yaml_expansion);
    tcase_add_test(tc, yaml_file_expansion);
    tcase_add_test(tc, yaml_refusals);
    tcase_add_test(tc, yaml_aliases_bounded);
    tcase_add_test(tc, yaml_empty_document);
    suite_add_tcase(s, tc);
    tc = tcase_create("policy");
    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, policy_validation_messages);
    tcase_add_test(tc, policy_notes_for_other_sections);
    tcase_add_test(tc, policy_first_match_merges_onto_base);
    tcase_add_test(tc, policy_no_match_and_layered);
    tcase_add_test(tc, policy_checksum_matches_reference_capture);
    tcase_add_test(tc, canonical_json_like_javascript);
    tcase_add_test(tc, model_allowlist);
    tcase_add_test(tc, model_allowlist_pinned);
    tcase_add_test(tc, model_resolution);
    tcase_add_test(tc, catalog_find_every_id);
    tcase_add_test(tc, models_list_filtered);
    tcase_add_test(tc, pricing_rows_most_specific_first);
    suite_add_tcase(s, tc);
    return s;
}
