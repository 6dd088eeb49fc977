/* fuzz_cloud_creds: the parsers of what cloud credential sources answer.
 *
 * The instance metadata services, the container endpoint, STS, OAuth and
 * Entra token endpoints answer over the network, and the credential files are
 * whatever is on disk: every input goes to each parser. Oracles: what a
 * parser accepts can go into a header (printable ASCII without space for
 * keys and tokens) and is never empty; a refusal comes with a reason and
 * leaves nothing half-filled; an expiry is after the time the answer was
 * read. Each input gets its own APR subpool; the parsed private keys are
 * freed by its cleanups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "cg_awscred.h"
#include "cg_azure.h"
#include "cg_vertex.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static apr_pool_t *fuzz_pool;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&fuzz_pool, NULL);
    return 0;
}

/* A value that goes into a header or a signature: non-empty, printable, no space. */
static void fuzz_header_safe(const char *s)
{
    if (s == NULL || *s == '\0') {
        abort();
    }
    for (; *s; s++) {
        if (*s < 0x21 || *s > 0x7e) {
            abort();
        }
    }
}

static void fuzz_aws(int ok, const cg_aws_creds_t *c, const char *why)
{
    if (!ok) {
        if (why == NULL) {
            abort();
        }
        return;
    }
    fuzz_header_safe(c->access_key_id);
    fuzz_header_safe(c->secret_access_key);
    if (c->session_token != NULL) {
        fuzz_header_safe(c->session_token);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text, *why = NULL, *tok = NULL, *role;
    apr_time_t now = apr_time_from_sec(1764547200), exp = 0;
    cg_vertex_adc_t adc;
    cg_aws_creds_t c;
    apr_pool_t *p;
    int ok;

    apr_pool_create(&p, fuzz_pool);
    text = apr_pstrmemdup(p, (const char *)data, size);

    memset(&c, 0, sizeof(c));
    ok = cg_aws_json_creds(p, text, size, &c, &why);
    fuzz_aws(ok, &c, why);
    memset(&c, 0, sizeof(c));
    why = NULL;
    ok = cg_aws_sts_creds(p, text, size, &c, &why);
    fuzz_aws(ok, &c, why);
    memset(&c, 0, sizeof(c));
    why = NULL;
    ok = cg_aws_ini_creds(p, text, size, "default", 0, &c, &why);
    fuzz_aws(ok, &c, why);
    memset(&c, 0, sizeof(c));
    why = NULL;
    ok = cg_aws_ini_creds(p, text, size, "ci", 1, &c, &why);
    fuzz_aws(ok, &c, why);
    if ((role = cg_aws_imds_role(p, text, size)) != NULL) {
        fuzz_header_safe(role);
    }
    cg_aws_time(text, &exp);

    why = cg_vertex_token_parse(p, text, size, now, &tok, &exp);
    if (why == NULL) {
        fuzz_header_safe(tok);
        if (exp <= now) {
            abort();
        }
    }
    else if (tok != NULL || exp != 0) {
        abort();
    }

    why = cg_azure_token_parse(p, text, size, now, &tok, &exp);
    if (why == NULL) {
        fuzz_header_safe(tok);
        if (exp <= now) {
            abort();
        }
    }
    else if (tok != NULL || exp != 0) {
        abort();
    }

    why = cg_vertex_impersonation_parse(p, text, size, &tok, &exp);
    if (why == NULL) {
        fuzz_header_safe(tok);
    }
    else if (tok != NULL || exp != 0) {
        abort();
    }

    why = cg_vertex_adc_parse(p, text, size, &adc);
    if (why == NULL) {
        if (adc.token_uri == NULL || (strncmp(adc.token_uri, "https://", 8) != 0 &&
                                      strncmp(adc.token_uri, "http://", 7) != 0)) {
            abort();
        }
        if (adc.audience != NULL) {
            if ((adc.source_file == NULL) == (adc.source_url == NULL) ||
                adc.source_headers == NULL || adc.subject_token_type == NULL) {
                abort();
            }
            fuzz_header_safe(cg_vertex_sts_request(p, &adc, "subject"));
            /* the same input as what the subject token source answered */
            if (cg_vertex_subject_token(p, &adc, text, size, &tok) == NULL) {
                if (tok == NULL || *tok == '\0') {
                    abort();
                }
            }
        }
        else if (adc.sa == NULL) {
            /* any bytes in the user credentials: the form carries them encoded */
            if (adc.client_id == NULL || adc.client_secret == NULL || adc.refresh_token == NULL) {
                abort();
            }
            fuzz_header_safe(cg_vertex_adc_token_request(p, &adc, now));
        }
        if (adc.quota_project != NULL) {
            fuzz_header_safe(adc.quota_project);
        }
    }
    else if (adc.sa != NULL || adc.client_id != NULL || adc.token_uri != NULL ||
             adc.quota_project != NULL || adc.audience != NULL) {
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
