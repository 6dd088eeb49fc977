/* Unit test suites for the PURE files of mod_claude (libcheck, no httpd).
 * Each test_<file>.c defines one suite constructor declared here; main.c runs
 * them all. Tests get a fresh APR pool per test from the fixture below. */
#ifndef CLAUDE_UNIT_H
#define CLAUDE_UNIT_H

#include <check.h>
#include <apr_pools.h>

/** The per-test pool, created by unit_setup() and destroyed by unit_teardown(). */
extern apr_pool_t *unit_pool;

void unit_setup(void);
void unit_teardown(void);

Suite *unit_suite_cg_util(void);
Suite *unit_suite_cg_otlp(void);
Suite *unit_suite_cg_telemetry(void);
Suite *unit_suite_cg_body(void);
Suite *unit_suite_cg_jwt(void);
Suite *unit_suite_cs_usage(void);
Suite *unit_suite_cg_claims(void);
Suite *unit_suite_cs_price(void);
Suite *unit_suite_ca_chain(void);
Suite *unit_suite_cg_policy(void);
Suite *unit_suite_cs_caps(void);
Suite *unit_suite_cg_route(void);
Suite *unit_suite_cg_rl(void);
Suite *unit_suite_cs_period(void);
Suite *unit_suite_cg_sigv4(void);
Suite *unit_suite_cg_provider(void);
Suite *unit_suite_cg_bedrock(void);
Suite *unit_suite_cg_vertex(void);
Suite *unit_suite_cs_limits(void);
Suite *unit_suite_cs_lease(void);
Suite *unit_suite_cs_journal(void);
Suite *unit_suite_cs_batch(void);
Suite *unit_suite_cg_audit(void);
Suite *unit_suite_cg_awscred(void);
Suite *unit_suite_cg_tokcache(void);
Suite *unit_suite_cg_azure(void);

#endif
