/* cs_filter: CLAUDE_USAGE, an observing output filter.
 *
 * It sits at AP_FTYPE_CONTENT_SET - 1, before mod_deflate, so it sees the
 * bytes the upstream sent. Every brigade is passed on at once: SSE reaches the
 * client at the upstream's pace; the parser only reads along. The usage is
 * recorded in the request; log_transaction does anything that needs I/O. */
#include <apr_strings.h>
#include <http_protocol.h>

#include "cs_private.h"
#include "cs_filter.h"

/* Which parser an answer needs, or -1 when there is nothing to meter. */
static int cs_usage_kind_of(const request_rec *r)
{
    const char *ct = r->content_type;

    if (r->status < 200 || r->status >= 300 || ct == NULL) {
        return -1;
    }
    if (strncasecmp(ct, "text/event-stream", 17) == 0) {
        return CS_USAGE_SSE;
    }
    if (strncasecmp(ct, "application/json", 16) == 0) {
        return CS_USAGE_JSON;
    }
    return -1;
}

apr_status_t cs_usage_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    cs_req_t *rq = f->ctx;
    apr_bucket *b;

    if (rq == NULL) {
        int kind = cs_usage_kind_of(r);
        if (r->main != NULL || kind < 0) {
            ap_remove_output_filter(f);
            return ap_pass_brigade(f->next, bb);
        }
        rq = f->ctx = cs_req_get(r);
        if (rq->cap_headers != NULL) {
            /* err_headers_out: the gateway strips provider rate-limit headers
             * from headers_out, and these are ours */
            cs_headers_add(r->err_headers_out, rq->cap_headers);
        }
        rq->parser = cs_usage_parser_create(r->pool, (cs_usage_kind_e)kind, 0);
    }
    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
        const char *data;
        apr_size_t len;
        apr_status_t rv;

        if (APR_BUCKET_IS_EOS(b)) {
            cs_usage_publish(r, rq);
            ap_remove_output_filter(f);
            break;
        }
        if (APR_BUCKET_IS_METADATA(b)) {
            continue; /* FLUSH, and the error bucket of a broken backend */
        }
        rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                          CS_LOGNO(0210) "reading the response for metering");
            return rv;
        }
        cs_usage_parser_feed(rq->parser, data, len);
    }
    return ap_pass_brigade(f->next, bb); /* never hold bytes back */
}
