/* cg_bedrock: the Amazon Bedrock upstream (PURE: APR + jansson).
 *
 * Request side: the Messages body becomes an InvokeModel body (no "model", no
 * "stream", "anthropic_version": "bedrock-2023-05-31", the anthropic-beta
 * header's values in a body array "anthropic_beta", every other field kept
 * except the request "tags" Bedrock refuses), the URL path names the model
 * (encoded: ids hold ':' and ARNs '/'), and count_tokens becomes a CountTokens
 * call. Response side: InvokeModelWithResponseStream answers in AWS's binary
 * event-stream, which is decoded incrementally here, both CRCs checked, each
 * chunk's base64 Anthropic event re-emitted as the SSE text the client
 * expects, and AWS exceptions turned into an Anthropic "event: error" frame.
 * A non-streaming InvokeModel answer is already the Messages API's JSON.
 *
 * Not here: signing (cg_sigv4), sending, keepalive pings (CG_SSE_PING, sent by
 * the caller on silence), the error hygiene of non-2xx answers (cg_provider). */
#ifndef CG_BEDROCK_H
#define CG_BEDROCK_H

#include <apr_pools.h>

/** The version Bedrock's Anthropic models take in the body. */
#define CG_BEDROCK_ANTHROPIC_VERSION "bedrock-2023-05-31"
/** The SigV4 signing name of bedrock-runtime. */
#define CG_BEDROCK_SERVICE "bedrock"
/** The largest event-stream message accepted by default (AWS's limit is 16 MiB). */
#define CG_BEDROCK_MAX_MESSAGE (16 * 1024 * 1024 + 128 * 1024)

/** The runtime operations. */
typedef enum {
    CG_BEDROCK_INVOKE,        /* POST /model/{id}/invoke */
    CG_BEDROCK_INVOKE_STREAM, /* POST /model/{id}/invoke-with-response-stream */
    CG_BEDROCK_COUNT_TOKENS   /* POST /model/{id}/count-tokens */
} cg_bedrock_op_e;

/**
 * The runtime host of a region: bedrock-runtime.{region}.amazonaws.com.
 * @return the host owned by p, or NULL when region is empty or not [a-z0-9-]
 */
const char *cg_bedrock_host(apr_pool_t *p, const char *region);

/**
 * The request path of an operation, the model id URI-encoded as one segment
 * ("us.anthropic.claude-sonnet-4-5-20250929-v1:0" → ".../v1%3A0/invoke"). This
 * is the path to send, and the one to give cg_sigv4_sign().
 * @return the path owned by p, or NULL for an empty model id
 */
const char *cg_bedrock_path(apr_pool_t *p, const char *model_id, cg_bedrock_op_e op);

/**
 * Translate a Messages body to an InvokeModel body.
 * @param p pool for the result
 * @param buf the client's body (already accepted by cg_body_check)
 * @param len its length
 * @param anthropic_beta the client's anthropic-beta header value(s), comma-joined; may be
 *        NULL. Its values join any "anthropic_beta" array already in the body; the
 *        request-tags beta is left out. Do not send the header to Bedrock.
 * @param out_len receives the new length
 * @return compact JSON owned by p, or NULL when buf is not a JSON object
 */
const char *cg_bedrock_body(apr_pool_t *p, const char *buf, apr_size_t len,
                            const char *anthropic_beta, apr_size_t *out_len);

/** The prefix of the tags that mark input for a Bedrock guardrail. */
#define CG_BEDROCK_GUARD_TAG "amazon-bedrock-guardrails-guardContent_"

/**
 * cg_bedrock_body, with the guardrail's input tagging: the text of the last
 * user turn (a string content, or its text blocks; not tool results) is
 * wrapped in <amazon-bedrock-guardrails-guardContent_SUFFIX> tags and the
 * body gains "amazon-bedrock-guardrailConfig": {"tagSuffix": SUFFIX}, so the
 * guardrail judges what the user just wrote, not the system prompt, the
 * tools or the turns it judged before.
 * @param tag_suffix a fresh random suffix per request (a user cannot guess
 *        it to close the tag early), or NULL for no tagging
 */
const char *cg_bedrock_body_tagged(apr_pool_t *p, const char *buf, apr_size_t len,
                                   const char *anthropic_beta, const char *tag_suffix,
                                   apr_size_t *out_len);

/**
 * Translate a count_tokens body to a CountTokens body:
 * {"input":{"invokeModel":{"body":"<base64 of an InvokeModel body>"}}}, where the
 * invoke body has no "model", no empty "tools", and a "max_tokens" above any
 * thinking budget (Bedrock validates it as an invoke).
 * @return compact JSON owned by p, or NULL when buf is not a JSON object
 */
const char *cg_bedrock_count_tokens_body(apr_pool_t *p, const char *buf, apr_size_t len,
                                         const char *anthropic_beta, apr_size_t *out_len);

/**
 * CountTokens' answer {"inputTokens":N} as the Messages API's {"input_tokens":N}.
 * @return compact JSON owned by p, or NULL when the answer has no integer inputTokens
 */
const char *cg_bedrock_count_tokens_answer(apr_pool_t *p, const char *buf, apr_size_t len);

/**
 * Where decoded SSE text goes: called once per complete SSE frame, in order.
 * The bytes are only valid during the call (copy them into a bucket).
 * @return APR_SUCCESS to go on; anything else stops the decoder and is returned
 */
typedef apr_status_t (*cg_bedrock_emit_fn)(void *baton, const char *data, apr_size_t len);

/** An incremental event-stream to SSE decoder (one per response). */
typedef struct cg_bedrock_stream_t cg_bedrock_stream_t;

/**
 * A decoder. Its memory (a message buffer that grows to the largest message
 * seen, reused) comes from p once, not per feed.
 * @param p pool for the decoder (the request pool)
 * @param max_message the largest message accepted; 0 means CG_BEDROCK_MAX_MESSAGE
 * @param emit the SSE sink
 * @param baton passed to emit
 * @return the decoder
 */
cg_bedrock_stream_t *cg_bedrock_stream_create(apr_pool_t *p, apr_size_t max_message,
                                              cg_bedrock_emit_fn emit, void *baton);

/**
 * Feed response bytes, split anywhere (one byte at a time works). Each chunk
 * event gives "event: <type>\ndata: <json>\n\n", its JSON the Anthropic event
 * Bedrock carried, byte for byte (re-serialised only if it held a line break).
 * An exception message gives one "event: error" frame (error.type by the
 * exception, message by the error hygiene rules) and ends the stream. A framing
 * error (bad length, either CRC, bad header, a chunk that is not base64 of a
 * JSON event) gives one "event: error" api_error frame and ends it too.
 * @return APR_SUCCESS; APR_EOF once an exception ended the stream; APR_EINVAL once
 *         the stream was found malformed; or what emit returned. After APR_EOF or
 *         APR_EINVAL further bytes are ignored and the same status is returned.
 */
apr_status_t cg_bedrock_stream_feed(cg_bedrock_stream_t *s, const char *data, apr_size_t len);

/**
 * The upstream ended the response.
 * @return APR_SUCCESS when it ended between messages (or after an error frame);
 *         APR_INCOMPLETE when a message was cut short (nothing is emitted: the
 *         caller decides what a truncated stream becomes)
 */
apr_status_t cg_bedrock_stream_finish(cg_bedrock_stream_t *s);

/**
 * What AWS said when the stream ended in an exception or was malformed, for
 * the operational log only (it may name accounts or ARNs).
 * @return "<exception type>: <message>", or a description of the framing error;
 *         NULL while the stream is fine. Owned by the decoder's pool.
 */
const char *cg_bedrock_stream_error(const cg_bedrock_stream_t *s);

/**
 * The number of chunk events emitted so far (for tests and metering checks).
 */
apr_size_t cg_bedrock_stream_events(const cg_bedrock_stream_t *s);

#endif
