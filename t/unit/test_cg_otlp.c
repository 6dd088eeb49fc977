/* Unit tests of cg_otlp (identity stamping of client exports: protobuf with
 * unknown fields passed through, OTLP/JSON, gzip) and cg_metrics (the
 * gateway's own metrics: aggregation and the OTLP encoding). */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "unit.h"
#include "cg_otlp.h"
#include "cg_metrics.h"
#include "otlp_relay.pb-c.h"
#include "otlp_metrics.pb-c.h"

/* --- a tiny protobuf writer, so inputs hold fields our schema lacks ------ */

typedef struct pb_t {
    char buf[4096];
    apr_size_t len;
} pb_t;

static void pb_varint(pb_t *b, apr_uint64_t v)
{
    do {
        unsigned char c = (unsigned char)(v & 0x7f);
        v >>= 7;
        b->buf[b->len++] = (char)(c | (v ? 0x80 : 0));
    } while (v);
}

static void pb_bytes(pb_t *b, int field, const char *data, apr_size_t n)
{
    pb_varint(b, ((apr_uint64_t)field << 3) | 2);
    pb_varint(b, n);
    memcpy(b->buf + b->len, data, n);
    b->len += n;
}

static void pb_msg(pb_t *b, int field, const pb_t *m)
{
    pb_bytes(b, field, m->buf, m->len);
}

static void pb_str(pb_t *b, int field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

static void pb_uint(pb_t *b, int field, apr_uint64_t v)
{
    pb_varint(b, ((apr_uint64_t)field << 3) | 0);
    pb_varint(b, v);
}

static void pb_fixed64(pb_t *b, int field, apr_uint64_t v)
{
    int i;

    pb_varint(b, ((apr_uint64_t)field << 3) | 1);
    for (i = 0; i < 8; i++) {
        b->buf[b->len++] = (char)((v >> (8 * i)) & 0xff);
    }
}

/* KeyValue{key, AnyValue{string_value}} */
static void pb_kv(pb_t *b, const char *key, const char *value)
{
    pb_t kv = {{0}, 0}, any = {{0}, 0};

    pb_str(&any, 1, value);
    pb_str(&kv, 1, key);
    pb_msg(&kv, 2, &any);
    pb_msg(b, 1, &kv);
}

static const cg_otlp_identity_t test_id = {"user-alice", "alice@example.com", "eng,admins",
                                           "mod_claude-session"};

/* The scope_metrics of the export, which the stamping must not touch: a
 * scope, a sum metric with a data point, and a field OTLP may add later. */
static void pb_scope_metrics(pb_t *sm)
{
    pb_t scope = {{0}, 0}, metric = {{0}, 0}, sum = {{0}, 0}, dp = {{0}, 0};

    pb_str(&scope, 1, "com.anthropic.claude_code");
    pb_str(&scope, 2, "2.1.328");
    pb_fixed64(&dp, 6, 42); /* as_int */
    pb_kv(&dp, "type", "input");
    pb_uint(&sum, 2, 1);
    pb_uint(&sum, 3, 1);
    pb_msg(&sum, 1, &dp);
    pb_str(&metric, 1, "claude_code.token.usage");
    pb_str(&metric, 3, "tokens");
    pb_msg(&metric, 7, &sum);
    pb_msg(sm, 1, &scope);
    pb_msg(sm, 2, &metric);
    pb_uint(sm, 99, 42);
}

/* ExportMetricsServiceRequest{resource_metrics: [{resource, scope_metrics,
 * schema_url}]} with a client claiming to be mallory. */
static void pb_export(pb_t *out, pb_t *scope_bytes, pb_t *array_any)
{
    pb_t res = {{0}, 0}, rm = {{0}, 0}, kv = {{0}, 0}, arr = {{0}, 0}, e1 = {{0}, 0}, e2 = {{0}, 0};

    pb_kv(&res, "service.name", "claude-code");
    pb_kv(&res, "user.id", "mallory");
    pb_kv(&res, "user.email", "mallory@evil.example");
    pb_kv(&res, "identity.source", "gateway-oidc");
    /* tags = ["a", 3]: an array value, opaque to our schema */
    pb_str(&e1, 1, "a");
    pb_uint(&e2, 3, 3);
    pb_msg(&arr, 1, &e1);
    pb_msg(&arr, 1, &e2);
    memset(array_any, 0, sizeof(*array_any));
    pb_msg(array_any, 5, &arr);
    pb_str(&kv, 1, "tags");
    pb_msg(&kv, 2, array_any);
    pb_msg(&res, 1, &kv);
    pb_uint(&res, 2, 7); /* dropped_attributes_count */
    memset(scope_bytes, 0, sizeof(*scope_bytes));
    pb_scope_metrics(scope_bytes);
    pb_msg(&rm, 1, &res);
    pb_msg(&rm, 2, scope_bytes);
    pb_str(&rm, 3, "https://opentelemetry.io/schemas/1.26.0");
    memset(out, 0, sizeof(*out));
    pb_msg(out, 1, &rm);
}

static const char *pb_attr(const Otlp__Resource *res, const char *key, int *count)
{
    const char *found = NULL;
    size_t i;

    *count = 0;
    for (i = 0; i < res->n_attributes; i++) {
        if (strcmp(res->attributes[i]->key, key) == 0) {
            (*count)++;
            found = res->attributes[i]->value ? res->attributes[i]->value->string_value : NULL;
        }
    }
    return found;
}

static int mem_contains(const char *hay, apr_size_t hlen, const char *needle, apr_size_t nlen)
{
    apr_size_t i;

    for (i = 0; i + nlen <= hlen; i++) {
        if (memcmp(hay + i, needle, nlen) == 0) {
            return 1;
        }
    }
    return 0;
}

START_TEST(test_otlp_paths_and_types)
{
    ck_assert_int_eq(cg_otlp_signal_of_path("/v1/metrics"), CG_OTLP_METRICS);
    ck_assert_int_eq(cg_otlp_signal_of_path("/otel/v1/logs"), CG_OTLP_LOGS);
    ck_assert_int_eq(cg_otlp_signal_of_path("/v1/traces"), CG_OTLP_TRACES);
    ck_assert_int_eq(cg_otlp_signal_of_path("/v1/metrics/"), -1);
    ck_assert_int_eq(cg_otlp_signal_of_path("/v1/messages"), -1);
    ck_assert_str_eq(cg_otlp_signal_name(CG_OTLP_LOGS), "logs");
    ck_assert_int_eq(cg_otlp_format_of(NULL), CG_OTLP_PROTOBUF);
    ck_assert_int_eq(cg_otlp_format_of(""), CG_OTLP_PROTOBUF);
    ck_assert_int_eq(cg_otlp_format_of("application/x-protobuf"), CG_OTLP_PROTOBUF);
    ck_assert_int_eq(cg_otlp_format_of("Application/JSON; charset=utf-8"), CG_OTLP_JSON);
    ck_assert_int_eq(cg_otlp_format_of("text/plain"), CG_OTLP_UNSUPPORTED);
    ck_assert_int_eq(cg_otlp_format_of("application/jsonx"), CG_OTLP_UNSUPPORTED);
    ck_assert(cg_otlp_key_reserved("user.groups"));
    ck_assert(!cg_otlp_key_reserved("user.name"));
}
END_TEST

/* The identity is replaced on the resource; every other byte of the export
 * (unknown to our minimal schema) comes back intact. */
START_TEST(test_otlp_protobuf_stamp_keeps_unknown_fields)
{
    pb_t in, scope, array_any;
    const char *out, *why, *again;
    apr_size_t out_len, again_len;
    Otlp__ExportMetricsServiceRequest *req;
    const Otlp__Resource *res;
    int n;

    pb_export(&in, &scope, &array_any);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_METRICS, CG_OTLP_PROTOBUF, NULL, in.buf,
                                   in.len, 1 << 20, &test_id, &out, &out_len, &why),
                     APR_SUCCESS);
    req = otlp__export_metrics_service_request__unpack(NULL, out_len, (const uint8_t *)out);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(req->n_resource_metrics, 1);
    res = req->resource_metrics[0]->resource;
    ck_assert_str_eq(pb_attr(res, "user.id", &n), "user-alice");
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(pb_attr(res, "user.email", &n), "alice@example.com");
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(pb_attr(res, "user.groups", &n), "eng,admins");
    ck_assert_str_eq(pb_attr(res, "identity.source", &n), "mod_claude-session");
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(pb_attr(res, "service.name", &n), "claude-code");
    pb_attr(res, "tags", &n);
    ck_assert_int_eq(n, 1);
    /* unknown fields: dropped_attributes_count, the array value, schema_url */
    ck_assert_uint_eq(res->base.n_unknown_fields, 1);
    ck_assert_uint_eq(req->resource_metrics[0]->base.n_unknown_fields, 2);
    otlp__export_metrics_service_request__free_unpacked(req, NULL);
    /* byte for byte: the scope metrics, the array value, the schema url */
    ck_assert(mem_contains(out, out_len, scope.buf, scope.len));
    ck_assert(mem_contains(out, out_len, array_any.buf, array_any.len));
    ck_assert(mem_contains(out, out_len, "https://opentelemetry.io/schemas/1.26.0", 39));
    ck_assert(!mem_contains(out, out_len, "mallory", 7));
    ck_assert(!mem_contains(out, out_len, "gateway-oidc", 12));
    /* stamping a stamped export changes nothing */
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_METRICS, CG_OTLP_PROTOBUF, NULL, out, out_len,
                                   1 << 20, &test_id, &again, &again_len, &why),
                     APR_SUCCESS);
    ck_assert_uint_eq(again_len, out_len);
    ck_assert(memcmp(again, out, out_len) == 0);
}
END_TEST

START_TEST(test_otlp_protobuf_every_resource_and_missing_resource)
{
    pb_t in = {{0}, 0}, rl = {{0}, 0}, res = {{0}, 0}, rl2 = {{0}, 0}, scope = {{0}, 0};
    const cg_otlp_identity_t no_email = {"u-1", NULL, NULL, "mod_claude-dev"};
    Otlp__ExportLogsServiceRequest *req;
    const char *out, *why;
    apr_size_t out_len;
    int n;

    pb_kv(&res, "user.email", "claimed@example.com");
    pb_msg(&rl, 1, &res);
    pb_str(&scope, 1, "com.anthropic.claude_code.events");
    pb_msg(&rl2, 2, &scope); /* ResourceLogs without a resource */
    pb_msg(&in, 1, &rl);
    pb_msg(&in, 1, &rl2);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_LOGS, CG_OTLP_PROTOBUF, "identity", in.buf,
                                   in.len, 1 << 20, &no_email, &out, &out_len, &why),
                     APR_SUCCESS);
    req = otlp__export_logs_service_request__unpack(NULL, out_len, (const uint8_t *)out);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(req->n_resource_logs, 2);
    for (n = 0; n < 2; n++) {
        int c;
        const Otlp__Resource *r = req->resource_logs[n]->resource;
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(pb_attr(r, "user.id", &c), "u-1");
        /* a session without email: the client's claim is removed, not kept */
        ck_assert_ptr_null(pb_attr(r, "user.email", &c));
        ck_assert_int_eq(c, 0);
        ck_assert_str_eq(pb_attr(r, "user.groups", &c), "");
        ck_assert_str_eq(pb_attr(r, "identity.source", &c), "mod_claude-dev");
    }
    otlp__export_logs_service_request__free_unpacked(req, NULL);
}
END_TEST

START_TEST(test_otlp_protobuf_refused)
{
    const char *out, *why;
    apr_size_t out_len;
    static const char garbage[] = "\x0a\xff\xff\xff\xff\x0f";
    static const char wrong_wire[] = "\x08\x01"; /* resource_spans as a varint */

    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_TRACES, CG_OTLP_PROTOBUF, NULL, garbage,
                                   sizeof(garbage) - 1, 1 << 20, &test_id, &out, &out_len, &why),
                     APR_EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_TRACES, CG_OTLP_PROTOBUF, NULL, wrong_wire, 2,
                                   1 << 20, &test_id, &out, &out_len, &why),
                     APR_EINVAL);
    /* an empty export is a valid one */
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_TRACES, CG_OTLP_PROTOBUF, NULL, "", 0,
                                   1 << 20, &test_id, &out, &out_len, &why),
                     APR_SUCCESS);
    ck_assert_uint_eq(out_len, 0);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_TRACES, CG_OTLP_PROTOBUF, "br", "", 0,
                                   1 << 20, &test_id, &out, &out_len, &why),
                     APR_ENOTIMPL);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_TRACES, CG_OTLP_UNSUPPORTED, NULL, "", 0,
                                   1 << 20, &test_id, &out, &out_len, &why),
                     APR_ENOTIMPL);
}
END_TEST

/* OFFICIAL-DOCS.md §3.8's fixture, with a claimed identity. */
static const char json_fixture[] =
    "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
    "{\"stringValue\":\"probe\"}},{\"key\":\"user.id\",\"value\":{\"stringValue\":\"mallory\"}}]},"
    "\"scopeMetrics\":[{\"scope\":{\"name\":\"probe\"},\"metrics\":[{\"name\":\"claude_code.token."
    "usage\",\"unit\":\"tokens\",\"sum\":{\"dataPoints\":[{\"asInt\":\"42\",\"timeUnixNano\":"
    "\"1700000000000000000\",\"attributes\":[{\"key\":\"type\",\"value\":{\"stringValue\":"
    "\"input\"}}]}],\"aggregationTemporality\":2,\"isMonotonic\":true}}]}]},{\"scopeMetrics\":[]}]"
    "}";

START_TEST(test_otlp_json_stamp)
{
    const char *out, *why;
    apr_size_t out_len;
    json_t *in, *got, *attrs, *e;
    size_t i;
    int seen = 0;

    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_METRICS, CG_OTLP_JSON, NULL, json_fixture,
                                   strlen(json_fixture), 1 << 20, &test_id, &out, &out_len, &why),
                     APR_SUCCESS);
    in = json_loads(json_fixture, 0, NULL);
    got = json_loadb(out, out_len, 0, NULL);
    ck_assert_ptr_nonnull(got);
    /* everything but the resource as sent */
    ck_assert(json_equal(
        json_object_get(json_array_get(json_object_get(in, "resourceMetrics"), 0), "scopeMetrics"),
        json_object_get(json_array_get(json_object_get(got, "resourceMetrics"), 0),
                        "scopeMetrics")));
    attrs = json_object_get(
        json_object_get(json_array_get(json_object_get(got, "resourceMetrics"), 0), "resource"),
        "attributes");
    ck_assert_int_eq(json_array_size(attrs), 5);
    json_array_foreach(attrs, i, e)
    {
        const char *k = json_string_value(json_object_get(e, "key"));
        const char *v =
            json_string_value(json_object_get(json_object_get(e, "value"), "stringValue"));
        if (!strcmp(k, "user.id")) {
            ck_assert_str_eq(v, "user-alice");
            seen++;
        }
        if (!strcmp(k, "service.name")) {
            ck_assert_str_eq(v, "probe");
        }
    }
    ck_assert_int_eq(seen, 1);
    /* the second resource had none: it gets one */
    attrs = json_object_get(
        json_object_get(json_array_get(json_object_get(got, "resourceMetrics"), 1), "resource"),
        "attributes");
    ck_assert_int_eq(json_array_size(attrs), 4);
    json_decref(in);
    json_decref(got);
}
END_TEST

START_TEST(test_otlp_json_refused)
{
    static const char *const bad[] = {
        "[]",
        "{\"resource_metrics\":[{\"resource\":{\"attributes\":[]}}]}",
        "{\"resourceMetrics\":[],\"resourceMetrics\":[]}",
        "{\"resourceMetrics\":{}}",
        "{\"resourceMetrics\":[1]}",
        "{\"resourceMetrics\":[{\"resource\":[]}]}",
        "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"value\":{}}]}}]}",
        "{\"resourceMetrics\":[{\"resource\":{\"attributes\":{}}}]}",
        "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[], \"attributes\":[]}}]}",
        "{\"resourceMetrics\":[",
    };
    const char *out, *why;
    apr_size_t out_len, i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(cg_otlp_stamp(unit_pool, CG_OTLP_METRICS, CG_OTLP_JSON, NULL, bad[i],
                                    strlen(bad[i]), 1 << 20, &test_id, &out, &out_len,
                                    &why) == APR_EINVAL,
                      "accepted %s", bad[i]);
    }
    /* the right list for each signal; an empty export is fine */
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_LOGS, CG_OTLP_JSON, NULL,
                                   "{\"resourceLogs\":[]}", 19, 1 << 20, &test_id, &out, &out_len,
                                   &why),
                     APR_SUCCESS);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_LOGS, CG_OTLP_JSON, NULL,
                                   "{\"resourceSpans\":[]}", 20, 1 << 20, &test_id, &out, &out_len,
                                   &why),
                     APR_EINVAL);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_TRACES, CG_OTLP_JSON, NULL, "{}", 2, 1 << 20,
                                   &test_id, &out, &out_len, &why),
                     APR_SUCCESS);
}
END_TEST

START_TEST(test_otlp_gzip)
{
    pb_t in, scope, array_any;
    const char *gz, *out, *plain, *why, *expect;
    apr_size_t gz_len, out_len, plain_len, expect_len;
    char big[65536];

    pb_export(&in, &scope, &array_any);
    ck_assert_int_eq(cg_otlp_gzip(unit_pool, in.buf, in.len, &gz, &gz_len), APR_SUCCESS);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_METRICS, CG_OTLP_PROTOBUF, "gzip", gz, gz_len,
                                   1 << 20, &test_id, &out, &out_len, &why),
                     APR_SUCCESS);
    ck_assert_int_eq(cg_otlp_gunzip(unit_pool, out, out_len, 1 << 20, &plain, &plain_len),
                     APR_SUCCESS);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_METRICS, CG_OTLP_PROTOBUF, NULL, in.buf,
                                   in.len, 1 << 20, &test_id, &expect, &expect_len, &why),
                     APR_SUCCESS);
    ck_assert_uint_eq(plain_len, expect_len);
    ck_assert(memcmp(plain, expect, expect_len) == 0);
    /* a bomb: 64 KiB of zeros against a 1 KiB bound */
    memset(big, 0, sizeof(big));
    ck_assert_int_eq(cg_otlp_gzip(unit_pool, big, sizeof(big), &gz, &gz_len), APR_SUCCESS);
    ck_assert_int_eq(cg_otlp_gunzip(unit_pool, gz, gz_len, 1024, &plain, &plain_len), APR_ENOSPC);
    ck_assert_int_eq(cg_otlp_gunzip(unit_pool, gz, gz_len, sizeof(big), &plain, &plain_len),
                     APR_SUCCESS);
    ck_assert_uint_eq(plain_len, sizeof(big));
    /* truncated, trailing garbage, not gzip */
    ck_assert_int_eq(cg_otlp_gunzip(unit_pool, gz, gz_len - 4, 1 << 20, &plain, &plain_len),
                     APR_EINVAL);
    ck_assert_int_eq(
        cg_otlp_gunzip(unit_pool,
                       apr_pstrcat(unit_pool, apr_pstrmemdup(unit_pool, gz, gz_len), "x", NULL),
                       gz_len + 1, 1 << 20, &plain, &plain_len),
        APR_EINVAL);
    ck_assert_int_eq(cg_otlp_gunzip(unit_pool, "hello", 5, 1 << 20, &plain, &plain_len),
                     APR_EINVAL);
    ck_assert_int_eq(cg_otlp_stamp(unit_pool, CG_OTLP_METRICS, CG_OTLP_PROTOBUF, "gzip", "hello", 5,
                                   1 << 20, &test_id, &out, &out_len, &why),
                     APR_EINVAL);
}
END_TEST

/* --- cg_metrics ---------------------------------------------------------- */

static const char *kv_str(Otlp__KeyValue **kvs, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!strcmp(kvs[i]->key, key)) {
            return kvs[i]->value->value_case == OTLP__ANY_VALUE__VALUE_STRING_VALUE
                       ? kvs[i]->value->string_value
                       : "(int)";
        }
    }
    return NULL;
}

static const Otlp__OwnMetric *find_metric(const Otlp__OwnMetricsRequest *req, const char *name)
{
    size_t i;
    const Otlp__OwnScopeMetrics *sm = req->resource_metrics[0]->scope_metrics[0];

    for (i = 0; i < sm->n_metrics; i++) {
        if (!strcmp(sm->metrics[i]->name, name)) {
            return sm->metrics[i];
        }
    }
    return NULL;
}

START_TEST(test_metrics_aggregate_and_encode)
{
    apr_time_t t0 = apr_time_from_sec(1700000000);
    cg_metrics_t *m = cg_metrics_create(unit_pool, t0, 100);
    cg_metrics_req_t rq;
    apr_array_header_t *res = apr_array_make(unit_pool, 2, sizeof(cg_otlp_kv_t));
    cg_otlp_kv_t *kv;
    Otlp__OwnMetricsRequest *req;
    const Otlp__OwnMetric *om;
    const char *out;
    apr_size_t out_len, i;
    apr_int64_t input = 0;

    memset(&rq, 0, sizeof(rq));
    rq.status = 200;
    rq.model = "claude-sonnet-4-5-20250929";
    rq.upstream = "anthropic";
    rq.decision = "allowed";
    rq.user_id = "user-alice";
    rq.user_email = "alice@example.com";
    rq.input_tokens = 100;
    rq.output_tokens = 20;
    rq.cache_read_tokens = 0;
    rq.cache_write_tokens = -1;
    rq.cost_micro_usd = 600;
    rq.duration = apr_time_from_msec(300);
    rq.failovers = 2; /* the router tried two upstreams before this one */
    rq.ttfb = apr_time_from_msec(120);
    cg_metrics_record(m, &rq);
    rq.input_tokens = 50;
    rq.failovers = 0;
    rq.ttfb = 0;
    cg_metrics_record(m, &rq);
    /* a refusal: counted, no tokens */
    rq.status = 400;
    rq.decision = "policy_denied";
    rq.input_tokens = rq.output_tokens = rq.cost_micro_usd = -1;
    rq.model = "claude-opus-4-1";
    rq.upstream = NULL;
    cg_metrics_record(m, &rq);
    cg_metrics_dropped(m, "queue_full", 3);
    ck_assert_int_gt(cg_metrics_series(m), 0);

    kv = apr_array_push(res);
    kv->key = "service.name";
    kv->value = "mod_claude";
    ck_assert_int_eq(
        cg_metrics_encode(unit_pool, m, t0 + apr_time_from_sec(60), res, &out, &out_len),
        APR_SUCCESS);
    req = otlp__own_metrics_request__unpack(NULL, out_len, (const uint8_t *)out);
    ck_assert_ptr_nonnull(req);
    ck_assert_str_eq(kv_str(req->resource_metrics[0]->resource->attributes,
                            req->resource_metrics[0]->resource->n_attributes, "service.name"),
                     "mod_claude");
    ck_assert_str_eq(req->resource_metrics[0]->scope_metrics[0]->scope->name, "mod_claude");

    om = find_metric(req, "claude_code.token.usage");
    ck_assert_ptr_nonnull(om);
    ck_assert_int_eq(om->data_case, OTLP__OWN_METRIC__DATA_SUM);
    ck_assert_int_eq(om->sum->aggregation_temporality,
                     OTLP__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA);
    ck_assert(om->sum->is_monotonic);
    ck_assert_int_eq(om->sum->n_data_points, 2); /* input and output; zero and unknown omitted */
    for (i = 0; i < om->sum->n_data_points; i++) {
        const Otlp__OwnNumberDataPoint *dp = om->sum->data_points[i];
        ck_assert_str_eq(kv_str(dp->attributes, dp->n_attributes, "user.id"), "user-alice");
        ck_assert_str_eq(kv_str(dp->attributes, dp->n_attributes, "model"),
                         "claude-sonnet-4-5-20250929");
        ck_assert_uint_eq(dp->start_time_unix_nano, 1700000000ull * 1000000000ull);
        ck_assert_uint_eq(dp->time_unix_nano, 1700000060ull * 1000000000ull);
        if (!strcmp(kv_str(dp->attributes, dp->n_attributes, "type"), "input")) {
            input = dp->as_int;
        }
    }
    ck_assert_int_eq(input, 150);

    om = find_metric(req, "claude_code.cost.usage");
    ck_assert_ptr_nonnull(om);
    ck_assert_int_eq(om->sum->data_points[0]->value_case,
                     OTLP__OWN_NUMBER_DATA_POINT__VALUE_AS_DOUBLE);
    ck_assert(om->sum->data_points[0]->as_double > 0.0011999 &&
              om->sum->data_points[0]->as_double < 0.0012001);

    om = find_metric(req, "mod_claude.requests");
    ck_assert_int_eq(om->sum->n_data_points, 2);
    om = find_metric(req, "mod_claude.policy.denials");
    ck_assert_int_eq(om->sum->n_data_points, 1);
    ck_assert_int_eq(om->sum->data_points[0]->as_int, 1);
    ck_assert_ptr_null(find_metric(req, "mod_claude.spend.blocks"));
    om = find_metric(req, "mod_claude.telemetry.dropped");
    ck_assert_int_eq(om->sum->data_points[0]->as_int, 3);

    om = find_metric(req, "mod_claude.upstream.failovers");
    ck_assert_ptr_nonnull(om);
    ck_assert_int_eq(om->sum->n_data_points, 1);
    ck_assert_int_eq(om->sum->data_points[0]->as_int, 2);
    om = find_metric(req, "mod_claude.upstream.time_to_first_byte");
    ck_assert_ptr_nonnull(om);
    ck_assert_int_eq(om->histogram->n_data_points, 1);
    ck_assert_uint_eq(om->histogram->data_points[0]->count, 1); /* unknown TTFBs left out */
    ck_assert_uint_eq(om->histogram->data_points[0]->bucket_counts[5], 1); /* (0.1, 0.25] */

    om = find_metric(req, "mod_claude.request.duration");
    ck_assert_int_eq(om->data_case, OTLP__OWN_METRIC__DATA_HISTOGRAM);
    for (i = 0; i < om->histogram->n_data_points; i++) {
        const Otlp__OwnHistogramDataPoint *dp = om->histogram->data_points[i];
        if (kv_str(dp->attributes, dp->n_attributes, "upstream") != NULL) {
            ck_assert_uint_eq(dp->count, 2);
            ck_assert_uint_eq(dp->n_bucket_counts, dp->n_explicit_bounds + 1);
            /* 0.3 s falls in (0.25, 0.5] */
            ck_assert_uint_eq(dp->bucket_counts[6], 2);
            ck_assert(dp->explicit_bounds[6] == 0.5);
        }
    }
    otlp__own_metrics_request__free_unpacked(req, NULL);
}
END_TEST

START_TEST(test_metrics_series_cap)
{
    cg_metrics_t *m = cg_metrics_create(unit_pool, apr_time_now(), 3);
    cg_metrics_req_t rq;
    int i;

    memset(&rq, 0, sizeof(rq));
    rq.input_tokens = rq.output_tokens = rq.cache_read_tokens = rq.cache_write_tokens = -1;
    rq.cost_micro_usd = -1;
    for (i = 0; i < 10; i++) {
        rq.status = 200 + i;
        cg_metrics_record(m, &rq);
    }
    ck_assert_int_eq(cg_metrics_series(m), 3);
    ck_assert_uint_gt(cg_metrics_overflow(m), 0);
}
END_TEST

/* The decoded export of an aggregate (freed by a cleanup on unit_pool). */
static apr_status_t free_export(void *req)
{
    otlp__own_metrics_request__free_unpacked(req, NULL);
    return APR_SUCCESS;
}

static Otlp__OwnMetricsRequest *export_of(const cg_metrics_t *m)
{
    Otlp__OwnMetricsRequest *req;
    const char *out;
    apr_size_t out_len;

    ck_assert_int_eq(cg_metrics_encode(unit_pool, m, apr_time_now(), NULL, &out, &out_len),
                     APR_SUCCESS);
    req = otlp__own_metrics_request__unpack(NULL, out_len, (const uint8_t *)out);
    ck_assert_ptr_nonnull(req);
    apr_pool_cleanup_register(unit_pool, req, free_export, apr_pool_cleanup_null);
    return req;
}

/* The value of the sum data point whose attribute key is value (NULL: the
 * one without that attribute); -1 when there is none. */
static apr_int64_t point_int(const Otlp__OwnMetric *om, const char *key, const char *value)
{
    size_t i;

    for (i = 0; om != NULL && i < om->sum->n_data_points; i++) {
        const Otlp__OwnNumberDataPoint *dp = om->sum->data_points[i];
        const char *v = kv_str(dp->attributes, dp->n_attributes, key);
        if (value == NULL ? v == NULL : v != NULL && !strcmp(v, value)) {
            return dp->as_int;
        }
    }
    return -1;
}

START_TEST(test_metrics_series_identity)
{
    /* which attributes make one series: equal values add up, and nothing
     * else does (position, lengths, a value imitating the key's separators,
     * int attributes by value); values are cut at 256 bytes */
    cg_metrics_t *m = cg_metrics_create(unit_pool, apr_time_now(), 2000);
    char *long1 = apr_pcalloc(unit_pool, 302), *long2;
    const Otlp__OwnMetric *om;
    Otlp__OwnMetricsRequest *req;
    cg_metrics_req_t rq;
    const int statuses[] = {200, 2000, 20, -200, 0, -2147483647 - 1, 2147483647};
    size_t i;

    memset(long1, 'x', 301);
    long2 = apr_pstrdup(unit_pool, long1);
    long2[300] = 'y'; /* differs after the cut */
    cg_metrics_dropped(m, "a", 1);
    cg_metrics_dropped(m, "a", 2);
    cg_metrics_dropped(m, "b", 4);
    cg_metrics_dropped(m, "", 8);
    cg_metrics_dropped(m, NULL, 16);
    cg_metrics_dropped(m, "a|0:1:b", 32);
    cg_metrics_dropped(m, long1, 64);
    cg_metrics_dropped(m, long2, 128);
    cg_metrics_dropped(m, apr_pstrndup(unit_pool, long1, 255), 256);
    ck_assert_int_eq(cg_metrics_series(m), 7);
    req = export_of(m);
    om = find_metric(req, "mod_claude.telemetry.dropped");
    ck_assert_ptr_nonnull(om);
    ck_assert_uint_eq(om->sum->n_data_points, 7);
    ck_assert_int_eq(point_int(om, "reason", "a"), 3);
    ck_assert_int_eq(point_int(om, "reason", "b"), 4);
    ck_assert_int_eq(point_int(om, "reason", ""), 8);
    ck_assert_int_eq(point_int(om, "reason", NULL), 16);
    ck_assert_int_eq(point_int(om, "reason", "a|0:1:b"), 32);
    ck_assert_int_eq(point_int(om, "reason", apr_pstrndup(unit_pool, long1, 256)), 64 + 128);
    ck_assert_int_eq(point_int(om, "reason", apr_pstrndup(unit_pool, long1, 255)), 256);

    /* requests: by status (an int attribute), then model and upstream */
    m = cg_metrics_create(unit_pool, apr_time_now(), 2000);
    memset(&rq, 0, sizeof(rq));
    rq.input_tokens = rq.output_tokens = rq.cache_read_tokens = rq.cache_write_tokens = -1;
    rq.cost_micro_usd = -1;
    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        rq.status = statuses[i];
        cg_metrics_record(m, &rq);
        cg_metrics_record(m, &rq);
    }
    rq.status = 200;
    rq.model = "m";
    cg_metrics_record(m, &rq); /* model m */
    rq.model = NULL;
    rq.upstream = "m";
    cg_metrics_record(m, &rq); /* upstream m: not the same */
    rq.upstream = NULL;
    rq.model = "x|2:y"; /* what model x, upstream y would make without lengths */
    cg_metrics_record(m, &rq);
    rq.model = "x|2:1:y"; /* and with them */
    cg_metrics_record(m, &rq);
    rq.model = "x";
    rq.upstream = "y";
    cg_metrics_record(m, &rq); /* neither of the two above */
    rq.model = "x|2:y";
    rq.upstream = NULL;
    cg_metrics_record(m, &rq); /* the first of them again */
    req = export_of(m);
    om = find_metric(req, "mod_claude.requests");
    ck_assert_ptr_nonnull(om);
    ck_assert_uint_eq(om->sum->n_data_points, 7 + 5);
    for (i = 0; i < om->sum->n_data_points; i++) {
        const Otlp__OwnNumberDataPoint *dp = om->sum->data_points[i];
        const char *model = kv_str(dp->attributes, dp->n_attributes, "model");
        const char *up = kv_str(dp->attributes, dp->n_attributes, "upstream");
        apr_int64_t want = 2;

        if (i < 7) { /* first seen first */
            ck_assert_ptr_null(model);
            ck_assert_ptr_null(up);
            ck_assert_uint_eq(dp->n_attributes, 1);
            ck_assert_int_eq(dp->attributes[0]->value->int_value, statuses[i]);
        }
        else if (model != NULL && !strcmp(model, "x|2:y")) {
            ck_assert_ptr_null(up);
        }
        else {
            want = 1;
        }
        ck_assert_int_eq(dp->as_int, want);
    }
}
END_TEST

START_TEST(test_metrics_many_series_found_again)
{
    /* past apr_hash's growth, every series is still found by its key */
    cg_metrics_t *m = cg_metrics_create(unit_pool, apr_time_now(), 2000);
    const Otlp__OwnMetric *om;
    int round, i;

    for (round = 0; round < 2; round++) {
        for (i = 0; i < 1000; i++) {
            cg_metrics_dropped(m, apr_psprintf(unit_pool, "reason-%d-of-some-length", i), 1);
        }
    }
    cg_metrics_dropped(m, "reason-1000-of-some-length", 1);
    ck_assert_int_eq(cg_metrics_series(m), 1001);
    om = find_metric(export_of(m), "mod_claude.telemetry.dropped");
    ck_assert_uint_eq(om->sum->n_data_points, 1001);
    for (i = 0; i < 1001; i++) {
        ck_assert_int_eq(om->sum->data_points[i]->as_int, i < 1000 ? 2 : 1);
        ck_assert_str_eq(om->sum->data_points[i]->attributes[0]->value->string_value,
                         apr_psprintf(unit_pool, "reason-%d-of-some-length", i));
    }
}
END_TEST

Suite *unit_suite_cg_otlp(void)
{
    Suite *s = suite_create("cg_otlp");
    TCase *tc = tcase_create("otlp");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, test_otlp_paths_and_types);
    tcase_add_test(tc, test_otlp_protobuf_stamp_keeps_unknown_fields);
    tcase_add_test(tc, test_otlp_protobuf_every_resource_and_missing_resource);
    tcase_add_test(tc, test_otlp_protobuf_refused);
    tcase_add_test(tc, test_otlp_json_stamp);
    tcase_add_test(tc, test_otlp_json_refused);
    tcase_add_test(tc, test_otlp_gzip);
    tcase_add_test(tc, test_metrics_aggregate_and_encode);
    tcase_add_test(tc, test_metrics_series_cap);
    tcase_add_test(tc, test_metrics_series_identity);
    tcase_add_test(tc, test_metrics_many_series_found_again);
    suite_add_tcase(s, tc);
    return s;
}
