import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayClient, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { until } from "../support/until";
import { collect } from "../support/sdk-collector";

let brokers: string;
let gw: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2", REPLAY_RATE_LIMIT: "20000" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

const client = (): Promise<GatewayClient> => connect({ url: gw.wsUrl });
/** Publishes a batch and expects every event acked. */
async function publishAll(pub: GatewayClient, events: Parameters<GatewayClient["publish"]>[0][], topic: string): Promise<void> {
  for (const r of await pub.publishBatch(events, { topic })) expect(r).toMatchObject({ status: "fulfilled" });
}

test("disconnect mid-stream, reconnect with the last token: the two sessions hold exactly the matching events, no gap, no duplicate", async () => {
  const topic = freshTopic("resume");
  await ensureTopic(brokers, topic, 3);
  const filter = { types: ["keep.*"], where: "data.n >= 0" };
  const s1 = await client();
  const sub1 = await s1.subscribe(topic, { filter });
  const first = collect(sub1);

  const pub = await client();
  const ids: string[] = [];
  const publishing = (async () => {
    for (let i = 0; i < 60; i++) {
      const events = Array.from({ length: 100 }, (_, j) => {
        const n = i * 100 + j;
        const type = n % 3 === 0 ? "skip.me" : "keep.it";
        if (type === "keep.it") ids.push(`r-${n}`);
        return { id: `r-${n}`, type, key: `k${n % 11}`, data: { n } };
      });
      await publishAll(pub, events, topic);
      await Bun.sleep(10);
    }
  })();
  await first.waitFor(800);
  s1.close();
  const token = sub1.token!;
  expect(token).toEqual(expect.any(String));
  await publishing;

  const s2 = await client();
  const sub = await s2.subscribe(topic, { filter, start: { token } });
  const second = collect(sub);
  expect(sub.gaps).toEqual([]);
  await second.waitFor(ids.length - first.events.length);
  const deadline = Date.now() + 10_000;
  while (!sub.live && Date.now() < deadline) await Bun.sleep(20);
  expect(sub.live).toBe(true);
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
  const pub = await client();
  const base = Date.now() - 3_600_000;
  const events = Array.from({ length: 100 }, (_, i) => ({ id: `t-${i}`, type: "tick", time: new Date(base + i * 1000).toISOString(), data: { i } }));
  await publishAll(pub, events, topic);

  const s = await client();
  const sub = await s.subscribe(topic, { start: { time: new Date(base + 42_500).toISOString() } });
  const c = collect(sub);
  expect(sub.live).toBe(false);
  await c.waitFor(57);
  expect(c.events[0]!.event).toMatchObject({ id: "t-43", data: { i: 43 } });
  expect(c.events.map((e) => e.event.id)).toEqual(Array.from({ length: 57 }, (_, i) => `t-${43 + i}`));
  const deadline = Date.now() + 5000;
  while (!sub.live && Date.now() < deadline) await Bun.sleep(20);
  expect(sub.live).toBe(true);
  // Live now: a new event arrives after the replayed ones.
  await pub.publish({ id: "t-new", type: "tick" }, { topic });
  await c.waitFor(58);
  expect(c.events.at(-1)!.event.id).toBe("t-new");
  s.close();
  pub.close();
});

test("earliest replays everything retained, and a resume token with another filter is refused", async () => {
  const topic = freshTopic("earliest");
  await ensureTopic(brokers, topic, 2);
  const pub = await client();
  await publishAll(pub, Array.from({ length: 30 }, (_, i) => ({ id: `e-${i}`, type: i % 2 ? "odd" : "even" })), topic);
  const s = await client();
  const sub = await s.subscribe(topic, { filter: { types: ["odd"] }, start: "earliest" });
  const c = collect(sub);
  await c.waitFor(15);
  expect(c.events.map((e) => e.event.id).sort()).toEqual(Array.from({ length: 15 }, (_, i) => `e-${i * 2 + 1}`).sort());
  const other = await s.subscribe(topic, { filter: { types: ["even"] }, start: { token: sub.token! } }).catch((e) => e);
  expect(other).toMatchObject({ name: "SubscribeError", code: "INVALID_POSITION" });
  s.close();
  pub.close();
});

test("earliest clamped by REPLAY_MAX_DURATION says what it skipped: records at a partition's head older than the bound are a gap, never a silent skip", async () => {
  const topic = freshTopic("old-head");
  await ensureTopic(brokers, topic, 1);
  const pub = await client();
  // Another producer's clock, or an import of history: the record is new, its time is not.
  // One batch, one segment: the new record keeps the old one from retention (its segment's newest
  // timestamp is what retention goes by), which a check between two publishes would delete.
  await publishAll(pub, [{ type: "old.first", key: "k", time: "2000-01-01T00:00:00Z" }, { type: "new.second", key: "k" }], topic);
  const s = await client();
  const sub = await s.subscribe(topic, { start: "earliest" });
  const got = collect(sub);
  await got.waitFor(1);
  expect(got.events.map((e) => [e.offset, e.event.type])).toEqual([[1, "new.second"]]);
  expect(sub.gaps).toEqual([{ topic, partition: 0, from: 0, to: 1, reason: "replay_max_duration" }]);
  s.close();
  pub.close();
});

test("earliest on a compacted topic reports no gap for what compaction removed: offsets with no record are not records skipped for REPLAY_MAX_DURATION (outside probe W)", async () => {
  const topic = freshTopic("compacted-head");
  await ensureTopic(brokers, topic, 1, { "cleanup.policy": "compact", "segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0" });
  const pub = await client();
  await publishAll(pub, Array.from({ length: 200 }, (_, i) => ({ type: "v", key: `k${i % 2}`, data: i })), topic);
  // Each later write rolls the segment before it (segment.ms), and the cleaner compacts what rolled.
  for (let i = 0; i < 2; i++) {
    await Bun.sleep(1200);
    await publishAll(pub, [{ type: "roll", key: "r" }], topic);
  }
  let kept: Awaited<ReturnType<typeof consumeAll>> = [];
  await until("the log cleaner to compact the topic", async () => (kept = await consumeAll(brokers, topic)).length < 10, 90_000);
  expect(kept[0]!.offset).toBeGreaterThan(0); // the head is a hole, every record in it recent
  const s = await client();
  const sub = await s.subscribe(topic, { start: "earliest" });
  const got = collect(sub);
  await got.waitFor(kept.length);
  expect(got.events.map((e) => e.offset)).toEqual(kept.map((r) => r.offset));
  // Before: [{from: 0, to: <first kept>, reason: "replay_max_duration"}], a loss of 198 records that
  // were never skipped, only compacted.
  expect(sub.gaps).toEqual([]);
  s.close();
  pub.close();
}, 120_000);
