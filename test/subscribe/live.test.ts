import { afterAll, beforeAll, expect, test } from "bun:test";
import { Collector } from "../support/collector";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

let brokers: string;
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  [a, b] = await Promise.all([startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2" }), startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" })]);
}, 60_000);
afterAll(async () => {
  await Promise.all([a.stop(), b.stop()]);
}, 60_000);

interface Published {
  id: string;
  type: string;
  key: string;
  amount: number;
  partition: number;
  offset: number;
}

/** Publishes a mixed stream through `gw` and returns every event with where Kafka put it. */
async function publishMixed(gw: GatewayProcess, topic: string, n: number): Promise<Published[]> {
  const types = ["order.created", "order.updated", "payment.captured", "user.signup"];
  const client = await GatewayClient.connect(gw.wsUrl);
  const out: Published[] = [];
  const replies: Array<Promise<void>> = [];
  for (let i = 0; i < n; i += 200) {
    if (replies.length >= 20) await replies.shift(); // stay inside the 10,000-event window
    const batch = Array.from({ length: Math.min(200, n - i) }, (_, j) => {
      const k = i + j;
      return { id: `m-${k}`, type: types[k % 4]!, key: `k${k % 13}`, data: { n: k, amount: (k * 37) % 1000 } };
    });
    replies.push(
      client.publishBatch(batch, topic).then((r) => {
        expect(r).toMatchObject({ t: 22 });
        expect(r.errors).toBeUndefined();
        batch.forEach((e, j) => out.push({ id: e.id, type: e.type, key: e.key, amount: e.data.amount, partition: r.partitions[j], offset: r.offsets[j] }));
      }),
    );
  }
  await Promise.all(replies);
  client.close();
  return out;
}

test("3 subscribers with different filters get exactly their matching events, in order per partition, from 20,000", async () => {
  const topic = freshTopic("fanout");
  await ensureTopic(brokers, topic, 3);
  const client = await GatewayClient.connect(a.wsUrl);
  const filters = {
    orders: { types: ["order.*"] },
    bigPayments: { types: ["payment.captured"], where: "data.amount >= 500 and data.amount < 900" },
    someKeys: { keys: ["k1", "k2"], where: "type != 'user.signup'" },
  };
  const collectors = Object.fromEntries(Object.keys(filters).map((k) => [k, new Collector()])) as Record<keyof typeof filters, Collector>;
  for (const [sub, filter] of Object.entries(filters)) {
    const r = await client.subscribe({ sub, topic, filter }, collectors[sub as keyof typeof filters].onFrame);
    expect(r).toMatchObject({ t: 23, sub, live: true });
  }
  const published = await publishMixed(a, topic, 20_000);
  const expected = {
    orders: published.filter((e) => e.type.startsWith("order.")),
    bigPayments: published.filter((e) => e.type === "payment.captured" && e.amount >= 500 && e.amount < 900),
    someKeys: published.filter((e) => (e.key === "k1" || e.key === "k2") && e.type !== "user.signup"),
  };
  for (const [name, c] of Object.entries(collectors)) {
    const want = expected[name as keyof typeof expected];
    await c.waitFor(want.length);
    await Bun.sleep(200); // anything extra would show up now
    expect(c.events.map((e) => e.event.id).sort()).toEqual(want.map((e) => e.id).sort());
    expect(c.inOrderPerPartition()).toBe(true);
    const where = new Map(want.map((e) => [e.id, `${e.partition}/${e.offset}`]));
    for (const e of c.events) expect(`${e.partition}/${e.offset}`).toBe(where.get(e.event.id)!);
  }
  expect(collectors.orders.events[0]!.event).toMatchObject({ type: expect.stringMatching(/^order\./), data: { n: expect.any(Number) }, key: expect.any(String) });
  client.close();
});

test("two gateway instances on one broker: a subscriber on each receives every matching event", async () => {
  const topic = freshTopic("two");
  await ensureTopic(brokers, topic, 3);
  const [onA, onB] = [new Collector(), new Collector()];
  const ca = await GatewayClient.connect(a.wsUrl);
  const cb = await GatewayClient.connect(b.wsUrl, "json");
  const filter = { types: ["order.created"] };
  await ca.subscribe({ sub: "a", topic, filter }, onA.onFrame);
  await cb.subscribe({ sub: "b", topic, filter }, onB.onFrame);
  const published = await publishMixed(a, topic, 4000);
  const want = published.filter((e) => e.type === "order.created").map((e) => e.id).sort();
  await Promise.all([onA.waitFor(want.length), onB.waitFor(want.length)]);
  await Bun.sleep(200);
  expect(onA.events.map((e) => e.event.id).sort()).toEqual(want);
  expect(onB.events.map((e) => e.event.id).sort()).toEqual(want);
  ca.close();
  cb.close();
});

test("bad subscriptions get an error naming the problem, and the socket lives on", async () => {
  const c = await GatewayClient.connect(a.wsUrl);
  const nack = (r: Record<string, unknown>) => expect(r).toMatchObject({ t: 21 });
  nack(await c.request({ t: 12, sub: "x", topic: "t", filter: { types: "order.*" } }));
  expect(await c.request({ t: 12, sub: "x", topic: "t", filter: { where: "data.x ==" } })).toMatchObject({ code: "INVALID_FILTER" });
  expect(await c.request({ t: 12, sub: "x", topic: "t", start: { token: "bm9wZQ" } })).toMatchObject({ code: "INVALID_POSITION" });
  expect(await c.request({ t: 12, sub: "x", topic: "t", start: { time: "2001-01-01T00:00:00Z" } })).toMatchObject({ code: "REPLAY_OUT_OF_RANGE" });
  expect(await c.request({ t: 12, sub: "x" })).toMatchObject({ code: "INVALID_FRAME" });
  expect(await c.request({ t: 13, sub: "never" })).toMatchObject({ code: "UNKNOWN_SUBSCRIPTION" });
  const ok = new Collector();
  const okTopic = freshTopic("ok");
  expect(await c.subscribe({ sub: "x", topic: okTopic }, ok.onFrame)).toMatchObject({ code: "UNKNOWN_TOPIC" }); // subscribing creates no topic
  expect(await c.publish({ type: "create" }, okTopic)).toMatchObject({ t: 20 }); // publishing may (broker auto-create)
  expect(await c.subscribe({ sub: "x", topic: okTopic }, ok.onFrame)).toMatchObject({ t: 23 });
  expect(await c.request({ t: 12, sub: "x", topic: "t" })).toMatchObject({ code: "SUBSCRIPTION_EXISTS" });
  expect(await c.request({ t: 13, sub: "x" })).toMatchObject({ t: 28, sub: "x", token: expect.any(String) });
  c.close();
});

test("a trickle of events streams through as it is published, not held back until a batch fills", async () => {
  const topic = freshTopic("trickle");
  await ensureTopic(brokers, topic, 3);
  const sub = await GatewayClient.connect(a.wsUrl);
  const arrivals: number[] = [];
  const onFrame = (f: { t: number; events?: unknown[] }) => {
    const n = f.t === 24 ? 1 : f.t === 25 ? f.events!.length : 0;
    for (let i = 0; i < n; i++) arrivals.push(performance.now());
  };
  expect(await sub.subscribe({ sub: "t", topic }, onFrame as never)).toMatchObject({ t: 23 });
  const pub = await GatewayClient.connect(a.wsUrl);
  // 30 single events 30 ms apart. A reader that waits for a full batch delivers them all only
  // after the last one (librdkafka's consume(n) waits its timeout per message by default).
  for (let i = 0; i < 30; i++) {
    expect(await pub.publish({ type: "tick", data: { i } }, topic)).toMatchObject({ t: 20 });
    await Bun.sleep(30);
  }
  const lastPublished = performance.now();
  while (arrivals.length < 30 && performance.now() - lastPublished < 10_000) await Bun.sleep(10);
  expect(arrivals.length).toBe(30);
  // The first half arrived while the stream was still being published.
  expect(arrivals[14]!).toBeLessThan(lastPublished);
  sub.close();
  pub.close();
});
