/* Unit tests of cs_lease: local admission from a lease, growth of the
 * lease size, retirement (replaced, displaced, idle, too old) with the
 * unused part handed back exactly, uncapped entries, a lease outliving
 * its table entry while requests still hold part of it, and requests of
 * one key waiting for the admission in flight instead of asking too. */
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "unit.h"
#include "cs_lease.h"

#define SEC(n) apr_time_from_sec(n)
#define MS(n) apr_time_from_msec(n)
#define T0 ((apr_time_t)1795451905 * APR_USEC_PER_SEC)

static cs_leases_t *make(int max_requests)
{
    cs_leases_t *t;
    cs_lease_conf_t c = {max_requests, SEC(5), SEC(1)};

    ck_assert_int_eq(cs_leases_create(&t, unit_pool, &c), APR_SUCCESS);
    return t;
}

static apr_table_t *headers(const char *status)
{
    apr_table_t *h = apr_table_make(unit_pool, 2);

    apr_table_set(h, "anthropic-ratelimit-unified-status", status);
    return h;
}

START_TEST(first_request_asks_the_database)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take;
    cs_lease_return_t ret;
    apr_int64_t want = -1;

    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0, unit_pool, &take, &want, &ret), 0);
    ck_assert_int_eq(want, 800); /* 8 estimates to begin with */
    ck_assert_ptr_null(ret.lease_id);
}
END_TEST

START_TEST(admits_locally_while_the_lease_has_room)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take, a, b;
    cs_lease_return_t ret;
    apr_int64_t want;
    int i;

    cs_leases_install(t, "k", "L1", 350, 0, 100, headers("allowed"), T0, unit_pool, &take, &ret);
    ck_assert_ptr_null(ret.lease_id);
    ck_assert_str_eq(take.lease_id, "L1");
    ck_assert_int_eq(take.held, 100);
    ck_assert_str_eq(apr_table_get(take.headers, "anthropic-ratelimit-unified-status"), "allowed");
    /* 250 left: two more of 100, then the third needs the database */
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(10), unit_pool, &a, &want, &ret), 1);
        ck_assert_str_eq(a.lease_id, "L1");
        cs_leases_done(t, &a);
    }
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(20), unit_pool, &b, &want, &ret), 0);
    /* the lease retires, its unused 50 go back with the next admission */
    ck_assert_str_eq(ret.lease_id, "L1");
    ck_assert_int_eq(ret.micro, 50);
    /* used up within half the lease lifetime: the next asks for twice as many */
    ck_assert_int_eq(want, 1600);
    ck_assert_int_eq(cs_leases_count(t), 0);
    /* the first request still holds its part of the retired lease */
    cs_leases_done(t, &take);
    ck_assert_ptr_null(take.lease);
}
END_TEST

/* A lease used up in less than half its lifetime (5 s here) doubles the
 * next one; one that lasted longer keeps the size. */
START_TEST(growth_follows_the_lease_lifetime)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take, a;
    cs_lease_return_t ret;
    apr_int64_t want;

    cs_leases_install(t, "k", "L1", 800, 0, 100, headers("allowed"), T0, unit_pool, &take, &ret);
    cs_leases_done(t, &take);
    while (cs_leases_take(t, "k", 100, T0 + MS(2400), unit_pool, &a, &want, &ret)) {
        cs_leases_done(t, &a);
    }
    ck_assert_int_eq(want, 1600);
    cs_leases_install(t, "k", "L2", 1600, 0, 100, headers("allowed"), T0 + MS(2400), unit_pool,
                      &take, &ret);
    cs_leases_done(t, &take);
    while (cs_leases_take(t, "k", 100, T0 + MS(2400) + MS(2600), unit_pool, &a, &want, &ret)) {
        cs_leases_done(t, &a);
    }
    ck_assert_int_eq(want, 1600);
}
END_TEST

START_TEST(size_is_capped_by_max_requests)
{
    cs_leases_t *t = make(10);
    cs_lease_take_t take;
    cs_lease_return_t ret;
    apr_int64_t want;

    cs_leases_install(t, "k", "L1", 800, 0, 100, headers("allowed"), T0, unit_pool, &take, &ret);
    cs_leases_done(t, &take);
    ck_assert_int_eq(cs_leases_take(t, "k", 750, T0 + MS(1), unit_pool, &take, &want, &ret), 0);
    ck_assert_int_eq(want, 7500); /* 16 would be asked for, 10 is the most */
    ck_assert_int_eq(ret.micro, 700);

    t = make(1); /* one reservation per request */
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0, unit_pool, &take, &want, &ret), 0);
    ck_assert_int_eq(want, 100);
}
END_TEST

START_TEST(keys_are_separate)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take;
    cs_lease_return_t ret;
    apr_int64_t want;

    cs_leases_install(t, "alice", "L1", 1000, 0, 100, headers("allowed"), T0, unit_pool, &take,
                      &ret);
    ck_assert_int_eq(cs_leases_take(t, "bob", 100, T0, unit_pool, &take, &want, &ret), 0);
    ck_assert_ptr_null(ret.lease_id);
    ck_assert_int_eq(cs_leases_take(t, "alice", 100, T0, unit_pool, &take, &want, &ret), 1);
}
END_TEST

START_TEST(a_concurrent_install_displaces_the_older_lease)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t a, b;
    cs_lease_return_t ret;

    cs_leases_install(t, "k", "L1", 1000, 0, 100, headers("allowed"), T0, unit_pool, &a, &ret);
    cs_leases_install(t, "k", "L2", 500, 0, 100, headers("allowed"), T0, unit_pool, &b, &ret);
    ck_assert_str_eq(ret.lease_id, "L1");
    ck_assert_int_eq(ret.micro, 900);
    ck_assert_int_eq(cs_leases_count(t), 1);
    cs_leases_done(t, &a);
    cs_leases_done(t, &b);
}
END_TEST

START_TEST(idle_and_old_leases_are_swept)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take;
    cs_lease_return_t ret;
    apr_array_header_t *back = apr_array_make(unit_pool, 4, sizeof(cs_lease_return_t));
    apr_int64_t want;
    int i;

    cs_leases_install(t, "idle", "L1", 1000, 0, 100, headers("allowed"), T0, unit_pool, &take,
                      &ret);
    cs_leases_done(t, &take);
    cs_leases_install(t, "busy", "L2", 100000, 0, 100, headers("allowed"), T0, unit_pool, &take,
                      &ret);
    cs_leases_done(t, &take);
    cs_leases_install(t, "free", NULL, 0, 1, 100, NULL, T0, unit_pool, &take, &ret);
    /* busy is used every 0.5 s; idle not at all */
    for (i = 1; i <= 3; i++) {
        ck_assert_int_eq(
            cs_leases_take(t, "busy", 100, T0 + MS(500) * i, unit_pool, &take, &want, &ret), 1);
        cs_leases_done(t, &take);
    }
    ck_assert_int_eq(cs_leases_sweep(t, T0 + MS(1600), 0, back), 2); /* idle, free */
    ck_assert_int_eq(back->nelts, 1);                                /* free had nothing */
    ck_assert_str_eq(APR_ARRAY_IDX(back, 0, cs_lease_return_t).lease_id, "L1");
    ck_assert_int_eq(APR_ARRAY_IDX(back, 0, cs_lease_return_t).micro, 900);
    /* too old, however busy: caps changed since are read again */
    ck_assert_int_eq(cs_leases_take(t, "busy", 100, T0 + SEC(5), unit_pool, &take, &want, &ret), 0);
    ck_assert_str_eq(ret.lease_id, "L2");
    ck_assert_int_eq(ret.micro, 100000 - 4 * 100);
    ck_assert_int_eq(cs_leases_count(t), 0);
}
END_TEST

START_TEST(force_sweep_returns_everything)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take, held;
    cs_lease_return_t ret;
    apr_array_header_t *back = apr_array_make(unit_pool, 4, sizeof(cs_lease_return_t));

    cs_leases_install(t, "a", "L1", 1000, 0, 100, headers("allowed"), T0, unit_pool, &held, &ret);
    cs_leases_install(t, "b", "L2", 300, 0, 300, headers("allowed"), T0, unit_pool, &take, &ret);
    cs_leases_done(t, &take);
    ck_assert_int_eq(cs_leases_sweep(t, T0, 1, back), 2);
    ck_assert_int_eq(back->nelts, 1); /* L2 had nothing left */
    ck_assert_int_eq(APR_ARRAY_IDX(back, 0, cs_lease_return_t).micro, 900);
    /* the request on L1 ends after its lease was retired: nothing breaks */
    ck_assert_str_eq(held.lease_id, "L1");
    cs_leases_done(t, &held);
}
END_TEST

START_TEST(uncapped_entries_hold_nothing)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take;
    cs_lease_return_t ret;
    apr_int64_t want;

    cs_leases_install(t, "k", NULL, 0, 1, 100, NULL, T0, unit_pool, &take, &ret);
    ck_assert_ptr_null(take.lease_id);
    ck_assert_ptr_null(take.lease);
    ck_assert_ptr_null(take.headers);
    ck_assert_int_eq(cs_leases_take(t, "k", 1000000, T0 + SEC(4), unit_pool, &take, &want, &ret),
                     1);
    ck_assert_ptr_null(take.lease_id);
    /* after max_age, the caps are read again */
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + SEC(5), unit_pool, &take, &want, &ret), 0);
    ck_assert_ptr_null(ret.lease_id);
    /* a clock that went back never extends a lease */
    cs_leases_install(t, "k", NULL, 0, 1, 100, NULL, T0, unit_pool, &take, &ret);
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 - SEC(1), unit_pool, &take, &want, &ret), 0);
}
END_TEST

START_TEST(headers_outlive_the_lease)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take;
    cs_lease_return_t ret;
    apr_array_header_t *back = apr_array_make(unit_pool, 4, sizeof(cs_lease_return_t));
    apr_pool_t *rp;

    apr_pool_create(&rp, unit_pool);
    cs_leases_install(t, "k", "L1", 1000, 0, 100, headers("allowed_warning"), T0, rp, &take, &ret);
    cs_leases_done(t, &take);
    cs_leases_sweep(t, T0, 1, back); /* the lease's pool is gone now */
    ck_assert_str_eq(apr_table_get(take.headers, "anthropic-ratelimit-unified-status"),
                     "allowed_warning");
    ck_assert_str_eq(take.lease_id, "L1");
}
END_TEST

START_TEST(taken_headers_are_the_installed_ones)
{
    cs_leases_t *t = make(1024);
    apr_table_t *h = apr_table_make(unit_pool, 4);
    cs_lease_take_t take, a;
    cs_lease_return_t ret;
    apr_array_header_t *back = apr_array_make(unit_pool, 4, sizeof(cs_lease_return_t));
    const apr_array_header_t *arr;
    const apr_table_entry_t *e;
    apr_int64_t want;
    apr_pool_t *rp;

    apr_table_addn(h, "anthropic-ratelimit-unified-status", "allowed");
    apr_table_addn(h, "anthropic-ratelimit-unified-reset", "1795478400");
    apr_table_addn(h, "Anthropic-Ratelimit-Unified-Status", "allowed_warning"); /* merged */
    apr_table_addn(h, "anthropic-ratelimit-unified-overage-utilization", "0.8");
    apr_pool_create(&rp, unit_pool);
    cs_leases_install(t, "k", "L1", 1000, 0, 100, h, T0, unit_pool, &take, &ret);
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0, rp, &a, &want, &ret), 1);
    /* apr_table_set's merge at install: first position, last value */
    arr = apr_table_elts(a.headers);
    e = (const apr_table_entry_t *)arr->elts;
    ck_assert_int_eq(arr->nelts, 3);
    ck_assert_str_eq(e[0].key, "anthropic-ratelimit-unified-status");
    ck_assert_str_eq(e[0].val, "allowed_warning");
    ck_assert_str_eq(e[1].key, "anthropic-ratelimit-unified-reset");
    ck_assert_str_eq(e[2].key, "anthropic-ratelimit-unified-overage-utilization");
    ck_assert_str_eq(e[2].val, "0.8");
    /* a table like any other: found by any case */
    ck_assert_str_eq(apr_table_get(a.headers, "ANTHROPIC-RATELIMIT-UNIFIED-RESET"), "1795478400");
    /* the lease's own, shared read only by the requests it admits: no copy */
    ck_assert_ptr_eq(a.headers, take.headers);
    ck_assert_ptr_eq(a.lease_id, take.lease_id);
    /* retired while both are in flight: still there for them */
    ck_assert_int_eq(cs_leases_sweep(t, T0, 1, back), 1);
    ck_assert_int_eq(cs_leases_count(t), 0);
    cs_leases_done(t, &take);
    ck_assert_ptr_null(take.lease);
    ck_assert_str_eq(apr_table_get(a.headers, "anthropic-ratelimit-unified-overage-utilization"),
                     "0.8");
    ck_assert_str_eq(a.lease_id, "L1");
    cs_leases_done(t, &a); /* the last one: the lease's memory goes */
    ck_assert_ptr_null(a.lease);
}
END_TEST

/* Half a lease taken: that request, and only that one, asks for the next;
 * installed while the old one is current, the old retires with what it had
 * left and the next requests take from the new one. */
START_TEST(half_used_asks_for_the_next_once)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take, a;
    cs_lease_return_t ret;
    apr_int64_t want;
    int i, asked = 0;

    cs_leases_install(t, "k", "L1", 800, 0, 100, headers("allowed"), T0, unit_pool, &take, &ret);
    ck_assert_int_eq(take.renew, 0); /* 700 left of 800 */
    cs_leases_done(t, &take);
    for (i = 0; i < 6; i++) {
        ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(10), unit_pool, &a, &want, &ret), 1);
        if (a.renew > 0) {
            /* 300 left after the fourth of seven: under half */
            ck_assert_int_eq(i, 3);
            /* half used in under a quarter of its lifetime: twice the size */
            ck_assert_int_eq(a.renew, 1600);
            ck_assert_str_eq(a.lease_id, "L1");
            asked++;
        }
        cs_leases_done(t, &a);
    }
    ck_assert_int_eq(asked, 1);
    /* 100 left; the successor arrives */
    cs_leases_renewed(t, "k", "L1", "L2", 1600, 100, headers("allowed_warning"), T0 + MS(20),
                      unit_pool, &ret);
    ck_assert_str_eq(ret.lease_id, "L1");
    ck_assert_int_eq(ret.micro, 100);
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(30), unit_pool, &a, &want, &ret), 1);
    ck_assert_str_eq(a.lease_id, "L2");
    ck_assert_int_eq(a.renew, 0);
    ck_assert_str_eq(apr_table_get(a.headers, "anthropic-ratelimit-unified-status"),
                     "allowed_warning");
    cs_leases_done(t, &a);
    ck_assert_int_eq(cs_leases_count(t), 1);
}
END_TEST

/* A successor that arrives after its lease was used up, replaced or swept
 * is not installed: the whole grant goes back. */
START_TEST(a_late_successor_goes_back_whole)
{
    cs_leases_t *t = make(1024);
    cs_lease_take_t take, a;
    cs_lease_return_t ret;
    apr_int64_t want;

    cs_leases_install(t, "k", "L1", 200, 0, 100, headers("allowed"), T0, unit_pool, &take, &ret);
    cs_leases_done(t, &take);
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(1), unit_pool, &a, &want, &ret), 1);
    ck_assert_int_gt(a.renew, 0);
    cs_leases_done(t, &a);
    /* used up: the next request asked the database itself and installed L3 */
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(2), unit_pool, &a, &want, &ret), 0);
    cs_leases_install(t, "k", "L3", 1600, 0, 100, headers("allowed"), T0 + MS(3), unit_pool, &a,
                      &ret);
    cs_leases_done(t, &a);
    cs_leases_renewed(t, "k", "L1", "L2", 1600, 100, headers("allowed"), T0 + MS(4), unit_pool,
                      &ret);
    ck_assert_str_eq(ret.lease_id, "L2");
    ck_assert_int_eq(ret.micro, 1600);
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(5), unit_pool, &a, &want, &ret), 1);
    ck_assert_str_eq(a.lease_id, "L3");
    cs_leases_done(t, &a);
    /* swept: no lease at all */
    ck_assert_int_eq(
        cs_leases_sweep(t, T0 + SEC(9), 1, apr_array_make(unit_pool, 2, sizeof(cs_lease_return_t))),
        1);
    cs_leases_renewed(t, "k", "L3", "L4", 800, 100, headers("allowed"), T0 + SEC(9), unit_pool,
                      &ret);
    ck_assert_str_eq(ret.lease_id, "L4");
    ck_assert_int_eq(ret.micro, 800);
    ck_assert_int_eq(cs_leases_count(t), 0);
}
END_TEST

/* A lease three quarters through its lifetime asks for the next even with
 * room left; with one estimate per lease (ClaudeSpendLease 1) none does. */
START_TEST(an_old_lease_asks_for_the_next)
{
    cs_leases_t *t = make(1024), *one = make(1);
    cs_lease_take_t take, a;
    cs_lease_return_t ret;
    apr_int64_t want;

    cs_leases_install(t, "k", "L1", 100000, 0, 100, headers("allowed"), T0, unit_pool, &take, &ret);
    cs_leases_done(t, &take);
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(3700), unit_pool, &a, &want, &ret), 1);
    ck_assert_int_eq(a.renew, 0);
    cs_leases_done(t, &a);
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(3750), unit_pool, &a, &want, &ret), 1);
    /* not used up quickly: the same size, 1000 estimates */
    ck_assert_int_eq(a.renew, 100000);
    cs_leases_done(t, &a);
    ck_assert_int_eq(cs_leases_take(t, "k", 100, T0 + MS(3800), unit_pool, &a, &want, &ret), 1);
    ck_assert_int_eq(a.renew, 0);
    cs_leases_done(t, &a);

    cs_leases_install(one, "k", "M1", 100, 0, 100, headers("allowed"), T0, unit_pool, &take, &ret);
    ck_assert_int_eq(take.renew, 0);
    cs_leases_done(one, &take);
}
END_TEST

/* cs_headers_add leaves dst as apr_table_setn of each header of src in
 * turn would: random tables over keys that differ in case, length or not
 * at all, compared entry by entry (order, key, value). */
START_TEST(headers_add_as_setn)
{
    static const char *const keys[] = {"anthropic-ratelimit-unified-status",
                                       "Anthropic-Ratelimit-Unified-Status",
                                       "anthropic-ratelimit-unified-reset",
                                       "anthropic-ratelimit-unified-overage-reset",
                                       "retry-after",
                                       "x-should-retry",
                                       "X-Request-Id",
                                       "x-request-id",
                                       "anth",
                                       "a"};
    unsigned int seed = 3;
    int round;

    for (round = 0; round < 20000; round++) {
        apr_table_t *a = apr_table_make(unit_pool, 4), *b = apr_table_make(unit_pool, 4);
        apr_table_t *src = apr_table_make(unit_pool, 4);
        const apr_array_header_t *ea, *eb;
        int i, nd, ns;

        seed = seed * 1103515245u + 12345u;
        nd = (int)((seed >> 16) % 7u);
        seed = seed * 1103515245u + 12345u;
        ns = (int)((seed >> 16) % (round % 50 == 0 ? 20u : 6u)); /* over 16 at times */
        for (i = 0; i < nd; i++) {
            seed = seed * 1103515245u + 12345u;
            apr_table_addn(a, keys[(seed >> 16) % 10u], apr_itoa(unit_pool, i));
        }
        b = apr_table_copy(unit_pool, a);
        for (i = 0; i < ns; i++) {
            seed = seed * 1103515245u + 12345u;
            apr_table_addn(src, keys[(seed >> 16) % 10u], apr_itoa(unit_pool, 100 + i));
        }
        cs_headers_add(a, src);
        ea = apr_table_elts(src);
        for (i = 0; i < ea->nelts; i++) {
            const apr_table_entry_t *e = &((const apr_table_entry_t *)ea->elts)[i];
            apr_table_setn(b, e->key, e->val);
        }
        ea = apr_table_elts(a);
        eb = apr_table_elts(b);
        ck_assert_int_eq(ea->nelts, eb->nelts);
        for (i = 0; i < ea->nelts; i++) {
            const apr_table_entry_t *x = &((const apr_table_entry_t *)ea->elts)[i];
            const apr_table_entry_t *y = &((const apr_table_entry_t *)eb->elts)[i];
            ck_assert_str_eq(x->key, y->key);
            ck_assert_str_eq(x->val, y->val);
        }
    }
}
END_TEST

/* --- one admission in flight per key ------------------------------------- */

static cs_leases_t *make_waiting(apr_interval_time_t wait)
{
    cs_leases_t *t;
    cs_lease_conf_t c = {1024, SEC(5), SEC(1), wait};

    ck_assert_int_eq(cs_leases_create(&t, unit_pool, &c), APR_SUCCESS);
    return t;
}

typedef struct taker_t {
    cs_leases_t *t;
    const char *key;
    apr_pool_t *pool; /* the thread's own: pools are not shared across threads */
    apr_thread_t *thread;
    int rc;
    cs_lease_take_t take;
    apr_int64_t want;
    apr_interval_time_t took; /* how long cs_leases_take took */
    volatile int done;
} taker_t;

static void *APR_THREAD_FUNC taker_run(apr_thread_t *thd, void *data)
{
    taker_t *k = data;
    cs_lease_return_t ret;
    apr_time_t t0 = apr_time_now();

    k->rc = cs_leases_take(k->t, k->key, 100, t0, k->pool, &k->take, &k->want, &ret);
    k->took = apr_time_now() - t0;
    k->done = 1;
    apr_thread_exit(thd, APR_SUCCESS);
    return NULL;
}

static taker_t *taker_start(cs_leases_t *t, const char *key)
{
    taker_t *k = apr_pcalloc(unit_pool, sizeof(*k));

    k->t = t;
    k->key = key;
    apr_pool_create(&k->pool, unit_pool);
    ck_assert_int_eq(apr_thread_create(&k->thread, NULL, taker_run, k, unit_pool), APR_SUCCESS);
    return k;
}

/* A request that waits: still taking after 50 ms. */
static taker_t *taker_waiting(cs_leases_t *t, const char *key)
{
    taker_t *k = taker_start(t, key);

    apr_sleep(MS(50));
    ck_assert_int_eq(k->done, 0);
    return k;
}

static void taker_join(taker_t *k)
{
    apr_status_t rv;

    ck_assert_int_eq(apr_thread_join(&rv, k->thread), APR_SUCCESS);
}

/* A request of key that finds no lease now: it becomes the key's admission
 * in flight, which cs_leases_install or cs_leases_asked ends. */
static void miss_now(cs_leases_t *t, const char *key)
{
    cs_lease_take_t take;
    cs_lease_return_t ret;
    apr_int64_t want;

    ck_assert_int_eq(cs_leases_take(t, key, 100, apr_time_now(), unit_pool, &take, &want, &ret), 0);
}

START_TEST(requests_wait_for_the_admission_in_flight)
{
    cs_leases_t *t = make_waiting(SEC(5));
    cs_lease_take_t take;
    cs_lease_return_t ret;
    taker_t *b, *c, *other;

    /* the first request asks the database; two more of the key wait for
     * its answer, one of another key does not */
    miss_now(t, "k");
    b = taker_start(t, "k");
    c = taker_start(t, "k");
    other = taker_start(t, "other");
    taker_join(other);
    ck_assert_int_eq(other->rc, 0);
    cs_leases_asked(t, "other", 0);
    apr_sleep(MS(100));
    ck_assert_int_eq(b->done, 0);
    ck_assert_int_eq(c->done, 0);
    /* the answer serves both */
    cs_leases_install(t, "k", "L1", 800, 0, 100, headers("allowed"), apr_time_now(), unit_pool,
                      &take, &ret);
    taker_join(b);
    taker_join(c);
    ck_assert_int_eq(b->rc, 1);
    ck_assert_int_eq(c->rc, 1);
    ck_assert_str_eq(b->take.lease_id, "L1");
    ck_assert_str_eq(c->take.lease_id, "L1");
    ck_assert_int_eq(b->take.held + c->take.held, 200);
    ck_assert_int_eq(cs_leases_count(t), 1);
}
END_TEST

START_TEST(a_refused_admission_lets_the_next_request_ask)
{
    cs_leases_t *t = make_waiting(SEC(5));
    taker_t *b;

    miss_now(t, "k");
    b = taker_waiting(t, "k");
    cs_leases_asked(t, "k", 0); /* the cap refused it: nothing installed */
    taker_join(b);
    ck_assert_int_eq(b->rc, 0); /* so this one asks the database itself */
    ck_assert_int_eq(b->want, 800);
    ck_assert(b->took < SEC(2));
    cs_leases_asked(t, "k", 0);
    /* nothing left in flight: the next request asks at once */
    miss_now(t, "k");
    cs_leases_asked(t, "k", 0);
}
END_TEST

START_TEST(no_waiting_while_the_database_fails)
{
    cs_leases_t *t = make_waiting(SEC(5));
    cs_lease_take_t take;
    cs_lease_return_t ret;
    taker_t *b;

    miss_now(t, "k");
    cs_leases_asked(t, "k", 1); /* the database did not answer */
    miss_now(t, "k");
    /* another admission is in flight, but waiting behind a failing database
     * would only add its timeout to every request */
    b = taker_start(t, "k");
    taker_join(b);
    ck_assert_int_eq(b->rc, 0);
    ck_assert(b->took < SEC(1));
    cs_leases_asked(t, "k", 0);
    cs_leases_asked(t, "k", 0);
    /* an installed lease ends the failure: requests wait again */
    miss_now(t, "j");
    cs_leases_install(t, "j", "J1", 100, 0, 100, headers("allowed"), apr_time_now(), unit_pool,
                      &take, &ret);
    miss_now(t, "k");
    b = taker_waiting(t, "k");
    cs_leases_asked(t, "k", 0);
    taker_join(b);
    cs_leases_asked(t, "k", 0);
}
END_TEST

START_TEST(a_stuck_admission_is_waited_for_at_most_conf_wait)
{
    cs_leases_t *t = make_waiting(MS(150));
    taker_t *b;

    miss_now(t, "k");
    b = taker_start(t, "k");
    taker_join(b);
    ck_assert_int_eq(b->rc, 0);
    ck_assert(b->took >= MS(150));
    ck_assert(b->took < SEC(2));
    cs_leases_asked(t, "k", 0);
    cs_leases_asked(t, "k", 0);
}
END_TEST

START_TEST(a_renewal_wakes_the_waiting_requests)
{
    cs_leases_t *t = make_waiting(SEC(5));
    cs_lease_take_t take, first;
    cs_lease_return_t ret;
    apr_int64_t want;
    apr_time_t now = apr_time_now();
    taker_t *b;
    int i;

    /* a lease of 8, used up; its successor is being renewed in the
     * background while a request asks the database too */
    cs_leases_install(t, "k", "L1", 800, 0, 100, headers("allowed"), now, unit_pool, &first, &ret);
    for (i = 0; i < 7; i++) {
        ck_assert_int_eq(cs_leases_take(t, "k", 100, now, unit_pool, &take, &want, &ret), 1);
    }
    ck_assert_int_eq(cs_leases_take(t, "k", 100, now, unit_pool, &take, &want, &ret), 0);
    b = taker_waiting(t, "k");
    /* the retired L1 is no longer current: a renewal of it comes too late,
     * goes back whole and wakes nobody into a lease; the admission does */
    cs_leases_renewed(t, "k", "L1", "L2", 800, 100, headers("allowed"), apr_time_now(), unit_pool,
                      &ret);
    ck_assert_str_eq(ret.lease_id, "L2");
    cs_leases_install(t, "k", "L3", 800, 0, 100, headers("allowed"), apr_time_now(), unit_pool,
                      &take, &ret);
    taker_join(b);
    ck_assert_int_eq(b->rc, 1);
    ck_assert_str_eq(b->take.lease_id, "L3");
}
END_TEST

Suite *unit_suite_cs_lease(void)
{
    Suite *s = suite_create("cs_lease");
    TCase *tc = tcase_create("lease");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, first_request_asks_the_database);
    tcase_add_test(tc, admits_locally_while_the_lease_has_room);
    tcase_add_test(tc, growth_follows_the_lease_lifetime);
    tcase_add_test(tc, size_is_capped_by_max_requests);
    tcase_add_test(tc, keys_are_separate);
    tcase_add_test(tc, a_concurrent_install_displaces_the_older_lease);
    tcase_add_test(tc, idle_and_old_leases_are_swept);
    tcase_add_test(tc, force_sweep_returns_everything);
    tcase_add_test(tc, uncapped_entries_hold_nothing);
    tcase_add_test(tc, headers_outlive_the_lease);
    tcase_add_test(tc, taken_headers_are_the_installed_ones);
    tcase_add_test(tc, half_used_asks_for_the_next_once);
    tcase_add_test(tc, a_late_successor_goes_back_whole);
    tcase_add_test(tc, an_old_lease_asks_for_the_next);
    tcase_add_test(tc, headers_add_as_setn);
    tcase_add_test(tc, requests_wait_for_the_admission_in_flight);
    tcase_add_test(tc, a_refused_admission_lets_the_next_request_ask);
    tcase_add_test(tc, no_waiting_while_the_database_fails);
    tcase_add_test(tc, a_stuck_admission_is_waited_for_at_most_conf_wait);
    tcase_add_test(tc, a_renewal_wakes_the_waiting_requests);
    suite_add_tcase(s, tc);
    return s;
}
