import { afterAll, beforeAll, expect, test } from "bun:test";
import { type ConsumedRecord, Offset } from "../../src/log/event-log";
import type { KafkaLog } from "../../src/kafka/kafka-log";
import { freshTopic, inProcessPool, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";

// test-plan: alone (it bounds a time from above; scripts/test-plan.ts).

/**
 * The consuming half of the worker pool, in-process against the real broker: records appended
 * through the pool come back through a reader at the offsets their appends reported, and a reader
 * that holds its credit stops the worker from sending more.
 */
let brokers: string;
let log: KafkaLog;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  log = inProcessPool(brokers, "reader-test");
  await log.start();
  expect(log.isReady()).toBe(true);
}, 60_000);
afterAll(async () => {
  await log.close(5000);
}, 60_000);

// Within retention (7 days): the test broker deletes older records within a second.
const T0 = Date.now() - 3_600_000;
const record = (topic: string, i: number) => ({ topic, key: Buffer.from(`k${i % 5}`), value: Buffer.from(`v${i}`), headers: [["ce_id", `id-${i}`]] as Array<[string, string]>, timestamp: T0 + i });

test("a reader assigned from the beginning gets every appended record, at the offsets the appends reported", async () => {
  const topic = freshTopic("reader");
  await ensureTopic(brokers, topic, 3);
  const results = await log.append(Array.from({ length: 3000 }, (_, i) => record(topic, i)));
  expect(results.errors).toBeNull();
  const got: ConsumedRecord[] = [];
  const reader = log.pool.openReader({
    onRecords: (records, done) => {
      got.push(...records);
      done();
    },
    onLost: () => {},
    onOutOfRange: () => {},
  });
  await reader.ready;
  reader.assign([0, 1, 2].map((partition) => ({ topic, partition, offset: Offset.BEGINNING })));
  const deadline = Date.now() + 20_000;
  while (got.length < 3000 && Date.now() < deadline) await Bun.sleep(50);
  reader.close();
  expect(got).toHaveLength(3000);
  const byId = new Map(got.map((r) => [Buffer.from(r.headers.find(([n]) => n === "ce_id")![1]).toString(), r]));
  for (let i = 0; i < 3000; i++) {
    const r = byId.get(`id-${i}`)!;
    expect({ partition: r.partition, offset: r.offset }).toEqual({ partition: results.partitions[i]!, offset: results.offsets[i]! });
    expect(Buffer.from(r.value!).toString()).toBe(`v${i}`);
    expect(r.timestamp).toBe(T0 + i);
  }
});

test("a reader that holds its credit gets no more batches until it releases them", async () => {
  const topic = freshTopic("credit");
  await ensureTopic(brokers, topic, 1);
  await log.append(Array.from({ length: 5000 }, (_, i) => record(topic, i)));
  const held: Array<() => void> = [];
  let received = 0;
  const reader = log.pool.openReader({
    onRecords: (records, done) => {
      received += records.length;
      held.push(done);
    },
    onLost: () => {},
    onOutOfRange: () => {},
  });
  await reader.ready;
  reader.assign([{ topic, partition: 0, offset: Offset.BEGINNING }]);
  await Bun.sleep(2000);
  // READER_CREDIT batches of at most 500 records, then nothing while they are held.
  expect(held.length).toBe(4);
  const stalledAt = received;
  expect(stalledAt).toBeLessThanOrEqual(4 * 500);
  await Bun.sleep(500);
  expect(received).toBe(stalledAt);
  for (const done of held.splice(0)) done();
  const deadline = Date.now() + 20_000;
  while (received < 5000 && Date.now() < deadline) {
    for (const done of held.splice(0)) done();
    await Bun.sleep(20);
  }
  reader.close();
  expect(received).toBe(5000);
});

test("a reader whose worker dies is told so, and a new reader works once the worker is back", async () => {
  const lost = Promise.withResolvers<string>();
  const reader = log.pool.openReader({ onRecords: (_r, done) => done(), onLost: lost.resolve, onOutOfRange: () => {} });
  await reader.ready;
  process.kill(log.pool.slots[0]!.pid, "SIGKILL");
  expect(await lost.promise).toMatch(/signal|socket/);
  const deadline = Date.now() + 20_000;
  while (!log.isReady() && Date.now() < deadline) await Bun.sleep(50);
  expect(log.isReady()).toBe(true);
  const again = log.pool.openReader({ onRecords: (_r, done) => done(), onLost: () => {}, onOutOfRange: () => {} });
  await again.ready;
  again.close();
});

test("partition count, watermarks and offsets for a time, from the broker", async () => {
  const topic = freshTopic("meta");
  await ensureTopic(brokers, topic, 2);
  expect(await log.partitionCount(topic)).toBe(2);
  const r = await log.append(Array.from({ length: 10 }, (_, i) => ({ ...record(topic, i), key: null })));
  const marks = await log.watermarks(topic);
  expect(marks.map((m) => m.high).reduce((a, b) => a + b)).toBe(10);
  expect(marks.every((m) => m.low === 0)).toBe(true);
  // Record i has timestamp base+i: asking for base+5 must land on record 5's offset in its partition.
  const offsets = await log.offsetsForTime(topic, T0 + 5);
  const p5 = r.partitions[5]!;
  expect(offsets[p5]).toBe(r.offsets[5]!);
  expect(await log.offsetsForTime(topic, Date.now() + 3_600_000)).toEqual(marks.map((m) => m.high));
  // Asking about a topic nobody created does not create it (subscribing must not: docs/security.md).
  const missing = freshTopic("auto");
  await expect(log.partitionCount(missing)).rejects.toMatchObject({ code: "UNKNOWN_TOPIC" });
});

test("an assignment naming a partition already assigned moves it, and an unassignment naming one not assigned is a no-op: the rest of each list is read", async () => {
  // Found by a second review: a feed moving one partition (a lost position) while its reader, reopened
  // after a worker restart, was still opening sent "unassign p, assign p", then the opening's "assign
  // every partition": librdkafka refuses a whole list holding one partition already assigned, and
  // refuses an unassignment of one not assigned, so no other partition was ever read.
  const topic = freshTopic("reassign");
  await ensureTopic(brokers, topic, 2);
  const results = await log.append(Array.from({ length: 200 }, (_, i) => record(topic, i)));
  expect(results.errors).toBeNull();
  expect(new Set(results.partitions).size).toBe(2);
  const got = new Set<string>();
  const reader = log.pool.openReader({
    onRecords: (records, done) => {
      for (const r of records) got.add(Buffer.from(r.headers.find(([n]) => n === "ce_id")![1]).toString());
      done();
    },
    onLost: () => {},
    onOutOfRange: () => {},
  });
  await reader.ready;
  reader.unassign([{ topic, partition: 0, offset: 0 }]);
  reader.assign([{ topic, partition: 0, offset: 0 }]);
  reader.assign([0, 1].map((partition) => ({ topic, partition, offset: 0 })));
  const deadline = Date.now() + 20_000;
  while (got.size < 200 && Date.now() < deadline) await Bun.sleep(50);
  reader.close();
  expect(got.size).toBe(200);
});

test("a reader whose handler throws loses nothing else: its credit comes back, its worker's other messages are read, publishes are acked", async () => {
  const topic = freshTopic("handler-throws");
  await ensureTopic(brokers, topic, 1);
  await log.append(Array.from({ length: 4000 }, (_, i) => record(topic, i)));
  let batches = 0;
  let received = 0;
  const reader = log.pool.openReader({
    onRecords: (records, done) => {
      // As many as its credit (READER_CREDIT): unacked, no batch would come after them.
      if (++batches <= 4) throw new Error("a bug in a feed");
      received += records.length;
      done();
    },
    onLost: () => {},
    onOutOfRange: () => {},
  });
  await reader.ready;
  reader.assign([{ topic, partition: 0, offset: Offset.BEGINNING }]);
  const more = await log.append(Array.from({ length: 100 }, (_, i) => record(topic, 4000 + i)));
  expect(more.errors).toBeNull();
  const deadline = Date.now() + 20_000;
  while (batches < 6 && Date.now() < deadline) await Bun.sleep(50);
  reader.close();
  expect(batches).toBeGreaterThanOrEqual(6);
  expect(received).toBeGreaterThan(0);
  expect(log.isReady()).toBe(true);
});
