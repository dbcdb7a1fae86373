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
