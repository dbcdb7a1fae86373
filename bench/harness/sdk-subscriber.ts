import { type DeliveredEvent, type GatewayClient, connect } from "kafka-ws-gateway/client";
import { readStamp } from "./frames";
import { LatencyHistogram } from "./histogram";
import type { Subscribers } from "./subscriber";

/**
 * `count` subscriptions to `topic` from its live end through the client SDK, `perConnection` to a
 * client, each counting deliveries and measuring publish → delivery latency from the send-time
 * stamp the load client writes at the start of each event's data; `lagged` counts the events the
 * gateway dropped for them (their lagged notices).
 */
export async function openSdkSubscribers(url: string, count: number, topic: string, filterFor: (i: number) => Record<string, unknown> | undefined, perConnection = 100): Promise<Subscribers> {
  const clients: GatewayClient[] = await Promise.all(Array.from({ length: Math.ceil(count / perConnection) }, () => connect({ url })));
  // Subscribing never creates a topic (UNKNOWN_TOPIC on Kafka): one event written first creates it,
  // before any subscription starts reading from the end, so none of them counts it.
  await clients[0]!.publish({ type: "bench.topic-created" }, { topic });
  const latency = new LatencyHistogram();
  let delivered = 0;
  let lagged = 0;
  for (let i = 0; i < count; i++) {
    const filter = filterFor(i);
    const sub = await clients[Math.floor(i / perConnection)]!.subscribe(topic, { start: "latest", ...(filter ? { filter } : {}) });
    sub.onEvent((e: DeliveredEvent) => {
      delivered++;
      const data = e.event.data;
      const at = data instanceof Uint8Array ? readStamp(data) : Number.NaN;
      if (at > 0) latency.record((performance.timeOrigin + performance.now() - at) * 1000);
    });
    sub.onNotice((n) => {
      if (n.kind === "lagged") lagged += n.dropped;
    });
  }
  return {
    get delivered() {
      return delivered;
    },
    get lagged() {
      return lagged;
    },
    latency: () => latency,
    close: () => {
      for (const c of clients) c.close();
    },
  };
}
