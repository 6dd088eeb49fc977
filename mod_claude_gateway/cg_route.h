/* cg_route: the decisions of upstream failover (PURE: APR only).
 *
 * Which upstreams may serve a request, which answers move on to the next
 * one, which answer the client gets when every upstream failed (the
 * reference's order), and a per-upstream circuit breaker that keeps a
 * failing upstream out of the way for a while. The HTTP exchange itself is
 * cg_upstream.c. */
#ifndef CG_ROUTE_H
#define CG_ROUTE_H

#include <apr_tables.h>
#include <apr_time.h>

#include "cg_policy.h"

/**
 * Whether an upstream may serve a user and model: its `groups` (any of the
 * user's; none configured: everyone) and its `models` (exact ids or `*`
 * globs, case-insensitive; none configured: every model).
 */
int cg_route_eligible(const cg_upstream_decl_t *u, const apr_array_header_t *groups,
                      const char *model);

/** The groups half of cg_route_eligible. */
int cg_route_group_ok(const cg_upstream_decl_t *u, const apr_array_header_t *groups);

/** The models half of cg_route_eligible. */
int cg_route_model_ok(const cg_upstream_decl_t *u, const char *model);

/**
 * Whether an upstream's answer sends the request on to the next upstream:
 * 5xx, 429, 401, 403 and 404, and 0 for a network error or a timeout. Other
 * statuses (400, 413, ...) are the answer.
 */
int cg_route_fails_over(int status);

/**
 * Which failed attempt the client gets when every upstream failed: the last
 * 429, else the last 401 or 403, else the last 404, else the last 501.
 * @param statuses the attempts' statuses in order (0: no answer)
 * @return its index, or -1 for the gateway's own 502
 */
int cg_route_pick(const int *statuses, int n);

/** Circuit breaker of one upstream, per child. */
typedef struct cg_breaker_t {
    int failures;          /* consecutive */
    apr_time_t open_until; /* skipped until then */
    int trial;             /* half-open: one request is trying it */
} cg_breaker_t;

/**
 * Whether a request may try the upstream now. Closed: yes. Open: no until
 * the cool-down passed, then one trial request (half-open) finds out.
 * @param took_trial receives 1 when this request is the trial
 */
int cg_breaker_allow(cg_breaker_t *b, apr_time_t now, int *took_trial);

/**
 * Record an attempt's outcome.
 * @param ok whether the upstream answered with something other than a
 *        failover status
 * @param threshold consecutive failures that open the breaker (0: never)
 * @param cooldown how long it stays open
 * @return 1 when this call opened the breaker, -1 when it closed it, else 0
 */
int cg_breaker_record(cg_breaker_t *b, int ok, apr_time_t now, int threshold,
                      apr_interval_time_t cooldown);

#endif
