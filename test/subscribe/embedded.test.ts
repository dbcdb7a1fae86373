import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayClient, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { collect } from "../support/sdk-collector";

/** The same subscribe protocol on the embedded log, with no Kafka anywhere. */
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

const events = (n: number, make: (i: number) => Record<string, unknown>) => Array.from({ length: n }, (_, i) => make(i) as { type: string });

async function publishAll(c: GatewayClient, list: Array<{ type: string }>, topic: string): Promise<void> {
  for (const r of await c.publishBatch(list, { topic })) expect(r.status).toBe("fulfilled");
}

test("embedded log: live filtered subscription, then resume by token after a disconnect", async () => {
  const pub = await connect({ url: gw.wsUrl });
  const s1 = await connect({ url: gw.wsUrl });
  const sub1 = await s1.subscribe("emb", { filter: { types: ["even"] } });
  const first = collect(sub1);
  await publishAll(pub, events(100, (n) => ({ id: `n-${n}`, type: n % 2 ? "odd" : "even", key: `k${n % 4}` })), "emb");
  await first.waitFor(50);
  const token = sub1.token!;
  s1.close();
  await publishAll(pub, events(100, (i) => ({ id: `n-${100 + i}`, type: i % 2 ? "odd" : "even", key: `k${i % 4}` })), "emb");
  const s2 = await connect({ url: gw.wsUrl });
  const sub2 = await s2.subscribe("emb", { filter: { types: ["even"] }, start: { token } });
  const second = collect(sub2);
  await second.waitFor(50);
  await Bun.sleep(100);
  const all = [...first.events, ...second.events].map((e) => e.event.id);
  expect(all.sort()).toEqual(Array.from({ length: 100 }, (_, i) => `n-${i * 2}`).sort());
  expect(sub2.live).toBe(true);
  s2.close();
  pub.close();
});

test("replay is held to REPLAY_RATE_LIMIT until live, and earliest reaches back no further than REPLAY_MAX_DURATION", async () => {
  const slow = await startGateway({ KAFKA_BROKERS: "", REPLAY_RATE_LIMIT: "2000", REPLAY_MAX_DURATION: "1h" });
  try {
    const pub = await connect({ url: slow.wsUrl });
    // Two hours old: outside REPLAY_MAX_DURATION, so earliest must skip it.
    await publishAll(pub, events(10, (i) => ({ id: `old-${i}`, type: "old", time: new Date(Date.now() - 7_200_000).toISOString() })), "rate");
    await publishAll(pub, events(3000, (i) => ({ id: `r-${i}`, type: "r" })), "rate");
    const s = await connect({ url: slow.wsUrl });
    const started = performance.now();
    const sub = await s.subscribe("rate", { start: "earliest" });
    const c = collect(sub);
    await c.waitFor(3000);
    const secs = (performance.now() - started) / 1000;
    // At 2,000 events/s, 3,000 events cannot all arrive in under ~1.25 s (the first batch is free).
    expect(secs).toBeGreaterThan(1.0);
    expect(c.events).toHaveLength(3000);
    expect(c.events.some((e) => e.event.type === "old")).toBe(false);
    const deadline = Date.now() + 5000;
    while (!sub.live && Date.now() < deadline) await Bun.sleep(20);
    expect(sub.live).toBe(true);
    s.close();
    pub.close();
  } finally {
    await slow.stop();
  }
});

test("subscription metrics: active subscriptions, deliveries, filter time, feed lag", async () => {
  const c = await connect({ url: gw.wsUrl });
  const got = collect(await c.subscribe("metrics-topic"));
  const pub = await connect({ url: gw.wsUrl });
  await publishAll(pub, [{ type: "m" }, { type: "m" }], "metrics-topic");
  await got.waitFor(2);
  // Feed lag is sampled every 5 s.
  let metrics = "";
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline) {
    metrics = await (await fetch(`${gw.url}/metrics`)).text();
    if (metrics.includes('gateway_feed_lag_records{topic="metrics-topic"')) break;
    await Bun.sleep(250);
  }
  expect(metrics).toMatch(/gateway_subscriptions_active [1-9]/);
  expect(metrics).toMatch(/gateway_events_delivered_total [1-9]/);
  expect(metrics).toMatch(/gateway_filter_seconds_count [1-9]/);
  expect(metrics).toContain('gateway_feed_lag_records{topic="metrics-topic",partition="0"} 0');
  c.close();
  pub.close();
}, 30_000);
