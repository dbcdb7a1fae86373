// The "bad subscriptions" test stays on the raw test client: it sends frames the SDK never writes (no topic, a reused or unknown sub id).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayClient as SdkClient, connect } from "../../src/client";
import { Collector } from "../support/collector";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { collect } from "../support/sdk-collector";
import { GatewayClient } from "../support/ws-client";

let brokers: string;
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  // 20,000 events from one connection in a few seconds, as a load test: the publish rates are lifted.
  const unlimited = { RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" };
  [a, b] = await Promise.all([startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2", ...unlimited }), startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", ...unlimited })]);
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
  const client = await connect({ url: gw.wsUrl });
  const out: Published[] = [];
  const replies: Array<Promise<void>> = [];
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, (_, j) => {
      const k = i + j;
      return { id: `m-${k}`, type: types[k % 4]!, key: `k${k % 13}`, data: { n: k, amount: (k * 37) % 1000 } };
    });
    replies.push(
      client.publishBatch(batch, { topic }).then((settled) => {
        settled.forEach((r, j) => {
          expect(r.status).toBe("fulfilled");
          if (r.status !== "fulfilled") return;
          const e = batch[j]!;
          expect(r.value.id).toBe(e.id);
          out.push({ id: e.id, type: e.type, key: e.key, amount: e.data.amount, partition: r.value.partition, offset: r.value.offset });
        });
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
  const client = await connect({ url: a.wsUrl });
  const filters = {
    orders: { types: ["order.*"] },
    bigPayments: { types: ["payment.captured"], where: "data.amount >= 500 and data.amount < 900" },
    someKeys: { keys: ["k1", "k2"], where: "type != 'user.signup'" },
  };
  const collectors = {} as Record<keyof typeof filters, ReturnType<typeof collect>>;
  for (const [name, filter] of Object.entries(filters)) {
    const sub = await client.subscribe(topic, { filter });
    expect(sub.live).toBe(true);
    collectors[name as keyof typeof filters] = collect(sub);
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
  const ca = await connect({ url: a.wsUrl });
  const cb = await connect({ url: b.wsUrl, codec: "json" });
  const filter = { types: ["order.created"] };
  const onA = collect(await ca.subscribe(topic, { filter }));
  const onB = collect(await cb.subscribe(topic, { filter }));
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
  // A start time past 2^53 ms (any integer is a time, in either codec): far in the future, so from the end.
  const far = { t: 12, sub: "far", topic: okTopic, start: { time: 2 ** 60 } };
  expect(await c.request(far)).toMatchObject({ t: 23, live: true });
  const json = await GatewayClient.connect(a.wsUrl, "json");
  expect(await json.request(far)).toMatchObject({ t: 23, live: true });
  expect(await json.request({ ...far, sub: "farther", start: { time: 2 ** 70 } })).toMatchObject({ t: 23, live: true });
  json.close();
  expect(await c.request({ t: 13, sub: "x" })).toMatchObject({ t: 28, sub: "x", token: expect.any(String) });
  c.close();
});

test("a trickle of events streams through as it is published, not held back until a batch fills", async () => {
  const topic = freshTopic("trickle");
  await ensureTopic(brokers, topic, 3);
  const sub: SdkClient = await connect({ url: a.wsUrl });
  const arrivals: number[] = [];
  (await sub.subscribe(topic)).onEvent(() => arrivals.push(performance.now()));
  const pub = await connect({ url: a.wsUrl });
  // 30 single events 30 ms apart. A reader that waits for a full batch delivers them all only
  // after the last one (librdkafka's consume(n) waits its timeout per message by default).
  for (let i = 0; i < 30; i++) {
    expect(await pub.publish({ type: "tick", data: { i } }, { topic })).toMatchObject({ topic, offset: expect.any(Number) });
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
