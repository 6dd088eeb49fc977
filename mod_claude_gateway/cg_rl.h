/* cg_rl: per-minute request and token counters in a fixed block of memory
 * (PURE: APR only).
 *
 * The block is shared memory made by the parent, so every child of a node
 * counts into the same table; the caller holds the node's global mutex
 * around each call. Windows are UTC minutes: a principal may send
 * requests_per_minute requests and tokens_per_minute tokens in each. */
#ifndef CG_RL_H
#define CG_RL_H

#include <apr.h>
#include <apr_time.h>

/** One counter: a principal's or a group's current minute. */
typedef struct cg_rl_slot_t {
    apr_uint64_t key;   /* hash of the counted name; 0: free */
    apr_int64_t minute; /* the window, minutes since the epoch */
    apr_int64_t requests;
    apr_int64_t tokens;
} cg_rl_slot_t;

typedef struct cg_rl_table_t {
    apr_uint32_t nslots;
    cg_rl_slot_t slots[1]; /* nslots of them */
} cg_rl_table_t;

/** Bytes a table of n slots needs. */
apr_size_t cg_rl_size(apr_uint32_t nslots);

/** Prepare a table in mem (zeroed by the caller or not). */
cg_rl_table_t *cg_rl_init(void *mem, apr_uint32_t nslots);

/** The 64-bit key of a counted name ("u:<sub>", "g:<group>"); never 0. */
apr_uint64_t cg_rl_key(const char *name);

/**
 * Whether key may send one more request in the minute of now, and count it.
 * @param rpm requests per minute (<= 0: unlimited)
 * @param tpm tokens per minute (<= 0: unlimited); checked against the
 *        tokens already recorded in this minute
 * @param commit 0: only check (so several keys can be checked before any
 *        is counted), 1: check and count
 * @return 0 when allowed; else the seconds until the window ends (>= 1)
 */
int cg_rl_take(cg_rl_table_t *t, apr_uint64_t key, apr_time_t now, apr_int64_t rpm, apr_int64_t tpm,
               int commit);

/** Add the tokens a request used to key's minute of now. */
void cg_rl_add_tokens(cg_rl_table_t *t, apr_uint64_t key, apr_time_t now, apr_int64_t tokens);

#endif
