/* body_oracle.h: what cg_body_check did with jansson before the scanner,
 * word for word. The unit tests and fuzz_messages_body hold the scanner
 * against it; a static function, so each includes its own copy. */
#ifndef BODY_ORACLE_H
#define BODY_ORACLE_H

#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>
#include <jansson.h>

#include "cg_body.h"

static const char *body_oracle_check(apr_pool_t *p, const char *buf, apr_size_t len,
                                     cg_body_info_t *info)
{
    json_error_t jerr;
    json_t *root, *model, *stream;
    const char *msg = NULL;

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

#endif
