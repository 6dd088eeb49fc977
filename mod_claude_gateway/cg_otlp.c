/* cg_otlp: identity stamping of client OTLP exports, see cg_otlp.h.
 *
 * Memory: protobuf-c and zlib allocate from the caller's pool through their
 * allocator hooks (frees are no-ops, the pool releases everything); jansson
 * trees are released before return. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <jansson.h>
#include <zlib.h>

#include "otlp_relay.pb-c.h"
#include "cg_otlp.h"

static const char *const cg_otlp_reserved[] = {"user.id", "user.email", "user.groups",
                                               "identity.source"};
#define CG_OTLP_NRESERVED (sizeof(cg_otlp_reserved) / sizeof(cg_otlp_reserved[0]))

int cg_otlp_key_reserved(const char *key)
{
    apr_size_t i;

    for (i = 0; key != NULL && i < CG_OTLP_NRESERVED; i++) {
        if (strcmp(key, cg_otlp_reserved[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

int cg_otlp_signal_of_path(const char *path)
{
    static const char *const tails[] = {"/v1/metrics", "/v1/logs", "/v1/traces"};
    apr_size_t n, i, t;

    if (path == NULL) {
        return -1;
    }
    n = strlen(path);
    for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        t = strlen(tails[i]);
        if (n >= t && strcmp(path + n - t, tails[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *cg_otlp_signal_name(cg_otlp_signal_e sig)
{
    switch (sig) {
    case CG_OTLP_METRICS:
        return "metrics";
    case CG_OTLP_LOGS:
        return "logs";
    default:
        return "traces";
    }
}

cg_otlp_format_e cg_otlp_format_of(const char *ct)
{
    apr_size_t n;

    if (ct == NULL) {
        return CG_OTLP_PROTOBUF;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    for (n = 0; ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t'; n++) {
    }
    if (n == 0) {
        return CG_OTLP_PROTOBUF;
    }
    if ((n == 22 && strncasecmp(ct, "application/x-protobuf", n) == 0) ||
        (n == 20 && strncasecmp(ct, "application/protobuf", n) == 0)) {
        return CG_OTLP_PROTOBUF;
    }
    if (n == 16 && strncasecmp(ct, "application/json", n) == 0) {
        return CG_OTLP_JSON;
    }
    return CG_OTLP_UNSUPPORTED;
}

/* --- gzip --------------------------------------------------------------- */

static voidpf cg_z_alloc(voidpf pool, uInt items, uInt size)
{
    return apr_palloc(pool, (apr_size_t)items * size);
}

static void cg_z_free(voidpf pool, voidpf ptr)
{
    (void)pool;
    (void)ptr;
}

apr_status_t cg_otlp_gunzip(apr_pool_t *p, const char *in, apr_size_t len, apr_size_t max,
                            const char **out, apr_size_t *out_len)
{
    z_stream z;
    apr_size_t cap = len * 4 + 1024, used = 0;
    char *buf;
    int rc;

    if (cap > max + 1) {
        cap = max + 1;
    }
    memset(&z, 0, sizeof(z));
    z.zalloc = cg_z_alloc;
    z.zfree = cg_z_free;
    z.opaque = p;
    if (len > UINT_MAX || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, cap);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    for (;;) {
        if (used == cap) {
            char *grown;
            if (cap > max) {
                inflateEnd(&z);
                return APR_ENOSPC;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            grown = apr_palloc(p, cap);
            memcpy(grown, buf, used);
            buf = grown;
        }
        z.next_out = (Bytef *)buf + used;
        z.avail_out = (uInt)(cap - used);
        rc = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
        if (rc == Z_STREAM_END) {
            break;
        }
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_out == 0)) {
            inflateEnd(&z);
            return APR_EINVAL;
        }
        if (z.avail_in == 0 && z.avail_out != 0) {
            inflateEnd(&z); /* truncated */
            return APR_EINVAL;
        }
    }
    /* one member only: anything after it would reach no one stamped */
    if (z.avail_in != 0 || used > max) {
        inflateEnd(&z);
        return used > max ? APR_ENOSPC : APR_EINVAL;
    }
    inflateEnd(&z);
    *out = buf;
    *out_len = used;
    return APR_SUCCESS;
}

apr_status_t cg_otlp_gzip(apr_pool_t *p, const char *in, apr_size_t len, const char **out,
                          apr_size_t *out_len)
{
    z_stream z;
    uLong bound;
    char *buf;

    memset(&z, 0, sizeof(z));
    z.zalloc = cg_z_alloc;
    z.zfree = cg_z_free;
    z.opaque = p;
    if (len > UINT_MAX || deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                                       Z_DEFAULT_STRATEGY) != Z_OK) {
        return APR_EGENERAL;
    }
    bound = deflateBound(&z, (uLong)len) + 32;
    buf = apr_palloc(p, bound);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        deflateEnd(&z);
        return APR_EGENERAL;
    }
    *out = buf;
    *out_len = (apr_size_t)(bound - z.avail_out);
    deflateEnd(&z);
    return APR_SUCCESS;
}

/* --- protobuf ------------------------------------------------------------ */

static void *cg_pb_alloc(void *pool, size_t size)
{
    return apr_palloc(pool, size ? size : 1);
}

static void cg_pb_free(void *pool, void *ptr)
{
    (void)pool;
    (void)ptr;
}

static Otlp__KeyValue *cg_pb_kv(apr_pool_t *p, const char *key, const char *value)
{
    Otlp__KeyValue *kv = apr_palloc(p, sizeof(*kv));
    Otlp__AnyValue *v = apr_palloc(p, sizeof(*v));

    otlp__key_value__init(kv);
    otlp__any_value__init(v);
    v->value_case = OTLP__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = apr_pstrdup(p, value ? value : "");
    kv->key = apr_pstrdup(p, key);
    kv->value = v;
    return kv;
}

/* The client's attributes minus the reserved ones, then ours. */
static void cg_pb_stamp_resource(apr_pool_t *p, Otlp__Resource **slot, const cg_otlp_identity_t *id)
{
    Otlp__Resource *res = *slot;
    Otlp__KeyValue **attrs;
    size_t i, n = 0;

    if (res == NULL) {
        res = apr_palloc(p, sizeof(*res));
        otlp__resource__init(res);
        *slot = res;
    }
    attrs = apr_palloc(p, sizeof(*attrs) * (res->n_attributes + CG_OTLP_NRESERVED));
    for (i = 0; i < res->n_attributes; i++) {
        if (res->attributes[i] != NULL && !cg_otlp_key_reserved(res->attributes[i]->key)) {
            attrs[n++] = res->attributes[i];
        }
    }
    attrs[n++] = cg_pb_kv(p, "user.id", id->user_id);
    if (id->email != NULL) {
        attrs[n++] = cg_pb_kv(p, "user.email", id->email);
    }
    attrs[n++] = cg_pb_kv(p, "user.groups", id->groups);
    attrs[n++] = cg_pb_kv(p, "identity.source", id->source);
    res->attributes = attrs;
    res->n_attributes = n;
}

/* Serialise, then parse the result once more: protobuf-c accepts some
 * malformed tags (a field number 0 in a non-minimal varint) that it keeps as
 * unknown fields and writes back in a form nobody can read, so a collector
 * would refuse the export. Such exports are refused here instead. */
static apr_status_t cg_pb_pack(apr_pool_t *p, const ProtobufCMessage *m, const char **out,
                               apr_size_t *out_len, const char **why)
{
    ProtobufCAllocator a = {cg_pb_alloc, cg_pb_free, p};
    size_t size = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = apr_palloc(p, size ? size : 1);

    *out_len = protobuf_c_message_pack(m, buf);
    *out = (const char *)buf;
    if (*out_len != size) {
        *why = "cannot serialise the stamped export";
        return APR_EGENERAL;
    }
    if (protobuf_c_message_unpack(m->descriptor, &a, size, buf) == NULL) {
        *why = "malformed protobuf field";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static apr_status_t cg_pb_stamp(apr_pool_t *p, cg_otlp_signal_e sig, const char *body,
                                apr_size_t len, const cg_otlp_identity_t *id, const char **out,
                                apr_size_t *out_len, const char **why)
{
    ProtobufCAllocator a = {cg_pb_alloc, cg_pb_free, p};
    const uint8_t *in = (const uint8_t *)body;
    size_t i;

    switch (sig) {
    case CG_OTLP_METRICS: {
        Otlp__ExportMetricsServiceRequest *req =
            otlp__export_metrics_service_request__unpack(&a, len, in);
        if (req == NULL) {
            *why = "not an OTLP ExportMetricsServiceRequest";
            return APR_EINVAL;
        }
        for (i = 0; i < req->n_resource_metrics; i++) {
            cg_pb_stamp_resource(p, &req->resource_metrics[i]->resource, id);
        }
        return cg_pb_pack(p, &req->base, out, out_len, why);
    }
    case CG_OTLP_LOGS: {
        Otlp__ExportLogsServiceRequest *req =
            otlp__export_logs_service_request__unpack(&a, len, in);
        if (req == NULL) {
            *why = "not an OTLP ExportLogsServiceRequest";
            return APR_EINVAL;
        }
        for (i = 0; i < req->n_resource_logs; i++) {
            cg_pb_stamp_resource(p, &req->resource_logs[i]->resource, id);
        }
        return cg_pb_pack(p, &req->base, out, out_len, why);
    }
    default: {
        Otlp__ExportTraceServiceRequest *req =
            otlp__export_trace_service_request__unpack(&a, len, in);
        if (req == NULL) {
            *why = "not an OTLP ExportTraceServiceRequest";
            return APR_EINVAL;
        }
        for (i = 0; i < req->n_resource_spans; i++) {
            cg_pb_stamp_resource(p, &req->resource_spans[i]->resource, id);
        }
        return cg_pb_pack(p, &req->base, out, out_len, why);
    }
    }
}

/* --- OTLP/JSON ----------------------------------------------------------- */

static json_t *cg_json_kv(const char *key, const char *value)
{
    return json_pack("{s:s,s:{s:s}}", "key", key, "value", "stringValue", value ? value : "");
}

/* One resource object: strict enough that a lenient collector cannot read
 * an identity we did not write (duplicate keys are refused by the parser). */
static int cg_json_stamp_resource(json_t *owner, const cg_otlp_identity_t *id, const char **why)
{
    json_t *res = json_object_get(owner, "resource"), *attrs, *kept, *e;
    size_t i;

    if (res == NULL) {
        res = json_object();
        json_object_set_new(owner, "resource", res);
    }
    if (!json_is_object(res)) {
        *why = "resource is not an object";
        return 0;
    }
    attrs = json_object_get(res, "attributes");
    if (attrs != NULL && !json_is_array(attrs)) {
        *why = "resource.attributes is not an array";
        return 0;
    }
    kept = json_array();
    json_array_foreach(attrs, i, e)
    {
        json_t *key = json_object_get(e, "key");
        if (!json_is_object(e) || !json_is_string(key)) {
            json_decref(kept);
            *why = "an attribute has no string key";
            return 0;
        }
        if (!cg_otlp_key_reserved(json_string_value(key))) {
            json_array_append(kept, e);
        }
    }
    json_array_append_new(kept, cg_json_kv("user.id", id->user_id));
    if (id->email != NULL) {
        json_array_append_new(kept, cg_json_kv("user.email", id->email));
    }
    json_array_append_new(kept, cg_json_kv("user.groups", id->groups));
    json_array_append_new(kept, cg_json_kv("identity.source", id->source));
    json_object_set_new(res, "attributes", kept);
    return 1;
}

static apr_status_t cg_json_stamp(apr_pool_t *p, cg_otlp_signal_e sig, const char *body,
                                  apr_size_t len, const cg_otlp_identity_t *id, const char **out,
                                  apr_size_t *out_len, const char **why)
{
    static const char *const lists[] = {"resourceMetrics", "resourceLogs", "resourceSpans"};
    const char *list = lists[sig], *key;
    json_t *root, *arr, *e;
    char *dump;
    size_t i;

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        *why = "not a JSON object";
        return APR_EINVAL;
    }
    /* an export request has one member; a snake_case alias (resource_metrics)
     * that some collectors accept would otherwise slip past unstamped */
    json_object_foreach(root, key, e)
    {
        if (strcmp(key, list) != 0) {
            json_decref(root);
            *why = "unexpected member in the export request";
            return APR_EINVAL;
        }
    }
    arr = json_object_get(root, list);
    if (arr != NULL && !json_is_array(arr)) {
        json_decref(root);
        *why = "the resource list is not an array";
        return APR_EINVAL;
    }
    json_array_foreach(arr, i, e)
    {
        if (!json_is_object(e)) {
            json_decref(root);
            *why = "a resource entry is not an object";
            return APR_EINVAL;
        }
        if (!cg_json_stamp_resource(e, id, why)) {
            json_decref(root);
            return APR_EINVAL;
        }
    }
    dump = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (dump == NULL) {
        *why = "cannot serialise the stamped export";
        return APR_EGENERAL;
    }
    *out_len = strlen(dump);
    *out = apr_pstrmemdup(p, dump, *out_len);
    free(dump);
    return APR_SUCCESS;
}

apr_status_t cg_otlp_stamp(apr_pool_t *p, cg_otlp_signal_e sig, cg_otlp_format_e fmt,
                           const char *content_encoding, const char *body, apr_size_t len,
                           apr_size_t max_inflated, const cg_otlp_identity_t *id, const char **out,
                           apr_size_t *out_len, const char **why)
{
    int gzip = 0;
    apr_status_t rv;

    *why = NULL;
    if (content_encoding != NULL && *content_encoding != '\0' &&
        strcasecmp(content_encoding, "identity") != 0) {
        if (strcasecmp(content_encoding, "gzip") != 0) {
            *why = "unsupported Content-Encoding";
            return APR_ENOTIMPL;
        }
        gzip = 1;
    }
    if (fmt == CG_OTLP_UNSUPPORTED || (int)sig < 0 || sig > CG_OTLP_TRACES) {
        *why = "unsupported Content-Type";
        return APR_ENOTIMPL;
    }
    if (gzip) {
        rv = cg_otlp_gunzip(p, body, len, max_inflated, &body, &len);
        if (rv != APR_SUCCESS) {
            *why = rv == APR_ENOSPC ? "gzip body too large once inflated" : "corrupt gzip body";
            return APR_EINVAL;
        }
    }
    rv = fmt == CG_OTLP_JSON ? cg_json_stamp(p, sig, body, len, id, out, out_len, why)
                             : cg_pb_stamp(p, sig, body, len, id, out, out_len, why);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (gzip && cg_otlp_gzip(p, *out, *out_len, out, out_len) != APR_SUCCESS) {
        *why = "cannot compress the stamped export";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}
