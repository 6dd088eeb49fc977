/* cg_keys: service keys (the per-app token pattern) and their admin API. */
#ifndef CG_KEYS_H
#define CG_KEYS_H

#include <httpd.h>

#include "mod_claude_gateway.h"

/* Every service key starts so: recognisable in leak scanners and logs. */
#define CG_KEY_PREFIX "sk-cg-"
/* How long a rotated-away secret keeps working, unless the rotation says */
#define CG_KEY_ROTATION_GRACE 3600

/** Whether a credential is a service key (by its prefix). */
int cg_key_looks_like(const char *credential);

/**
 * Verify a service key: its hash must name a live secret of a key that is
 * neither revoked nor expired.
 * @param id receives the principal key:<id>, the key's owner as email, its
 *        groups and its model list
 * @param why receives the reason of a refusal (for the audit log)
 * @return 1 when valid
 */
int cg_key_authenticate(request_rec *r, const char *secret, cg_identity_t *id, const char **why);

/** The admin endpoints (SetHandler claude-gateway-keys). */
int cg_keys_handler(request_rec *r);

#endif
