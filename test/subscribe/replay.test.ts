import { afterAll, beforeAll, expect, test } from "bun:test";
import { Collector } from "../support/collector";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

let brokers: string;
let gw: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2", REPLAY_RATE_LIMIT: "20000" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

test("disconnect mid-stream, reconnect with the last token: the two sessions hold exactly the matching events, no gap, no duplicate", async () => {
  const topic = freshTopic("resume");
  await ensureTopic(brokers, topic, 3);
  const filter = { types: ["keep.*"], where: "data.n >= 0" };
  const first = new Collector();
  const s1 = await GatewayClient.connect(gw.wsUrl);
  await s1.subscribe({ sub: "s", topic, filter }, first.onFrame);

  const pub = await GatewayClient.connect(gw.wsUrl);
  const ids: string[] = [];
  const publishing = (async () => {
    for (let i = 0; i < 60; i++) {
      const events = Array.from({ length: 100 }, (_, j) => {
        const n = i * 100 + j;
        const type = n % 3 === 0 ? "skip.me" : "keep.it";
        if (type === "keep.it") ids.push(`r-${n}`);
        return { id: `r-${n}`, type, key: `k${n % 11}`, data: { n } };
      });
      expect((await pub.publishBatch(events, topic)).errors).toBeUndefined();
      await Bun.sleep(10);
    }
  })();
  await first.waitFor(800);
  s1.close();
  const token = first.token;
  expect(token).not.toBe("");
  await publishing;

  const second = new Collector();
  const s2 = await GatewayClient.connect(gw.wsUrl);
  const sub = await s2.subscribe({ sub: "s", topic, filter, start: { token } }, second.onFrame);
  expect(sub).toMatchObject({ t: 23, sub: "s" });
  expect(sub.gaps).toBeUndefined();
  await second.waitFor(ids.length - first.events.length);
  const deadline = Date.now() + 10_000;
  while (!second.live && Date.now() < deadline) await Bun.sleep(20);
  expect(second.live).toBe(true);
  await Bun.sleep(200);

  const union = [...first.events, ...second.events].map((e) => e.event.id);
  expect(new Set(union).size).toBe(union.length); // no duplicate
  expect(union.sort()).toEqual([...ids].sort()); // no gap
  expect(second.inOrderPerPartition()).toBe(true);
  s2.close();
  pub.close();
});

test("replay from a timestamp starts at the right first event, then goes live", async () => {
  const topic = freshTopic("time");
  await ensureTopic(brokers, topic, 1);
  const pub = await GatewayClient.connect(gw.wsUrl);
  const base = Date.now() - 3_600_000;
  const events = Array.from({ length: 100 }, (_, i) => ({ id: `t-${i}`, type: "tick", time: new Date(base + i * 1000).toISOString(), data: { i } }));
  expect((await pub.publishBatch(events, topic)).errors).toBeUndefined();

  const c = new Collector();
  const s = await GatewayClient.connect(gw.wsUrl);
  const sub = await s.subscribe({ sub: "t", topic, start: { time: new Date(base + 42_500).toISOString() } }, c.onFrame);
  expect(sub).toMatchObject({ t: 23, live: false });
  await c.waitFor(57);
  expect(c.events[0]!.event).toMatchObject({ id: "t-43", data: { i: 43 } });
  expect(c.events.map((e) => e.event.id)).toEqual(Array.from({ length: 57 }, (_, i) => `t-${43 + i}`));
  const deadline = Date.now() + 5000;
  while (!c.live && Date.now() < deadline) await Bun.sleep(20);
  expect(c.live).toBe(true);
  // Live now: a new event arrives after the replayed ones.
  await pub.publish({ id: "t-new", type: "tick" }, topic);
  await c.waitFor(58);
  expect(c.events.at(-1)!.event.id).toBe("t-new");
  s.close();
  pub.close();
});

test("earliest replays everything retained, and a resume token with another filter is refused", async () => {
  const topic = freshTopic("earliest");
  await ensureTopic(brokers, topic, 2);
  const pub = await GatewayClient.connect(gw.wsUrl);
  await pub.publishBatch(Array.from({ length: 30 }, (_, i) => ({ id: `e-${i}`, type: i % 2 ? "odd" : "even" })), topic);
  const c = new Collector();
  const s = await GatewayClient.connect(gw.wsUrl);
  await s.subscribe({ sub: "e", topic, filter: { types: ["odd"] }, start: "earliest" }, c.onFrame);
  await c.waitFor(15);
  expect(c.events.map((e) => e.event.id).sort()).toEqual(Array.from({ length: 15 }, (_, i) => `e-${i * 2 + 1}`).sort());
  const other = await s.request({ t: 12, sub: "e2", topic, filter: { types: ["even"] }, start: { token: c.token } });
  expect(other).toMatchObject({ t: 21, code: "INVALID_POSITION" });
  s.close();
  pub.close();
});
