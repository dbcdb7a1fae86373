import { expect, test } from "bun:test";
import { type ConsumedRecord, Offset } from "../../src/log/event-log";
import { MemoryLog } from "../../src/log/memory-log";

/** Resolves once `done()` holds, or after `ms` (the expectation that follows then fails). */
async function until(done: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done() && performance.now() < deadline) await Bun.sleep(1);
}

const rec = (i: number) => ({ topic: "t", key: Buffer.from(`k${i % 3}`), value: Buffer.from(`v${i}`), headers: [["ce_id", `id-${i}`]] as Array<[string, string]>, timestamp: 1000 + i });

test("the embedded reader replays from the beginning, then follows appends, under credits", async () => {
  const log = new MemoryLog({ partitions: 2, retentionRecords: 10_000, retentionBytes: 1 << 30 });
  await log.append(Array.from({ length: 1200 }, (_, i) => rec(i)));
  const got: ConsumedRecord[] = [];
  const held: Array<() => void> = [];
  const reader = log.openReader({ onRecords: (r, done) => (got.push(...r), held.push(done)), onLost: () => {}, onOutOfRange: () => {} });
  reader.assign([0, 1].map((partition) => ({ topic: "t", partition, offset: Offset.BEGINNING })));
  // Waited for, not slept for: 10 ms was not always enough on a loaded two-core box (1,000 of 1,200 once).
  await until(() => got.length >= 1200);
  expect(got).toHaveLength(1200); // 3 batches of at most 500: within the 4 credits
  await log.append(Array.from({ length: 2000 }, (_, i) => rec(1200 + i)));
  await until(() => held.length >= 4);
  await Bun.sleep(20);
  expect(held).toHaveLength(4); // credits exhausted: no fifth batch
  const stalled = got.length;
  for (const done of held.splice(0)) done();
  await until(() => got.length > stalled);
  expect(got.length).toBeGreaterThan(stalled);
  while (held.length) {
    for (const done of held.splice(0)) done();
    await Bun.sleep(1);
  }
  expect(got).toHaveLength(3200);
  for (const p of [0, 1]) {
    const offsets = got.filter((r) => r.partition === p).map((r) => r.offset);
    expect(offsets).toEqual(offsets.map((_, i) => i));
  }
  reader.close();
});

test("END starts after what is there; offsets for a time find the first record at or after it", async () => {
  const log = new MemoryLog({ partitions: 1, retentionRecords: 100, retentionBytes: 1 << 30 });
  await log.append(Array.from({ length: 5 }, (_, i) => rec(i)));
  const got: ConsumedRecord[] = [];
  const reader = log.openReader({ onRecords: (r, done) => (got.push(...r), done()), onLost: () => {}, onOutOfRange: () => {} });
  reader.assign([{ topic: "t", partition: 0, offset: Offset.END }]);
  await log.append([rec(5)]);
  await Bun.sleep(5);
  expect(got.map((r) => r.offset)).toEqual([5]);
  expect(await log.offsetsForTime("t", 1003)).toEqual([3]);
  expect(await log.offsetsForTime("t", 9999)).toEqual([6]);
  expect(await log.watermarks("t")).toEqual([{ low: 0, high: 6 }]);
});

test("a partition with much to read does not starve the others: each batch that fills on one starts the next on another", async () => {
  // Found by a second review: every read walked the partitions from the first and stopped once a
  // batch was full, so while partition 0 always had a batch's worth (a replay paced below its write
  // rate), the others were never read: the replay never went live.
  const log = new MemoryLog({ partitions: 2, retentionRecords: 100_000, retentionBytes: 1 << 30 });
  const hot = await log.append(Array.from({ length: 3000 }, (_, i) => ({ ...rec(i), key: Buffer.from("hot") })));
  const hotPartition = hot.partitions[0]!;
  let quiet = 0;
  while ((await log.append([{ ...rec(9000 + quiet), key: Buffer.from(`quiet-${quiet}`) }])).partitions[0] === hotPartition) quiet++;
  const batches: ConsumedRecord[][] = [];
  const held: Array<() => void> = [];
  const reader = log.openReader({ onRecords: (r, done) => (batches.push(r), held.push(done)), onLost: () => {}, onOutOfRange: () => {} });
  // Both partitions start where the hot one sits first in the reader's order.
  reader.assign([hotPartition, 1 - hotPartition].map((partition) => ({ topic: "t", partition, offset: Offset.BEGINNING })));
  await until(() => batches.length >= 2);
  const firstQuiet = batches.findIndex((b) => b.some((r) => r.partition !== hotPartition));
  expect(firstQuiet).toBeGreaterThanOrEqual(0);
  expect(firstQuiet).toBeLessThanOrEqual(1);
  for (const done of held.splice(0)) done();
  reader.close();
});

test("a share group's reader whose position retention has passed goes on from the log's start, and reads on while the partition is written (a second review: it never read again)", async () => {
  const log = new MemoryLog({ partitions: 1, retentionRecords: 10, retentionBytes: 1 << 30 });
  const group = { id: "kgw-share-g", topics: ["t"] };
  await log.startGroupAtEnd(group); // commits offset 0
  await log.append(Array.from({ length: 30 }, (_, i) => rec(i))); // retention keeps 20..29
  const got: number[] = [];
  const reader = log.openReader({ onRecords: (r, done) => (got.push(...r.map((x) => x.offset)), done()), onLost: () => {}, onOutOfRange: () => {} }, group);
  await until(() => got.length >= 10);
  expect(got).toEqual(Array.from({ length: 10 }, (_, i) => 20 + i));
  // Each append moves the log's start on: the reader keeps up with them.
  for (let i = 30; i < 80; i++) await log.append([rec(i)]);
  await until(() => got.at(-1) === 79);
  expect(got.at(-1)).toBe(79);
  reader.close();
});
