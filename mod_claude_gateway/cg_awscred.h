/* cg_awscred: what the AWS default credential chain reads (PURE: APR +
 * jansson).
 *
 * A Bedrock upstream whose auth is {} takes its credentials where the AWS
 * SDKs look for them, in their order: the environment, a web identity token
 * exchanged at STS (EKS service accounts), the shared credentials and config
 * files, the container endpoint (ECS, EKS Pod Identity) and the instance
 * metadata service (EC2). This file parses what those sources give: the INI
 * files, the JSON of the container and instance endpoints, STS's XML answer
 * and their ISO 8601 expiry times. Fetching them, and caching what they give
 * until shortly before it expires, is cg_awschain.c's. */
#ifndef CG_AWSCRED_H
#define CG_AWSCRED_H

#include <apr_pools.h>
#include <apr_time.h>

/** A set of AWS credentials. Secrets: never logged. */
typedef struct cg_aws_creds_t {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL: long-term keys */
    apr_time_t expires;        /* 0: no expiry given */
} cg_aws_creds_t;

/** Longest credential field taken (session tokens run to a few KB). */
#define CG_AWS_FIELD_MAX 8192

/**
 * A profile's keys in a shared credentials file (sections "[name]") or a
 * config file (sections "[profile name]", and "[default]").
 * @return 1 with out filled; 0 when the profile is absent or does not hold
 *         both keys, with *why saying which
 */
int cg_aws_ini_creds(apr_pool_t *p, const char *text, apr_size_t len, const char *profile,
                     int config_file, cg_aws_creds_t *out, const char **why);

/**
 * The JSON of the container endpoint or of the instance metadata's
 * security-credentials/<role>: AccessKeyId, SecretAccessKey, Token and
 * Expiration (and Code, which must be "Success" when present).
 * @return 1 with out filled; 0 with *why
 */
int cg_aws_json_creds(apr_pool_t *p, const char *json, apr_size_t len, cg_aws_creds_t *out,
                      const char **why);

/**
 * STS's XML answer to AssumeRoleWithWebIdentity: its Credentials element, or
 * the Error's Code and Message.
 * @return 1 with out filled; 0 with *why
 */
int cg_aws_sts_creds(apr_pool_t *p, const char *xml, apr_size_t len, cg_aws_creds_t *out,
                     const char **why);

/**
 * An ISO 8601 UTC time as AWS writes it: 2026-12-01T06:00:00Z, with an
 * optional fraction of a second.
 * @return 1 with *out; 0 when it is not one
 */
int cg_aws_time(const char *s, apr_time_t *out);

/** The first role name in the instance metadata's security-credentials/
 *  listing (one per line), or NULL. */
const char *cg_aws_imds_role(apr_pool_t *p, const char *text, apr_size_t len);

/** The role session name used when none comes from the user. */
#define CG_AWS_SESSION_DEFAULT "mod_claude"

/**
 * A role session name STS takes, made from a user's email or subject: every
 * character outside [A-Za-z0-9+=,.@_-] becomes '-', cut to 64.
 * @return the name owned by p, or NULL when want is NULL or shorter than 2
 */
const char *cg_aws_session_name(apr_pool_t *p, const char *want);

/**
 * The form of an STS AssumeRole request (DurationSeconds 3600).
 * @param external_id the role's external id, or NULL
 * @return the body owned by p
 */
const char *cg_aws_assume_role_form(apr_pool_t *p, const char *role_arn, const char *external_id,
                                    const char *session);

#endif
