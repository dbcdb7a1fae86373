import type { EventLog } from "../log/event-log";
import type { Metrics } from "../metrics/metrics";
import { msgpackNativeAcceleration } from "../protocol/codec";
import type { SubscriptionStats } from "../subscribe/manager";
import { json } from "./responses";

export function createHealthRoutes(deps: { log: EventLog; metrics: Metrics; version: string; connections: () => number; inflight: () => number; subscriptions: () => SubscriptionStats }) {
  const started = Date.now();
  return {
    live: () => json({ status: "live" }),
    /** Ready only when the log can take writes: for Kafka, every worker connected to the brokers. */
    ready: () => (deps.log.isReady() ? json({ status: "ready" }) : json({ status: "not_ready", log: deps.log.health() }, 503)),
    detail: () => {
      const log = deps.log.health();
      return json(
        {
          status: log.ready ? "ok" : "degraded",
          version: deps.version,
          uptimeSeconds: Math.round((Date.now() - started) / 1000),
          connections: deps.connections(),
          eventsInflight: deps.inflight(),
          subscriptions: deps.subscriptions(),
          msgpackNativeAcceleration,
          log,
        },
        log.ready ? 200 : 503,
      );
    },
    metrics: async () => new Response(await deps.metrics.registry.metrics(), { headers: { "content-type": deps.metrics.registry.contentType } }),
  };
}
