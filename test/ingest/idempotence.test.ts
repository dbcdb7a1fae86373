// Events without an id are sent on the raw test client: the SDK gives every event an id before it is sent.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { addPartitions, consumeAll, deleteTopic, ensureTopic } from "../support/kafka-broker";
import { rawProduce } from "../support/raw-producer";
import { until } from "../support/until";
import type { PublishResult } from "../../src/client";
import { acks, at, client } from "./idempotence.support";
import { GatewayClient as RawClient } from "../support/ws-client";

/**
 * Idempotent publish: an event re-sent with the same `id` (to the same topic) within
 * IDEMPOTENCE_WINDOW_MS gets the original ack and is not written again: on the same socket, after a
 * reconnect, on another instance, and while the original is still in flight.
 */
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
    const first = await client(a.wsUrl);
    let t0 = performance.now();
    const original = await Promise.all(events.map((e) => first.publish(e, { topic })));
    console.log(`first id-bearing publishes to a topic: ${(performance.now() - t0).toFixed(0)} ms`);
    t0 = performance.now();
    for (const [i, f] of original.entries()) expect(f).toMatchObject({ id: events[i]!.id, topic });
    const again = await Promise.all(events.map((e) => first.publish({ ...e, data: { resent: true } }, { topic })));
    expect(again.map(at)).toEqual(original.map(at));
    first.close();
    const reconnected = await client(a.wsUrl);
    const batch = await acks(reconnected, events, topic);
    expect(batch.map(at)).toEqual(original.map(at));
    reconnected.close();
    const other = await client(b.wsUrl);
    t0 = performance.now();
    const elsewhere = await acks(other, events, topic);
    console.log(`the same on the other instance (its ids reader starts): ${(performance.now() - t0).toFixed(0)} ms`);
    expect(elsewhere.map(at)).toEqual(original.map(at));
    // A new id, and the same id to another topic, are new events.
    const fresh = await other.publish({ id: "idem-new", type: "idem" }, { topic });
    expect(fresh).toMatchObject({ id: "idem-new", topic });
    const otherTopic = freshTopic("idem-other");
    await ensureTopic(brokers, otherTopic, 1);
    expect(await other.publish(events[0]!, { topic: otherTopic })).toMatchObject({ id: events[0]!.id, topic: otherTopic });
    other.close();
    await Bun.sleep(500); // anything written twice would be there by now
    const ids = idsIn(await consumeAll(brokers, topic, { expect: 41 }));
    expect(ids.length).toBe(41);
    expect(new Set(ids).size).toBe(41);
    expect((await metric(a, "gateway_events_deduplicated_total")) + (await metric(b, "gateway_events_deduplicated_total"))).toBe(120);
    expect(await metric(a, "gateway_idempotence_ids")).toBeGreaterThan(0);
  }, 90_000);

  test("events whose `time` is older than the window: a re-send on the other instance still gets the original ack (a record's timestamp is its event's time, not when it was written)", async () => {
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const topic = freshTopic("idem-old-time");
    await ensureTopic(brokers, topic, 3);
    // A backfill, or a device that buffered while offline: an hour old, well past IDEMPOTENCE_WINDOW_MS.
    const time = new Date(Date.now() - 3_600_000).toISOString();
    const events = Array.from({ length: 30 }, (_, i) => ({ id: `old-${i}`, type: "idem", key: `k${i % 5}`, time, data: { i } }));
    const first = await client(a.wsUrl);
    const original = await acks(first, events, topic);
    first.close();
    // b has never published to this topic: its ids reader starts on it now.
    const other = await client(b.wsUrl);
    const again = await acks(other, events, topic);
    other.close();
    expect(again.map(at)).toEqual(original.map(at));
    await Bun.sleep(500);
    expect(idsIn(await consumeAll(brokers, topic, { expect: 30 })).length).toBe(30);
  }, 90_000);

  test("re-sends racing the original (same batch, two sockets at once) are written once and all get its ack", async () => {
    const [a] = gateways as [GatewayProcess];
    const topic = freshTopic("idem-race");
    await ensureTopic(brokers, topic, 3);
    const events = Array.from({ length: 200 }, (_, i) => ({ id: `race-${i}`, type: "race", key: `k${i % 7}` }));
    const c1 = await client(a.wsUrl);
    const c2 = await client(a.wsUrl);
    // c1's two calls go out together (the SDK packs them into one frame): ids repeated within a frame and across sockets.
    const [r1, r2, r3] = await Promise.all([acks(c1, [...events, ...events], topic), acks(c2, events, topic), acks(c1, events.toReversed(), topic)]);
    c1.close();
    c2.close();
    const offsets = (r: PublishResult[]) => r.map((x) => x.offset);
    expect(offsets(r1).slice(200)).toEqual(offsets(r1).slice(0, 200));
    expect(offsets(r2)).toEqual(offsets(r1).slice(0, 200));
    expect(offsets(r3).toReversed()).toEqual(offsets(r1).slice(0, 200));
    const ids = idsIn(await consumeAll(brokers, topic, { expect: 200 }));
    expect(ids.length).toBe(200);
  }, 60_000);

  test("an event is its (source, id): the same id from another source is a new event, on this instance and on the other one", async () => {
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const topic = freshTopic("idem-sources");
    await ensureTopic(brokers, topic, 2);
    const ca = await client(a.wsUrl);
    const cb = await client(b.wsUrl);
    const one = await ca.publish({ id: "7", source: "/sensor/one", type: "reading" }, { topic });
    const two = await ca.publish({ id: "7", source: "/sensor/two", type: "reading" }, { topic });
    const three = await cb.publish({ id: "7", source: "/sensor/three", type: "reading" }, { topic });
    const unnamed = await cb.publish({ id: "7", type: "reading" }, { topic });
    expect(new Set([one, two, three, unnamed].map((f) => `${f.partition}/${f.offset}`)).size).toBe(4);
    // ... while a re-send of one of them is still that one: here of one written through the other
    // instance (read by this one's ids reader before its first publish here), and over HTTP.
    expect(at(await cb.publish({ id: "7", source: "/sensor/two", type: "reading" }, { topic }))).toEqual(at(two));
    const r = await fetch(`${b.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "7", type: "reading" }) });
    expect(await r.json()).toMatchObject(at(unnamed));
    ca.close();
    cb.close();
    const records = await consumeAll(brokers, topic, { expect: 4 });
    expect(records.map((r) => r.headers.ce_source).sort()).toEqual(["/gateway/ws", "/sensor/one", "/sensor/three", "/sensor/two"]);
  }, 60_000);

  test("ids are compared as their exact bytes: a leading U+FEFF is part of the id, and another producer's ce_id that is not UTF-8 matches no client's", async () => {
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const topic = freshTopic("idem-bytes");
    await ensureTopic(brokers, topic, 1);
    // Another producer's record whose ce_id is the bytes ff fe: a lossy decode reads it as two U+FFFD.
    await rawProduce(brokers, topic, [{ partition: 0, value: "{}", headers: [["ce_specversion", "1.0"], ["ce_type", "raw"], ["ce_source", "/shop"], ["ce_id", new Uint8Array([0xff, 0xfe])]] }]);
    const ca = await client(a.wsUrl);
    const cb = await client(b.wsUrl);
    const bom = await ca.publish({ id: "\uFEFForder-1", source: "/shop", type: "order" }, { topic });
    // Read back by both instances' ids readers (their first publish here waited for the history).
    await Bun.sleep(1500);
    const plain = await ca.publish({ id: "order-1", source: "/shop", type: "order" }, { topic });
    const plainB = await cb.publish({ id: "order-2", source: "/shop", type: "order" }, { topic });
    const replaced = await cb.publish({ id: "\uFFFD\uFFFD", source: "/shop", type: "order" }, { topic });
    const offsets = [bom, plain, plainB, replaced].map((f) => f.offset);
    expect(new Set(offsets).size).toBe(4);
    expect(offsets.every((o) => o > 0)).toBe(true);
    // The BOM one re-sent on the other instance is still itself.
    expect(at(await cb.publish({ id: "\uFEFForder-1", source: "/shop", type: "order" }, { topic }))).toEqual(at(bom));
    ca.close();
    cb.close();
    expect((await consumeAll(brokers, topic, { expect: 5 })).length).toBe(5);
  }, 60_000);
});

describe("Kafka, two instances, a short window", () => {
  test("an id written again past its window: both instances answer its re-sends with that write for a window, and Kafka holds it twice, not three times", async () => {
    // The outside tester's timeline (4 of 4 runs): B learned the first write late (its first publish
    // with an id to the topic read it back), so when A wrote the id again past A's window, B kept the
    // first position, then forgot the id when that aged out, and wrote a third copy.
    const pair: GatewayProcess[] = [];
    for (let i = 0; i < 2; i++) pair.push(await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", IDEMPOTENCE_WINDOW_MS: "2000" }));
    const [a, b] = pair as [GatewayProcess, GatewayProcess];
    try {
      const topic = freshTopic("idem-again");
      await ensureTopic(brokers, topic, 1);
      const ca = await client(a.wsUrl);
      const cb = await client(b.wsUrl);
      const e = { id: "again-1", type: "t", key: "k" };
      const first = at(await ca.publish(e, { topic }));
      const t0 = Date.now(); // about when A learned it (its ack)
      await Bun.sleep(1200 - (Date.now() - t0));
      expect(at(await cb.publish(e, { topic }))).toEqual(first); // B reads the first write back now
      await Bun.sleep(2300 - (Date.now() - t0));
      const second = at(await ca.publish(e, { topic })); // past A's window: written again
      expect(second).not.toEqual(first);
      await Bun.sleep(3600 - (Date.now() - t0)); // past B's window for the first write, within it for the second
      expect(at(await cb.publish(e, { topic }))).toEqual(second);
      expect(at(await ca.publish(e, { topic }))).toEqual(second);
      ca.close();
      cb.close();
      await Bun.sleep(500);
      expect(idsIn(await consumeAll(brokers, topic, { expect: 2 }))).toEqual(["again-1", "again-1"]);
    } finally {
      for (const g of pair) await g.stop();
    }
  }, 90_000);
});

describe("Kafka, a topic deleted", () => {
  /** `n` records of partition 0 written by another producer, CloudEvents with ids order-`from`.. from /shop. */
  const ids = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ partition: 0, value: "{}", headers: [["ce_specversion", "1.0"], ["ce_type", "raw"], ["ce_source", "/shop"], ["ce_id", `order-${from + i}`]] as Array<[string, string]> }));

  test("ids read from a topic that is deleted are forgotten: a re-send once it is made again is written to the new log, not answered with a position the old one held", async () => {
    // Found reading the ids reader: it went on from its old position in a topic made again, and
    // answered re-sends of ids it had read before the deletion with those offsets, which now hold
    // other records (an ack for an event the log no longer has). Every record here is another
    // producer's: the gateway's own producer, having written to a topic, would create it again at once.
    const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", PARTITION_CHECK_MS: "300" });
    try {
      const topic = freshTopic("idem-deleted");
      await ensureTopic(brokers, topic, 1);
      await rawProduce(brokers, topic, ids(0, 5));
      const c = await client(gw.wsUrl);
      // A re-send of the first: read back, answered with its offset, not written.
      expect(at(await c.publish({ id: "order-0", source: "/shop", type: "order" }, { topic }))).toEqual({ partition: 0, offset: 0 });
      await deleteTopic(brokers, topic);
      await Bun.sleep(1500); // past two partition checks
      // Made again by the producer's first write (auto-create), with more records than the old log held.
      await rawProduce(brokers, topic, ids(100, 10));
      const again = at(await c.publish({ id: "order-0", source: "/shop", type: "order" }, { topic }));
      expect(again).not.toEqual({ partition: 0, offset: 0 });
      const records = await consumeAll(brokers, topic, { expect: 11 });
      expect(idsIn(records.filter((r) => r.partition === again.partition && r.offset === again.offset))).toEqual(["order-0"]);
      c.close();
    } finally {
      await gw.stop();
    }
  }, 90_000);

  test("ids read from a topic made again between two checks, its new log past the old positions before any check: forgotten by the topic's new id, a re-send is written to the new log", async () => {
    // Never found missing (two checks running), and no offset out of range: the gateway's own
    // producer made the topic again at once and wrote past where the ids reader stood. It read on,
    // and answered the re-send with the old log's offset, which holds another event now.
    const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", PARTITION_CHECK_MS: "3000" });
    try {
      const topic = freshTopic("idem-outgrown");
      await ensureTopic(brokers, topic, 1);
      await rawProduce(brokers, topic, ids(0, 5));
      const c = await client(gw.wsUrl);
      expect(at(await c.publish({ id: "order-0", source: "/shop", type: "order" }, { topic }))).toEqual({ partition: 0, offset: 0 });
      await deleteTopic(brokers, topic);
      const fill = Array.from({ length: 50 }, (_, i) => ({ id: `fill-${i}`, source: "/shop", type: "fill" }));
      await until("the gateway to write to the topic made again", async () => (await c.publishBatch(fill, { topic })).every((r) => r.status === "fulfilled"), 30_000);
      await Bun.sleep(7_000); // two partition checks and more
      const again = at(await c.publish({ id: "order-0", source: "/shop", type: "order" }, { topic }));
      expect(again).not.toEqual({ partition: 0, offset: 0 });
      const records = await consumeAll(brokers, topic, { expect: 51 });
      expect(idsIn(records.filter((r) => r.partition === again.partition && r.offset === again.offset))).toEqual(["order-0"]);
      c.close();
    } finally {
      await gw.stop();
    }
  }, 90_000);

  test("ids read from partitions a topic no longer has (made again with fewer between two checks) are forgotten: a re-send is written to the new log", async () => {
    // The subscriptions' check let such partitions go with a gap (test/subscribe/topic-deleted); the
    // ids reader kept their ids, and answered a re-send with an offset in a partition gone with the old log.
    const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", PARTITION_CHECK_MS: "8000" });
    try {
      const topic = freshTopic("idem-shrunk");
      await ensureTopic(brokers, topic, 3);
      await addPartitions(brokers, topic, 6);
      const id = (n: number) => ({ partition: 4, value: "{}", headers: [["ce_specversion", "1.0"], ["ce_type", "raw"], ["ce_source", "/shop"], ["ce_id", `order-${n}`]] as Array<[string, string]> });
      await rawProduce(brokers, topic, [id(0), id(1)]);
      const c = await client(gw.wsUrl);
      expect(at(await c.publish({ id: "order-1", source: "/shop", type: "order" }, { topic }))).toEqual({ partition: 4, offset: 1 });
      await deleteTopic(brokers, topic);
      await ensureTopic(brokers, topic, 3);
      await Bun.sleep(17_000); // two partition checks and more
      const again = at(await c.publish({ id: "order-1", source: "/shop", type: "order" }, { topic }));
      expect(again.partition).toBeLessThan(3);
      expect(idsIn(await consumeAll(brokers, topic, { expect: 1 }))).toEqual(["order-1"]);
      c.close();
    } finally {
      await gw.stop();
    }
  }, 120_000);
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
    const c = await client(gw.wsUrl);
    const topic = freshTopic("idem-embedded");
    const e = { id: "once", type: "t", data: 1 };
    const first = await c.publish(e, { topic });
    const second = await c.publish(e, { topic });
    expect(at(second)).toEqual(at(first));
    const raw = await RawClient.connect(gw.wsUrl);
    const anonymous = await Promise.all([raw.publish({ type: "t" }, topic), raw.publish({ type: "t" }, topic)]);
    raw.close();
    expect(anonymous.map((f) => f.t)).toEqual([20, 20]);
    expect(at(anonymous[0] as never)).not.toEqual(at(anonymous[1] as never));
    await Bun.sleep(2000);
    const later = await c.publish(e, { topic });
    expect(at(later)).not.toEqual(at(first));
    // Written again past its window, the id is remembered from that write: before, its aged entry
    // stayed until some other id was added, and each re-send of it was written once more.
    expect(at(await c.publish(e, { topic }))).toEqual(at(later));
    c.close();
  }, 30_000);

  test("the same id from two sources is two events; without a source, the same id over WebSocket and HTTP is one", async () => {
    const c = await client(gw.wsUrl);
    const topic = freshTopic("idem-embedded-sources");
    const a = await c.publish({ id: "1", source: "/a", type: "t" }, { topic });
    const b = await c.publish({ id: "1", source: "/b", type: "t" }, { topic });
    const plain = await c.publish({ id: "1", type: "t" }, { topic });
    expect(new Set([a, b, plain].map((f) => `${f.partition}/${f.offset}`)).size).toBe(3);
    expect(at(await c.publish({ id: "1", source: "/b", type: "t" }, { topic }))).toEqual(at(b));
    const r = await fetch(`${gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "1", type: "t" }) });
    const body = (await r.json()) as { partition: number; offset: number };
    expect({ partition: body.partition, offset: body.offset }).toEqual(at(plain));
    c.close();
  }, 30_000);
});
