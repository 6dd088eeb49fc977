/* cg_claims: claim mapping and sign-in gates, see cg_claims.h. */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>

#include "cg_claims.h"

const char *cg_claims_email(apr_pool_t *p, const json_t *claims, const apr_array_header_t *names)
{
    int i;

    for (i = 0; names != NULL && i < names->nelts; i++) {
        const json_t *v = json_object_get(claims, APR_ARRAY_IDX(names, i, const char *));
        if (json_is_string(v) && json_string_length(v) > 0) {
            return apr_pstrdup(p, json_string_value(v));
        }
    }
    return NULL;
}

/* RFC 6901: "/a/b" with ~1 for '/' and ~0 for '~'. */
static const json_t *cg_claims_pointer(const json_t *root, const char *ptr, apr_pool_t *p)
{
    const json_t *cur = root;
    char *copy = apr_pstrdup(p, ptr + 1), *tok, *state;

    for (tok = apr_strtok(copy, "/", &state); tok != NULL && cur != NULL;
         tok = apr_strtok(NULL, "/", &state)) {
        char *r = tok, *w = tok;
        for (; *r != '\0'; r++, w++) {
            if (r[0] == '~' && r[1] == '1') {
                *w = '/';
                r++;
            }
            else if (r[0] == '~' && r[1] == '0') {
                *w = '~';
                r++;
            }
            else {
                *w = *r;
            }
        }
        *w = '\0';
        cur = json_is_object(cur) ? json_object_get(cur, tok) : NULL;
    }
    return cur;
}

apr_array_header_t *cg_claims_groups(apr_pool_t *p, const json_t *claims, const char *spec)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(const char *));
    const json_t *v, *item;
    size_t i;

    if (spec == NULL || claims == NULL) {
        return out;
    }
    v = spec[0] == '/' ? cg_claims_pointer(claims, spec, p) : json_object_get(claims, spec);
    if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (json_is_string(item) && json_string_length(item) > 0) {
                APR_ARRAY_PUSH(out, const char *) = apr_pstrdup(p, json_string_value(item));
            }
        }
    }
    else if (json_is_string(v)) {
        char *copy = apr_pstrdup(p, json_string_value(v)), *tok, *state;
        for (tok = apr_strtok(copy, ",", &state); tok != NULL;
             tok = apr_strtok(NULL, ",", &state)) {
            APR_ARRAY_PUSH(out, const char *) = tok;
        }
    }
    return out;
}

const char *cg_claims_gate(const char *email, const apr_array_header_t *groups,
                           const apr_array_header_t *domains, const apr_array_header_t *allowed)
{
    int i, j;

    if (domains != NULL && domains->nelts > 0) {
        const char *at = email ? strrchr(email, '@') : NULL;
        int ok = 0;
        for (i = 0; at != NULL && i < domains->nelts; i++) {
            ok = ok || strcasecmp(at + 1, APR_ARRAY_IDX(domains, i, const char *)) == 0;
        }
        if (!ok) {
            return "Your account's email domain is not allowed to use Claude Code here.";
        }
    }
    if (allowed != NULL && allowed->nelts > 0) {
        for (i = 0; groups != NULL && i < groups->nelts; i++) {
            for (j = 0; j < allowed->nelts; j++) {
                if (strcmp(APR_ARRAY_IDX(groups, i, const char *),
                           APR_ARRAY_IDX(allowed, j, const char *)) == 0) {
                    return NULL;
                }
            }
        }
        return "You aren't in a group that may use Claude Code here. Ask your administrator.";
    }
    return NULL;
}
