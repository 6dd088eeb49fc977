/* cg_util: PURE helpers of mod_claude_gateway, see cg_util.h.
 *
 * Nothing here knows about requests; callers pass pools and strings. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_env.h>
#include <apr_lib.h>
#include <apr_general.h>
#include <jansson.h>

#include "cg_util.h"

/* Secret files larger than this are refused: a key is never this long, and a
 * mistyped path (a log file, say) must not be read into every request. */
#define CG_SECRET_FILE_MAX 8192

int cg_request_id_valid(const char *id)
{
    apr_size_t n = 0;

    if (id == NULL) {
        return 0;
    }
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        if (n >= 64 || !(apr_isalnum(c) || c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return n > 0;
}

/* Request ids take their randomness from a per-thread buffer of kernel
 * random bytes, refilled by one apr_generate_random_bytes() (getrandom) per
 * CG_RAND_BUF bytes instead of one system call per id. The bytes are as good
 * as the kernel's (request and instance ids need no more; they are not
 * secrets), and each is handed out once and wiped. A forked child inherits a
 * copy of its parent's buffer (httpd forks its children from the parent), so
 * the child handler below bumps cg_rand_forks and a thread whose buffer was
 * filled in another generation throws it away: a child never reuses the
 * bytes its parent or a sibling holds. getpid() would do too, but glibc no
 * longer caches it: a system call per id again. */
#define CG_RAND_BUF 512

static __thread unsigned char cg_rand_buf[CG_RAND_BUF];
static __thread apr_size_t cg_rand_left;     /* unused bytes at the buffer's end */
static __thread apr_uint32_t cg_rand_filled; /* cg_rand_forks when it was filled */
static apr_uint32_t cg_rand_forks;           /* written only in a fresh child */
static int cg_rand_fork_safe;                /* the child handler is registered */
static pthread_once_t cg_rand_once = PTHREAD_ONCE_INIT;

static void cg_rand_atfork_child(void)
{
    cg_rand_forks++; /* the child has one thread now: no one reads it meanwhile */
}

static void cg_rand_init(void)
{
    /* glibc unregisters it when the module is unloaded (dlclose) */
    cg_rand_fork_safe = pthread_atfork(NULL, NULL, cg_rand_atfork_child) == 0;
}

/* n (<= CG_RAND_BUF) random bytes from the kernel's generator, through this
 * thread's buffer. */
static apr_status_t cg_rand_bytes(unsigned char *out, apr_size_t n)
{
    apr_status_t rv;

    pthread_once(&cg_rand_once, cg_rand_init);
    if (!cg_rand_fork_safe) {
        return apr_generate_random_bytes(out, n); /* unbuffered, as before */
    }
    if (cg_rand_left > 0 && cg_rand_filled != cg_rand_forks) {
        memset(cg_rand_buf, 0, sizeof(cg_rand_buf)); /* inherited across fork() */
        cg_rand_left = 0;
    }
    if (cg_rand_left < n) {
        rv = apr_generate_random_bytes(cg_rand_buf, sizeof(cg_rand_buf));
        if (rv != APR_SUCCESS) {
            memset(cg_rand_buf, 0, sizeof(cg_rand_buf));
            cg_rand_left = 0;
            return rv;
        }
        cg_rand_left = sizeof(cg_rand_buf);
        cg_rand_filled = cg_rand_forks;
    }
    memcpy(out, cg_rand_buf + sizeof(cg_rand_buf) - cg_rand_left, n);
    memset(cg_rand_buf + sizeof(cg_rand_buf) - cg_rand_left, 0, n);
    cg_rand_left -= n;
    return APR_SUCCESS;
}

const char *cg_uuid4(apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    char *out, *o;
    int i;

    if (cg_rand_bytes(b, sizeof(b)) != APR_SUCCESS) {
        return NULL;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    /* 8-4-4-4-12 hex digits, written directly: one per request, and
     * apr_psprintf's formatter showed in profiles */
    out = o = apr_palloc(p, 37);
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *o++ = '-';
        }
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }
    *o = '\0';
    return out;
}

const char *cg_file_read(apr_pool_t *p, const char *path, apr_size_t max, const char **out,
                         apr_size_t *out_len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_size_t len;
    char *buf, err[128];

    *out = NULL;
    *out_len = 0;
    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "cannot open %s: %s", path, apr_strerror(rv, err, sizeof(err)));
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv != APR_SUCCESS || fi.size < 0 || (apr_size_t)fi.size > max) {
        apr_file_close(f);
        return apr_psprintf(p, "%s is unreadable or larger than %" APR_SIZE_T_FMT " bytes", path,
                            max);
    }
    len = (apr_size_t)fi.size;
    buf = apr_palloc(p, len + 1);
    rv = len > 0 ? apr_file_read_full(f, buf, len, &len) : APR_SUCCESS;
    apr_file_close(f);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "cannot read %s: %s", path, apr_strerror(rv, err, sizeof(err)));
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return NULL;
}

static const char *cg_secret_from_file(apr_pool_t *p, const char *path, const char **value)
{
    const char *buf, *err;
    apr_size_t len;

    if ((err = cg_file_read(p, path, CG_SECRET_FILE_MAX, &buf, &len)) != NULL) {
        return apr_pstrcat(p, "secret file: ", err, NULL);
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    if (len == 0 || memchr(buf, '\0', len) != NULL) {
        return apr_psprintf(p, "secret file %s is empty or binary", path);
    }
    *value = apr_pstrmemdup(p, buf, len);
    return NULL;
}

const char *cg_secret_resolve(apr_pool_t *p, const char *ref, const char **value)
{
    *value = NULL;
    if (ref == NULL || *ref == '\0') {
        return "empty secret reference";
    }
    if (strncmp(ref, "env:", 4) == 0) {
        char *v = NULL;
        if (ref[4] == '\0') {
            return "env: needs a variable name";
        }
        if (apr_env_get(&v, ref + 4, p) != APR_SUCCESS || v == NULL || *v == '\0') {
            return apr_psprintf(p, "environment variable %s is not set", ref + 4);
        }
        *value = v;
        return NULL;
    }
    if (strncmp(ref, "file:", 5) == 0) {
        if (ref[5] == '\0') {
            return "file: needs a path";
        }
        return cg_secret_from_file(p, ref + 5, value);
    }
    return "a secret must be given as env:NAME or file:/path, never inline";
}

int cg_secret_equal(const char *a, const char *b)
{
    apr_size_t la, lb, i;
    volatile unsigned char diff = 0;

    if (a == NULL || b == NULL) {
        return 0;
    }
    la = strlen(a);
    lb = strlen(b);
    /* Walk the expected length whatever the candidate is, so timing tells
     * nothing about the position of the first difference. */
    for (i = 0; i < lb; i++) {
        diff |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
    }
    return diff == 0 && la == lb;
}

/* jansson allocates with malloc; the dump is copied into the pool and freed at
 * once so that no library memory outlives the call. */
static const char *cg_json_dump_to_pool(apr_pool_t *p, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    const char *out = s ? apr_pstrdup(p, s) : "{}";

    free(s);
    json_decref(j);
    return out;
}

const char *cg_error_envelope(apr_pool_t *p, const char *type, const char *message,
                              const char *request_id)
{
    json_t *j = json_object();

    json_object_set_new(j, "type", json_string("error"));
    if (request_id != NULL) {
        json_object_set_new(j, "request_id", json_string(request_id));
    }
    json_object_set_new(j, "error",
                        json_pack("{s:s, s:s}", "type", type ? type : "api_error", "message",
                                  message ? message : ""));
    return cg_json_dump_to_pool(p, j);
}

const char *cg_oauth_error(apr_pool_t *p, const char *error, const char *description)
{
    json_t *j = json_object();

    json_object_set_new(j, "error", json_string(error));
    if (description != NULL) {
        json_object_set_new(j, "error_description", json_string(description));
    }
    return cg_json_dump_to_pool(p, j);
}

int cg_header_forwardable(const char *name)
{
    if (name == NULL) {
        return 0;
    }
    /* by the first letter: this runs for every request header */
    switch (name[0] | 0x20) {
    case 'a':
        return strcasecmp(name, "accept") == 0 || strcasecmp(name, "anthropic-beta") == 0 ||
               strcasecmp(name, "anthropic-version") == 0;
    case 'c':
        return strcasecmp(name, "content-type") == 0 || strcasecmp(name, "content-length") == 0;
    case 'u':
        return strcasecmp(name, "user-agent") == 0;
    case 'x':
        return strncasecmp(name, "x-stainless-", 12) == 0;
    default:
        return 0;
    }
}

apr_int64_t cg_atoi64(const char *s)
{
    const char *q = s;
    apr_int64_t v = 0;
    int neg = *q == '-';

    q += neg;
    /* the usual value: a note of ours, at most 18 digits, read in place */
    while (*q >= '0' && *q <= '9' && q - s < 18 + neg) {
        v = v * 10 + (*q++ - '0');
    }
    if (q > s + neg && (*q < '0' || *q > '9')) {
        return neg ? -v : v;
    }
    return apr_atoi64(s); /* spaces, a plus, no digits, 19 digits and more */
}

const char *cg_bearer_check(const char *token, apr_size_t max)
{
    const char *c;

    if (strlen(token) > max) {
        return "the access token is too long";
    }
    for (c = token; *c; c++) {
        if (*c < 0x21 || *c > 0x7e) {
            return "the access token holds characters a header cannot carry";
        }
    }
    return NULL;
}
