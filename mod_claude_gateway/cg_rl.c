/* cg_rl: per-minute counters, see cg_rl.h. Open addressing over a fixed
 * table: a slot of an older minute is free for reuse, so the table never
 * needs sweeping; when every probed slot is live, the least recently
 * counted one is taken over (a limit then forgets, never over-refuses). */
#include <string.h>

#include "cg_rl.h"

#define CG_RL_PROBES 16

apr_size_t cg_rl_size(apr_uint32_t nslots)
{
    return sizeof(cg_rl_table_t) + (apr_size_t)(nslots ? nslots - 1 : 0) * sizeof(cg_rl_slot_t);
}

cg_rl_table_t *cg_rl_init(void *mem, apr_uint32_t nslots)
{
    cg_rl_table_t *t = mem;

    memset(t, 0, cg_rl_size(nslots));
    t->nslots = nslots;
    return t;
}

apr_uint64_t cg_rl_key(const char *name)
{
    /* FNV-1a, 64 bits */
    apr_uint64_t h = APR_UINT64_C(14695981039346656037);

    for (; *name; name++) {
        h ^= (unsigned char)*name;
        h *= APR_UINT64_C(1099511628211);
    }
    return h ? h : 1;
}

static cg_rl_slot_t *cg_rl_find(cg_rl_table_t *t, apr_uint64_t key, apr_int64_t minute)
{
    cg_rl_slot_t *victim = NULL;
    apr_uint32_t i, idx;

    if (t->nslots == 0) {
        return NULL;
    }
    for (i = 0; i < CG_RL_PROBES && i < t->nslots; i++) {
        cg_rl_slot_t *s;
        idx = (apr_uint32_t)((key + i) % t->nslots);
        s = &t->slots[idx];
        if (s->key == key) {
            if (s->minute != minute) {
                s->minute = minute; /* a new window */
                s->requests = 0;
                s->tokens = 0;
            }
            return s;
        }
        if (s->key == 0 || s->minute < minute) {
            if (victim == NULL || victim->key != 0) {
                victim = s; /* free, or left over from an older minute */
            }
        }
        else if (victim == NULL) {
            victim = s;
        }
    }
    if (victim == NULL) {
        victim = &t->slots[key % t->nslots];
    }
    victim->key = key;
    victim->minute = minute;
    victim->requests = 0;
    victim->tokens = 0;
    return victim;
}

int cg_rl_take(cg_rl_table_t *t, apr_uint64_t key, apr_time_t now, apr_int64_t rpm, apr_int64_t tpm,
               int commit)
{
    apr_int64_t sec = apr_time_sec(now), minute = sec / 60;
    cg_rl_slot_t *s = cg_rl_find(t, key, minute);

    if (s == NULL) {
        return 0;
    }
    if ((rpm > 0 && s->requests >= rpm) || (tpm > 0 && s->tokens >= tpm)) {
        return (int)(60 - sec % 60);
    }
    if (commit) {
        s->requests++;
    }
    return 0;
}

void cg_rl_add_tokens(cg_rl_table_t *t, apr_uint64_t key, apr_time_t now, apr_int64_t tokens)
{
    cg_rl_slot_t *s = cg_rl_find(t, key, apr_time_sec(now) / 60);

    if (s != NULL && tokens > 0) {
        s->tokens += tokens;
    }
}
