/* fuzz_otlp: cg_otlp_stamp on arbitrary client exports.
 *
 * The first byte picks the signal (mod 3), the encoding (protobuf or JSON)
 * and whether the rest is sent gzip-encoded; the rest is the body. Client
 * telemetry is untrusted input parsed in every child. Besides not crashing:
 * a stamped export must carry exactly the session's identity on every
 * resource, and stamping it again must change nothing (so nothing the client
 * sent survives in a form the next parse reads differently). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "cg_otlp.h"
#include "otlp_relay.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static apr_pool_t *fuzz_pool;
static const cg_otlp_identity_t fuzz_id = {"user-alice", "alice@example.com", "eng,admins",
                                           "mod_claude-session"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&fuzz_pool, NULL);
    return 0;
}

static void fuzz_check_resource(const Otlp__Resource *res)
{
    size_t i;
    int ids = 0;

    if (res == NULL) {
        abort();
    }
    for (i = 0; i < res->n_attributes; i++) {
        const Otlp__KeyValue *kv = res->attributes[i];
        if (strcmp(kv->key, "user.id") == 0) {
            if (kv->value == NULL || kv->value->value_case != OTLP__ANY_VALUE__VALUE_STRING_VALUE ||
                strcmp(kv->value->string_value, fuzz_id.user_id) != 0) {
                abort();
            }
            ids++;
        }
    }
    if (ids != 1) {
        abort();
    }
}

/* every resource of a stamped protobuf export carries exactly our user.id */
static void fuzz_check_protobuf(cg_otlp_signal_e sig, const char *buf, apr_size_t len)
{
    size_t i;

    if (sig == CG_OTLP_METRICS) {
        Otlp__ExportMetricsServiceRequest *r =
            otlp__export_metrics_service_request__unpack(NULL, len, (const uint8_t *)buf);
        if (r == NULL) {
            abort();
        }
        for (i = 0; i < r->n_resource_metrics; i++) {
            fuzz_check_resource(r->resource_metrics[i]->resource);
        }
        otlp__export_metrics_service_request__free_unpacked(r, NULL);
    }
    else if (sig == CG_OTLP_LOGS) {
        Otlp__ExportLogsServiceRequest *r =
            otlp__export_logs_service_request__unpack(NULL, len, (const uint8_t *)buf);
        if (r == NULL) {
            abort();
        }
        for (i = 0; i < r->n_resource_logs; i++) {
            fuzz_check_resource(r->resource_logs[i]->resource);
        }
        otlp__export_logs_service_request__free_unpacked(r, NULL);
    }
    else {
        Otlp__ExportTraceServiceRequest *r =
            otlp__export_trace_service_request__unpack(NULL, len, (const uint8_t *)buf);
        if (r == NULL) {
            abort();
        }
        for (i = 0; i < r->n_resource_spans; i++) {
            fuzz_check_resource(r->resource_spans[i]->resource);
        }
        otlp__export_trace_service_request__free_unpacked(r, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    cg_otlp_signal_e sig;
    cg_otlp_format_e fmt;
    const char *body, *out, *again, *plain, *why, *enc = NULL;
    apr_size_t len, out_len, again_len, plain_len;
    apr_status_t rv;

    if (size < 1) {
        return 0;
    }
    sig = (cg_otlp_signal_e)(data[0] % 3);
    fmt = (data[0] / 3) % 2 ? CG_OTLP_JSON : CG_OTLP_PROTOBUF;
    apr_pool_create(&p, fuzz_pool);
    body = (const char *)data + 1;
    len = size - 1;
    if ((data[0] / 6) % 2) {
        /* the body compressed, as a client with gzip on would send it */
        if (cg_otlp_gzip(p, body, len, &body, &len) != APR_SUCCESS) {
            abort();
        }
        enc = "gzip";
    }
    rv = cg_otlp_stamp(p, sig, fmt, enc, body, len, 1 << 22, &fuzz_id, &out, &out_len, &why);
    if (rv != APR_SUCCESS) {
        if (why == NULL) {
            abort();
        }
        apr_pool_destroy(p);
        return 0;
    }
    plain = out;
    plain_len = out_len;
    if (enc != NULL &&
        cg_otlp_gunzip(p, out, out_len, 1 << 23, &plain, &plain_len) != APR_SUCCESS) {
        abort();
    }
    if (fmt == CG_OTLP_PROTOBUF) {
        fuzz_check_protobuf(sig, plain, plain_len);
    }
    if (cg_otlp_stamp(p, sig, fmt, NULL, plain, plain_len, 1 << 23, &fuzz_id, &again, &again_len,
                      &why) != APR_SUCCESS ||
        again_len != plain_len || memcmp(again, plain, plain_len) != 0) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
