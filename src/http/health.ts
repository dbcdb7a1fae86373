import type { EventLog } from "../log/event-log";
import type { Metrics } from "../observability/metrics";
import { msgpackNativeAcceleration } from "../protocol/codec";
import type { SubscriptionStats } from "../subscribe/manager";
import { json } from "./responses";

/** Said at start-up and on /health: whoever runs the embedded log must not mistake it for storage. */
export const EMBEDDED_LOG_WARNING = "the embedded log is in memory and not durable: every event is lost when the gateway stops; set KAFKA_BROKERS to write to Kafka";

export function createHealthRoutes(deps: { auth: "jwt" | "none"; log: EventLog; metrics: Metrics; version: string; connections: () => number; inflight: () => number; subscriptions: () => SubscriptionStats; accepting: () => boolean }) {
  const started = Date.now();
  const durable = deps.log.kind === "kafka";
  const warnings = durable ? [] : [EMBEDDED_LOG_WARNING];
  /** What /health says, and the delivery-health view repeats. */
  const summary = () => {
    const log = deps.log.health();
    return {
      status: log.ready ? "ok" : "degraded",
      version: deps.version,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      connections: deps.connections(),
      /** false while PORT refuses new connections at the open-files limit (limits/open-files.ts). */
      accepting: deps.accepting(),
      eventsInflight: deps.inflight(),
      subscriptions: deps.subscriptions(),
      msgpackNativeAcceleration,
      durable,
      auth: deps.auth,
      warnings,
      log,
    };
  };
  return {
    summary,
    live: () => json({ status: "live" }),
    /** Ready only when the log can take writes: for Kafka, every worker connected to the brokers. */
    ready: () => (deps.log.isReady() ? json({ status: "ready" }) : json({ status: "not_ready", log: deps.log.health() }, 503)),
    detail: () => {
      const body = summary();
      return json(body, body.log.ready ? 200 : 503);
    },
    metrics: async () => new Response(await deps.metrics.registry.metrics(), { headers: { "content-type": deps.metrics.registry.contentType } }),
  };
}
