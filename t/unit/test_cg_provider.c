/* Unit tests for cg_provider: provider names, anthropic-beta lists, Foundry's
 * URL, and the reference's error hygiene for cloud upstreams. */
#include <string.h>

#include "unit.h"
#include "cg_provider.h"

START_TEST(names)
{
    ck_assert_int_eq(cg_provider_parse("bedrock"), CG_PROVIDER_BEDROCK);
    ck_assert_int_eq(cg_provider_parse("anthropicAws"), CG_PROVIDER_ANTHROPIC_AWS);
    ck_assert_int_eq(cg_provider_parse("vertex"), CG_PROVIDER_VERTEX);
    ck_assert_int_eq(cg_provider_parse("foundry"), CG_PROVIDER_FOUNDRY);
    ck_assert_int_eq(cg_provider_parse("anthropic"), CG_PROVIDER_ANTHROPIC);
    ck_assert_int_eq(cg_provider_parse("Bedrock"), CG_PROVIDER_UNKNOWN);
    ck_assert_int_eq(cg_provider_parse(NULL), CG_PROVIDER_UNKNOWN);
    ck_assert_str_eq(cg_provider_name(CG_PROVIDER_ANTHROPIC_AWS), "anthropicAws");
    ck_assert_str_eq(cg_provider_name(CG_PROVIDER_UNKNOWN), "unknown");
}
END_TEST

START_TEST(beta_lists)
{
    apr_array_header_t *b;

    b = cg_provider_betas(unit_pool,
                          " claude-code-20250219 ,oauth-2025-04-20,,claude-code-20250219,"
                          "request-tags-2026-08-21 , x",
                          CG_PROVIDER_REQUEST_TAGS_BETA);
    ck_assert_int_eq(b->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(b, 0, const char *), "claude-code-20250219");
    ck_assert_str_eq(APR_ARRAY_IDX(b, 1, const char *), "oauth-2025-04-20");
    ck_assert_str_eq(APR_ARRAY_IDX(b, 2, const char *), "x");
    ck_assert_str_eq(cg_provider_betas_join(unit_pool, b),
                     "claude-code-20250219,oauth-2025-04-20,x");
    b = cg_provider_betas(unit_pool, "request-tags-2026-08-21", CG_PROVIDER_REQUEST_TAGS_BETA);
    ck_assert_int_eq(b->nelts, 0);
    ck_assert_ptr_null(cg_provider_betas_join(unit_pool, b));
    ck_assert_int_eq(cg_provider_betas(unit_pool, NULL, NULL)->nelts, 0);
    ck_assert_int_eq(cg_provider_betas(unit_pool, " , ,", NULL)->nelts, 0);
}
END_TEST

START_TEST(body_helpers)
{
    const char *in = "{\"b\":1,\"a\":[true]}";
    json_t *j = cg_provider_body_parse(unit_pool, in, strlen(in));
    apr_size_t len;

    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cg_provider_body_dump(unit_pool, j, &len), in);
    ck_assert_int_eq(len, strlen(in));
    ck_assert_ptr_null(cg_provider_body_parse(unit_pool, "[1]", 3));
    ck_assert_ptr_null(cg_provider_body_parse(unit_pool, "{\"a\":1,\"a\":2}", 13));
    ck_assert_ptr_null(cg_provider_body_parse(unit_pool, "{", 1));
    ck_assert_ptr_null(cg_provider_body_parse(unit_pool, NULL, 0));
}
END_TEST

START_TEST(foundry)
{
    ck_assert_str_eq(cg_foundry_url(unit_pool, NULL, "my-res", 0),
                     "https://my-res.services.ai.azure.com/anthropic/v1/messages");
    ck_assert_str_eq(cg_foundry_url(unit_pool, NULL, "my-res", 1),
                     "https://my-res.services.ai.azure.com/anthropic/v1/messages/count_tokens");
    ck_assert_str_eq(cg_foundry_url(unit_pool, "http://127.0.0.1:9/", "ignored", 0),
                     "http://127.0.0.1:9/anthropic/v1/messages");
    ck_assert_ptr_null(cg_foundry_url(unit_pool, NULL, "evil.com/x", 0));
    ck_assert_ptr_null(cg_foundry_url(unit_pool, NULL, "", 0));
    ck_assert_str_eq(CG_FOUNDRY_KEY_HEADER, "x-api-key");
}
END_TEST

static cg_provider_error_t err(cg_provider_e prov, int status, const char *body)
{
    cg_provider_error_t e;

    cg_provider_error(unit_pool, prov, status, body, body ? strlen(body) : 0, &e);
    return e;
}

START_TEST(hygiene_passthrough_and_anthropic_envelope)
{
    cg_provider_error_t e;

    e = err(CG_PROVIDER_ANTHROPIC, 400, "{\"type\":\"error\",\"error\":{}}");
    ck_assert_int_eq(e.passthrough, 1);
    ck_assert_int_eq(err(CG_PROVIDER_ANTHROPIC_AWS, 500, "x").passthrough, 1);
    /* Vertex relays Anthropic's own 400: its message is what the client's recovery reads */
    e = err(CG_PROVIDER_VERTEX, 400,
            "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
            "\"message\":\"prompt is too long: 210000 tokens > 200000 maximum\"}}");
    ck_assert_int_eq(e.passthrough, 0);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.type, "invalid_request_error");
    ck_assert_str_eq(e.message, "prompt is too long: 210000 tokens > 200000 maximum");
    /* other statuses: type kept, fixed message */
    e = err(CG_PROVIDER_FOUNDRY, 529,
            "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
            "\"message\":\"Overloaded in sub 1234\"}}");
    ck_assert_str_eq(e.type, "overloaded_error");
    ck_assert_str_eq(e.message, "upstream overloaded");
    ck_assert_str_eq(e.upstream_text, "Overloaded in sub 1234");
}
END_TEST

START_TEST(hygiene_provider_shapes)
{
    cg_provider_error_t e;

    /* Bedrock's whole sentence, exactly */
    e = err(CG_PROVIDER_BEDROCK, 400, "{\"message\":\"Input is too long.\"}");
    ck_assert_str_eq(e.type, "invalid_request_error");
    ck_assert_str_eq(e.message, "Input is too long.");
    e = err(CG_PROVIDER_BEDROCK, 400, "{\"message\":\"Input is too long for requested model.\"}");
    ck_assert_str_eq(e.message, "capability_rejected: prompt_too_long");
    /* Vertex's size refusal, Google-shaped, both wordings */
    e = err(CG_PROVIDER_VERTEX, 400,
            "{\"error\":{\"code\":400,\"message\":\"The request size (30037042 bytes) exceeds "
            "30.000MB limit.\",\"status\":\"INVALID_ARGUMENT\"}}");
    ck_assert_str_eq(e.message, "Input is too long.");
    e = err(CG_PROVIDER_VERTEX, 400,
            "[{\"error\":{\"code\":400,\"message\":\"The message size (31000000 bytes) exceeds "
            "30.000MB limit.\"}}]");
    ck_assert_str_eq(e.message, "Input is too long.");
    e = err(CG_PROVIDER_BEDROCK, 400,
            "{\"message\":\"messages.1.content.0: Invalid `signature` in `thinking` block\"}");
    ck_assert_str_eq(e.message, "capability_rejected: thinking_signature");
    e = err(CG_PROVIDER_BEDROCK, 400, "{\"message\":\"effort is not supported by this model\"}");
    ck_assert_str_eq(e.message, "capability_rejected: effort_unsupported");
    e = err(CG_PROVIDER_BEDROCK, 400, "{\"Message\":\"Could not process image\"}");
    ck_assert_str_eq(e.message, "capability_rejected: image_block");
    /* unclassifiable: generic, and account details only in upstream_text */
    e = err(CG_PROVIDER_BEDROCK, 400,
            "{\"message\":\"arn:aws:bedrock:us-east-1:123456789012:x is not authorized\"}");
    ck_assert_str_eq(e.message, "upstream rejected the request");
    ck_assert_ptr_nonnull(strstr(e.upstream_text, "123456789012"));
    e = err(CG_PROVIDER_BEDROCK, 413, "<html>too big</html>");
    ck_assert_str_eq(e.type, "request_too_large");
    ck_assert_str_eq(e.message, "request too large for this upstream");
    ck_assert_str_eq(e.upstream_text, "<html>too big</html>");
    /* fixed copy per status */
    e = err(CG_PROVIDER_BEDROCK, 429, "{\"message\":\"Too many requests, account 1234\"}");
    ck_assert_str_eq(e.type, "rate_limit_error");
    ck_assert_str_eq(e.message, "upstream rate limit exceeded");
    e = err(CG_PROVIDER_VERTEX, 429,
            "{\"error\":{\"code\":429,\"message\":\"Quota exceeded for project my-proj\","
            "\"status\":\"RESOURCE_EXHAUSTED\"}}");
    ck_assert_str_eq(e.message, "upstream rate limit exceeded");
    ck_assert_str_eq(e.upstream_text, "Quota exceeded for project my-proj");
    e = err(CG_PROVIDER_VERTEX, 403, NULL);
    ck_assert_str_eq(e.type, "permission_error");
    ck_assert_ptr_null(e.upstream_text);
    e = err(CG_PROVIDER_BEDROCK, 503, "{}");
    ck_assert_str_eq(e.type, "api_error");
    ck_assert_str_eq(e.message, "upstream unavailable");
    ck_assert_str_eq(cg_provider_error_type(418), "invalid_request_error");
    ck_assert_str_eq(cg_provider_error_type(502), "api_error");
    ck_assert_str_eq(cg_provider_error_type(501), "not_supported");
}
END_TEST

START_TEST(sse_error_frame)
{
    ck_assert_str_eq(cg_provider_sse_error(unit_pool, "rate_limit_error", "upstream \"x\""),
                     "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                     "\"rate_limit_error\",\"message\":\"upstream \\\"x\\\"\"}}\n\n");
    ck_assert_str_eq(CG_SSE_PING, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
}
END_TEST

START_TEST(workload_identity)
{
    ck_assert_str_eq(
        cg_provider_wif_request(unit_pool, "eyJ.a.b", "fdrl_1", "org-uuid", NULL, NULL),
        "{\"grant_type\":\"urn:ietf:params:oauth:grant-type:jwt-bearer\","
        "\"assertion\":\"eyJ.a.b\",\"federation_rule_id\":\"fdrl_1\","
        "\"organization_id\":\"org-uuid\"}");
    ck_assert_str_eq(cg_provider_wif_request(unit_pool, "t", "r", "o", "svac_1", "default"),
                     "{\"grant_type\":\"urn:ietf:params:oauth:grant-type:jwt-bearer\","
                     "\"assertion\":\"t\",\"federation_rule_id\":\"r\",\"organization_id\":"
                     "\"o\",\"service_account_id\":\"svac_1\",\"workspace_id\":\"default\"}");
    ck_assert_ptr_null(cg_provider_wif_request(unit_pool, NULL, "r", "o", NULL, NULL));
    ck_assert_int_eq(cg_provider_secure_endpoint("https://api.anthropic.com"), 1);
    ck_assert_int_eq(cg_provider_secure_endpoint("http://127.0.0.1:8080/x"), 1);
    ck_assert_int_eq(cg_provider_secure_endpoint("http://localhost"), 1);
    ck_assert_int_eq(cg_provider_secure_endpoint("http://[::1]:9"), 1);
    ck_assert_int_eq(cg_provider_secure_endpoint("http://127.0.0.1.evil.example"), 0);
    ck_assert_int_eq(cg_provider_secure_endpoint("http://localhost.evil"), 0);
    ck_assert_int_eq(cg_provider_secure_endpoint("http://proxy.corp:8080"), 0);
    ck_assert_int_eq(cg_provider_secure_endpoint(NULL), 0);
    ck_assert_str_eq(cg_provider_beta_with(unit_pool, "claude-code-20250219", "oauth-2025-04-20"),
                     "claude-code-20250219,oauth-2025-04-20");
    ck_assert_str_eq(cg_provider_beta_with(unit_pool, "oauth-2025-04-20, claude-code-20250219",
                                           "oauth-2025-04-20"),
                     "oauth-2025-04-20,claude-code-20250219");
    ck_assert_str_eq(cg_provider_beta_with(unit_pool, NULL, "oauth-2025-04-20"),
                     "oauth-2025-04-20");
}
END_TEST

Suite *unit_suite_cg_provider(void)
{
    Suite *s = suite_create("cg_provider");
    TCase *tc = tcase_create("provider");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, names);
    tcase_add_test(tc, beta_lists);
    tcase_add_test(tc, workload_identity);
    tcase_add_test(tc, body_helpers);
    tcase_add_test(tc, foundry);
    tcase_add_test(tc, hygiene_passthrough_and_anthropic_envelope);
    tcase_add_test(tc, hygiene_provider_shapes);
    tcase_add_test(tc, sse_error_frame);
    suite_add_tcase(s, tc);
    return s;
}
