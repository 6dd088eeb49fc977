/* Unit tests for cg_util: request ids, secret references, constant-time
 * comparison, error envelopes and the upstream header allowlist. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <jansson.h>

#include "unit.h"
#include "atoi_cases.h"
#include "cg_util.h"

START_TEST(request_id_rules)
{
    char long_id[80];

    ck_assert(cg_request_id_valid("myreq-001"));
    ck_assert(cg_request_id_valid("a.b_c-D9"));
    ck_assert(!cg_request_id_valid(""));
    ck_assert(!cg_request_id_valid(NULL));
    ck_assert(!cg_request_id_valid("has space"));
    ck_assert(!cg_request_id_valid("semi;colon"));
    ck_assert(!cg_request_id_valid("new\nline"));
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    ck_assert(cg_request_id_valid(long_id));
    long_id[64] = 'a';
    long_id[65] = '\0';
    ck_assert(!cg_request_id_valid(long_id));
}
END_TEST

START_TEST(uuid4_shape)
{
    const char *a = cg_uuid4(unit_pool), *b = cg_uuid4(unit_pool);

    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(strlen(a), 36);
    ck_assert_int_eq(a[14], '4');
    ck_assert(strchr("89ab", a[19]) != NULL);
    ck_assert_int_eq(a[8], '-');
    ck_assert(cg_request_id_valid(a));
    ck_assert_str_ne(a, b);
}
END_TEST

/* The canonical form of a version 4, RFC 4122 variant UUID. */
static int uuid4_well_formed(const char *u)
{
    int i;

    if (u == NULL || strlen(u) != 36) {
        return 0;
    }
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23 ? u[i] != '-'
                                                    : strchr("0123456789abcdef", u[i]) == NULL) {
            return 0;
        }
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

/* Adds id to seen; 0 when it was there already. */
static int uuid4_first_time(apr_hash_t *seen, const char *id)
{
    if (apr_hash_get(seen, id, APR_HASH_KEY_STRING) != NULL) {
        return 0;
    }
    apr_hash_set(seen, id, APR_HASH_KEY_STRING, id);
    return 1;
}

START_TEST(uuid4_many_distinct)
{
    /* many times the per-thread buffer: every id well formed, none twice,
     * and the version and variant bits not the only ones set */
    apr_hash_t *seen = apr_hash_make(unit_pool);
    int i, nibble_seen[16] = {0};

    for (i = 0; i < 5000; i++) {
        const char *id = cg_uuid4(unit_pool);

        ck_assert_msg(uuid4_well_formed(id), "bad uuid %s", id ? id : "(null)");
        ck_assert_msg(uuid4_first_time(seen, id), "uuid %s twice", id);
        nibble_seen[strchr("0123456789abcdef", id[0]) - "0123456789abcdef"] = 1;
    }
    for (i = 0; i < 16; i++) {
        ck_assert_int_eq(nibble_seen[i], 1);
    }
}
END_TEST

#define UUID4_PER_THREAD 300

typedef struct uuid4_batch_t {
    apr_pool_t *pool; /* this thread's only */
    const char *ids[UUID4_PER_THREAD];
} uuid4_batch_t;

static void *APR_THREAD_FUNC uuid4_thread(apr_thread_t *thd, void *data)
{
    uuid4_batch_t *batch = data;
    int i;

    for (i = 0; i < UUID4_PER_THREAD; i++) {
        batch->ids[i] = cg_uuid4(batch->pool);
    }
    apr_thread_exit(thd, APR_SUCCESS);
    return NULL;
}

START_TEST(uuid4_threads_distinct)
{
    /* each thread has a buffer of its own: no id comes out twice */
    apr_hash_t *seen = apr_hash_make(unit_pool);
    uuid4_batch_t *batch[4];
    apr_thread_t *t[4];
    apr_status_t rv;
    int i, j;

    for (i = 0; i < 4; i++) {
        batch[i] = apr_pcalloc(unit_pool, sizeof(*batch[i]));
        apr_pool_create(&batch[i]->pool, unit_pool);
    }
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, uuid4_thread, batch[i], unit_pool),
                         APR_SUCCESS);
    }
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(apr_thread_join(&rv, t[i]), APR_SUCCESS);
    }
    for (i = 0; i < 4; i++) {
        for (j = 0; j < UUID4_PER_THREAD; j++) {
            const char *id = batch[i]->ids[j];
            ck_assert_msg(uuid4_well_formed(id), "bad uuid %s", id ? id : "(null)");
            ck_assert_msg(uuid4_first_time(seen, id), "uuid %s twice", id);
        }
    }
}
END_TEST

/* Forks a child that writes n ids of its own to the parent; they are read
 * into out. */
static void uuid4_from_child(const char **out, int n)
{
    int fd[2], i, status;
    char buf[36 * 8];
    apr_size_t got = 0;
    pid_t pid;

    ck_assert_int_le(n, 8);
    ck_assert_int_eq(pipe(fd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        apr_pool_t *cp;

        close(fd[0]);
        apr_pool_create_unmanaged(&cp);
        for (i = 0; i < n; i++) {
            const char *id = cg_uuid4(cp);
            if (id == NULL || write(fd[1], id, 36) != 36) {
                _exit(1);
            }
        }
        _exit(0);
    }
    close(fd[1]);
    while (got < (apr_size_t)n * 36) {
        ssize_t r = read(fd[0], buf + got, (apr_size_t)n * 36 - got);
        if (r <= 0) {
            break;
        }
        got += (apr_size_t)r;
    }
    close(fd[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(got, (apr_size_t)n * 36);
    for (i = 0; i < n; i++) {
        out[i] = apr_pstrmemdup(unit_pool, buf + i * 36, 36);
    }
}

START_TEST(uuid4_fork_child_own_bytes)
{
    /* httpd forks its children from a parent whose buffer may hold bytes:
     * neither a child nor its sibling may hand out the parent's next ids */
    apr_hash_t *seen = apr_hash_make(unit_pool);
    const char *child1[4], *child2[4], *id;
    int i;

    ck_assert(uuid4_first_time(seen, cg_uuid4(unit_pool))); /* the buffer is full */
    uuid4_from_child(child1, 4);
    uuid4_from_child(child2, 4);
    for (i = 0; i < 4; i++) {
        id = cg_uuid4(unit_pool);
        ck_assert(uuid4_well_formed(id));
        ck_assert_msg(uuid4_first_time(seen, id), "parent id %s twice", id);
    }
    for (i = 0; i < 4; i++) {
        ck_assert_msg(uuid4_well_formed(child1[i]), "bad uuid %s", child1[i]);
        ck_assert_msg(uuid4_first_time(seen, child1[i]), "child id %s seen before", child1[i]);
        ck_assert_msg(uuid4_well_formed(child2[i]), "bad uuid %s", child2[i]);
        ck_assert_msg(uuid4_first_time(seen, child2[i]), "sibling id %s seen before", child2[i]);
    }
}
END_TEST

START_TEST(secret_from_env)
{
    const char *v = NULL;

    setenv("CG_UNIT_SECRET", "s3cret", 1);
    ck_assert_ptr_null(cg_secret_resolve(unit_pool, "env:CG_UNIT_SECRET", &v));
    ck_assert_str_eq(v, "s3cret");
    unsetenv("CG_UNIT_SECRET");
    ck_assert_ptr_nonnull(cg_secret_resolve(unit_pool, "env:CG_UNIT_SECRET", &v));
    ck_assert_ptr_null(v);
    ck_assert_ptr_nonnull(cg_secret_resolve(unit_pool, "env:", &v));
}
END_TEST

START_TEST(secret_from_file)
{
    const char *v = NULL, *err;
    char path[] = "/tmp/cg_unit_secretXXXXXX";
    apr_file_t *f;
    apr_size_t n;

    ck_assert_int_eq(apr_file_mktemp(&f, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE, unit_pool),
                     APR_SUCCESS);
    n = 8;
    apr_file_write(f, "key-123\n", &n);
    apr_file_close(f);
    ck_assert_ptr_null(
        cg_secret_resolve(unit_pool, apr_pstrcat(unit_pool, "file:", path, NULL), &v));
    ck_assert_str_eq(v, "key-123"); /* trailing newline removed */
    apr_file_remove(path, unit_pool);
    err = cg_secret_resolve(unit_pool, apr_pstrcat(unit_pool, "file:", path, NULL), &v);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(secret_inline_refused)
{
    const char *v = NULL, *err = cg_secret_resolve(unit_pool, "sk-ant-literal", &v);

    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(strstr(err, "sk-ant-literal")); /* never echo the secret */
    ck_assert_ptr_null(v);
}
END_TEST

START_TEST(secret_equal)
{
    ck_assert(cg_secret_equal("abc", "abc"));
    ck_assert(!cg_secret_equal("abc", "abd"));
    ck_assert(!cg_secret_equal("abc", "abcd"));
    ck_assert(!cg_secret_equal("abcd", "abc"));
    ck_assert(!cg_secret_equal("", "a"));
    ck_assert(cg_secret_equal("", ""));
    ck_assert(!cg_secret_equal(NULL, "a"));
}
END_TEST

START_TEST(error_envelope_shape)
{
    const char *s = cg_error_envelope(unit_pool, "invalid_request_error", "model \"x\" bad", "r-1");
    json_t *j = json_loads(s, 0, NULL);

    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "r-1");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                     "model \"x\" bad");
    json_decref(j);
    s = cg_error_envelope(unit_pool, "api_error", "m", NULL);
    ck_assert_ptr_null(strstr(s, "request_id"));
    ck_assert_str_eq(cg_oauth_error(unit_pool, "slow_down", NULL), "{\"error\":\"slow_down\"}");
    ck_assert_str_eq(cg_oauth_error(unit_pool, "invalid_request", "d"),
                     "{\"error\":\"invalid_request\",\"error_description\":\"d\"}");
}
END_TEST

START_TEST(header_allowlist)
{
    ck_assert(cg_header_forwardable("Content-Type"));
    ck_assert(cg_header_forwardable("anthropic-beta"));
    ck_assert(cg_header_forwardable("ANTHROPIC-VERSION"));
    ck_assert(cg_header_forwardable("x-stainless-lang"));
    ck_assert(!cg_header_forwardable("Authorization"));
    ck_assert(!cg_header_forwardable("x-api-key"));
    ck_assert(!cg_header_forwardable("Cookie"));
    ck_assert(!cg_header_forwardable("X-Forwarded-For"));
    ck_assert(!cg_header_forwardable("x-claude-code-session-id"));
    ck_assert(!cg_header_forwardable("Accept-Encoding"));
    ck_assert(!cg_header_forwardable("x-stainless"));
    ck_assert(!cg_header_forwardable(NULL));
    /* each name of the list, in any case, and near misses around it */
    ck_assert(cg_header_forwardable("ACCEPT"));
    ck_assert(cg_header_forwardable("content-LENGTH"));
    ck_assert(cg_header_forwardable("User-Agent"));
    ck_assert(cg_header_forwardable("X-Stainless-Os"));
    ck_assert(!cg_header_forwardable(""));
    ck_assert(!cg_header_forwardable("accepts"));
    ck_assert(!cg_header_forwardable("content"));
    ck_assert(!cg_header_forwardable("user-agent2"));
    ck_assert(!cg_header_forwardable("anthropic-dangerous-direct-browser-access"));
}
END_TEST

/* cg_atoi64 gives apr_atoi64's answer for every string. */
START_TEST(atoi64_as_apr)
{
    char buf[32];
    unsigned int seed = 8;
    size_t i;

    for (i = 0; i < sizeof(atoi_cases) / sizeof(atoi_cases[0]); i++) {
        ck_assert_msg(cg_atoi64(atoi_cases[i]) == apr_atoi64(atoi_cases[i]), "\"%s\"",
                      atoi_cases[i]);
    }
    for (i = 0; i < ATOI_RANDOM_ROUNDS; i++) {
        const char *s = atoi_random(buf, &seed);
        ck_assert_msg(cg_atoi64(s) == apr_atoi64(s), "\"%s\"", s);
    }
}
END_TEST

Suite *unit_suite_cg_util(void)
{
    Suite *s = suite_create("cg_util");
    TCase *tc = tcase_create("util");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, request_id_rules);
    tcase_add_test(tc, uuid4_shape);
    tcase_add_test(tc, uuid4_many_distinct);
    tcase_add_test(tc, uuid4_threads_distinct);
    tcase_add_test(tc, uuid4_fork_child_own_bytes);
    tcase_add_test(tc, secret_from_env);
    tcase_add_test(tc, secret_from_file);
    tcase_add_test(tc, secret_inline_refused);
    tcase_add_test(tc, secret_equal);
    tcase_add_test(tc, error_envelope_shape);
    tcase_add_test(tc, header_allowlist);
    tcase_add_test(tc, atoi64_as_apr);
    suite_add_tcase(s, tc);
    return s;
}
