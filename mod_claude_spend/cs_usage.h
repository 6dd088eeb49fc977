/* cs_usage: token usage observed in a Messages API answer (PURE: APR + jansson).
 *
 * The CLAUDE_USAGE output filter hands every data bucket to this parser as it
 * passes and reads the totals at EOS. The parser only reads along: it never
 * holds back, copies out or changes the bytes the client gets, and whatever
 * the upstream sends (garbage, endless lines, a stream cut in half) it uses
 * bounded memory and never fails the response. SSE is parsed line by line as
 * the bytes arrive; a JSON body is kept (bounded) and parsed at the end.
 *
 * Not here: prices, periods, the ledger (cs_price, cs_period, cs_store). */
#ifndef CS_USAGE_H
#define CS_USAGE_H

#include <apr_pools.h>

/** What the upstream answered with, from its Content-Type. */
typedef enum {
    CS_USAGE_JSON, /* application/json: one body with a top-level "usage" */
    CS_USAGE_SSE   /* text/event-stream: message_start ... message_stop */
} cs_usage_kind_e;

/** Default cap on one SSE line and on the data of one event. */
#define CS_USAGE_SSE_MAX_DEFAULT ((apr_size_t)64 * 1024)
/** Default cap on a JSON body; the reference gives up beyond 8 MiB too. */
#define CS_USAGE_JSON_MAX_DEFAULT ((apr_size_t)8 * 1024 * 1024)

/** The usage of one answer, as far as it was seen. */
typedef struct cs_usage_t {
    apr_int64_t input_tokens;
    apr_int64_t output_tokens; /* last cumulative value seen, never a sum */
    apr_int64_t cache_read_tokens;
    apr_int64_t cache_creation_tokens;
    apr_int64_t text_chars; /* code points of text and thinking, for ceil(chars/4) */
    const char *model;      /* model the upstream served, NULL if unseen; parser's pool */
    int seen_usage;         /* a usage object was seen */
    int complete;           /* SSE: message_stop seen; JSON: parsable body with usage */
    int error_event;        /* SSE: an `event: error` arrived; JSON: an error body */
    int truncated;          /* finish() came before completion: bill what was seen */
} cs_usage_t;

/** An incremental parser; opaque. */
typedef struct cs_usage_parser_t cs_usage_parser_t;

/**
 * Create a parser for one answer.
 * @param p pool for the parser, its buffers and the model string; the
 *        request pool, so everything goes with the request
 * @param kind SSE or JSON
 * @param max_bytes SSE: longest line and longest event data kept (longer ones
 *        are dropped, later events still count), 0 for 64 KiB; JSON: largest
 *        body parsed (larger ones are not), 0 for 8 MiB
 * @return the parser, owned by p
 */
cs_usage_parser_t *cs_usage_parser_create(apr_pool_t *p, cs_usage_kind_e kind,
                                          apr_size_t max_bytes);

/**
 * Observe the next bytes of the answer, split anywhere. Never fails; bytes
 * fed after cs_usage_parser_finish() are ignored.
 * @param up the parser
 * @param data the bytes; not retained (copied when a line or body spans feeds)
 * @param len their number, 0 allowed
 */
void cs_usage_parser_feed(cs_usage_parser_t *up, const char *data, apr_size_t len);

/**
 * End of the answer (or of what arrived of it): give the totals. An SSE event
 * whose blank line never came is still read, so a cut stream keeps its last
 * complete JSON. May be called again; it gives the same result.
 * @param up the parser
 * @param out receives the usage; out->model is owned by the parser's pool
 */
void cs_usage_parser_finish(cs_usage_parser_t *up, cs_usage_t *out);

#endif
