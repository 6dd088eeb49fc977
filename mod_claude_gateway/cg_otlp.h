/* cg_otlp: identity stamping of client OTLP exports (PURE: APR, jansson,
 * protobuf-c, zlib).
 *
 * The reference gateway relays the client's telemetry byte for byte, so the
 * user.id a dashboard shows is whatever the laptop claimed. mod_claude sets
 * the identity attributes of every resource from the verified session
 * instead: user.id, user.email, user.groups and identity.source, replacing
 * what the client sent. Protobuf bodies are parsed with a minimal schema
 * (otlp/otlp_relay.proto) so that everything but the resource attributes is
 * kept as protobuf-c unknown fields and written back unchanged; OTLP/JSON
 * bodies are edited with jansson. A body that cannot be parsed is refused,
 * never forwarded unstamped. gzip bodies are inflated (bounded), stamped and
 * deflated again. */
#ifndef CG_OTLP_H
#define CG_OTLP_H

#include <apr_pools.h>

/** The three OTLP/HTTP signals. */
typedef enum { CG_OTLP_METRICS = 0, CG_OTLP_LOGS = 1, CG_OTLP_TRACES = 2 } cg_otlp_signal_e;

/** How an export is encoded. */
typedef enum { CG_OTLP_PROTOBUF = 0, CG_OTLP_JSON = 1, CG_OTLP_UNSUPPORTED = 2 } cg_otlp_format_e;

/** A string attribute (key, value). */
typedef struct cg_otlp_kv_t {
    const char *key;
    const char *value;
} cg_otlp_kv_t;

/** Who the export is stamped as. */
typedef struct cg_otlp_identity_t {
    const char *user_id; /* the session's sub; required */
    const char *email;   /* NULL: the client's user.email is removed and none set */
    const char *groups;  /* comma-separated; NULL is written as "" */
    const char *source;  /* identity.source, e.g. "mod_claude-session" */
} cg_otlp_identity_t;

/**
 * The signal an OTLP/HTTP path names.
 * @param path a request path such as /v1/metrics (a prefix before /v1/ is allowed)
 * @return the signal, or -1 when the path names none
 */
int cg_otlp_signal_of_path(const char *path);

/** "metrics", "logs" or "traces". */
const char *cg_otlp_signal_name(cg_otlp_signal_e sig);

/**
 * The encoding a Content-Type header names. OTLP/HTTP's default, protobuf,
 * when the header is absent or empty; parameters (;charset=) are ignored.
 */
cg_otlp_format_e cg_otlp_format_of(const char *content_type);

/**
 * Stamp the identity onto every resource of an export.
 * @param p pool for the result and all scratch memory
 * @param sig which export request the body is
 * @param fmt its encoding (cg_otlp_format_of)
 * @param content_encoding the body's Content-Encoding: NULL, "identity" or "gzip"
 * @param body the body as received
 * @param len its length
 * @param max_inflated largest body accepted after inflating a gzip one
 * @param id the verified identity
 * @param out receives the stamped body (encoded as the input was, gzip
 *        included), allocated from p
 * @param out_len its length
 * @param why receives a short static reason on failure (never body bytes)
 * @return APR_SUCCESS; APR_ENOTIMPL for an unsupported format or encoding;
 *         APR_EINVAL when the body is not a valid export of that signal
 */
apr_status_t cg_otlp_stamp(apr_pool_t *p, cg_otlp_signal_e sig, cg_otlp_format_e fmt,
                           const char *content_encoding, const char *body, apr_size_t len,
                           apr_size_t max_inflated, const cg_otlp_identity_t *id, const char **out,
                           apr_size_t *out_len, const char **why);

/**
 * Inflate a gzip body, refusing one larger than max once inflated.
 * @return APR_SUCCESS, APR_EINVAL for a corrupt stream, APR_ENOSPC over max
 */
apr_status_t cg_otlp_gunzip(apr_pool_t *p, const char *in, apr_size_t len, apr_size_t max,
                            const char **out, apr_size_t *out_len);

/** Compress a body as gzip. @return APR_SUCCESS or APR_EGENERAL. */
apr_status_t cg_otlp_gzip(apr_pool_t *p, const char *in, apr_size_t len, const char **out,
                          apr_size_t *out_len);

/**
 * Whether an attribute key is one the gateway owns on stamped resources
 * (user.id, user.email, user.groups, identity.source).
 */
int cg_otlp_key_reserved(const char *key);

#endif
