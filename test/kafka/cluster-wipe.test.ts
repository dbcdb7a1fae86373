import { afterAll, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { type Broker, addPartitions, ensureTopic, samePorts, startBroker } from "../support/kafka-broker";
import { health, oneAttemptClient, within } from "./harm";
import { RawWsClient } from "../support/raw-ws";

/**
 * The cluster behind KAFKA_BROKERS is replaced by a new one at the same address (its data wiped, or
 * the address now naming another cluster): a new cluster id, every log starting again at 0. Before,
 * the workers' librdkafka clients carried the old cluster's state over: publishes to the old
 * partitions timed out until the gateway restarted (a restarted worker's idempotent producer then got
 * OUT_OF_ORDER_SEQUENCE_NUMBER), and live subscribers stayed silent, with no gap, while the new log
 * filled (the chaos tester's subscribers missed 438 of 438 events after a wipe).
 */
const dir = mkdtempSync(join(tmpdir(), "kgw-kafka-wipe-"));
let broker: Broker | null = null;
let gw: GatewayProcess | null = null;
let second: GatewayProcess | null = null;
afterAll(async () => {
  await second?.stop();
  await gw?.stop();
  await broker?.stop();
}, 60_000);

test("the cluster is wiped and started again at the same address: the workers start afresh, publishes are acked in the new log, and subscribers get a log_reset gap and then its events", async () => {
  broker = await startBroker({ dir });
  const ports = samePorts(broker);
  gw = await startGateway({ KAFKA_BROKERS: broker.brokers, KAFKA_WORKERS: "2", KAFKA_MESSAGE_TIMEOUT_MS: "10000" });
  const g = gw;
  const topic = freshTopic("wipe");
  const client = await connect({ url: g.wsUrl });
  const events = (n: number, from: number) => Array.from({ length: n }, (_, i) => ({ id: `wipe-${from + i}`, type: "wipe", key: `k${(from + i) % 12}`, data: { n: from + i } }));
  const before = await client.publishBatch(events(60, 0), { topic });
  expect(before.every((a) => a.status === "fulfilled")).toBe(true);
  const sub = await client.subscribe(topic, { start: "earliest" });
  const seen: number[] = [];
  void (async () => {
    for await (const e of sub) seen.push((e.event.data as { n: number }).n);
  })();
  await within(30_000, () => seen.length === 60);
  expect(seen.length).toBe(60);
  const clusterBefore = (await health(g.url)).log.cluster;
  expect(typeof clusterBefore).toBe("string");
  await within(10_000, () => sub.token !== undefined && seen.length === 60);
  const oldToken = sub.token!;

  await broker.stop(); // and its data with it
  broker = await startBroker({ dir, env: ports });

  // The new cluster: publishes are acked in its logs, from offset 0.
  const probe = await oneAttemptClient(g.wsUrl);
  const firstAck = await within(60_000, () => probe.publish({ type: "wipe", key: "probe", data: { n: -1 } }, { topic }).then(() => true, () => false));
  expect(firstAck).toBeGreaterThanOrEqual(0);
  expect((await health(g.url)).log.cluster).not.toBe(clusterBefore);
  const after = await client.publishBatch(events(60, 60), { topic });
  const rejected = after.filter((a) => a.status === "rejected").map((a) => (a as PromiseRejectedResult).reason?.code);
  expect(rejected).toEqual([]);

  // The subscription is told the log it read is gone, and gets the new log's events.
  await within(30_000, () => seen.filter((n) => n >= 60).length === 60);
  expect(seen.filter((n) => n >= 60).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => 60 + i));
  expect(sub.gaps.length).toBeGreaterThan(0);
  for (const gap of sub.gaps) expect(gap).toMatchObject({ topic, reason: "log_reset" });

  // A token taken in the old cluster names positions in logs that are gone: resumed now, it gets a
  // log_reset gap and the whole new log. Before, its offsets were taken as the new log's, and the 61
  // new records below them (the same keys, so the same partitions) were skipped without a word.
  const resumed = await client.subscribe(topic, { start: { token: oldToken } });
  const again: number[] = [];
  void (async () => {
    for await (const e of resumed) again.push((e.event.data as { n: number }).n);
  })();
  await within(30_000, () => again.length >= 61);
  expect(again.sort((a, b) => a - b)).toEqual([-1, ...Array.from({ length: 60 }, (_, i) => 60 + i)]);
  expect(resumed.gaps.length).toBeGreaterThan(0);
  for (const gap of resumed.gaps) expect(gap).toMatchObject({ topic, reason: "log_reset" });
  await resumed.close();

  // An id remembered from the old cluster names a record that is gone: re-sent, it is written again
  // (before, it got the old ack, an offset in a log that no longer exists).
  const resent = await client.publishBatch(events(5, 0), { topic });
  expect(resent.every((a) => a.status === "fulfilled")).toBe(true);
  await within(30_000, () => seen.filter((n) => n >= 0 && n < 5).length === 10);
  expect(seen.filter((n) => n >= 0 && n < 5).length).toBe(10);
  probe.close();
  client.close();
}, 240_000);

test("after a cluster change, instances still answer each other's re-sends, a topic the new cluster lacks notwithstanding", async () => {
  if (!broker || !gw) throw new Error("needs the broker and gateway of the test before");
  const a = gw;
  const b = (second = await startGateway({ KAFKA_BROKERS: broker.brokers, KAFKA_WORKERS: "1", KAFKA_MESSAGE_TIMEOUT_MS: "10000" }));
  const ports = samePorts(broker);
  const topic = freshTopic("wipe-shared");
  const onlyBefore = freshTopic("wipe-gone");
  const [ca, cb] = await Promise.all([connect({ url: a.wsUrl }), connect({ url: b.wsUrl })]);
  const batch = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, type: "wipe", key: `k${i}`, data: { i } }));
  // Both follow the shared topic's ids; b also follows a topic the next cluster will not have.
  for (const [c, prefix] of [[ca, "a"], [cb, "b"]] as const) expect((await c.publishBatch(batch(prefix, 10), { topic })).every((r) => r.status === "fulfilled")).toBe(true);
  expect((await cb.publishBatch(batch("gone", 10), { topic: onlyBefore })).every((r) => r.status === "fulfilled")).toBe(true);

  await broker.stop();
  broker = await startBroker({ dir, env: ports });
  for (const g of [a, b]) {
    const probe = await oneAttemptClient(g.wsUrl);
    expect(await within(60_000, () => probe.publish({ type: "probe" }, { topic }).then(() => true, () => false))).toBeGreaterThanOrEqual(0);
    probe.close();
  }

  // a writes new ids; b gets each re-send of them answered with a's ack, none written twice.
  const written = await ca.publishBatch(batch("z", 20), { topic });
  expect(written.every((r) => r.status === "fulfilled")).toBe(true);
  await Bun.sleep(2000);
  const resent = await cb.publishBatch(batch("z", 20), { topic });
  const place = (r: PromiseSettledResult<{ partition: number; offset: number }>) => (r.status === "fulfilled" ? `${r.value.partition}@${r.value.offset}` : `refused ${String((r as PromiseRejectedResult).reason?.code)}`);
  expect(resent.map(place)).toEqual(written.map(place));
  ca.close();
  cb.close();
}, 240_000);

test("a cluster made again with fewer partitions of a topic: the missing one gets its log_reset gap too, and once added is read from its start", async () => {
  // The chaos tester's cluster came back with the topic at 3 partitions of 4: p3 got no gap, the
  // feed stayed assigned to p3 at its old offset, and tokens went on naming it, so once p3 was added
  // again, its first 6,250 records were skipped without a word.
  const dir2 = mkdtempSync(join(tmpdir(), "kgw-kafka-fewer-"));
  let b = await startBroker({ dir: dir2 });
  const ports = samePorts(b);
  const g = await startGateway({ KAFKA_BROKERS: b.brokers, KAFKA_WORKERS: "1", KAFKA_MESSAGE_TIMEOUT_MS: "10000", PARTITION_CHECK_MS: "1000", KAFKA_PROPERTIES: "topic.metadata.refresh.interval.ms=1000" });
  try {
    const topic = freshTopic("fewer");
    await ensureTopic(b.brokers, topic, 4);
    const client = await connect({ url: g.wsUrl });
    const events = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ type: "fewer", key: `k${from + i}`, data: { n: from + i } }));
    const first = await client.publishBatch(events(0, 40), { topic });
    const inP3 = first.filter((a) => a.status === "fulfilled" && a.value.partition === 3).length;
    expect(inP3).toBeGreaterThan(0);
    const sub = await client.subscribe(topic, { start: "earliest" });
    const seen: number[] = [];
    void (async () => {
      for await (const e of sub) seen.push((e.event.data as { n: number }).n);
    })();
    await within(30_000, () => seen.length === 40);
    // The same subscription seen frame by frame: each gap frame's token.
    const raw = await RawWsClient.connect(g.port);
    raw.send({ t: 1, v: 1 });
    raw.send({ t: 12, cid: 1, sub: "raw", topic, start: "earliest" });
    await raw.waitFor((f) => f.t === 26 && f.sub === "raw");

    await b.stop();
    b = await startBroker({ dir: dir2, env: ports });
    await ensureTopic(b.brokers, topic, 3);
    await within(60_000, () => sub.gaps.length >= 4);
    const p3 = sub.gaps.find((gap) => gap.partition === 3);
    expect(p3).toMatchObject({ topic, partition: 3, from: inP3, to: 0, reason: "log_reset" });
    const token = sub.token!;
    // A client that stopped after any gap frame misses nothing of the new log: checked below by
    // resuming from each one's token. Before, a gap carried the old offset of a partition the new
    // log lacked, and resumed from it, that partition's records once added again were skipped.
    // (Which path finds the reset first, and so how many tokens there are, depends on timing: CI
    // once saw two.)
    await within(10_000, () => raw.frames.filter((f) => f.t === 32).length >= 4);
    const gapTokens = [...new Set(raw.frames.filter((f) => f.t === 32).map((f) => f.token as string))];
    raw.destroy();

    // p3 again, with more records than were read of the old one.
    await addPartitions(b.brokers, topic, 4);
    await Bun.sleep(3000); // the producers' metadata (refreshed every second here) shows p3
    const second = await client.publishBatch(events(100, 120), { topic });
    expect(second.every((a) => a.status === "fulfilled")).toBe(true);
    const newInP3 = second.filter((a) => a.status === "fulfilled" && a.value.partition === 3).length;
    expect(newInP3).toBeGreaterThan(inP3);
    // Resumed from the token taken after the gap, and from each gap frame's: every new record, p3's from its start.
    for (const from of new Set([token, ...gapTokens])) {
      const resumed = await client.subscribe(topic, { start: { token: from } });
      const again: number[] = [];
      void (async () => {
        for await (const e of resumed) again.push((e.event.data as { n: number }).n);
      })();
      await within(30_000, () => again.filter((n) => n >= 100).length >= 120);
      expect(again.filter((n) => n >= 100).sort((x, y) => x - y)).toEqual(Array.from({ length: 120 }, (_, i) => 100 + i));
      await resumed.close();
    }
    // And the live subscription, once it saw p3 added, read it from its start.
    await within(30_000, () => seen.filter((n) => n >= 100).length >= 120);
    expect(seen.filter((n) => n >= 100).sort((x, y) => x - y)).toEqual(Array.from({ length: 120 }, (_, i) => 100 + i));
    client.close();
  } finally {
    await g.stop();
    await b.stop();
  }
}, 240_000);
