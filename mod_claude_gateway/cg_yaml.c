/* cg_yaml: YAML into jansson with the reference's expansion rules, see cg_yaml.h.
 *
 * libyaml's event parser feeds a recursive builder. Aliases share the
 * anchored node (a reference, not a copy), and the expanded size is counted
 * so a "billion laughs" document is refused instead of exploding later when
 * the tree is walked or serialised. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <yaml.h>

#include "cg_yaml.h"

#define CG_YAML_MAX_DEPTH 64
#define CG_YAML_MAX_NODES 1000000
#define CG_YAML_MAX_FILE (16 * 1024 * 1024)

typedef struct cg_yaml_anchor_t {
    json_t *node;      /* borrowed: the tree holds it */
    apr_size_t weight; /* nodes in its expanded subtree */
} cg_yaml_anchor_t;

typedef struct cg_yaml_ctx_t {
    apr_pool_t *p;
    yaml_parser_t parser;
    const char *name;
    cg_yaml_env_fn *env;
    void *baton;
    apr_hash_t *anchors;
    apr_array_header_t *refs; /* the ${...} references, by placeholder number */
    apr_size_t nodes;
    const char *err;
} cg_yaml_ctx_t;

static void cg_yaml_fail(cg_yaml_ctx_t *ctx, const yaml_mark_t *mark, const char *msg)
{
    if (ctx->err == NULL) {
        ctx->err = apr_psprintf(ctx->p, "%s:%lu:%lu: %s", ctx->name, (unsigned long)mark->line + 1,
                                (unsigned long)mark->column + 1, msg);
    }
}

static int cg_yaml_next(cg_yaml_ctx_t *ctx, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ctx->parser, ev)) {
        const char *problem = ctx->parser.problem ? ctx->parser.problem : "syntax error";
        if (ctx->parser.context != NULL) {
            problem = apr_pstrcat(ctx->p, problem, " ", ctx->parser.context, NULL);
        }
        cg_yaml_fail(ctx, &ctx->parser.problem_mark, problem);
        return 0;
    }
    return 1;
}

static const char *cg_yaml_env_default(void *baton, const char *name)
{
    (void)baton;
    return getenv(name);
}

static const char *cg_yaml_trim(apr_pool_t *p, const char *s, apr_size_t len)
{
    while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        len--;
    }
    while (len > 0 &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n')) {
        len--;
    }
    return apr_pstrmemdup(p, s, len);
}

static const char *cg_yaml_read(apr_pool_t *p, const char *path, char **buf, apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_size_t got = 0;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, APR_OS_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        if (rv == APR_SUCCESS && fi.size > CG_YAML_MAX_FILE) {
            apr_file_close(f);
            return apr_psprintf(p, "%s: larger than %d bytes", path, CG_YAML_MAX_FILE);
        }
        if (rv == APR_SUCCESS) {
            *buf = apr_palloc(p, (apr_size_t)fi.size + 1);
            rv = fi.size > 0 ? apr_file_read_full(f, *buf, (apr_size_t)fi.size, &got) : APR_SUCCESS;
            (*buf)[got] = '\0';
            *len = got;
        }
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        char ebuf[128];
        return apr_psprintf(p, "%s: %s", path, apr_strerror(rv, ebuf, sizeof(ebuf)));
    }
    return NULL;
}

#define CG_YAML_MARK "__claude_gateway_ref_"

/* The reference substitutes ${...} in the text before parsing, so
 * `[${A}, ${B}]` is valid there although "{" is a flow indicator. We swap
 * each reference for a placeholder that is a plain scalar, parse, and resolve
 * placeholders in the scalars: values can never change the document's
 * structure, and a reference in a comment is never looked up. */
static const char *cg_yaml_mask(cg_yaml_ctx_t *ctx, const char *buf, apr_size_t len,
                                apr_size_t *out_len)
{
    apr_array_header_t *out = apr_array_make(ctx->p, (int)len + 64, 1);
    apr_size_t i = 0;

    while (i < len) {
        const char *close;
        if (i + 1 < len && buf[i] == '$' && buf[i + 1] == '{' &&
            (close = memchr(buf + i + 2, '}', len - i - 2)) != NULL &&
            memchr(buf + i + 2, '\n', (apr_size_t)(close - buf - i - 2)) == NULL) {
            const char *mark;
            *(const char **)apr_array_push(ctx->refs) =
                apr_pstrmemdup(ctx->p, buf + i + 2, (apr_size_t)(close - buf - i - 2));
            mark = apr_psprintf(ctx->p, CG_YAML_MARK "%d__", ctx->refs->nelts - 1);
            for (; *mark; mark++) {
                *(char *)apr_array_push(out) = *mark;
            }
            i = (apr_size_t)(close - buf) + 1;
            continue;
        }
        *(char *)apr_array_push(out) = buf[i++];
    }
    *out_len = (apr_size_t)out->nelts;
    return out->elts;
}

static const char *cg_yaml_ref(cg_yaml_ctx_t *ctx, const yaml_mark_t *mark, const char *ref)
{
    const char *val;

    if (strncmp(ref, "file:", 5) == 0) {
        char *buf;
        apr_size_t len;
        const char *err;

        if (ref[5] != '/') {
            cg_yaml_fail(ctx, mark, apr_psprintf(ctx->p, "${%s}: the path must be absolute", ref));
            return NULL;
        }
        err = cg_yaml_read(ctx->p, ref + 5, &buf, &len);
        if (err != NULL) {
            cg_yaml_fail(ctx, mark, err);
            return NULL;
        }
        return cg_yaml_trim(ctx->p, buf, len);
    }
    val = ctx->env(ctx->baton, ref);
    if (val == NULL) {
        cg_yaml_fail(ctx, mark, apr_psprintf(ctx->p, "undefined env var in config: %s", ref));
    }
    return val;
}

static const char *cg_yaml_expand(cg_yaml_ctx_t *ctx, const yaml_mark_t *mark, const char *in)
{
    const char *s = in, *open;
    char *out = "";

    if (strstr(in, CG_YAML_MARK) == NULL) {
        return in;
    }
    while ((open = strstr(s, CG_YAML_MARK)) != NULL) {
        char *end;
        long n = strtol(open + sizeof(CG_YAML_MARK) - 1, &end, 10);
        const char *val;

        if (strncmp(end, "__", 2) != 0 || n < 0 || n >= ctx->refs->nelts) {
            break; /* not ours: left as written */
        }
        val = cg_yaml_ref(ctx, mark, APR_ARRAY_IDX(ctx->refs, n, const char *));
        if (val == NULL) {
            return NULL;
        }
        out =
            apr_pstrcat(ctx->p, out, apr_pstrmemdup(ctx->p, s, (apr_size_t)(open - s)), val, NULL);
        s = end + 2;
    }
    return apr_pstrcat(ctx->p, out, s, NULL);
}

static int cg_yaml_all(const char *s, const char *set)
{
    return *s != '\0' && strspn(s, set) == strlen(s);
}

/* YAML 1.2 core schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int cg_yaml_is_float(const char *s)
{
    int digits = 0;

    if (*s == '-' || *s == '+') {
        s++;
    }
    while (*s >= '0' && *s <= '9') {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits++;
        }
    }
    if (digits == 0) {
        return 0;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+') {
            s++;
        }
        if (!(*s >= '0' && *s <= '9')) {
            return 0;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    return *s == '\0';
}

static json_t *cg_yaml_number(cg_yaml_ctx_t *ctx, const yaml_mark_t *mark, const char *v)
{
    const char *d = (*v == '-' || *v == '+') ? v + 1 : v;
    char *end;
    long long ll;
    double dbl;

    if (cg_yaml_all(d, "0123456789")) {
        errno = 0;
        ll = strtoll(v, &end, 10);
        if (errno == 0) {
            return json_integer((json_int_t)ll);
        }
    }
    else if (strncmp(v, "0x", 2) == 0 && cg_yaml_all(v + 2, "0123456789abcdefABCDEF")) {
        errno = 0;
        ll = strtoll(v + 2, &end, 16);
        if (errno == 0) {
            return json_integer((json_int_t)ll);
        }
    }
    else if (strncmp(v, "0o", 2) == 0 && cg_yaml_all(v + 2, "01234567")) {
        errno = 0;
        ll = strtoll(v + 2, &end, 8);
        if (errno == 0) {
            return json_integer((json_int_t)ll);
        }
    }
    else if (!cg_yaml_is_float(v)) {
        return NULL;
    }
    errno = 0;
    dbl = strtod(v, &end);
    if (errno == ERANGE && (dbl > 1.0 || dbl < -1.0)) {
        cg_yaml_fail(ctx, mark, apr_psprintf(ctx->p, "number out of range: %s", v));
        return NULL;
    }
    return json_real(dbl);
}

static json_t *cg_yaml_string(cg_yaml_ctx_t *ctx, const yaml_mark_t *mark, const char *v,
                              apr_size_t len)
{
    json_t *j;

    if (memchr(v, '\0', len) != NULL) {
        cg_yaml_fail(ctx, mark, "a NUL character is not allowed in a string");
        return NULL;
    }
    j = json_stringn(v, len);
    if (j == NULL) {
        cg_yaml_fail(ctx, mark, "invalid UTF-8 in a string");
    }
    return j;
}

static json_t *cg_yaml_scalar(cg_yaml_ctx_t *ctx, yaml_event_t *ev)
{
    const yaml_mark_t *mark = &ev->start_mark;
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *raw = (const char *)ev->data.scalar.value;
    apr_size_t len = ev->data.scalar.length;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char *v;
    json_t *j;

    if (tag != NULL && strcmp(tag, "!") == 0) {
        tag = NULL; /* the non-specific tag of a quoted scalar */
        plain = 0;
    }
    if (tag != NULL && strcmp(tag, YAML_STR_TAG) == 0) {
        plain = 0;
        tag = NULL;
    }
    if (tag != NULL && strcmp(tag, YAML_NULL_TAG) != 0 && strcmp(tag, YAML_BOOL_TAG) != 0 &&
        strcmp(tag, YAML_INT_TAG) != 0 && strcmp(tag, YAML_FLOAT_TAG) != 0) {
        cg_yaml_fail(ctx, mark, apr_psprintf(ctx->p, "unsupported tag %s", tag));
        return NULL;
    }
    if (memchr(raw, '\0', len) != NULL) {
        return cg_yaml_string(ctx, mark, raw, len);
    }
    v = cg_yaml_expand(ctx, mark, apr_pstrmemdup(ctx->p, raw, len));
    if (v == NULL) {
        return NULL;
    }
    if (!plain && tag == NULL) {
        return cg_yaml_string(ctx, mark, v, strlen(v));
    }
    if (!strcmp(v, "") || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
        !strcmp(v, "NULL")) {
        j = json_null();
    }
    else if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE")) {
        j = json_true();
    }
    else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE")) {
        j = json_false();
    }
    else {
        j = cg_yaml_number(ctx, mark, v);
        if (j == NULL && ctx->err == NULL && tag == NULL) {
            return cg_yaml_string(ctx, mark, v, strlen(v));
        }
    }
    if (j != NULL && tag != NULL &&
        ((!strcmp(tag, YAML_NULL_TAG) && !json_is_null(j)) ||
         (!strcmp(tag, YAML_BOOL_TAG) && !json_is_boolean(j)) ||
         (!strcmp(tag, YAML_INT_TAG) && !json_is_integer(j)) ||
         (!strcmp(tag, YAML_FLOAT_TAG) && !json_is_number(j)))) {
        json_decref(j);
        j = NULL;
    }
    if (j == NULL) {
        cg_yaml_fail(ctx, mark,
                     apr_psprintf(ctx->p, "'%s' is not a valid %s", v, tag ? tag : "value"));
    }
    return j;
}

static json_t *cg_yaml_node(cg_yaml_ctx_t *ctx, yaml_event_t *ev, int depth);

static json_t *cg_yaml_sequence(cg_yaml_ctx_t *ctx, int depth)
{
    json_t *arr = json_array();
    yaml_event_t ev;

    for (;;) {
        json_t *child;
        if (!cg_yaml_next(ctx, &ev)) {
            break;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return arr;
        }
        child = cg_yaml_node(ctx, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (child == NULL) {
            break;
        }
        json_array_append_new(arr, child);
    }
    json_decref(arr);
    return NULL;
}

static json_t *cg_yaml_mapping(cg_yaml_ctx_t *ctx, int depth)
{
    json_t *obj = json_object();
    yaml_event_t ev;

    for (;;) {
        json_t *child;
        const char *key;

        if (!cg_yaml_next(ctx, &ev)) {
            break;
        }
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return obj;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            cg_yaml_fail(ctx, &ev.start_mark, "a mapping key must be a scalar");
            yaml_event_delete(&ev);
            break;
        }
        if (memchr(ev.data.scalar.value, '\0', ev.data.scalar.length) != NULL) {
            cg_yaml_fail(ctx, &ev.start_mark, "a NUL character is not allowed in a key");
            yaml_event_delete(&ev);
            break;
        }
        key = cg_yaml_expand(
            ctx, &ev.start_mark,
            apr_pstrmemdup(ctx->p, (const char *)ev.data.scalar.value, ev.data.scalar.length));
        if (key == NULL) {
            yaml_event_delete(&ev);
            break;
        }
        if (json_object_get(obj, key) != NULL) {
            cg_yaml_fail(ctx, &ev.start_mark, apr_psprintf(ctx->p, "duplicate key '%s'", key));
            yaml_event_delete(&ev);
            break;
        }
        yaml_event_delete(&ev);
        if (!cg_yaml_next(ctx, &ev)) {
            break;
        }
        child = cg_yaml_node(ctx, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (child == NULL || json_object_set_new(obj, key, child) != 0) {
            if (child != NULL) {
                cg_yaml_fail(ctx, &ctx->parser.mark, "invalid UTF-8 in a key");
            }
            break;
        }
    }
    json_decref(obj);
    return NULL;
}

static json_t *cg_yaml_node(cg_yaml_ctx_t *ctx, yaml_event_t *ev, int depth)
{
    const char *anchor = NULL;
    apr_size_t before = ctx->nodes;
    json_t *j = NULL;

    if (depth > CG_YAML_MAX_DEPTH) {
        cg_yaml_fail(ctx, &ev->start_mark, "nested too deeply");
        return NULL;
    }
    if (++ctx->nodes > CG_YAML_MAX_NODES) {
        cg_yaml_fail(ctx, &ev->start_mark, "too many nodes (aliases expand too far)");
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        cg_yaml_anchor_t *a = apr_hash_get(ctx->anchors, name, APR_HASH_KEY_STRING);
        if (a == NULL) {
            cg_yaml_fail(ctx, &ev->start_mark, apr_psprintf(ctx->p, "unknown alias *%s", name));
            return NULL;
        }
        ctx->nodes += a->weight;
        if (ctx->nodes > CG_YAML_MAX_NODES) {
            cg_yaml_fail(ctx, &ev->start_mark, "too many nodes (aliases expand too far)");
            return NULL;
        }
        return json_incref(a->node);
    }
    case YAML_SCALAR_EVENT:
        anchor = (const char *)ev->data.scalar.anchor;
        j = cg_yaml_scalar(ctx, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = (const char *)ev->data.sequence_start.anchor;
        anchor = anchor ? apr_pstrdup(ctx->p, anchor) : NULL;
        j = cg_yaml_sequence(ctx, depth);
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = (const char *)ev->data.mapping_start.anchor;
        anchor = anchor ? apr_pstrdup(ctx->p, anchor) : NULL;
        j = cg_yaml_mapping(ctx, depth);
        break;
    default:
        cg_yaml_fail(ctx, &ev->start_mark, "unexpected YAML event");
        return NULL;
    }
    if (j != NULL && anchor != NULL) {
        cg_yaml_anchor_t *a = apr_palloc(ctx->p, sizeof(*a));
        a->node = j;
        a->weight = ctx->nodes - before;
        apr_hash_set(ctx->anchors, apr_pstrdup(ctx->p, anchor), APR_HASH_KEY_STRING, a);
    }
    return j;
}

const char *cg_yaml_parse(apr_pool_t *p, const char *buf, apr_size_t len, const char *name,
                          cg_yaml_env_fn *env, void *baton, json_t **out)
{
    cg_yaml_ctx_t ctx;
    yaml_event_t ev;
    json_t *root = NULL;
    int state = 0; /* 0 stream start, 1 document start, 2 root, 3 document end, 4 stream end */

    memset(&ctx, 0, sizeof(ctx));
    ctx.p = p;
    ctx.name = name ? name : "<policy>";
    ctx.env = env ? env : cg_yaml_env_default;
    ctx.baton = baton;
    ctx.anchors = apr_hash_make(p);
    ctx.refs = apr_array_make(p, 4, sizeof(char *));
    *out = NULL;
    buf = cg_yaml_mask(&ctx, buf, len, &len);
    if (!yaml_parser_initialize(&ctx.parser)) {
        return apr_psprintf(p, "%s: out of memory", ctx.name);
    }
    yaml_parser_set_input_string(&ctx.parser, (const unsigned char *)buf, len);
    while (ctx.err == NULL && state < 4 && cg_yaml_next(&ctx, &ev)) {
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
            state = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (root != NULL || state != 1) {
                cg_yaml_fail(&ctx, &ev.start_mark, "only one YAML document is allowed");
            }
            state = 2;
            break;
        case YAML_DOCUMENT_END_EVENT:
            state = 1;
            break;
        case YAML_STREAM_END_EVENT:
            state = 4;
            break;
        default:
            root = cg_yaml_node(&ctx, &ev, 0);
            state = 3;
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&ctx.parser);
    if (ctx.err != NULL) {
        json_decref(root);
        return ctx.err;
    }
    *out = root ? root : json_null();
    return NULL;
}

const char *cg_yaml_load_file(apr_pool_t *p, const char *path, cg_yaml_env_fn *env, void *baton,
                              json_t **out)
{
    char *buf;
    apr_size_t len;
    const char *err = cg_yaml_read(p, path, &buf, &len);

    *out = NULL;
    if (err != NULL) {
        return err;
    }
    return cg_yaml_parse(p, buf, len, path, env, baton, out);
}
