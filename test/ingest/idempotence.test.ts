import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { type Frame, GatewayClient } from "../support/ws-client";

/**
 * Idempotent publish: an event re-sent with the same `id` (to the same topic) within
 * IDEMPOTENCE_WINDOW_MS gets the original ack and is not written again: on the same socket, after a
 * reconnect, on another instance, and while the original is still in flight.
 */
const at = (f: Frame) => ({ partition: f.partition, offset: f.offset });
const idsIn = (records: Array<{ headers: Record<string, string> }>) => records.map((r) => r.headers.ce_id);
const metric = async (gw: GatewayProcess, name: string) => Number((await (await fetch(`${gw.url}/metrics`)).text()).match(new RegExp(`^${name} (\\d+)`, "m"))?.[1] ?? NaN);

let brokers: string;
const gateways: GatewayProcess[] = [];
const RESUME = "idempotence-test-resume-key-0123456789abcdef";
beforeAll(async () => {
  brokers = await kafkaBrokers();
  for (let i = 0; i < 2; i++) gateways.push(await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS: RESUME }));
}, 90_000);
afterAll(async () => {
  for (const g of gateways) await g.stop();
}, 60_000);

describe("Kafka, two instances", () => {
  test("the same ids re-sent on the same socket, after a reconnect and on the other instance get the original acks; kcat shows each id once", async () => {
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const topic = freshTopic("idem");
    await ensureTopic(brokers, topic, 3);
    const events = Array.from({ length: 40 }, (_, i) => ({ id: `idem-${i}`, type: "idem", key: `k${i % 5}`, data: { i } }));
    const first = await GatewayClient.connect(a.wsUrl);
    let t0 = performance.now();
    const original = await Promise.all(events.map((e) => first.publish(e, topic)));
    console.log(`first id-bearing publishes to a topic: ${(performance.now() - t0).toFixed(0)} ms`);
    t0 = performance.now();
    for (const f of original) expect(f.t).toBe(20);
    const again = await Promise.all(events.map((e) => first.publish({ ...e, data: { resent: true } }, topic)));
    expect(again.map(at)).toEqual(original.map(at));
    first.close();
    const reconnected = await GatewayClient.connect(a.wsUrl);
    const batch = await reconnected.publishBatch(events, topic);
    expect(batch.partitions).toEqual(original.map((f) => f.partition));
    expect(batch.offsets).toEqual(original.map((f) => f.offset));
    reconnected.close();
    const other = await GatewayClient.connect(b.wsUrl);
    t0 = performance.now();
    const elsewhere = await other.publishBatch(events, topic);
    console.log(`the same on the other instance (its ids reader starts): ${(performance.now() - t0).toFixed(0)} ms`);
    expect(elsewhere.partitions).toEqual(original.map((f) => f.partition));
    expect(elsewhere.offsets).toEqual(original.map((f) => f.offset));
    // A new id, and the same id to another topic, are new events.
    const fresh = await other.publish({ id: "idem-new", type: "idem" }, topic);
    expect(fresh.t).toBe(20);
    const otherTopic = freshTopic("idem-other");
    await ensureTopic(brokers, otherTopic, 1);
    expect((await other.publish(events[0]!, otherTopic)).t).toBe(20);
    other.close();
    await Bun.sleep(500); // anything written twice would be there by now
    const ids = idsIn(await consumeAll(brokers, topic, { expect: 41 }));
    expect(ids.length).toBe(41);
    expect(new Set(ids).size).toBe(41);
    expect((await metric(a, "gateway_events_deduplicated_total")) + (await metric(b, "gateway_events_deduplicated_total"))).toBe(120);
  }, 90_000);

  test("re-sends racing the original (same batch, two sockets at once) are written once and all get its ack", async () => {
    const [a] = gateways as [GatewayProcess];
    const topic = freshTopic("idem-race");
    await ensureTopic(brokers, topic, 3);
    const events = Array.from({ length: 200 }, (_, i) => ({ id: `race-${i}`, type: "race", key: `k${i % 7}` }));
    const c1 = await GatewayClient.connect(a.wsUrl);
    const c2 = await GatewayClient.connect(a.wsUrl);
    const [r1, r2, r3] = await Promise.all([c1.publishBatch([...events, ...events], topic), c2.publishBatch(events, topic), c1.publishBatch(events.toReversed(), topic)]);
    c1.close();
    c2.close();
    expect(r1.errors).toBeUndefined();
    expect(r1.offsets.slice(200)).toEqual(r1.offsets.slice(0, 200));
    expect(r2.offsets).toEqual(r1.offsets.slice(0, 200));
    expect(r3.offsets.toReversed()).toEqual(r1.offsets.slice(0, 200));
    const ids = idsIn(await consumeAll(brokers, topic, { expect: 200 }));
    expect(ids.length).toBe(200);
  }, 60_000);

  test("an event is its (source, id): the same id from another source is a new event, on this instance and on the other one", async () => {
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const topic = freshTopic("idem-sources");
    await ensureTopic(brokers, topic, 2);
    const ca = await GatewayClient.connect(a.wsUrl);
    const cb = await GatewayClient.connect(b.wsUrl);
    const one = await ca.publish({ id: "7", source: "/sensor/one", type: "reading" }, topic);
    const two = await ca.publish({ id: "7", source: "/sensor/two", type: "reading" }, topic);
    const three = await cb.publish({ id: "7", source: "/sensor/three", type: "reading" }, topic);
    const unnamed = await cb.publish({ id: "7", type: "reading" }, topic);
    for (const f of [one, two, three, unnamed]) expect(f.t).toBe(20);
    expect(new Set([one, two, three, unnamed].map((f) => `${f.partition}/${f.offset}`)).size).toBe(4);
    // ... while a re-send of one of them is still that one: here of one written through the other
    // instance (read by this one's ids reader before its first publish here), and over HTTP.
    expect(at(await cb.publish({ id: "7", source: "/sensor/two", type: "reading" }, topic))).toEqual(at(two));
    const r = await fetch(`${b.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "7", type: "reading" }) });
    expect(await r.json()).toMatchObject(at(unnamed));
    ca.close();
    cb.close();
    const records = await consumeAll(brokers, topic, { expect: 4 });
    expect(records.map((r) => r.headers.ce_source).sort()).toEqual(["/gateway/ws", "/sensor/one", "/sensor/three", "/sensor/two"]);
  }, 60_000);
});

describe("embedded log", () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGateway({ KAFKA_BROKERS: "", IDEMPOTENCE_WINDOW_MS: "1500" });
  }, 60_000);
  afterAll(async () => {
    await gw.stop();
  });

  test("a re-send within the window gets the original ack; past the window it is a new event; events without an id are never held back", async () => {
    const c = await GatewayClient.connect(gw.wsUrl);
    const topic = freshTopic("idem-embedded");
    const e = { id: "once", type: "t", data: 1 };
    const first = await c.publish(e, topic);
    const second = await c.publish(e, topic);
    expect(at(second)).toEqual(at(first));
    const anonymous = await Promise.all([c.publish({ type: "t" }, topic), c.publish({ type: "t" }, topic)]);
    expect(at(anonymous[0]!)).not.toEqual(at(anonymous[1]!));
    await Bun.sleep(2000);
    const later = await c.publish(e, topic);
    expect(at(later)).not.toEqual(at(first));
    c.close();
  }, 30_000);

  test("the same id from two sources is two events; without a source, the same id over WebSocket and HTTP is one", async () => {
    const c = await GatewayClient.connect(gw.wsUrl);
    const topic = freshTopic("idem-embedded-sources");
    const a = await c.publish({ id: "1", source: "/a", type: "t" }, topic);
    const b = await c.publish({ id: "1", source: "/b", type: "t" }, topic);
    const plain = await c.publish({ id: "1", type: "t" }, topic);
    expect(new Set([a, b, plain].map((f) => `${f.partition}/${f.offset}`)).size).toBe(3);
    expect(at(await c.publish({ id: "1", source: "/b", type: "t" }, topic))).toEqual(at(b));
    const r = await fetch(`${gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "1", type: "t" }) });
    const body = (await r.json()) as { partition: number; offset: number };
    expect({ partition: body.partition, offset: body.offset }).toEqual(at(plain));
    c.close();
  }, 30_000);
});
