/* cg_sigv4: AWS Signature Version 4, see cg_sigv4.h.
 *
 * The steps and their names follow AWS's "Create a signed AWS API request":
 * canonical request, string to sign, signing key, signature. The canonical
 * path is built the way botocore's SigV4Auth does for non-S3 services (dot and
 * empty segments removed, then encoded once more), which is what Bedrock
 * verifies against; the unit tests pin it with AWS's published test suite. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cg_sigv4.h"

#define CG_SIGV4_ALG "AWS4-HMAC-SHA256"
/* AWS secret keys are 40 characters; anything far longer is a configuration mistake */
#define CG_SIGV4_SECRET_MAX 512

static const char cg_sigv4_hexdig[] = "0123456789abcdef";

static const char *cg_sigv4_hex(apr_pool_t *p, const unsigned char *b, apr_size_t n)
{
    char *out = apr_palloc(p, n * 2 + 1);
    apr_size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = cg_sigv4_hexdig[b[i] >> 4];
        out[2 * i + 1] = cg_sigv4_hexdig[b[i] & 0x0f];
    }
    out[n * 2] = '\0';
    return out;
}

static const char *cg_sigv4_sha256_hex(apr_pool_t *p, const void *data, apr_size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(len > 0 ? data : "", len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        return NULL;
    }
    return cg_sigv4_hex(p, md, mdlen);
}

static int cg_sigv4_hmac(const unsigned char *key, apr_size_t keylen, const char *msg,
                         unsigned char out[32])
{
    unsigned int outlen = 0;

    return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out,
                &outlen) != NULL &&
           outlen == 32;
}

static int cg_sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static const char *cg_sigv4_encode_n(apr_pool_t *p, const char *s, apr_size_t n, int keep_slash)
{
    static const char up[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, n * 3 + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (cg_sigv4_unreserved(c) || (keep_slash && c == '/')) {
            *o++ = (char)c;
        }
        else {
            *o++ = '%';
            *o++ = up[c >> 4];
            *o++ = up[c & 0x0f];
        }
    }
    *o = '\0';
    return out;
}

const char *cg_sigv4_uri_encode(apr_pool_t *p, const char *s, int keep_slash)
{
    return cg_sigv4_encode_n(p, s ? s : "", s ? strlen(s) : 0, keep_slash);
}

const char *cg_sigv4_amz_date(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

apr_status_t cg_sigv4_signing_key(const char *secret_access_key, const char *date,
                                  const char *region, const char *service, unsigned char key[32])
{
    unsigned char first[4 + CG_SIGV4_SECRET_MAX], k1[32], k2[32];
    apr_size_t n;
    int ok;

    if (secret_access_key == NULL || date == NULL || region == NULL || service == NULL ||
        (n = strlen(secret_access_key)) > CG_SIGV4_SECRET_MAX) {
        return APR_EINVAL;
    }
    memcpy(first, "AWS4", 4);
    memcpy(first + 4, secret_access_key, n);
    /* never HMAC in place: output and key buffers stay apart */
    ok = cg_sigv4_hmac(first, n + 4, date, k1) && cg_sigv4_hmac(k1, 32, region, k2) &&
         cg_sigv4_hmac(k2, 32, service, k1) && cg_sigv4_hmac(k1, 32, "aws4_request", key);
    OPENSSL_cleanse(first, sizeof(first));
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    return ok ? APR_SUCCESS : APR_EINVAL;
}

/* RFC 3986 remove_dot_segments, plus the removal of empty segments AWS asks
 * for, as botocore's normalize_url_path: "/a/./b/../c//" gives "/a/c/". */
static const char *cg_sigv4_normalize_path(apr_pool_t *p, const char *path)
{
    apr_array_header_t *segs;
    char *copy, *seg, *last;
    apr_size_t len;
    int leading, trailing, i;
    const char *out;

    if (path == NULL || *path == '\0') {
        return "/";
    }
    len = strlen(path);
    leading = path[0] == '/';
    trailing = path[len - 1] == '/';
    segs = apr_array_make(p, 8, sizeof(const char *));
    copy = apr_pstrdup(p, path);
    for (seg = apr_strtok(copy, "/", &last); seg != NULL; seg = apr_strtok(NULL, "/", &last)) {
        if (strcmp(seg, ".") == 0) {
            continue;
        }
        if (strcmp(seg, "..") == 0) {
            if (segs->nelts > 0) {
                segs->nelts--;
            }
            continue;
        }
        APR_ARRAY_PUSH(segs, const char *) = seg;
    }
    out = leading ? "/" : "";
    for (i = 0; i < segs->nelts; i++) {
        out = apr_pstrcat(p, out, i > 0 ? "/" : "", APR_ARRAY_IDX(segs, i, const char *), NULL);
    }
    if (trailing && segs->nelts > 0) {
        out = apr_pstrcat(p, out, "/", NULL);
    }
    return *out ? out : "/";
}

static int cg_sigv4_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decode s[0..n) (a '%' not followed by two hex digits stays as it
 * is), then encode it the AWS way: one spelling per value whatever the caller
 * sent. */
static const char *cg_sigv4_query_part(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *dec = apr_palloc(p, n + 1);
    apr_size_t i, o = 0;

    for (i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] == '%' && i + 2 < n && (hi = cg_sigv4_hexval(s[i + 1])) >= 0 &&
            (lo = cg_sigv4_hexval(s[i + 2])) >= 0) {
            dec[o++] = (char)(hi << 4 | lo);
            i += 2;
        }
        else {
            dec[o++] = s[i];
        }
    }
    return cg_sigv4_encode_n(p, dec, o, 0);
}

typedef struct {
    const char *key;
    const char *val;
    int order; /* position in the request: qsort is not stable */
} cg_sigv4_kv_t;

static int cg_sigv4_kv_cmp(const void *a, const void *b)
{
    const cg_sigv4_kv_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    return c != 0 ? c : strcmp(x->val, y->val);
}

static const char *cg_sigv4_canonical_query(apr_pool_t *p, const char *query)
{
    apr_array_header_t *kv = apr_array_make(p, 8, sizeof(cg_sigv4_kv_t));
    const char *s = query, *out = "";
    int i;

    while (s != NULL && *s != '\0') {
        const char *amp = strchr(s, '&');
        apr_size_t n = amp ? (apr_size_t)(amp - s) : strlen(s);

        if (n > 0) {
            const char *eq = memchr(s, '=', n);
            cg_sigv4_kv_t *e = apr_array_push(kv);

            e->key = cg_sigv4_query_part(p, s, eq ? (apr_size_t)(eq - s) : n);
            e->val = eq ? cg_sigv4_query_part(p, eq + 1, n - (apr_size_t)(eq - s) - 1) : "";
        }
        s = amp ? amp + 1 : NULL;
    }
    qsort(kv->elts, (size_t)kv->nelts, sizeof(cg_sigv4_kv_t), cg_sigv4_kv_cmp);
    for (i = 0; i < kv->nelts; i++) {
        const cg_sigv4_kv_t *e = &APR_ARRAY_IDX(kv, i, cg_sigv4_kv_t);

        out = apr_pstrcat(p, out, i > 0 ? "&" : "", e->key, "=", e->val, NULL);
    }
    return out;
}

/* Lower-case name; value with leading/trailing blanks removed and inner runs
 * of blanks folded to one space. NULL for a control character (CR, LF, NUL
 * cannot be sent, and whatever is signed must be what is sent). */
static const char *cg_sigv4_trim_value(apr_pool_t *p, const char *v)
{
    char *out = apr_palloc(p, strlen(v) + 1), *o = out;
    int pending = 0;

    while (*v == ' ' || *v == '\t') {
        v++;
    }
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;

        if (c == ' ' || c == '\t') {
            pending = 1;
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            return NULL;
        }
        if (pending) {
            *o++ = ' ';
            pending = 0;
        }
        *o++ = (char)c;
    }
    *o = '\0';
    return out;
}

static const char *cg_sigv4_lower_name(apr_pool_t *p, const char *n)
{
    char *out = apr_pstrdup(p, n), *o;

    if (*out == '\0') {
        return NULL;
    }
    for (o = out; *o; o++) {
        unsigned char c = (unsigned char)*o;

        if (c <= 0x20 || c >= 0x7f || c == ':') {
            return NULL;
        }
        if (c >= 'A' && c <= 'Z') {
            *o = (char)(c - 'A' + 'a');
        }
    }
    return out;
}

static int cg_sigv4_kv_key_cmp(const void *a, const void *b)
{
    const cg_sigv4_kv_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    return c != 0 ? c : x->order - y->order;
}

static int cg_sigv4_date_ok(const char *d)
{
    int i;

    if (d == NULL || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') {
        return 0;
    }
    for (i = 0; i < 15; i++) {
        if (i != 8 && (d[i] < '0' || d[i] > '9')) {
            return 0;
        }
    }
    return 1;
}

static int cg_sigv4_nonempty(const char *s)
{
    return s != NULL && *s != '\0';
}

apr_status_t cg_sigv4_sign(apr_pool_t *p, const cg_sigv4_request_t *req,
                           const cg_sigv4_credentials_t *creds, const char *region,
                           const char *service, const char *amz_date, cg_sigv4_result_t *out)
{
    apr_array_header_t *hdrs, *set;
    const char *canon_headers = "", *signed_headers = "", *payload_hash, *scope, *date;
    const char *cr_hash;
    unsigned char key[32], sig[32];
    int i, have_host = 0;
    cg_sigv4_kv_t *e;
    cg_sigv4_header_t *h;

    memset(out, 0, sizeof(*out));
    if (req == NULL || creds == NULL || !cg_sigv4_nonempty(req->method) ||
        !cg_sigv4_nonempty(creds->access_key_id) || !cg_sigv4_nonempty(creds->secret_access_key) ||
        !cg_sigv4_nonempty(region) || !cg_sigv4_nonempty(service) || !cg_sigv4_date_ok(amz_date) ||
        (req->payload == NULL && req->payload_len > 0) || req->nheaders < 0 ||
        (req->nheaders > 0 && req->headers == NULL)) {
        return APR_EINVAL;
    }
    payload_hash = cg_sigv4_sha256_hex(p, req->payload, req->payload_len);
    if (payload_hash == NULL) {
        return APR_EINVAL;
    }

    /* headers: the caller's, then what signing adds */
    hdrs = apr_array_make(p, req->nheaders + 3, sizeof(cg_sigv4_kv_t));
    set = apr_array_make(p, 4, sizeof(cg_sigv4_header_t));
    for (i = 0; i < req->nheaders; i++) {
        e = apr_array_push(hdrs);
        e->order = i;
        e->key = req->headers[i].name ? cg_sigv4_lower_name(p, req->headers[i].name) : NULL;
        e->val = req->headers[i].value ? cg_sigv4_trim_value(p, req->headers[i].value) : NULL;
        if (e->key == NULL || e->val == NULL || strcmp(e->key, "x-amz-date") == 0 ||
            strcmp(e->key, "x-amz-security-token") == 0 ||
            strcmp(e->key, "x-amz-content-sha256") == 0 || strcmp(e->key, "authorization") == 0) {
            return APR_EINVAL;
        }
        have_host |= strcmp(e->key, "host") == 0 && *e->val != '\0';
    }
    if (!have_host) {
        return APR_EINVAL;
    }
    h = apr_array_push(set);
    h->name = "x-amz-date";
    h->value = apr_pstrdup(p, amz_date);
    if (cg_sigv4_nonempty(creds->session_token)) {
        h = apr_array_push(set);
        h->name = "x-amz-security-token";
        h->value = cg_sigv4_trim_value(p, creds->session_token);
        if (h->value == NULL) {
            return APR_EINVAL;
        }
    }
    if (req->content_sha256_header) {
        h = apr_array_push(set);
        h->name = "x-amz-content-sha256";
        h->value = payload_hash;
    }
    for (i = 0; i < set->nelts; i++) {
        e = apr_array_push(hdrs);
        e->order = req->nheaders + i;
        e->key = APR_ARRAY_IDX(set, i, cg_sigv4_header_t).name;
        e->val = APR_ARRAY_IDX(set, i, cg_sigv4_header_t).value;
    }
    /* by name, then request order; repeated names become one line, values joined by ',' */
    qsort(hdrs->elts, (size_t)hdrs->nelts, sizeof(cg_sigv4_kv_t), cg_sigv4_kv_key_cmp);
    for (i = 0; i < hdrs->nelts; i++) {
        const cg_sigv4_kv_t *cur = &APR_ARRAY_IDX(hdrs, i, cg_sigv4_kv_t);

        if (i > 0 && strcmp(cur->key, APR_ARRAY_IDX(hdrs, i - 1, cg_sigv4_kv_t).key) == 0) {
            /* drop the previous line's newline and append */
            canon_headers =
                apr_pstrcat(p, apr_pstrndup(p, canon_headers, strlen(canon_headers) - 1), ",",
                            cur->val, "\n", NULL);
            continue;
        }
        canon_headers = apr_pstrcat(p, canon_headers, cur->key, ":", cur->val, "\n", NULL);
        signed_headers = apr_pstrcat(p, signed_headers, *signed_headers ? ";" : "", cur->key, NULL);
    }

    out->canonical_request = apr_pstrcat(
        p, req->method, "\n", cg_sigv4_uri_encode(p, cg_sigv4_normalize_path(p, req->path), 1),
        "\n", cg_sigv4_canonical_query(p, req->query), "\n", canon_headers, "\n", signed_headers,
        "\n", payload_hash, NULL);
    cr_hash = cg_sigv4_sha256_hex(p, out->canonical_request, strlen(out->canonical_request));
    if (cr_hash == NULL) {
        return APR_EINVAL;
    }
    date = apr_pstrndup(p, amz_date, 8);
    scope = apr_pstrcat(p, date, "/", region, "/", service, "/aws4_request", NULL);
    out->string_to_sign =
        apr_pstrcat(p, CG_SIGV4_ALG "\n", amz_date, "\n", scope, "\n", cr_hash, NULL);
    if (cg_sigv4_signing_key(creds->secret_access_key, date, region, service, key) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    if (!cg_sigv4_hmac(key, sizeof(key), out->string_to_sign, sig)) {
        OPENSSL_cleanse(key, sizeof(key));
        return APR_EINVAL;
    }
    OPENSSL_cleanse(key, sizeof(key));
    out->signed_headers = signed_headers;
    out->payload_hash = payload_hash;
    out->signature = cg_sigv4_hex(p, sig, sizeof(sig));
    out->authorization =
        apr_pstrcat(p, CG_SIGV4_ALG " Credential=", creds->access_key_id, "/", scope,
                    ", SignedHeaders=", signed_headers, ", Signature=", out->signature, NULL);
    h = apr_array_push(set);
    h->name = "authorization";
    h->value = out->authorization;
    out->set = (const cg_sigv4_header_t *)set->elts;
    out->nset = set->nelts;
    return APR_SUCCESS;
}
