/* cg_claims: turning IdP claims into the gateway's identity, and the sign-in
 * gates (PURE: APR + jansson).
 *
 * The same rules apply to the claims mod_auth_openidc hands over at /device
 * and to the id_token of a refresh, so a user who loses a group or a domain
 * loses access at the next refresh, not only at the next login. */
#ifndef CG_CLAIMS_H
#define CG_CLAIMS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/**
 * The first of the named claims that holds a non-empty string.
 * @param claims a JSON object of claims
 * @param names const char * claim names in order of preference (e.g. email, upn)
 * @return the value copied into p, or NULL
 */
const char *cg_claims_email(apr_pool_t *p, const json_t *claims, const apr_array_header_t *names);

/**
 * Groups from a claim: a top-level name ("groups") or a JSON pointer
 * ("/realm_access/roles"). The value may be an array of strings or one
 * comma-separated string (how mod_auth_openidc passes arrays).
 * @return const char * elements copied into p; empty when absent, never NULL
 */
apr_array_header_t *cg_claims_groups(apr_pool_t *p, const json_t *claims, const char *spec);

/**
 * The sign-in gates: the email's domain among domains (when any are set, case
 * insensitive, exact domain), and at least one group among allowed (when any
 * are set).
 * @return NULL when admitted, else the reason (static text, safe to show)
 */
const char *cg_claims_gate(const char *email, const apr_array_header_t *groups,
                           const apr_array_header_t *domains, const apr_array_header_t *allowed);

#endif
