import { type DeliveredEvent, type GatewayClient, connect } from "kafka-ws-gateway/client";
import { readStamp } from "./frames";
import { LatencyHistogram } from "./histogram";
import { waitFor } from "./load";

/**
 * Load through the client SDK (`kafka-ws-gateway/client`), the way an application uses it: one
 * `publish()` per event, each its own promise, the SDK batching within its linger and window; and
 * a subscription read with `onEvent`. It runs the same open-loop schedule as the raw harness
 * (event i due at start + i/rate, ack latency counted from that due time), so the two can be put
 * side by side and the difference is the SDK's own cost. The raw harness stays the load generator
 * of record: it pre-encodes its frames and spends next to nothing per event, where the SDK builds
 * an object, an id, a promise and a msgpack encoding per event.
 */
export interface SdkLoadOptions {
  url: string;
  topic: string;
  rate: number;
  durationS: number;
  payloadBytes: number;
  keys: number;
  /** Subscriptions (through the SDK, on their own client) reading the topic from its live end. */
  subscribers: number;
  drainS?: number;
}

export interface SdkLoadResult {
  sent: number;
  acked: number;
  failed: number;
  failures: Record<string, number>;
  seconds: number;
  eventsPerSec: number;
  ack: LatencyHistogram;
  delivered: number;
  lagged: number;
  delivery: LatencyHistogram;
}

export async function runSdkLoad(o: SdkLoadOptions): Promise<SdkLoadResult> {
  if (o.payloadBytes < 8) throw new Error("--payload must be at least 8 bytes (the send-time stamp)");
  if (!(o.rate > 0)) throw new Error("the SDK run is open loop: give --rate > 0");
  const pub = await connect({ url: o.url });
  const subClient = o.subscribers > 0 ? await connect({ url: o.url }) : undefined;
  const delivery = new LatencyHistogram();
  const ack = new LatencyHistogram();
  let delivered = 0;
  let lagged = 0;
  let acked = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  try {
    // The topic exists before anyone reads it from the end (subscribing never creates a topic).
    await pub.publish({ type: "bench.topic-created" }, { topic: o.topic });
    for (let i = 0; i < o.subscribers; i++) {
      const sub = await subClient!.subscribe(o.topic, { start: "latest", filter: { types: ["bench.event"] } });
      sub.onEvent((e: DeliveredEvent) => {
        delivered++;
        const data = e.event.data;
        const at = data instanceof Uint8Array ? readStamp(data) : Number.NaN;
        if (at > 0) delivery.record((performance.timeOrigin + performance.now() - at) * 1000);
      });
      sub.onNotice((n) => {
        if (n.kind === "lagged") lagged += n.dropped;
      });
    }
    const interval = 1000 / o.rate;
    const total = Math.floor(o.durationS * o.rate);
    const start = performance.now();
    let i = 0;
    const one = (client: GatewayClient, n: number) => {
      const due = start + n * interval;
      const data = new Uint8Array(o.payloadBytes).fill(120);
      new DataView(data.buffer).setFloat64(0, performance.timeOrigin + due);
      client.publish({ type: "bench.event", key: `k${n % o.keys}`, data }, { topic: o.topic }).then(
        () => {
          acked++;
          ack.record((performance.now() - due) * 1000);
        },
        (e: { code?: string }) => {
          failed++;
          const code = e.code ?? "ERROR";
          failures[code] = (failures[code] ?? 0) + 1;
        },
      );
    };
    await new Promise<void>((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
        for (; i < due; i++) one(pub, i);
        if (i >= total) return resolve();
        setTimeout(tick, Math.max(0, Math.min(2, start + i * interval - performance.now())));
      };
      tick();
    });
    const sendingStopped = performance.now();
    await waitFor(() => acked + failed >= total, (o.drainS ?? 30) * 1000);
    const seconds = (Math.max(sendingStopped, performance.now()) - start) / 1000;
    if (o.subscribers > 0) await waitFor(() => delivered >= acked * o.subscribers, 15_000);
    return { sent: total, acked, failed, failures, seconds: Number(seconds.toFixed(2)), eventsPerSec: Math.round(acked / seconds), ack, delivered, lagged, delivery };
  } finally {
    pub.close();
    subClient?.close();
  }
}
