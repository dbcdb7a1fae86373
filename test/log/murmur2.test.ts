import { expect, test } from "bun:test";
import { MemoryLog } from "../../src/log/memory-log";
import { murmur2, partitionForKey } from "../../src/bytes/murmur2";

// Vectors from Kafka's own UtilsTest.testMurmur2 (the Java client's partitioner hash).
const vectors: Array<[string, number]> = [
  ["21", -973932308],
  ["foobar", -790332482],
  ["a-little-bit-long-string", -985981536],
  ["a-little-bit-longer-string", -1486304829],
  ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
  ["abc", 479470107],
];

test("murmur2 matches the Java client bit for bit", () => {
  for (const [input, expected] of vectors) expect(murmur2(Buffer.from(input))).toBe(expected);
});

test("the embedded log partitions keys as Kafka does and keeps offsets per partition", async () => {
  const log = new MemoryLog({ partitions: 3, retentionRecords: 4, retentionBytes: 1 << 30 });
  const key = Buffer.from("user-42");
  const recs = Array.from({ length: 6 }, (_, i) => ({ topic: "t", key, value: Buffer.from(String(i)), headers: [], timestamp: 0 }));
  const r = await log.append(recs);
  const p = partitionForKey(key, 3);
  expect([...r.partitions]).toEqual(Array(6).fill(p));
  expect([...r.offsets]).toEqual([0, 1, 2, 3, 4, 5]);
  // Retention keeps the newest 4; offsets do not restart.
  expect(log.read("t", p, 0).map((x) => x.offset)).toEqual([2, 3, 4, 5]);
  expect(log.offsets("t")[p]).toEqual({ earliest: 2, next: 6 });
});
