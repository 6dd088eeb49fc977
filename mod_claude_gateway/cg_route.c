/* cg_route: failover decisions, see cg_route.h. */
#include <fnmatch.h>
#include <string.h>
#include <strings.h>

#include "cg_route.h"

int cg_route_group_ok(const cg_upstream_decl_t *u, const apr_array_header_t *groups)
{
    int i, k;

    if (u->groups == NULL) {
        return 1;
    }
    for (i = 0; groups != NULL && i < groups->nelts; i++) {
        for (k = 0; k < u->groups->nelts; k++) {
            if (!strcmp(APR_ARRAY_IDX(groups, i, const char *),
                        APR_ARRAY_IDX(u->groups, k, const char *))) {
                return 1;
            }
        }
    }
    return 0;
}

int cg_route_model_ok(const cg_upstream_decl_t *u, const char *model)
{
    int k;

    if (u->models == NULL) {
        return 1;
    }
    for (k = 0; model != NULL && k < u->models->nelts; k++) {
        const char *pat = APR_ARRAY_IDX(u->models, k, const char *);
        if (strcasecmp(pat, model) == 0 || fnmatch(pat, model, FNM_CASEFOLD | FNM_NOESCAPE) == 0) {
            return 1;
        }
    }
    return 0;
}

int cg_route_eligible(const cg_upstream_decl_t *u, const apr_array_header_t *groups,
                      const char *model)
{
    return cg_route_group_ok(u, groups) && cg_route_model_ok(u, model);
}

int cg_route_fails_over(int status)
{
    return status == 0 || status >= 500 || status == 429 || status == 401 || status == 403 ||
           status == 404;
}

int cg_route_pick(const int *statuses, int n)
{
    int i, last429 = -1, last40x = -1, last404 = -1, last501 = -1;

    for (i = 0; i < n; i++) {
        switch (statuses[i]) {
        case 429:
            last429 = i;
            break;
        case 401:
        case 403:
            last40x = i;
            break;
        case 404:
            last404 = i;
            break;
        case 501:
            last501 = i;
            break;
        default:
            break;
        }
    }
    return last429 >= 0 ? last429 : last40x >= 0 ? last40x : last404 >= 0 ? last404 : last501;
}

int cg_breaker_allow(cg_breaker_t *b, apr_time_t now, int *took_trial)
{
    *took_trial = 0;
    if (b->open_until == 0) {
        return 1;
    }
    if (now < b->open_until || b->trial) {
        return 0;
    }
    b->trial = 1; /* half-open: this request finds out */
    *took_trial = 1;
    return 1;
}

int cg_breaker_record(cg_breaker_t *b, int ok, apr_time_t now, int threshold,
                      apr_interval_time_t cooldown)
{
    int was_open = b->open_until != 0;

    b->trial = 0;
    if (ok) {
        b->failures = 0;
        b->open_until = 0;
        return was_open ? -1 : 0;
    }
    b->failures++;
    if (threshold > 0 && (b->failures >= threshold || was_open)) {
        b->open_until = now + cooldown;
        return was_open ? 0 : 1;
    }
    return 0;
}
