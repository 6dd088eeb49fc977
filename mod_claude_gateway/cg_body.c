/* cg_body: Messages API body validation, see cg_body.h. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "cg_body.h"

const char *cg_body_check(apr_pool_t *p, const char *buf, apr_size_t len, cg_body_info_t *info)
{
    json_error_t jerr;
    json_t *root, *model, *stream;
    const char *msg = NULL;

    /* JSON_REJECT_DUPLICATES: {"model":"a","model":"b"} is a policy bypass. */
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return "invalid JSON";
    }
    if (!json_is_object(root)) {
        msg = "request body must be a JSON object";
        goto leave;
    }
    model = json_object_get(root, "model");
    if (model == NULL || json_is_null(model)) {
        msg = "model is required";
        goto leave;
    }
    if (!json_is_string(model)) {
        msg = "model must be a string";
        goto leave;
    }
    /* an embedded NUL would make our view of the model differ from the upstream's */
    if (json_string_length(model) == 0 ||
        strlen(json_string_value(model)) != json_string_length(model)) {
        msg = "model is required";
        goto leave;
    }
    if (info != NULL) {
        stream = json_object_get(root, "stream");
        info->model = apr_pstrmemdup(p, json_string_value(model), json_string_length(model));
        info->stream = json_is_true(stream);
        stream = json_object_get(root, "max_tokens");
        info->max_tokens = json_is_integer(stream) && json_integer_value(stream) >= 0
                               ? (long long)json_integer_value(stream)
                               : -1;
    }
leave:
    json_decref(root);
    return msg;
}

/* --- replacing the model ------------------------------------------------- */

static apr_size_t cg_skip_ws(const char *b, apr_size_t i, apr_size_t len)
{
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) {
        i++;
    }
    return i;
}

/* i at the opening quote; returns the index after the closing one */
static apr_size_t cg_skip_string(const char *b, apr_size_t i, apr_size_t len)
{
    for (i++; i < len && b[i] != '"'; i++) {
        if (b[i] == '\\') {
            i++;
        }
    }
    return i + 1;
}

static apr_size_t cg_skip_value(const char *b, apr_size_t i, apr_size_t len)
{
    int depth = 0;

    if (i < len && b[i] == '"') {
        return cg_skip_string(b, i, len);
    }
    if (i < len && (b[i] == '{' || b[i] == '[')) {
        while (i < len) {
            if (b[i] == '"') {
                i = cg_skip_string(b, i, len);
                continue;
            }
            if (b[i] == '{' || b[i] == '[') {
                depth++;
            }
            else if ((b[i] == '}' || b[i] == ']') && --depth == 0) {
                return i + 1;
            }
            i++;
        }
        return len;
    }
    /* a number or a literal */
    while (i < len && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' &&
           b[i] != '\n' && b[i] != '\r') {
        i++;
    }
    return i;
}

const char *cg_body_set_model(apr_pool_t *p, const char *buf, apr_size_t len, const char *model,
                              apr_size_t *out_len)
{
    apr_size_t i = cg_skip_ws(buf, 0, len);

    if (i >= len || buf[i] != '{') {
        return NULL;
    }
    i++;
    for (;;) {
        apr_size_t ks, ke, vs, ve;
        json_t *key;
        int is_model;

        i = cg_skip_ws(buf, i, len);
        if (i >= len || buf[i] != '"') {
            return NULL;
        }
        ks = i;
        ke = cg_skip_string(buf, i, len);
        /* decode the key: "mod\u0065l" is the model key too */
        key = json_loadb(buf + ks, ke - ks, JSON_DECODE_ANY, NULL);
        is_model = json_is_string(key) && strcmp(json_string_value(key), "model") == 0;
        json_decref(key);
        i = cg_skip_ws(buf, ke, len);
        if (i >= len || buf[i] != ':') {
            return NULL;
        }
        vs = cg_skip_ws(buf, i + 1, len);
        ve = cg_skip_value(buf, vs, len);
        if (is_model) {
            json_t *s = json_string(model);
            char *enc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            char *out;
            apr_size_t elen;

            json_decref(s);
            if (enc == NULL) {
                return NULL;
            }
            elen = strlen(enc);
            *out_len = vs + elen + (len - ve);
            out = apr_palloc(p, *out_len + 1);
            memcpy(out, buf, vs);
            memcpy(out + vs, enc, elen);
            memcpy(out + vs + elen, buf + ve, len - ve);
            out[*out_len] = '\0';
            free(enc);
            return out;
        }
        i = cg_skip_ws(buf, ve, len);
        if (i >= len || buf[i] != ',') {
            return NULL;
        }
        i++;
    }
}
