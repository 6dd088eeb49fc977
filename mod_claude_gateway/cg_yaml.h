/* cg_yaml: a YAML document read into a jansson tree (PURE: APR, jansson, libyaml).
 *
 * The policy file is the reference gateway's gateway.yaml, so it is read with
 * the same rules: plain scalars typed by the YAML 1.2 core schema, duplicate
 * keys refused, `${VAR}` replaced by an environment variable (undefined is an
 * error) and `${file:/abs/path}` by the file's trimmed contents. The tree is
 * validated by cg_policy, which knows what the keys mean. */
#ifndef CG_YAML_H
#define CG_YAML_H

#include <apr_pools.h>
#include <jansson.h>

/** Looks up an environment variable; NULL when undefined. */
typedef const char *cg_yaml_env_fn(void *baton, const char *name);

/**
 * Parse one YAML document.
 * @param p pool for the error message and temporary strings
 * @param buf the document (need not be NUL-terminated)
 * @param len its length
 * @param name the file name, prefixed to error messages
 * @param env variable lookup for ${VAR}; NULL means getenv()
 * @param baton passed to env
 * @param out receives the tree (the caller owns one reference); an empty
 *            document gives a JSON null
 * @return NULL on success, else "name:line:col: message" allocated from p
 */
const char *cg_yaml_parse(apr_pool_t *p, const char *buf, apr_size_t len, const char *name,
                          cg_yaml_env_fn *env, void *baton, json_t **out);

/**
 * Read and parse a YAML file, as cg_yaml_parse().
 */
const char *cg_yaml_load_file(apr_pool_t *p, const char *path, cg_yaml_env_fn *env, void *baton,
                              json_t **out);

#endif
