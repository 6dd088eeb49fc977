/* cg_metrics: the gateway's own metrics, see cg_metrics.h. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "otlp_metrics.pb-c.h"
#include "cg_metrics.h"

#define CG_M_MAX_ATTRS 5
/* attribute values are cut here in series keys and exports */
#define CG_M_VALUE_MAX 256
#define CG_M_KEY_MAX (CG_M_MAX_ATTRS * (CG_M_VALUE_MAX + 32) + 8)

typedef enum { CG_M_INT, CG_M_DOUBLE, CG_M_HIST } cg_metric_kind_e;

typedef struct cg_metric_def_t {
    const char *name;
    const char *unit;
    const char *description;
    cg_metric_kind_e kind;
} cg_metric_def_t;

enum {
    CG_M_REQUESTS,
    CG_M_TOKENS,
    CG_M_COST,
    CG_M_DENIALS,
    CG_M_BLOCKS,
    CG_M_DURATION,
    CG_M_DROPPED,
    CG_M_FAILOVERS,
    CG_M_TTFB,
    CG_M_NMETRICS
};

static const cg_metric_def_t cg_metric_defs[CG_M_NMETRICS] = {
    {"mod_claude.requests", "{request}", "Requests the gateway answered", CG_M_INT},
    {"claude_code.token.usage", "tokens", "Tokens used, as metered by the gateway", CG_M_INT},
    {"claude_code.cost.usage", "USD", "Cost at list price, as metered by the gateway", CG_M_DOUBLE},
    {"mod_claude.policy.denials", "{request}", "Requests refused by availableModels", CG_M_INT},
    {"mod_claude.spend.blocks", "{request}", "Requests refused by a spend cap", CG_M_INT},
    {"mod_claude.request.duration", "s", "Time from request to logging", CG_M_HIST},
    {"mod_claude.telemetry.dropped", "{export}", "Client exports the relay dropped", CG_M_INT},
    {"mod_claude.upstream.failovers", "{attempt}", "Upstream attempts that failed over", CG_M_INT},
    {"mod_claude.upstream.time_to_first_byte", "s",
     "Time to the answering upstream's response headers (ClaudeGatewayRoute)", CG_M_HIST},
};

/* seconds; OpenTelemetry's http.server.request.duration advice, widened for
 * minutes-long streams */
static const double cg_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                   2.5,   5,    10,    30,   60,  120,  300};
#define CG_M_NBOUNDS (sizeof(cg_bounds) / sizeof(cg_bounds[0]))

typedef struct cg_attr_t {
    const char *key;
    const char *sval; /* string value, or NULL for an integer one */
    apr_int64_t ival;
} cg_attr_t;

typedef struct cg_series_t {
    int metric;
    int nattrs;
    cg_attr_t attrs[CG_M_MAX_ATTRS];
    apr_int64_t ival;
    double dval;
    apr_uint64_t count;
    double sum;
    apr_uint64_t buckets[CG_M_NBOUNDS + 1];
} cg_series_t;

struct cg_metrics_t {
    apr_pool_t *pool;
    apr_time_t start;
    apr_hash_t *series;
    apr_array_header_t *order; /* cg_series_t *, in first-seen order */
    int max_series;
    apr_uint64_t overflow;
};

/* The series table's hash. apr_hash's default goes a byte at a time (times
 * 33) and was half the cost of a lookup: series keys run to some 100 bytes
 * and several are looked up per request, so this takes 8 at a time, then
 * mixes the high bits down (apr_hash picks buckets by the low ones). Not
 * seeded, no more than the default: the series cap bounds what keys that
 * collide can cost, and equal hashes are still compared whole. */
static unsigned int cg_series_hash(const char *key, apr_ssize_t *klen)
{
    const apr_uint64_t k = 0xff51afd7ed558ccdULL;
    apr_uint64_t h = 0x9e3779b97f4a7c15ULL, w;
    apr_size_t len, i;

    if (*klen == APR_HASH_KEY_STRING) {
        *klen = (apr_ssize_t)strlen(key);
    }
    len = (apr_size_t)*klen;
    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, key + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, key + i, len - i);
    h = (h ^ w ^ (apr_uint64_t)len) * k; /* the length: tails differing in zero bytes */
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (unsigned int)h;
}

cg_metrics_t *cg_metrics_create(apr_pool_t *p, apr_time_t start, int max_series)
{
    cg_metrics_t *m = apr_pcalloc(p, sizeof(*m));

    m->pool = p;
    m->start = start;
    m->series = apr_hash_make_custom(p, cg_series_hash);
    m->order = apr_array_make(p, 64, sizeof(cg_series_t *));
    m->max_series = max_series;
    return m;
}

int cg_metrics_series(const cg_metrics_t *m)
{
    return m->order->nelts;
}

apr_uint64_t cg_metrics_overflow(const cg_metrics_t *m)
{
    return m->overflow;
}

/* The decimal digits of v at out (20 at most); returns how many. */
static apr_size_t cg_m_put_uint(char *out, apr_uint64_t v)
{
    char tmp[20];
    apr_size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

/* As "%" APR_INT64_T_FMT would print v (21 characters at most). */
static apr_size_t cg_m_put_int(char *out, apr_int64_t v)
{
    if (v < 0) {
        *out = '-';
        return 1 + cg_m_put_uint(out + 1, (apr_uint64_t)0 - (apr_uint64_t)v);
    }
    return cg_m_put_uint(out, (apr_uint64_t)v);
}

/* Series keys: the metric as one letter, then "|i:" and, for a string,
 * its length, ':' and its bytes, or the integer, for each attribute i that
 * has a value. Written by hand, not with apr_snprintf, whose formatter was
 * most of the cost of a lookup (several per request); the bytes are those
 * "|%d:%u:" and "|%d:%" APR_INT64_T_FMT made, so series are told apart
 * exactly as before: under CG_M_VALUE_MAX + 32 per attribute, as
 * CG_M_KEY_MAX allows. Appends attributes from..n-1 at key + len; returns
 * the new length. */
static apr_size_t cg_series_key(char *key, apr_size_t len, const cg_attr_t *attrs, int from, int n)
{
    int i;

    for (i = from; i < n; i++) {
        apr_size_t vlen;
        if (attrs[i].key == NULL) {
            continue;
        }
        key[len++] = '|';
        len += cg_m_put_uint(key + len, (apr_uint64_t)i);
        key[len++] = ':';
        if (attrs[i].sval == NULL) {
            len += cg_m_put_int(key + len, attrs[i].ival);
            continue;
        }
        vlen = strlen(attrs[i].sval);
        if (vlen > CG_M_VALUE_MAX) {
            vlen = CG_M_VALUE_MAX;
        }
        /* length-prefixed, so no value can imitate a separator */
        len += cg_m_put_uint(key + len, vlen);
        key[len++] = ':';
        memcpy(key + len, attrs[i].sval, vlen);
        len += vlen;
    }
    return len;
}

/* The series of key[0..len) (its letter set for metric), created with
 * attrs on first use; NULL over the cap. A series seen before costs no
 * allocation. */
static cg_series_t *cg_series_find(cg_metrics_t *m, int metric, const cg_attr_t *attrs, int n,
                                   char *key, apr_size_t len)
{
    cg_series_t *s;
    int i, k = 0;

    key[0] = (char)('A' + metric);
    s = apr_hash_get(m->series, key, (apr_ssize_t)len);
    if (s != NULL) {
        return s;
    }
    if (m->order->nelts >= m->max_series) {
        m->overflow++;
        return NULL;
    }
    s = apr_pcalloc(m->pool, sizeof(*s));
    s->metric = metric;
    for (i = 0; i < n; i++) {
        if (attrs[i].key == NULL) {
            continue;
        }
        s->attrs[k].key = attrs[i].key; /* static strings */
        s->attrs[k].ival = attrs[i].ival;
        if (attrs[i].sval != NULL) {
            apr_size_t vlen = strlen(attrs[i].sval);
            s->attrs[k].sval = apr_pstrmemdup(m->pool, attrs[i].sval,
                                              vlen > CG_M_VALUE_MAX ? CG_M_VALUE_MAX : vlen);
        }
        k++;
    }
    s->nattrs = k;
    apr_hash_set(m->series, apr_pmemdup(m->pool, key, len), (apr_ssize_t)len, s);
    APR_ARRAY_PUSH(m->order, cg_series_t *) = s;
    return s;
}

/* The series of a metric with these attributes (NULL string values are
 * left out), created on first use; NULL over the cap. */
static cg_series_t *cg_series_get(cg_metrics_t *m, int metric, const cg_attr_t *attrs, int n)
{
    char key[CG_M_KEY_MAX];

    return cg_series_find(m, metric, attrs, n, key, cg_series_key(key, 1, attrs, 0, n));
}

/* a string attribute, or none when the value is unknown */
static cg_attr_t cg_str(const char *key, const char *value)
{
    cg_attr_t a;

    a.key = value != NULL ? key : NULL;
    a.sval = value;
    a.ival = 0;
    return a;
}

static cg_attr_t cg_int(const char *key, apr_int64_t value)
{
    cg_attr_t a;

    a.key = key;
    a.sval = NULL;
    a.ival = value;
    return a;
}

static void cg_add(cg_series_t *s, apr_int64_t v)
{
    if (s != NULL) { /* NULL: the series table is full */
        s->ival += v;
    }
}

static void cg_add_int(cg_metrics_t *m, int metric, const cg_attr_t *attrs, int n, apr_int64_t v)
{
    cg_add(cg_series_get(m, metric, attrs, n), v);
}

/* One observation into a histogram series (NULL: the series table is full). */
static void cg_observe(cg_series_t *s, apr_interval_time_t t)
{
    double secs = (double)(t > 0 ? t : 0) / (double)APR_USEC_PER_SEC;
    apr_size_t i;

    if (s == NULL) {
        return;
    }
    for (i = 0; i < CG_M_NBOUNDS && secs > cg_bounds[i]; i++) {
    }
    s->buckets[i]++;
    s->count++;
    s->sum += secs;
}

void cg_metrics_record(cg_metrics_t *m, const cg_metrics_req_t *rq)
{
    static const char *const types[] = {"input", "output", "cacheRead", "cacheCreation"};
    const apr_int64_t tokens[] = {rq->input_tokens, rq->output_tokens, rq->cache_read_tokens,
                                  rq->cache_write_tokens};
    cg_attr_t a[CG_M_MAX_ATTRS];
    char key[CG_M_KEY_MAX];
    apr_size_t who2, who3, len;
    cg_series_t *s;
    apr_size_t i;

    a[0] = cg_int("http.response.status_code", rq->status);
    a[1] = cg_str("model", rq->model);
    a[2] = cg_str("upstream", rq->upstream);
    a[3] = cg_str("decision", rq->decision);
    cg_add(cg_series_find(m, CG_M_REQUESTS, a, 4, key, cg_series_key(key, 1, a, 0, 4)), 1);

    /* user, email and model begin the keys of tokens, cost, denials and
     * blocks: written once, each metric's letter set in turn */
    a[0] = cg_str("user.id", rq->user_id);
    a[1] = cg_str("user.email", rq->user_email);
    a[2] = cg_str("model", rq->model);
    who2 = cg_series_key(key, 1, a, 0, 2);
    who3 = cg_series_key(key, who2, a, 2, 3);
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (tokens[i] > 0) {
            a[3] = cg_str("type", types[i]);
            len = cg_series_key(key, who3, a, 3, 4);
            cg_add(cg_series_find(m, CG_M_TOKENS, a, 4, key, len), tokens[i]);
        }
    }
    if (rq->cost_micro_usd > 0 && (s = cg_series_find(m, CG_M_COST, a, 3, key, who3)) != NULL) {
        s->dval += (double)rq->cost_micro_usd / 1e6;
    }
    if (rq->decision != NULL && strcmp(rq->decision, "policy_denied") == 0) {
        cg_add(cg_series_find(m, CG_M_DENIALS, a, 3, key, who3), 1);
    }
    if (rq->decision != NULL && strcmp(rq->decision, "spend_blocked") == 0) {
        cg_add(cg_series_find(m, CG_M_BLOCKS, a, 2, key, who2), 1);
    }

    a[0] = cg_str("model", rq->model);
    a[1] = cg_str("upstream", rq->upstream);
    len = cg_series_key(key, 1, a, 0, 2);
    cg_observe(cg_series_find(m, CG_M_DURATION, a, 2, key, len), rq->duration);
    if (rq->failovers > 0) {
        cg_add(cg_series_find(m, CG_M_FAILOVERS, a, 2, key, len), rq->failovers);
    }
    if (rq->ttfb > 0 && rq->upstream != NULL) {
        cg_observe(cg_series_find(m, CG_M_TTFB, a, 2, key, len), rq->ttfb);
    }
}

void cg_metrics_dropped(cg_metrics_t *m, const char *reason, apr_uint64_t n)
{
    cg_attr_t a = cg_str("reason", reason);

    cg_add_int(m, CG_M_DROPPED, &a, 1, (apr_int64_t)n);
}

/* --- encoding ------------------------------------------------------------ */

static Otlp__KeyValue *cg_kv_make(apr_pool_t *p, const char *key, const char *sval,
                                  apr_int64_t ival)
{
    Otlp__KeyValue *kv = apr_palloc(p, sizeof(*kv));
    Otlp__AnyValue *v = apr_palloc(p, sizeof(*v));

    otlp__key_value__init(kv);
    otlp__any_value__init(v);
    kv->key = (char *)key;
    if (sval != NULL) {
        v->value_case = OTLP__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = (char *)sval;
    }
    else {
        v->value_case = OTLP__ANY_VALUE__VALUE_INT_VALUE;
        v->int_value = ival;
    }
    kv->value = v;
    return kv;
}

static Otlp__KeyValue **cg_series_attrs(apr_pool_t *p, const cg_series_t *s)
{
    Otlp__KeyValue **kvs = apr_palloc(p, sizeof(*kvs) * (s->nattrs ? s->nattrs : 1));
    int i;

    for (i = 0; i < s->nattrs; i++) {
        kvs[i] = cg_kv_make(p, s->attrs[i].key, s->attrs[i].sval, s->attrs[i].ival);
    }
    return kvs;
}

static uint64_t cg_nanos(apr_time_t t)
{
    return (uint64_t)t * 1000u;
}

apr_status_t cg_metrics_encode(apr_pool_t *p, const cg_metrics_t *m, apr_time_t end,
                               const apr_array_header_t *resource, const char **out,
                               apr_size_t *out_len)
{
    Otlp__OwnMetricsRequest req = OTLP__OWN_METRICS_REQUEST__INIT;
    Otlp__OwnResourceMetrics rm = OTLP__OWN_RESOURCE_METRICS__INIT;
    Otlp__OwnScopeMetrics sm = OTLP__OWN_SCOPE_METRICS__INIT;
    Otlp__InstrumentationScope scope = OTLP__INSTRUMENTATION_SCOPE__INIT;
    Otlp__Resource res = OTLP__RESOURCE__INIT;
    Otlp__OwnResourceMetrics *rms[1];
    Otlp__OwnScopeMetrics *sms[1];
    Otlp__OwnMetric **metrics;
    size_t size;
    uint8_t *buf;
    int i, k, nm = 0;

    rms[0] = &rm;
    sms[0] = &sm;
    req.n_resource_metrics = 1;
    req.resource_metrics = rms;
    rm.resource = &res;
    rm.n_scope_metrics = 1;
    rm.scope_metrics = sms;
    sm.scope = &scope;
    scope.name = "mod_claude";
    res.n_attributes = resource ? (size_t)resource->nelts : 0;
    res.attributes = apr_palloc(p, sizeof(*res.attributes) * (res.n_attributes + 1));
    for (i = 0; resource != NULL && i < resource->nelts; i++) {
        const cg_otlp_kv_t *kv = &APR_ARRAY_IDX(resource, i, cg_otlp_kv_t);
        res.attributes[i] = cg_kv_make(p, kv->key, kv->value, 0);
    }
    metrics = apr_palloc(p, sizeof(*metrics) * CG_M_NMETRICS);
    for (k = 0; k < CG_M_NMETRICS; k++) {
        const cg_metric_def_t *def = &cg_metric_defs[k];
        Otlp__OwnMetric *om;
        int n = 0;

        for (i = 0; i < m->order->nelts; i++) {
            n += APR_ARRAY_IDX(m->order, i, const cg_series_t *)->metric == k;
        }
        if (n == 0) {
            continue;
        }
        om = apr_palloc(p, sizeof(*om));
        otlp__own_metric__init(om);
        om->name = (char *)def->name;
        om->unit = (char *)def->unit;
        om->description = (char *)def->description;
        if (def->kind == CG_M_HIST) {
            Otlp__OwnHistogram *h = apr_palloc(p, sizeof(*h));
            otlp__own_histogram__init(h);
            h->aggregation_temporality =
                OTLP__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;
            h->data_points = apr_palloc(p, sizeof(*h->data_points) * (size_t)n);
            for (i = 0; i < m->order->nelts; i++) {
                const cg_series_t *s = APR_ARRAY_IDX(m->order, i, const cg_series_t *);
                Otlp__OwnHistogramDataPoint *dp;
                if (s->metric != k) {
                    continue;
                }
                dp = apr_palloc(p, sizeof(*dp));
                otlp__own_histogram_data_point__init(dp);
                dp->n_attributes = (size_t)s->nattrs;
                dp->attributes = cg_series_attrs(p, s);
                dp->start_time_unix_nano = cg_nanos(m->start);
                dp->time_unix_nano = cg_nanos(end);
                dp->count = s->count;
                dp->sum = s->sum;
                dp->n_bucket_counts = CG_M_NBOUNDS + 1;
                dp->bucket_counts = (uint64_t *)apr_pmemdup(p, s->buckets, sizeof(s->buckets));
                dp->n_explicit_bounds = CG_M_NBOUNDS;
                dp->explicit_bounds = (double *)cg_bounds;
                h->data_points[h->n_data_points++] = dp;
            }
            om->data_case = OTLP__OWN_METRIC__DATA_HISTOGRAM;
            om->histogram = h;
        }
        else {
            Otlp__OwnSum *sum = apr_palloc(p, sizeof(*sum));
            otlp__own_sum__init(sum);
            sum->aggregation_temporality =
                OTLP__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;
            sum->is_monotonic = 1;
            sum->data_points = apr_palloc(p, sizeof(*sum->data_points) * (size_t)n);
            for (i = 0; i < m->order->nelts; i++) {
                const cg_series_t *s = APR_ARRAY_IDX(m->order, i, const cg_series_t *);
                Otlp__OwnNumberDataPoint *dp;
                if (s->metric != k) {
                    continue;
                }
                dp = apr_palloc(p, sizeof(*dp));
                otlp__own_number_data_point__init(dp);
                dp->n_attributes = (size_t)s->nattrs;
                dp->attributes = cg_series_attrs(p, s);
                dp->start_time_unix_nano = cg_nanos(m->start);
                dp->time_unix_nano = cg_nanos(end);
                if (def->kind == CG_M_DOUBLE) {
                    dp->value_case = OTLP__OWN_NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
                    dp->as_double = s->dval;
                }
                else {
                    dp->value_case = OTLP__OWN_NUMBER_DATA_POINT__VALUE_AS_INT;
                    dp->as_int = s->ival;
                }
                sum->data_points[sum->n_data_points++] = dp;
            }
            om->data_case = OTLP__OWN_METRIC__DATA_SUM;
            om->sum = sum;
        }
        metrics[nm++] = om;
    }
    sm.n_metrics = (size_t)nm;
    sm.metrics = metrics;
    size = otlp__own_metrics_request__get_packed_size(&req);
    buf = apr_palloc(p, size ? size : 1);
    if (otlp__own_metrics_request__pack(&req, buf) != size) {
        return APR_EGENERAL;
    }
    *out = (const char *)buf;
    *out_len = size;
    return APR_SUCCESS;
}
