/* cg_metrics: the gateway's own metrics, aggregated per child and encoded as
 * an OTLP/HTTP protobuf export (PURE: APR, protobuf-c).
 *
 * One aggregate holds one export interval: request threads add to it in
 * log_transaction (the caller serialises them with a mutex; nothing here
 * locks or does I/O), the background thread swaps it for a fresh one and
 * encodes the old one with delta temporality. Series are keyed by their
 * attributes; a series seen again allocates nothing, and the number of
 * series per interval is capped so that a burst of distinct users or models
 * cannot grow a child without bound. Names follow Claude Code's own metrics
 * where they mean the same (claude_code.token.usage, claude_code.cost.usage
 * with user.id, user.email, model, type). */
#ifndef CG_METRICS_H
#define CG_METRICS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "cg_otlp.h"

/** One finished request, as log_transaction saw it. Strings may be NULL. */
typedef struct cg_metrics_req_t {
    int status;             /* final HTTP status */
    const char *model;      /* the model served, else the one requested */
    const char *upstream;   /* the policy's name of the upstream, for proxied requests */
    const char *decision;   /* the claude-decision note */
    const char *user_id;    /* the verified subject */
    const char *user_email; /* the verified email */
    /* tokens by kind and cost in micro-USD; negative when not metered */
    apr_int64_t input_tokens, output_tokens, cache_read_tokens, cache_write_tokens;
    apr_int64_t cost_micro_usd;
    apr_interval_time_t duration; /* from request line to log_transaction */
    int failovers;                /* upstreams that failed before the one that answered */
    apr_interval_time_t ttfb;     /* the answering upstream's time to first byte; <= 0: unknown */
} cg_metrics_req_t;

typedef struct cg_metrics_t cg_metrics_t;

/**
 * A new, empty aggregate.
 * @param p its pool: every series lives there; destroy the pool to free it
 * @param start the start of the interval (the data points' start time)
 * @param max_series series kept per interval; more are counted as overflow
 */
cg_metrics_t *cg_metrics_create(apr_pool_t *p, apr_time_t start, int max_series);

/** Add one request to the aggregate. Not thread-safe. */
void cg_metrics_record(cg_metrics_t *m, const cg_metrics_req_t *rq);

/**
 * Count exports the telemetry relay dropped
 * (mod_claude.telemetry.dropped{reason}). Not thread-safe.
 */
void cg_metrics_dropped(cg_metrics_t *m, const char *reason, apr_uint64_t n);

/** The number of series in the aggregate (0: nothing to export). */
int cg_metrics_series(const cg_metrics_t *m);

/** Series refused because the cap was reached. */
apr_uint64_t cg_metrics_overflow(const cg_metrics_t *m);

/**
 * Encode the aggregate as an OTLP ExportMetricsServiceRequest.
 * @param p pool for the result
 * @param m the aggregate (read only)
 * @param end the end of the interval
 * @param resource resource attributes, cg_otlp_kv_t elements
 * @param out receives the protobuf bytes
 * @param out_len their length
 * @return APR_SUCCESS or APR_EGENERAL
 */
apr_status_t cg_metrics_encode(apr_pool_t *p, const cg_metrics_t *m, apr_time_t end,
                               const apr_array_header_t *resource, const char **out,
                               apr_size_t *out_len);

#endif
