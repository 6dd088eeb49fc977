/* cg_awscred: parsers for the AWS default credential chain's sources (see
 * cg_awscred.h). Every value taken must fit in an HTTP header as it is
 * (printable ASCII, no spaces): a secret with anything else is refused here
 * rather than sent mangled. */
#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "cg_awscred.h"
#include "cg_sigv4.h"

/* A credential field as a header carries it, or NULL. */
static const char *cg_aws_field(apr_pool_t *p, const char *s, apr_size_t len)
{
    apr_size_t i;

    if (s == NULL || len == 0 || len > CG_AWS_FIELD_MAX) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return NULL;
        }
    }
    return apr_pstrmemdup(p, s, len);
}

static void cg_aws_trim(const char **b, const char **e)
{
    while (*b < *e && apr_isspace(**b)) {
        (*b)++;
    }
    while (*e > *b && apr_isspace((*e)[-1])) {
        (*e)--;
    }
}

/* Whether the section header [b, e) (brackets off, trimmed) names profile. */
static int cg_aws_section_is(const char *b, const char *e, const char *profile, int config_file)
{
    apr_size_t n = strlen(profile);

    if (config_file && e - b > 7 && !strncmp(b, "profile", 7) && apr_isspace(b[7])) {
        b += 8;
        cg_aws_trim(&b, &e);
    }
    else if (config_file && strcmp(profile, "default") != 0) {
        return 0; /* in a config file, other profiles are "[profile name]" */
    }
    return (apr_size_t)(e - b) == n && !strncmp(b, profile, n);
}

int cg_aws_ini_creds(apr_pool_t *p, const char *text, apr_size_t len, const char *profile,
                     int config_file, cg_aws_creds_t *out, const char **why)
{
    const char *line = text, *end = text + len;
    int in = 0, seen = 0, bad = 0;

    memset(out, 0, sizeof(*out));
    while (text != NULL && line < end) {
        const char *nl = memchr(line, '\n', (apr_size_t)(end - line));
        const char *le = nl ? nl : end, *b = line, *e = le, *eq;
        int indented = b < e && (*b == ' ' || *b == '\t');

        line = nl ? nl + 1 : end;
        cg_aws_trim(&b, &e);
        if (b == e || *b == '#' || *b == ';' || indented) {
            continue; /* blank, comment, or a nested value (s3 = ...) */
        }
        if (*b == '[') {
            const char *c = memchr(b, ']', (apr_size_t)(e - b));
            if (c != NULL) {
                const char *sb = b + 1, *se = c;
                cg_aws_trim(&sb, &se);
                in = cg_aws_section_is(sb, se, profile, config_file);
                seen |= in;
            }
            continue;
        }
        if (!in || (eq = memchr(b, '=', (apr_size_t)(e - b))) == NULL) {
            continue;
        }
        {
            const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e, **slot = NULL, *v;
            cg_aws_trim(&kb, &ke);
            cg_aws_trim(&vb, &ve);
            if (ke - kb == 17 && !strncasecmp(kb, "aws_access_key_id", 17)) {
                slot = &out->access_key_id;
            }
            else if (ke - kb == 21 && !strncasecmp(kb, "aws_secret_access_key", 21)) {
                slot = &out->secret_access_key;
            }
            else if (ke - kb == 17 && !strncasecmp(kb, "aws_session_token", 17)) {
                slot = &out->session_token;
            }
            if (slot != NULL) {
                v = cg_aws_field(p, vb, (apr_size_t)(ve - vb));
                bad |= v == NULL && ve > vb;
                *slot = v; /* a later line wins, as in the SDKs */
            }
        }
    }
    if (!seen) {
        *why = apr_psprintf(p, "no profile \"%s\"", profile);
    }
    else if (bad) {
        *why = apr_psprintf(p, "profile \"%s\" holds a key that is not printable ASCII", profile);
    }
    else if (out->access_key_id == NULL || out->secret_access_key == NULL) {
        *why = apr_psprintf(p,
                            "profile \"%s\" has no aws_access_key_id and "
                            "aws_secret_access_key",
                            profile);
    }
    else {
        return 1;
    }
    memset(out, 0, sizeof(*out));
    return 0;
}

static const char *cg_aws_jstr(apr_pool_t *p, json_t *j, const char *key, int *present)
{
    json_t *v = json_object_get(j, key);

    *present = v != NULL;
    return json_is_string(v) ? cg_aws_field(p, json_string_value(v), json_string_length(v)) : NULL;
}

int cg_aws_json_creds(apr_pool_t *p, const char *json, apr_size_t len, cg_aws_creds_t *out,
                      const char **why)
{
    json_t *j = json != NULL ? json_loadb(json, len, 0, NULL) : NULL;
    const char *code, *exp;
    int present;

    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (!json_is_object(j)) {
        *why = "the answer is not a JSON object";
    }
    else if ((code = cg_aws_jstr(p, j, "Code", &present), present) &&
             (code == NULL || strcmp(code, "Success") != 0)) {
        *why = apr_psprintf(p, "the answer's Code is %s", code ? code : "not a string");
    }
    else if ((out->access_key_id = cg_aws_jstr(p, j, "AccessKeyId", &present)) == NULL ||
             (out->secret_access_key = cg_aws_jstr(p, j, "SecretAccessKey", &present)) == NULL) {
        *why = "the answer has no usable AccessKeyId and SecretAccessKey";
    }
    else if ((out->session_token = cg_aws_jstr(p, j, "Token", &present)) == NULL && present) {
        *why = "the answer's Token is not usable";
    }
    else if ((exp = cg_aws_jstr(p, j, "Expiration", &present)) != NULL || present) {
        if (exp == NULL || !cg_aws_time(exp, &out->expires)) {
            *why = "the answer's Expiration is not an ISO 8601 time";
        }
    }
    json_decref(j);
    if (*why != NULL) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    return 1;
}

/* The text of the first <tag>...</tag> in [b, e), entities decoded, or NULL. */
static const char *cg_aws_xml_text(apr_pool_t *p, const char *b, const char *e, const char *tag,
                                   const char **after)
{
    const char *open = apr_pstrcat(p, "<", tag, ">", NULL);
    const char *close = apr_pstrcat(p, "</", tag, ">", NULL);
    apr_size_t ol = strlen(open), cl = strlen(close);
    const char *s, *t;
    char *out, *o;

    for (s = b; s + ol <= e && memcmp(s, open, ol) != 0; s++) {
    }
    if (s + ol > e) {
        return NULL;
    }
    s += ol;
    for (t = s; t + cl <= e && memcmp(t, close, cl) != 0; t++) {
    }
    if (t + cl > e) {
        return NULL;
    }
    if (after != NULL) {
        *after = t + cl;
    }
    o = out = apr_palloc(p, (apr_size_t)(t - s) + 1);
    while (s < t) {
        static const struct {
            const char *ent;
            char c;
        } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        apr_size_t k;
        if (*s == '&') {
            for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
                apr_size_t n = strlen(ents[k].ent);
                if ((apr_size_t)(t - s) >= n && !memcmp(s, ents[k].ent, n)) {
                    *o++ = ents[k].c;
                    s += n;
                    break;
                }
            }
            if (k < sizeof(ents) / sizeof(ents[0])) {
                continue;
            }
        }
        *o++ = *s++;
    }
    *o = '\0';
    return out;
}

int cg_aws_sts_creds(apr_pool_t *p, const char *xml, apr_size_t len, cg_aws_creds_t *out,
                     const char **why)
{
    const char *b = xml, *e = xml ? xml + len : NULL, *cb, *ce, *v, *exp;

    memset(out, 0, sizeof(*out));
    if (xml == NULL) {
        *why = "no answer";
        return 0;
    }
    /* the Credentials element: its fields are searched inside it only */
    for (cb = b; cb + 13 <= e && memcmp(cb, "<Credentials>", 13) != 0; cb++) {
    }
    for (ce = cb; ce + 14 <= e && memcmp(ce, "</Credentials>", 14) != 0; ce++) {
    }
    if (cb + 13 > e || ce + 14 > e) {
        const char *code = cg_aws_xml_text(p, b, e, "Code", NULL);
        const char *msg = cg_aws_xml_text(p, b, e, "Message", NULL);
        *why = code ? apr_psprintf(p, "STS refused: %.100s: %.300s", code, msg ? msg : "")
                    : "STS's answer holds no Credentials";
        return 0;
    }
    if ((v = cg_aws_xml_text(p, cb, ce, "AccessKeyId", NULL)) == NULL ||
        (out->access_key_id = cg_aws_field(p, v, strlen(v))) == NULL ||
        (v = cg_aws_xml_text(p, cb, ce, "SecretAccessKey", NULL)) == NULL ||
        (out->secret_access_key = cg_aws_field(p, v, strlen(v))) == NULL ||
        (v = cg_aws_xml_text(p, cb, ce, "SessionToken", NULL)) == NULL ||
        (out->session_token = cg_aws_field(p, v, strlen(v))) == NULL) {
        *why = "STS's Credentials lack a usable AccessKeyId, SecretAccessKey or SessionToken";
    }
    else if ((exp = cg_aws_xml_text(p, cb, ce, "Expiration", NULL)) == NULL ||
             !cg_aws_time(exp, &out->expires)) {
        *why = "STS's Credentials have no ISO 8601 Expiration";
    }
    else {
        return 1;
    }
    memset(out, 0, sizeof(*out));
    return 0;
}

/* n digits at s as a number, or -1. */
static int cg_aws_digits(const char *s, int n)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (!apr_isdigit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int cg_aws_time(const char *s, apr_time_t *out)
{
    apr_time_exp_t t;
    const char *z;
    int y, mo, d, h, mi, se;

    if (s == NULL || strlen(s) < 20 || s[4] != '-' || s[7] != '-' ||
        (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') {
        return 0;
    }
    y = cg_aws_digits(s, 4);
    mo = cg_aws_digits(s + 5, 2);
    d = cg_aws_digits(s + 8, 2);
    h = cg_aws_digits(s + 11, 2);
    mi = cg_aws_digits(s + 14, 2);
    se = cg_aws_digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 60) {
        return 0;
    }
    z = s + 19;
    if (*z == '.') {
        for (z++; apr_isdigit(*z); z++) {
        }
    }
    if (strcmp(z, "Z") != 0 && strcmp(z, "z") != 0 && strcmp(z, "+00:00") != 0) {
        return 0; /* AWS writes UTC; anything else is not what we expect */
    }
    memset(&t, 0, sizeof(t));
    t.tm_year = y - 1900;
    t.tm_mon = mo - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    t.tm_sec = se;
    return apr_time_exp_gmt_get(out, &t) == APR_SUCCESS;
}

const char *cg_aws_imds_role(apr_pool_t *p, const char *text, apr_size_t len)
{
    const char *b = text, *e, *nl;

    if (text == NULL) {
        return NULL;
    }
    nl = memchr(text, '\n', len);
    e = nl ? nl : text + len;
    cg_aws_trim(&b, &e);
    return cg_aws_field(p, b, (apr_size_t)(e - b));
}

const char *cg_aws_session_name(apr_pool_t *p, const char *want)
{
    apr_size_t n, i;
    char *out;

    if (want == NULL || (n = strlen(want)) < 2) {
        return NULL;
    }
    out = apr_pstrmemdup(p, want, n > 64 ? 64 : n);
    for (i = 0; out[i]; i++) {
        if (!apr_isalnum(out[i]) && strchr("+=,.@_-", out[i]) == NULL) {
            out[i] = '-';
        }
    }
    return out;
}

const char *cg_aws_assume_role_form(apr_pool_t *p, const char *role_arn, const char *external_id,
                                    const char *session)
{
    return apr_pstrcat(
        p, "Action=AssumeRole&DurationSeconds=3600", external_id ? "&ExternalId=" : "",
        external_id ? cg_sigv4_uri_encode(p, external_id, 0) : "",
        "&RoleArn=", cg_sigv4_uri_encode(p, role_arn, 0),
        "&RoleSessionName=", cg_sigv4_uri_encode(p, session, 0), "&Version=2011-06-15", NULL);
}
