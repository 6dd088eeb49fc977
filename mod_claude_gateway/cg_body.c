/* cg_body: Messages API body validation, see cg_body.h. */
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
    }
leave:
    json_decref(root);
    return msg;
}
