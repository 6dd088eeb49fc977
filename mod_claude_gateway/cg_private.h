/* cg_private.h: what the glue files of mod_claude_gateway share.
 *
 * The module record, log tags, and the per-request state. Only glue files
 * (mod_claude_gateway.c, cg_config.c, cg_handler.c, cg_db.c) include this. */
#ifndef CG_PRIVATE_H
#define CG_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_claude_gateway.h"
#include "cg_audit.h"

extern module AP_MODULE_DECLARE_DATA claude_gateway_module;
APLOG_USE_MODULE(claude_gateway);

/* Our own stable message tags; never renumbered or reused. */
#define CG_LOGNO(n) "CG" #n ": "

#define CG_VERSION "0.1.0"
/* the reference protocol version we speak, sent as x-cc-gateway-version */
#define CG_PROTOCOL_VERSION "2.1.328"
/* the model the client uses until the user picks one (2.1.328) */
#define CG_CLIENT_DEFAULT_MODEL "claude-opus-4-7"

/* Handler names, for SetHandler and for the internal error answer. */
#define CG_HANDLER_HEALTHZ "claude-gateway-healthz"
#define CG_HANDLER_READYZ "claude-gateway-readyz"
#define CG_HANDLER_ERROR "claude-gateway-error"
#define CG_HANDLER_MANAGED_SETTINGS "claude-managed-settings"
#define CG_HANDLER_MODELS "claude-models"
/* set in fixups on ClaudeGatewayRoute locations: cg_upstream.c answers */
#define CG_HANDLER_ROUTE "claude-gateway-route"
#define CG_HANDLER_KEYS "claude-gateway-keys"
/* The URI an authentication failure is internally redirected to, so the 401
 * is written as JSON by our handler rather than as httpd's HTML page. */
#define CG_ERROR_URI "/.claude-gateway/error"

/* pconf userdata: set by ClaudeGatewayDevIdentity so post_config can warn */
#define CG_DEV_IDENTITY_KEY "claude_gateway_dev_identity"

/** Per-request state, kept on the initial request's request_config. */
typedef struct cg_req_t {
    const char *request_id;
    cg_identity_t identity; /* valid when identity.sub != NULL */
    /* the body, read once in fixups and replayed to mod_proxy */
    const char *body;
    apr_size_t body_len;
    apr_size_t replayed;
    int replay_eos_sent;
    const char *model;
    int stream;
    /* an error our handler answers in the reference's envelope */
    int err_status;
    const char *err_type;
    const char *err_msg;
    int err_plain;                  /* text/plain answer (the reference's 404 "not found") */
    int err_no_request_id;          /* envelope without request_id (the reference's spend 429) */
    cg_notes_t notes;               /* the initial request's claude-* notes, see cg_note_set */
    const apr_table_t *headers_set; /* the table cg_response_headers last filled */
} cg_req_t;

/**
 * The request state of r's initial request, created on first use.
 * Internal redirects and subrequests share it.
 */
cg_req_t *cg_req_get(request_rec *r);

/** The state if it exists, without creating it. */
cg_req_t *cg_req_find(request_rec *r);

/**
 * apr_table_setn(r->notes, name, value), for the claude-* notes both modules
 * write. The initial request's are also kept in its cg_req_t, so reading one
 * is a field and writing one the first time an apr_table_addn: apr_table
 * checksums a key's first four characters only, all "clau", so its get and
 * set compare against every claude-* note. Every write of ours goes through
 * here; a note another module wrote directly is still in r->notes for the
 * access log, but cg_note_get does not see it.
 */
void cg_note_set(request_rec *r, const char *name, const char *value);

/** apr_table_get(r->notes, name), from cg_req_t for the claude-* notes. */
const char *cg_note_get(request_rec *r, const char *name);

/** Every claude-* note of r in one go (the audit line, the own metrics). */
void cg_notes_get_all(request_rec *r, cg_notes_t *out);

/**
 * Set the headers every gateway answer carries (the reference's security
 * headers and x-request-id) in err_headers_out, so they survive error paths.
 */
void cg_response_headers(request_rec *r);

#endif
