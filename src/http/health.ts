import type { EventLog } from "../log/event-log";
import type { Metrics } from "../observability/metrics";
import { msgpackNativeAcceleration } from "../protocol/codec";
import type { SubscriptionStats } from "../subscribe/manager";
import { json } from "./responses";

/** Said at start-up and on /health: whoever runs the embedded log must not mistake it for storage. */
export const EMBEDDED_LOG_WARNING = "the embedded log is in memory and not durable: every event is lost when the gateway stops; set KAFKA_BROKERS to write to Kafka";

/**
 * /metrics is served without a token (scrapers rarely hold one), and each render collects every
 * metric, the process's own among them: ~6 ms of the event loop. One client scraping in a loop
 * (130 a second) put another client's ack p99 from 2 to 27 ms. Renders are given fresh while they
 * took less than this much of the last second; past it, scrapes get the last render until the
 * second is over. A scraper every few seconds always gets a fresh one.
 */
const METRICS_RENDER_MS_PER_SEC = 30;

export function createHealthRoutes(deps: { auth: "jwt" | "none"; log: EventLog; metrics: Metrics; version: string; connections: () => number; inflight: () => number; subscriptions: () => SubscriptionStats; accepting: () => boolean }) {
  const started = Date.now();
  const durable = deps.log.kind === "kafka";
  const warnings = durable ? [] : [EMBEDDED_LOG_WARNING];
  /** Time spent rendering /metrics since `since`, and the last render. */
  let renders: { since: number; ms: number; last: string | null } = { since: 0, ms: 0, last: null };
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
    metrics: async () => {
      const now = performance.now();
      if (now - renders.since >= 1000) renders = { since: now, ms: 0, last: renders.last };
      if (renders.last === null || renders.ms < METRICS_RENDER_MS_PER_SEC) {
        const text = await deps.metrics.registry.metrics();
        renders.ms += performance.now() - now;
        renders.last = text;
      }
      return new Response(renders.last, { headers: { "content-type": deps.metrics.registry.contentType } });
    },
  };
}
