import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * A count bumped once per frame or more, kept as a plain number and added to its prom-client counter
 * when the registry is read: prom-client validates and hashes the labels on every inc(), and with
 * its gauges' set() that was 4–6% of the gateway's time at one event per frame.
 */
export class Tally {
  private pending = 0;
  constructor(
    private readonly counter: Counter<string>,
    private readonly labels: Record<string, string> = {},
  ) {}
  inc(n = 1): void {
    this.pending += n;
  }
  fold(): void {
    if (this.pending === 0) return;
    this.counter.inc(this.labels, this.pending);
    this.pending = 0;
  }
}

/** A gauge read only when the registry is: its owner keeps `value` as it changes, at a plain store's cost. */
export class Level {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
}

/** One label set of a LatencyHistogram. */
export interface HistogramSeries {
  observe(seconds: number): void;
}

/**
 * A histogram whose label sets are made once, counted in plain arrays, and read through the registry
 * as prom-client's own would be (the same `_bucket`, `_sum` and `_count` lines). prom-client's
 * observe() builds, validates and hashes its labels on every call: once per publish frame, that was
 * 6% of the gateway's time at one event per frame.
 */
export class LatencyHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly series: Array<{ labels: Record<string, string>; counts: Float64Array; sum: number; count: number }> = [];
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  child(labels: Record<string, string> = {}): HistogramSeries {
    const s = { labels, counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
    this.series.push(s);
    const buckets = this.buckets;
    return {
      observe(seconds: number): void {
        s.sum += seconds;
        s.count++;
        for (let b = 0; b < buckets.length; b++) {
          if (seconds <= buckets[b]!) {
            s.counts[b]!++;
            return;
          }
        }
      },
    };
  }

  get() {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const s of this.series) {
      if (s.count === 0) continue;
      let cumulative = 0;
      this.buckets.forEach((le, b) => {
        cumulative += s.counts[b]!;
        values.push({ labels: { le, ...s.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: "+Inf", ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const s of this.series) (s.counts.fill(0), (s.sum = 0), (s.count = 0));
  }
}

/** Every metric the gateway exports, in one place; modules receive this object, never make their own. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "gateway_process_" });
  const tallies: Tally[] = [];
  const tally = (counter: Counter<string>, labels?: Record<string, string>) => {
    const t = new Tally(counter, labels);
    tallies.push(t);
    return t;
  };
  const foldTallies = () => {
    for (const t of tallies) t.fold();
  };
  const level = (name: string, help: string) => {
    const l = new Level();
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(l.value);
      },
    });
    return l;
  };
  const received = new Counter({ name: "gateway_events_received_total", help: "Events received from clients, before validation", labelNames: ["transport"] as const, registers: [registry], collect: foldTallies });
  const published = new Counter({ name: "gateway_events_published_total", help: "Events acknowledged by the log (Kafka or embedded)", labelNames: ["transport"] as const, registers: [registry], collect: foldTallies });
  const delivered = new Counter({ name: "gateway_events_delivered_total", help: "Events handed to subscriber sockets", registers: [registry], collect: foldTallies });
  const m = {
    registry,
    eventsReceived: { ws: tally(received, { transport: "ws" }), http: tally(received, { transport: "http" }) },
    eventsPublished: { ws: tally(published, { transport: "ws" }), http: tally(published, { transport: "http" }) },
    eventsFailed: new Counter({ name: "gateway_events_failed_total", help: "Events nacked, by error code", labelNames: ["transport", "code"] as const, registers: [registry] }),
    framesRejected: new Counter({ name: "gateway_frames_rejected_total", help: "Frames or requests refused before any event was read, by error code", labelNames: ["transport", "code"] as const, registers: [registry] }),
    publishLatency: publishLatency(registry),
    connectionsOpen: new Gauge({ name: "gateway_connections_open", help: "Open WebSocket connections", registers: [registry] }),
    streamsOpen: new Gauge({ name: "gateway_sse_streams_open", help: "Open server-sent event streams (GET /api/v1/stream)", registers: [registry] }),
    connectionsRefused: new Counter({ name: "gateway_connections_refused_total", help: "WebSocket upgrades refused at MAX_CONNECTIONS or MAX_CONNECTIONS_PER_IP", registers: [registry] }),
    openFiles: new Gauge({ name: "gateway_open_files", help: "File descriptors the gateway holds (sockets included), counted by the open-files guard", registers: [registry] }),
    memoryOver: new Gauge({ name: "gateway_memory_over_limit", help: "1 while the gateway's resident memory is over MEMORY_LIMIT_BYTES (src/limits/memory-guard.ts): new connections are refused and quiet ones closed", registers: [registry] }),
    connectionsShed: new Counter({ name: "gateway_connections_shed_total", help: "WebSocket connections closed 1013 because the gateway was over MEMORY_LIMIT_BYTES", registers: [registry] }),
    listenerPaused: new Counter({ name: "gateway_listener_paused_total", help: "Times PORT stopped accepting connections because the open files neared their limit (src/limits/open-files.ts)", registers: [registry] }),
    rateLimited: new Counter({ name: "gateway_rate_limited_total", help: "Requests refused RATE_LIMITED, by which rate (connection or principal; events or bytes)", labelNames: ["transport", "scope", "unit"] as const, registers: [registry] }),
    rateLimitReadPauses: new Counter({ name: "gateway_rate_limit_read_pauses_total", help: "Times a WebSocket connection over a publish rate stopped being read until the rate allowed it again", registers: [registry] }),
    invalidFramesCloses: new Counter({ name: "gateway_invalid_frames_closes_total", help: "Connections closed with 4400 for sending on past INVALID_FRAMES_CLOSE_AFTER frames refused as invalid", registers: [registry] }),
    rateLimitCloses: new Counter({ name: "gateway_rate_limit_closes_total", help: "Connections closed with 4429 for sending on past RATE_LIMIT_CLOSE_AFTER refusals", registers: [registry] }),
    handlingRests: new Counter({ name: "gateway_handling_rests_total", help: "Times a WebSocket connection stopped being read and served because its frames took more than RATE_LIMIT_HANDLING_MS of the gateway's time per second (src/ws/ingress.ts)", registers: [registry] }),
    ingressPauses: new Counter({ name: "gateway_connection_pauses_total", help: "Times a connection's socket stopped being read because its frames waited their turn (src/ws/ingress.ts)", registers: [registry] }),
    originsRefused: new Counter({ name: "gateway_origins_refused_total", help: "Requests and WebSocket upgrades refused 403 ORIGIN_NOT_ALLOWED (Origin not in ALLOWED_ORIGINS)", labelNames: ["transport"] as const, registers: [registry] }),
    helloTimeouts: new Counter({ name: "gateway_hello_timeouts_total", help: "WebSockets closed for completing no hello within HELLO_TIMEOUT (4002, or 4401 without a token)", registers: [registry] }),
    eventsDeduplicated: new Counter({ name: "gateway_events_deduplicated_total", help: "Events re-sent with an id already written to their topic within IDEMPOTENCE_WINDOW_MS: answered with the original ack, not written again", registers: [registry] }),
    eventsWrittenTwice: new Counter({ name: "gateway_events_written_twice_total", help: "Events found in their topic at two positions within IDEMPOTENCE_WINDOW_MS (the same source and id): an unmarked re-send that raced the ids reader, another producer's copy, or librdkafka's own retry after a broker stopped answering for longer than the message timeout (docs/protocol.md, Idempotent publish)", registers: [registry] }),
    idempotenceIds: level("gateway_idempotence_ids", "Event ids this instance remembers for idempotent publish (at most IDEMPOTENCE_MAX_IDS)"),
    fairShareWaiting: new Gauge({ name: "gateway_fair_share_waiting_events", help: "Events waiting their connection's turn to be handed to the Kafka workers (docs/protocol.md, Fair share)", registers: [registry] }),
    fairShareBudget: new Gauge({ name: "gateway_fair_share_budget_events", help: "Events the Kafka workers may hold at once before the rest wait their turn", registers: [registry] }),
    eventsInflight: level("gateway_events_inflight", "Events handed to the log and not yet acknowledged"),
    newTopicEventsInflight: level("gateway_new_topic_events_inflight", "Events in flight to topics Kafka did not have when asked and has not acknowledged a write to yet (bounded by KAFKA_NEW_TOPIC_MAX_INFLIGHT)"),
    workerRestarts: new Counter({ name: "gateway_kafka_worker_restarts_total", help: "Kafka worker processes restarted after exiting", registers: [registry] }),
    workersReady: new Gauge({ name: "gateway_kafka_workers_ready", help: "Kafka worker processes connected and ready", registers: [registry] }),
    msgpackNative: new Gauge({ name: "gateway_msgpack_native_acceleration", help: "1 when msgpackr's native string extractor is loaded (about 3x faster decoding)", registers: [registry] }),
    subscriptionsActive: new Gauge({ name: "gateway_subscriptions_active", help: "Open subscriptions", registers: [registry] }),
    filterChars: new Gauge({ name: "gateway_filter_chars", help: "What the filters of every open subscription hold, in characters as MAX_FILTER_CHARS counts them (a subscribe past it is refused TOO_MANY_SUBSCRIPTIONS)", registers: [registry] }),
    eventsDelivered: tally(delivered),
    replaysHandedOver: new Counter({ name: "gateway_replays_handed_over_total", help: "Caught-up replaying subscriptions moved onto their topic's shared live feed, their own reader closed", registers: [registry] }),
    subscriptionGaps: new Counter({ name: "gateway_feed_gaps_total", help: "Times a feed's next offset was gone from the log (retention overtook it, or the log was reset), each announced by gap frames", labelNames: ["reason"] as const, registers: [registry] }),
    eventsDroppedLag: new Counter({ name: "gateway_events_dropped_lag_total", help: "Events dropped for slow subscribers (each announced by a lagged frame)", registers: [registry] }),
    eventsRedealt: new Counter({ name: "gateway_share_redealt_total", help: "Events a share group member's full queue gave back, dealt to another member (not dropped: the group loses none)", registers: [registry] }),
    filterSeconds: new Histogram({
      name: "gateway_filter_seconds",
      help: "Decoding and filtering one read batch for all subscriptions of a feed",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    }),
    feedLag: new Gauge({ name: "gateway_feed_lag_records", help: "Records between a live feed's position and the partition's end", labelNames: ["topic", "partition"] as const, registers: [registry] }),
    acksDropped: new Counter({ name: "gateway_replies_dropped_total", help: "Reply frames Bun dropped because the client stopped reading (the socket is then closed)", registers: [registry] }),
    unreadCloses: new Counter({ name: "gateway_unread_closes_total", help: "WebSocket connections closed 4001 because their client address's (bound=address) or the instance's (bound=total) unread bytes passed UNREAD_BYTES_PER_ADDRESS or UNREAD_BYTES_TOTAL", labelNames: ["bound"] as const, registers: [registry] }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

function publishLatency(registry: Registry): Record<"ws" | "http", HistogramSeries> {
  const h = new LatencyHistogram("gateway_publish_latency_seconds", "From a publish frame's arrival to its ack (the slowest event of a batch)", [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registry);
  return { ws: h.child({ transport: "ws" }), http: h.child({ transport: "http" }) };
}
