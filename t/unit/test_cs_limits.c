/* Unit tests for cs_limits: the POST body's validation messages, and every
 * JSON shape compared byte for byte with the reference gateway's captures
 * (27, 70, 73-75, 82, 84, 86 in shared/reference/captures). */
#include <string.h>
#include <apr_strings.h>

#include "unit.h"
#include "cs_limits.h"

#define USEC APR_INT64_C(1000000)
/* 2026-11-23T16:38:30Z, the time of captures 82 and 84 */
#define CAPTURE_NOW (APR_INT64_C(1795451910) * USEC)

static const char *parse(const char *body, cs_limit_input_t *in)
{
    return cs_limits_parse(unit_pool, body, strlen(body), in);
}

typedef struct parse_case_t {
    const char *body;
    const char *message; /* NULL: accepted */
} parse_case_t;

static const parse_case_t parse_cases[] = {
    /* capture 76 and 77 */
    {"{\"scope\":{\"type\":\"user\"},\"amount\":\"1.5\"}", "scope.user_id: Required"},
    {"{\"scope\":{\"type\":\"user\",\"user_id\":\"x\"},\"amount\":\"5\",\"pooled_budget\":"
     "{\"amount\":\"10\"}}",
     "Pooled budget fields can only be set on a group-level limit"},
    {"{\"scope\":{\"type\":\"user\",\"user_id\":\"x\"}}", "amount: Required"},
    {"{\"scope\":{\"type\":\"rbac_group\"},\"amount\":\"5\"}", "scope.rbac_group_id: Required"},
    /* jansson refuses an escaped NUL */
    {"{\"scope\":{\"type\":\"user\",\"user_id\":\"a\\u0000b\"},\"amount\":\"5\"}",
     "invalid JSON body"},
    {"{\"scope\":{\"type\":\"user\",\"user_id\":\"\"},\"amount\":\"5\"}",
     "scope.user_id: must be a string of 1 to 256 characters"},
    {"{\"amount\":\"5\"}", "scope: Required"},
    {"{\"scope\":\"user\",\"amount\":\"5\"}", "scope: Expected object"},
    {"{\"scope\":{},\"amount\":\"5\"}", "scope.type: Required"},
    {"{\"scope\":{\"type\":\"team\"},\"amount\":\"5\"}",
     "scope.type: must be user, rbac_group or organization"},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"1.5\"}",
     "amount: must be a string of 1 to 18 digits (whole cents) or null"},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":5}",
     "amount: must be a string of 1 to 18 digits (whole cents) or null"},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"1234567890123456789\"}",
     "amount: must be a string of 1 to 18 digits (whole cents) or null"},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"-1\"}",
     "amount: must be a string of 1 to 18 digits (whole cents) or null"},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"\"}",
     "amount: must be a string of 1 to 18 digits (whole cents) or null"},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"5\",\"period\":\"yearly\"}",
     "period: must be daily, weekly or monthly"},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"5\",\"currency\":\"EUR\"}",
     "currency: only USD is supported"},
    {"{\"scope\":{\"type\":\"rbac_group\",\"rbac_group_id\":\"eng\"},\"amount\":\"5\","
     "\"period\":\"daily\",\"pooled_budget\":{\"amount\":\"10\"}}",
     "Pooled budgets are monthly only: set period to monthly"},
    {"{\"scope\":{\"type\":\"rbac_group\",\"rbac_group_id\":\"eng\"},\"amount\":\"5\","
     "\"pooled_budget\":{}}",
     "pooled_budget.amount: Required"},
    {"{\"scope\":{\"type\":\"rbac_group\",\"rbac_group_id\":\"eng\"},\"amount\":\"5\","
     "\"pooled_budget\":{\"amount\":\"1e3\"}}",
     "pooled_budget.amount: must be a string of 1 to 18 digits (whole cents)"},
    {"{\"scope\":{\"type\":\"rbac_group\",\"rbac_group_id\":\"eng\"},\"amount\":\"5\","
     "\"pooled_budget\":{\"amount\":\"10\",\"paused\":\"no\"}}",
     "pooled_budget.paused: Expected boolean"},
    {"not json", "invalid JSON body"},
    {"[]", "invalid JSON body"},
    {"", "invalid JSON body"},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"5\",\"amount\":\"6\"}",
     "invalid JSON body"},
    /* captures 73-75 */
    {"{\"scope\":{\"type\":\"user\",\"user_id\":\"user-alice\"},\"amount\":\"5\",\"period\":"
     "\"daily\"}",
     NULL},
    {"{\"scope\":{\"type\":\"rbac_group\",\"rbac_group_id\":\"eng\"},\"amount\":\"100000\","
     "\"period\":\"monthly\",\"pooled_budget\":{\"amount\":\"500000\"}}",
     NULL},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"9999999\",\"period\":\"weekly\"}", NULL},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":null,\"currency\":\"USD\"}", NULL},
    {"{\"scope\":{\"type\":\"organization\"},\"amount\":\"123456789012345678\"}", NULL},
};
#define N_PARSE_CASES ((int)(sizeof(parse_cases) / sizeof(parse_cases[0])))

START_TEST(parse_messages)
{
    const parse_case_t *c = &parse_cases[_i];
    cs_limit_input_t in;
    const char *msg = parse(c->body, &in);

    if (c->message == NULL) {
        ck_assert_msg(msg == NULL, "%s refused: %s", c->body, msg);
    }
    else {
        ck_assert_msg(msg != NULL && strcmp(msg, c->message) == 0, "%s: got %s", c->body,
                      msg ? msg : "(accepted)");
    }
}
END_TEST

START_TEST(parse_values)
{
    cs_limit_input_t in;

    ck_assert_ptr_null(parse("{\"scope\":{\"type\":\"rbac_group\",\"rbac_group_id\":\"eng\"},"
                             "\"amount\":\"100000\",\"pooled_budget\":{\"amount\":\"500000\","
                             "\"paused\":true}}",
                             &in));
    ck_assert_str_eq(in.scope_type, "rbac_group");
    ck_assert_str_eq(in.scope_id, "eng");
    ck_assert_str_eq(in.period, "monthly"); /* the default */
    ck_assert_str_eq(in.amount, "100000");
    ck_assert_int_eq(in.pooled, 1);
    ck_assert_str_eq(in.pooled_amount, "500000");
    ck_assert_int_eq(in.pooled_paused, 1);

    ck_assert_ptr_null(parse("{\"scope\":{\"type\":\"organization\",\"user_id\":\"ignored\"},"
                             "\"amount\":null,\"period\":\"weekly\",\"pooled_budget\":null}",
                             &in));
    ck_assert_str_eq(in.scope_type, "organization");
    ck_assert_str_eq(in.scope_id, "");
    ck_assert_ptr_null(in.amount); /* unlimited */
    ck_assert_str_eq(in.period, "weekly");
    ck_assert_int_eq(in.pooled, 0);
}
END_TEST

START_TEST(small_helpers)
{
    int n;
    apr_time_t t;

    ck_assert(cs_limits_amount_valid("0"));
    ck_assert(cs_limits_amount_valid("999999999999999999"));
    ck_assert(!cs_limits_amount_valid("1000000000000000000"));
    ck_assert(!cs_limits_amount_valid(NULL));
    ck_assert(!cs_limits_amount_valid("+1"));

    ck_assert_int_eq(cs_limits_count_parse(NULL, 20, 1, 1000, &n), 0);
    ck_assert_int_eq(n, 20);
    ck_assert_int_eq(cs_limits_count_parse("1000", 20, 1, 1000, &n), 0);
    ck_assert_int_eq(n, 1000);
    ck_assert_int_eq(cs_limits_count_parse("1001", 20, 1, 1000, &n), -1);
    ck_assert_int_eq(cs_limits_count_parse("0", 20, 1, 1000, &n), -1);
    ck_assert_int_eq(cs_limits_count_parse("5x", 20, 1, 1000, &n), -1);
    ck_assert_int_eq(cs_limits_count_parse("", 20, 1, 1000, &n), -1);
    ck_assert_int_eq(cs_limits_count_parse("99999999999", 20, 1, 1000, &n), -1);

    ck_assert_int_eq(cs_limits_time_parse("2026-11-01T00:00:00Z", &t), 0);
    ck_assert_int_eq(t, APR_INT64_C(1793491200) * USEC);
    ck_assert_int_eq(cs_limits_time_parse("2026-11-01", &t), 0);
    ck_assert_int_eq(t, APR_INT64_C(1793491200) * USEC);
    ck_assert_int_eq(cs_limits_time_parse("2026-11-01T01:30:00.25+01:30", &t), 0);
    ck_assert_int_eq(t, APR_INT64_C(1793491200) * USEC + 250000);
    ck_assert_int_eq(cs_limits_time_parse("2026-11-23T16:38:30-02:00", &t), 0);
    ck_assert_int_eq(t, CAPTURE_NOW + 7200 * USEC);
    ck_assert_int_eq(cs_limits_time_parse("2024-02-29T00:00:00Z", &t), 0);
    ck_assert_int_eq(cs_limits_time_parse("2026-02-29T00:00:00Z", &t), -1);
    ck_assert_int_eq(cs_limits_time_parse("2026-13-01T00:00:00Z", &t), -1);
    ck_assert_int_eq(cs_limits_time_parse("2026-11-01T24:00:00Z", &t), -1);
    ck_assert_int_eq(cs_limits_time_parse("2026-11-01T00:00:00", &t), -1);
    ck_assert_int_eq(cs_limits_time_parse("2026-11-01T00:00:00Zjunk", &t), -1);
    ck_assert_int_eq(cs_limits_time_parse("2026-11-01T00:00:00.Z", &t), -1);
    ck_assert_int_eq(cs_limits_time_parse("yesterday", &t), -1);
    ck_assert_int_eq(cs_limits_time_parse(NULL, &t), -1);

    ck_assert_str_eq(cs_limits_time_format(unit_pool, CAPTURE_NOW + 614000, 1),
                     "2026-11-23T16:38:30.614Z");
    ck_assert_str_eq(cs_limits_time_format(unit_pool, CAPTURE_NOW, 0), "2026-11-23T16:38:30Z");

    ck_assert_str_eq(cs_limits_cents_rounded(unit_pool, 59850), "6");
    ck_assert_str_eq(cs_limits_cents_rounded(unit_pool, 54999), "5");
    ck_assert_str_eq(cs_limits_cents_rounded(unit_pool, 0), "0");
    ck_assert_str_eq(cs_limits_cents_decimal(unit_pool, 60000), "6.000000");
    ck_assert_str_eq(cs_limits_cents_decimal(unit_pool, 59851), "5.985100");
    ck_assert_str_eq(cs_limits_cents_decimal(unit_pool, 1), "0.000100");

    ck_assert_int_eq(cs_limits_percent(59850, 5), 120);
    ck_assert_int_eq(cs_limits_percent(59850, 9999999), 0);
    ck_assert_int_eq(cs_limits_percent(0, 5), 0);
    ck_assert_int_eq(cs_limits_percent(1, 0), 100);
    ck_assert_int_eq(cs_limits_percent(27140 * 10000, 50000), 54);
    ck_assert_int_eq(cs_limits_percent(1, APR_INT64_C(999999999999999999)), 0);
}
END_TEST

static void dump_eq(json_t *j, const char *want)
{
    const char *got = cs_limits_dump(unit_pool, j);

    ck_assert_msg(strcmp(got, want) == 0, "\n got: %s\nwant: %s", got, want);
}

START_TEST(error_envelope)
{
    /* capture 70 */
    dump_eq(cs_limits_error_json("authentication_error", "missing or invalid admin credentials",
                                 "req_929ad069261348d98282c192debbc770"),
            "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
            "\"missing or invalid admin credentials\"},\"request_id\":"
            "\"req_929ad069261348d98282c192debbc770\"}");
}
END_TEST

START_TEST(limit_objects)
{
    cs_limit_row_t row;

    /* capture 73 */
    memset(&row, 0, sizeof(row));
    row.id = "spl_c36ea743e51f41e9a75f444a7b5d192e";
    row.scope_type = "user";
    row.scope_id = "user-alice";
    row.period = "daily";
    row.amount = "5";
    row.currency = "USD";
    row.created_at = row.updated_at = "2026-11-23T16:38:22.614Z";
    dump_eq(cs_limits_object_json(&row),
            "{\"type\":\"spend_limit\",\"id\":\"spl_c36ea743e51f41e9a75f444a7b5d192e\","
            "\"created_at\":\"2026-11-23T16:38:22.614Z\",\"updated_at\":\"2026-11-23T16:38:22."
            "614Z\",\"scope\":{\"type\":\"user\",\"user_id\":\"user-alice\"},\"amount\":\"5\","
            "\"currency\":\"USD\",\"period\":\"daily\"}");
    /* capture 85's after */
    dump_eq(cs_limits_audit_json(&row),
            "{\"id\":\"spl_c36ea743e51f41e9a75f444a7b5d192e\",\"scope\":{\"type\":\"user\","
            "\"user_id\":\"user-alice\"},\"amount\":\"5\",\"period\":\"daily\",\"currency\":"
            "\"USD\",\"created_at\":\"2026-11-23T16:38:22.614Z\",\"updated_at\":\"2026-11-23T16:"
            "38:22.614Z\"}");

    /* capture 74 */
    row.id = "spl_ece1dc46dd854074b5103e21a67cb675";
    row.scope_type = "rbac_group";
    row.scope_id = "eng";
    row.period = "monthly";
    row.amount = "100000";
    row.pooled = 1;
    row.pooled_amount = "500000";
    row.created_at = row.updated_at = "2026-11-23T16:38:22.637Z";
    dump_eq(cs_limits_object_json(&row),
            "{\"type\":\"spend_limit\",\"id\":\"spl_ece1dc46dd854074b5103e21a67cb675\","
            "\"created_at\":\"2026-11-23T16:38:22.637Z\",\"updated_at\":\"2026-11-23T16:38:22."
            "637Z\",\"scope\":{\"type\":\"rbac_group\",\"rbac_group_id\":\"eng\"},\"amount\":"
            "\"100000\",\"currency\":\"USD\",\"period\":\"monthly\",\"pooled_budget\":{\"amount\":"
            "\"500000\",\"paused\":false,\"currency\":\"USD\",\"period_to_date_spend\":\"0\"}}");
    dump_eq(cs_limits_audit_json(&row),
            "{\"id\":\"spl_ece1dc46dd854074b5103e21a67cb675\",\"scope\":{\"type\":\"rbac_group\","
            "\"rbac_group_id\":\"eng\"},\"amount\":\"100000\",\"period\":\"monthly\",\"currency\":"
            "\"USD\",\"created_at\":\"2026-11-23T16:38:22.637Z\",\"updated_at\":\"2026-11-23T16:"
            "38:22.637Z\",\"pooled_budget\":{\"amount\":\"500000\",\"paused\":false}}");

    /* capture 75, and an unlimited amount */
    memset(&row, 0, sizeof(row));
    row.id = "spl_9ea7bd5e2ad84101a61957334d510df2";
    row.scope_type = "organization";
    row.scope_id = "";
    row.period = "weekly";
    row.currency = "USD";
    row.created_at = row.updated_at = "2026-11-23T16:38:22.658Z";
    dump_eq(cs_limits_object_json(&row),
            "{\"type\":\"spend_limit\",\"id\":\"spl_9ea7bd5e2ad84101a61957334d510df2\","
            "\"created_at\":\"2026-11-23T16:38:22.658Z\",\"updated_at\":\"2026-11-23T16:38:22."
            "658Z\",\"scope\":{\"type\":\"organization\"},\"amount\":null,\"currency\":\"USD\","
            "\"period\":\"weekly\"}");
}
END_TEST

START_TEST(effective_row)
{
    json_t *groups = json_pack("[s,s]", "eng", "admins");

    /* capture 84's last row */
    dump_eq(cs_limits_effective_json("user-alice", groups, "Alice Example", "alice@example.com",
                                     100000, "monthly", "rbac_group", "eng",
                                     "spl_ece1dc46dd854074b5103e21a67cb675", 59850, unit_pool),
            "{\"scope\":{\"type\":\"user\",\"user_id\":\"user-alice\"},\"groups\":[\"eng\","
            "\"admins\"],\"actor\":{\"type\":\"user_actor\",\"user_id\":\"user-alice\",\"name\":"
            "\"Alice Example\",\"email_address\":\"alice@example.com\",\"deleted\":false},"
            "\"amount\":\"100000\",\"currency\":\"USD\",\"period\":\"monthly\",\"source\":{"
            "\"type\":\"rbac_group\",\"rbac_group_id\":\"eng\"},\"spend_limit_id\":"
            "\"spl_ece1dc46dd854074b5103e21a67cb675\",\"period_to_date_spend\":\"6\"}");
    /* no cap, never seen */
    dump_eq(cs_limits_effective_json("user-bob", NULL, NULL, NULL, -1, "daily", NULL, NULL, NULL, 0,
                                     unit_pool),
            "{\"scope\":{\"type\":\"user\",\"user_id\":\"user-bob\"},\"groups\":[],\"actor\":{"
            "\"type\":\"user_actor\",\"user_id\":\"user-bob\",\"name\":null,\"email_address\":"
            "null,\"deleted\":false},\"amount\":null,\"currency\":\"USD\",\"period\":\"daily\","
            "\"source\":null,\"spend_limit_id\":null,\"period_to_date_spend\":\"0\"}");
    json_decref(groups);
}
END_TEST

START_TEST(cost_item)
{
    apr_time_t start = APR_INT64_C(1793491200) * USEC, end = APR_INT64_C(1795478400) * USEC;
    json_t *j;

    /* capture 86 */
    dump_eq(cs_limits_cost_item_json(unit_pool, start, end, NULL, NULL, NULL, 0, 60000),
            "{\"starting_at\":\"2026-11-01T00:00:00Z\",\"ending_at\":\"2026-11-24T00:00:00Z\","
            "\"group\":{\"product\":null,\"model\":null,\"context_window\":null,\"inference_geo\":"
            "null,\"speed\":null,\"slack_channel_id\":null,\"claude_tag_category\":null,\"claude_"
            "tag_user_id\":null,\"rbac_group_id\":null,\"workspace_id\":null,\"service_tier\":"
            "null,\"user_profile_id\":null,\"agent_id\":null,\"environment_id\":null,"
            "\"deployment_id\":null,\"session_id\":null,\"actor\":null,\"actor_type\":null,\"api_"
            "key_id\":null,\"cost_type\":null,\"token_type\":null},\"cost\":{\"currency\":\"USD\","
            "\"amount\":\"6.000000\",\"list_amount\":\"6.000000\",\"requests\":null}}");
    j = cs_limits_cost_item_json(unit_pool, start, end, "user-alice", "alice@example.com", "eng", 1,
                                 1234);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "group"), "rbac_group_id")), "eng");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "group"), "actor_type")),
                     "user_actor");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(j, "group"), "actor"), "user_id")),
                     "user-alice");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "cost"), "amount")),
                     "0.123400");
    json_decref(j);
}
END_TEST

START_TEST(usage_report)
{
    cs_limit_usage_t caps[3] = {{CS_PERIOD_DAILY, 5, 59850},
                                {CS_PERIOD_WEEKLY, 9999999, 59850},
                                {CS_PERIOD_MONTHLY, 100000, 59850}};

    /* capture 82: over the daily cap */
    dump_eq(cs_limits_usage_json(unit_pool, caps, 3, CAPTURE_NOW),
            "{\"extra_usage\":{\"is_enabled\":true,\"monthly_limit\":5,\"used_credits\":5,"
            "\"utilization\":120,\"currency\":\"USD\"},\"limits\":[{\"kind\":\"spend\",\"group\":"
            "\"daily\",\"percent\":120,\"resets_at\":\"2026-11-24T00:00:00.000Z\",\"severity\":"
            "\"critical\",\"is_active\":true},{\"kind\":\"spend\",\"group\":\"weekly\","
            "\"percent\":0,\"resets_at\":\"2026-11-30T00:00:00.000Z\",\"severity\":\"normal\","
            "\"is_active\":false},{\"kind\":\"spend\",\"group\":\"monthly\",\"percent\":0,"
            "\"resets_at\":\"2026-12-01T00:00:00.000Z\",\"severity\":\"normal\",\"is_active\":"
            "false}]}");

    /* capture 27: no cap at all */
    caps[0].cap_cents = caps[1].cap_cents = caps[2].cap_cents = -1;
    caps[0].spent_micro = caps[1].spent_micro = caps[2].spent_micro = 25000;
    dump_eq(cs_limits_usage_json(unit_pool, caps, 3, CAPTURE_NOW),
            "{\"extra_usage\":{\"is_enabled\":true,\"monthly_limit\":null,\"used_credits\":2,"
            "\"utilization\":null,\"currency\":\"USD\",\"daily\":{\"limit\":null,\"used_credits\":"
            "2,\"utilization\":null},\"weekly\":{\"limit\":null,\"used_credits\":2,"
            "\"utilization\":null}},\"limits\":[]}");

    /* only a monthly cap, 80% used: the one row, warning */
    caps[2].cap_cents = 100;
    caps[2].spent_micro = 800000;
    dump_eq(cs_limits_usage_json(unit_pool, caps, 3, CAPTURE_NOW),
            "{\"extra_usage\":{\"is_enabled\":true,\"monthly_limit\":100,\"used_credits\":80,"
            "\"utilization\":80,\"currency\":\"USD\"},\"limits\":[{\"kind\":\"spend\",\"group\":"
            "\"monthly\",\"percent\":80,\"resets_at\":\"2026-12-01T00:00:00.000Z\",\"severity\":"
            "\"warning\",\"is_active\":true}]}");
}
END_TEST

START_TEST(usage_active_cap)
{
    /* two exceeded caps: the one that resets last is described; else the fullest */
    cs_limit_usage_t caps[3] = {{CS_PERIOD_DAILY, 5, 60000},
                                {CS_PERIOD_WEEKLY, 10, 100000},
                                {CS_PERIOD_MONTHLY, 1000, 100000}};
    json_t *j = cs_limits_usage_json(unit_pool, caps, 3, CAPTURE_NOW);
    json_t *limits = json_object_get(j, "limits");

    ck_assert(json_is_false(json_object_get(json_array_get(limits, 0), "is_active")));
    ck_assert(json_is_true(json_object_get(json_array_get(limits, 1), "is_active")));
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(j, "extra_usage"), "monthly_limit")),
        10);
    json_decref(j);

    caps[0].spent_micro = 30000; /* 60% */
    caps[1].spent_micro = 20000; /* 20% */
    caps[2].spent_micro = 30000; /* 0.3% */
    j = cs_limits_usage_json(unit_pool, caps, 3, CAPTURE_NOW);
    limits = json_object_get(j, "limits");
    ck_assert(json_is_true(json_object_get(json_array_get(limits, 0), "is_active")));
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(j, "extra_usage"), "utilization")), 60);
    json_decref(j);

    /* a cap of 0 blocks everything */
    caps[0].cap_cents = 0;
    caps[0].spent_micro = 0;
    j = cs_limits_usage_json(unit_pool, caps, 1, CAPTURE_NOW);
    limits = json_object_get(j, "limits");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(limits, 0), "percent")),
                     100);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(limits, 0), "severity")),
                     "critical");
    json_decref(j);
}
END_TEST

Suite *unit_suite_cs_limits(void)
{
    Suite *s = suite_create("cs_limits");
    TCase *tc = tcase_create("limits");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_loop_test(tc, parse_messages, 0, N_PARSE_CASES);
    tcase_add_test(tc, parse_values);
    tcase_add_test(tc, small_helpers);
    tcase_add_test(tc, error_envelope);
    tcase_add_test(tc, limit_objects);
    tcase_add_test(tc, effective_row);
    tcase_add_test(tc, cost_item);
    tcase_add_test(tc, usage_report);
    tcase_add_test(tc, usage_active_cap);
    suite_add_tcase(s, tc);
    return s;
}
