/* cs_private.h: what the glue files of mod_claude_spend share. */
#ifndef CS_PRIVATE_H
#define CS_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_claude_gateway.h"
#include "cs_usage.h"
#include "cs_price.h"
#include "cs_lease.h"

extern module AP_MODULE_DECLARE_DATA claude_spend_module;
APLOG_USE_MODULE(claude_spend);

/* Our own stable message tags; never renumbered or reused. */
#define CS_LOGNO(n) "CS" #n ": "

#define CS_VERSION "0.1.0"
#define CS_USAGE_FILTER "CLAUDE_USAGE"
#define CS_UNSET (-1)

/** Per-directory configuration. */
typedef struct cs_dir_conf_t {
    int enabled; /* ClaudeSpend */
} cs_dir_conf_t;

/** Server configuration. */
typedef struct cs_srv_conf_t {
    const char *journal;     /* ClaudeSpendJournal: ledger rows the database could not take */
    int group_mode_max;      /* ClaudeSpendGroupLimitMode max (1) | min (0); CS_UNSET */
    int fail_open;           /* ClaudeSpendOnError open (1) | closed (0); CS_UNSET */
    const char *blocked_msg; /* ClaudeSpendBlockedMessage, replaces the 429's message */
    int reservation_ttl;     /* ClaudeSpendReservationTTL, seconds; CS_UNSET */
    int lease_requests;      /* ClaudeSpendLease, estimates per lease at most; CS_UNSET */
    int lease_age;           /* ClaudeSpendLease, seconds a lease is used; CS_UNSET */
} cs_srv_conf_t;

/** The server configuration of s. */
const cs_srv_conf_t *cs_srv_get(const server_rec *s);
/** "min" (the default) or "max": how several group caps of one period combine. */
const char *cs_srv_group_mode(const cs_srv_conf_t *sc);
/** Whether requests proceed when the caps cannot be read (default: no). */
int cs_srv_fail_open(const cs_srv_conf_t *sc);
/** How long a reservation holds when its request never settles (default 900 s). */
int cs_srv_reservation_ttl(const cs_srv_conf_t *sc);
/** How many requests' estimates one lease may cover (default 1024; 1: a reservation each). */
int cs_srv_lease_requests(const cs_srv_conf_t *sc);
/** How long a lease (or the knowledge that no cap applies) is used (default 5 s). */
apr_interval_time_t cs_srv_lease_age(const cs_srv_conf_t *sc);

/** Per-request state on the initial request. */
typedef struct cs_req_t {
    cs_usage_parser_t *parser; /* NULL until a 2xx JSON/SSE answer starts */
    cs_usage_t usage;
    int finished;                   /* usage final, notes set */
    apr_int64_t cost;               /* micro-USD, at list price */
    const char *entry_id;           /* ledger entry id; NULL until admitted */
    int reserved;                   /* a lease holds the estimate until settled */
    cs_lease_take_t take;           /* what admission took from the lease */
    const apr_table_t *cap_headers; /* anthropic-ratelimit-unified-* for 2xx answers */
    cs_price_memo_t price_memo;     /* cs_price_for's last answer */
    const char *model_req;          /* r->notes "claude-model", once read */
    int model_req_read;
    const char *period_keys[3]; /* of r->request_time, from admission; NULL before */
} cs_req_t;

/* The gateway's optional functions: this module's only link to it. */
extern APR_OPTIONAL_FN_TYPE(claude_gateway_identity) * cs_identity;
extern APR_OPTIONAL_FN_TYPE(claude_gateway_request_id) * cs_request_id;
extern APR_OPTIONAL_FN_TYPE(claude_gateway_db_acquire) * cs_db_acquire;
extern APR_OPTIONAL_FN_TYPE(claude_gateway_db_release) * cs_db_release;
extern APR_OPTIONAL_FN_TYPE(claude_gateway_refuse) * cs_refuse_fn;
extern APR_OPTIONAL_FN_TYPE(claude_gateway_pricing) * cs_pricing_fn;
extern APR_OPTIONAL_FN_TYPE(claude_gateway_note_set) * cs_note_set;
extern APR_OPTIONAL_FN_TYPE(claude_gateway_note_get) * cs_note_get;

/**
 * The price of a request's tokens: the site's override for the model, else
 * the list price; multiplier_ppm receives pricing.multiplier in millionths.
 * Remembered per initial request (cs_req_t.price_memo) for the model last asked.
 * @param model must live as long as r's initial request
 * @return 0 when an unknown model fell back to the default rate
 */
int cs_price_for(request_rec *r, const char *model, cs_price_t *price, apr_int64_t *multiplier_ppm);
extern APR_OPTIONAL_FN_TYPE(claude_gateway_admin_auth) * cs_admin_auth_fn;

/**
 * A subpool of pchild with an allocator of its own, guarded by a mutex: for
 * memory that request threads and the ledger writer take, each under its
 * own lock, while other threads allocate too.
 */
apr_status_t cs_pool_create_shared(apr_pool_t **out, apr_pool_t *pchild, const char *tag,
                                   apr_size_t max_free);

/** A 32-hex id, time-ordered then random (ledger entries, leases). */
const char *cs_new_id(apr_pool_t *p);

/** The day, week and month period keys of t (keys[0..2]), from p. */
void cs_period_keys(apr_pool_t *p, apr_time_t t, const char **keys);

/** The request state of r's initial request, created on first use. */
cs_req_t *cs_req_get(request_rec *r);

/**
 * The model the client asked for (the gateway's "claude-model" note, set in
 * its fixups before ours), read from r->notes once per initial request.
 */
const char *cs_req_model(request_rec *r, cs_req_t *rq);

/**
 * Finish the usage of r once (at EOS, or in log_transaction when the stream
 * never ended) and publish it in r->notes for the access log.
 */
void cs_usage_publish(request_rec *r, cs_req_t *rq);

#endif
