/* cs_filter: the CLAUDE_USAGE output filter, which observes token usage in
 * Messages API answers without delaying or altering a byte. */
#ifndef CS_FILTER_H
#define CS_FILTER_H

#include <httpd.h>
#include <util_filter.h>

/**
 * The filter function, registered at AP_FTYPE_CONTENT_SET - 1.
 */
apr_status_t cs_usage_filter(ap_filter_t *f, apr_bucket_brigade *bb);

#endif
