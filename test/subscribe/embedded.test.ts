import { afterAll, beforeAll, expect, test } from "bun:test";
import { Collector } from "../support/collector";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { GatewayClient } from "../support/ws-client";

/** The same subscribe protocol on the embedded log, with no Kafka anywhere. */
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

test("embedded log: live filtered subscription, then resume by token after a disconnect", async () => {
  const pub = await GatewayClient.connect(gw.wsUrl);
  const first = new Collector();
  const s1 = await GatewayClient.connect(gw.wsUrl);
  const sub1 = await s1.subscribe({ sub: "e2", topic: "emb", filter: { types: ["even"] } }, first.onFrame);
  expect(sub1).toMatchObject({ t: 23, live: true });
  await pub.publishBatch(Array.from({ length: 100 }, (_, n) => ({ id: `n-${n}`, type: n % 2 ? "odd" : "even", key: `k${n % 4}` })), "emb");
  await first.waitFor(50);
  s1.close();
  await pub.publishBatch(Array.from({ length: 100 }, (_, i) => ({ id: `n-${100 + i}`, type: i % 2 ? "odd" : "even", key: `k${i % 4}` })), "emb");
  const second = new Collector();
  const s2 = await GatewayClient.connect(gw.wsUrl);
  await s2.subscribe({ sub: "e2", topic: "emb", filter: { types: ["even"] }, start: { token: first.token } }, second.onFrame);
  await second.waitFor(50);
  await Bun.sleep(100);
  const all = [...first.events, ...second.events].map((e) => e.event.id);
  expect(all.sort()).toEqual(Array.from({ length: 100 }, (_, i) => `n-${i * 2}`).sort());
  expect(second.live).toBe(true);
  s2.close();
  pub.close();
});

test("replay is held to REPLAY_RATE_LIMIT until live, and earliest reaches back no further than REPLAY_MAX_DURATION", async () => {
  const slow = await startGateway({ KAFKA_BROKERS: "", REPLAY_RATE_LIMIT: "2000", REPLAY_MAX_DURATION: "1h" });
  try {
    const pub = await GatewayClient.connect(slow.wsUrl);
    // Two hours old: outside REPLAY_MAX_DURATION, so earliest must skip it.
    await pub.publishBatch(Array.from({ length: 10 }, (_, i) => ({ id: `old-${i}`, type: "old", time: new Date(Date.now() - 7_200_000).toISOString() })), "rate");
    for (let i = 0; i < 3000; i += 500) await pub.publishBatch(Array.from({ length: 500 }, (_, j) => ({ id: `r-${i + j}`, type: "r" })), "rate");
    const c = new Collector();
    const s = await GatewayClient.connect(slow.wsUrl);
    const started = performance.now();
    await s.subscribe({ sub: "r", topic: "rate", start: "earliest" }, c.onFrame);
    await c.waitFor(3000);
    const secs = (performance.now() - started) / 1000;
    // At 2,000 events/s, 3,000 events cannot all arrive in under ~1.25 s (the first batch is free).
    expect(secs).toBeGreaterThan(1.0);
    expect(c.events).toHaveLength(3000);
    expect(c.events.some((e) => e.event.type === "old")).toBe(false);
    const deadline = Date.now() + 5000;
    while (!c.live && Date.now() < deadline) await Bun.sleep(20);
    expect(c.live).toBe(true);
    s.close();
    pub.close();
  } finally {
    await slow.stop();
  }
});

test("subscription metrics: active subscriptions, deliveries, filter time, feed lag", async () => {
  const c = await GatewayClient.connect(gw.wsUrl);
  const got = new Collector();
  await c.subscribe({ sub: "m", topic: "metrics-topic" }, got.onFrame);
  const pub = await GatewayClient.connect(gw.wsUrl);
  await pub.publishBatch([{ type: "m" }, { type: "m" }], "metrics-topic");
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
