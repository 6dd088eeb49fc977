/* cg_telemetry: OTLP ingest and relay, and the gateway's own metrics (glue).
 *
 *   SetHandler claude-telemetry   POST /v1/metrics, /v1/logs, /v1/traces: the
 *                                 reference's fire-and-forget relay, stamped
 *                                 with the verified identity (cg_otlp)
 *   ClaudeGatewayTelemetryQueue <exports> [<transfers>]   (global) per child
 *   ClaudeGatewayTelemetryTimeout <ms>                    (global)
 *   ClaudeGatewayTelemetryBreaker <failures> <seconds>    (global)
 *   ClaudeGatewayTelemetryInterval <seconds>|Off          (global) own metrics
 *
 * Destinations come from the policy file's telemetry: section. Request
 * threads only read the body and enqueue it into a bounded per-child queue;
 * one background thread per child stamps, sends with libcurl (multi
 * interface: every destination concurrently, with a timeout and a circuit
 * breaker each) and exports the gateway's own metrics every interval. */
#ifndef CG_TELEMETRY_H
#define CG_TELEMETRY_H

#include <httpd.h>
#include <http_config.h>

#define CG_HANDLER_TELEMETRY "claude-telemetry"

/** The process-wide telemetry settings (ClaudeGatewayTelemetry*). */
typedef struct cg_tel_conf_t cg_tel_conf_t;

const char *cg_telemetry_set_queue(cmd_parms *cmd, void *dc, const char *exports,
                                   const char *transfers);
const char *cg_telemetry_set_timeout(cmd_parms *cmd, void *dc, const char *ms);
const char *cg_telemetry_set_breaker(cmd_parms *cmd, void *dc, const char *failures,
                                     const char *seconds);
const char *cg_telemetry_set_interval(cmd_parms *cmd, void *dc, const char *seconds);

/**
 * Register the telemetry hooks: the ingest handler, check_config (the OTEL
 * env of the managed settings, once ClaudeGatewayPublicURL is known),
 * child_init (queue and background thread) and log_transaction (own metrics,
 * after mod_claude_spend has published the usage).
 */
void cg_telemetry_register_hooks(apr_pool_t *p);

#endif
