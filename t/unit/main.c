/* Runs every unit suite of mod_claude; the exit status is the number of
 * failed tests, so `make check` fails when one does. */
#include <stdlib.h>
#include <apr_general.h>

#include "unit.h"

apr_pool_t *unit_pool;

void unit_setup(void)
{
    apr_pool_create(&unit_pool, NULL);
}

void unit_teardown(void)
{
    apr_pool_destroy(unit_pool);
    unit_pool = NULL;
}

int main(void)
{
    SRunner *sr;
    int failed;

    apr_initialize();
    sr = srunner_create(unit_suite_cg_util());
    srunner_add_suite(sr, unit_suite_cg_body());
    srunner_add_suite(sr, unit_suite_cg_otlp());
    srunner_add_suite(sr, unit_suite_cg_telemetry());
    srunner_add_suite(sr, unit_suite_cg_jwt());
    srunner_add_suite(sr, unit_suite_cs_usage());
    srunner_add_suite(sr, unit_suite_cg_claims());
    srunner_add_suite(sr, unit_suite_cs_price());
    srunner_add_suite(sr, unit_suite_ca_chain());
    srunner_add_suite(sr, unit_suite_cg_policy());
    srunner_add_suite(sr, unit_suite_cs_caps());
    srunner_add_suite(sr, unit_suite_cg_route());
    srunner_add_suite(sr, unit_suite_cg_rl());
    srunner_add_suite(sr, unit_suite_cs_period());
    srunner_add_suite(sr, unit_suite_cg_sigv4());
    srunner_add_suite(sr, unit_suite_cg_provider());
    srunner_add_suite(sr, unit_suite_cg_bedrock());
    srunner_add_suite(sr, unit_suite_cg_vertex());
    srunner_add_suite(sr, unit_suite_cs_limits());
    srunner_add_suite(sr, unit_suite_cs_lease());
    srunner_add_suite(sr, unit_suite_cs_journal());
    srunner_add_suite(sr, unit_suite_cs_batch());
    srunner_add_suite(sr, unit_suite_cg_audit());
    srunner_add_suite(sr, unit_suite_cg_awscred());
    srunner_add_suite(sr, unit_suite_cg_tokcache());
    srunner_add_suite(sr, unit_suite_cg_azure());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    apr_terminate();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
