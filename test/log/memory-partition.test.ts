import { expect, test } from "bun:test";
import type { LogRecord } from "../../src/log/event-log";
import { MemoryPartition } from "../../src/log/memory-partition";

const text = (v: Uint8Array | null) => (v === null ? null : Buffer.from(v).toString());

test("records come back byte for byte: null, string and byte keys, values, text and byte headers", () => {
  const part = new MemoryPartition("t", 0, 10_000);
  const records: LogRecord[] = Array.from({ length: 6000 }, (_, i) => ({
    topic: "t",
    key: i % 3 === 0 ? null : i % 3 === 1 ? `k${i}` : Buffer.from([i & 0xff, 0, 255]),
    value: i % 5 === 0 ? null : Buffer.from(`value ${i} ✓`),
    timestamp: 1_700_000_000_000 + i,
    headers: [
      ["ce_specversion", "1.0"],
      ["ce_id", `id-${i}`],
      ["ce_type", `type.${i}`],
      ["content-type", "application/octet-stream"],
      ["tenant", Buffer.from([1, 2, i & 0xff])],
    ],
  }));
  for (const r of records) part.append(r);
  const back = part.read(0, 10_000);
  expect(back.length).toBe(6000);
  back.forEach((r, i) => {
    const want = records[i]!;
    expect(r.offset).toBe(i);
    expect(r.timestamp).toBe(want.timestamp);
    expect(r.key === null ? null : [...r.key]).toEqual(want.key === null ? null : [...(typeof want.key === "string" ? Buffer.from(want.key) : want.key)]);
    expect(text(r.value)).toBe(text(want.value as Uint8Array | null));
    expect(r.headers.map(([n, v]) => [n, [...v]])).toEqual(want.headers.map(([n, v]) => [n, [...(typeof v === "string" ? Buffer.from(v) : v)]]));
  });
});

test("retention drops the oldest records and the chunks that held only them", () => {
  const part = new MemoryPartition("t", 0, 100);
  const value = Buffer.alloc(50_000, 7); // 20 records fill a 1 MiB chunk
  for (let i = 0; i < 1000; i++) part.append({ topic: "t", key: null, value, timestamp: i, headers: [] });
  expect(part.earliest).toBe(900);
  expect(part.read(0, 1000).map((r) => r.offset)).toEqual(Array.from({ length: 100 }, (_, i) => 900 + i));
  expect(part.offsetForTime(950)).toBe(950);
  // 100 retained records of 50 KB need 5–6 chunks; without release there would be 50.
  expect((part as unknown as { chunks: unknown[] }).chunks.length).toBeLessThanOrEqual(7);
});

test("a record the layout cannot hold is refused before anything is written: no offset taken, neighbours intact", () => {
  const part = new MemoryPartition("t", 0, 8);
  const ok = (v: string) => ({ topic: "t", key: v, value: Buffer.from(v), headers: [["h", v]] as Array<[string, string]>, timestamp: 1 });
  expect(part.append(ok("a"))).toBe(0);
  const tooMany = { ...ok("x"), headers: Array.from({ length: 65_536 }, (_, i) => [`h${i}`, ""] as [string, string]) };
  expect(() => part.append(tooMany)).toThrow(/at most 65535/);
  expect(part.append(ok("b"))).toBe(1);
  expect(part.read(0, 10).map((r) => Buffer.from(r.value!).toString())).toEqual(["a", "b"]);
});

test("the ring grows as records are retained, up to a capacity that is no power of two, and wraps there", () => {
  const part = new MemoryPartition("t", 0, 3000);
  for (let i = 0; i < 7000; i++) part.append({ topic: "t", key: null, value: Buffer.from(`v${i}`), timestamp: i, headers: [] });
  expect(part.earliest).toBe(4000);
  const back = part.read(0, 10_000);
  expect(back.map((r) => text(r.value))).toEqual(Array.from({ length: 3000 }, (_, i) => `v${4000 + i}`));
  expect(part.offsetForTime(5500)).toBe(5500);
});

test("dropping the oldest chunk drops its records, and no slot keeps it alive", () => {
  const part = new MemoryPartition("t", 0, 100_000);
  const big = Buffer.alloc(400_000, 1);
  for (let i = 0; i < 12; i++) part.append({ topic: "t", key: null, value: big, timestamp: i, headers: [] });
  let earliest = 0;
  while (part.earliest < 12) {
    const before = part.bytes;
    expect(part.dropOldestChunk()).toBeGreaterThan(0);
    expect(part.bytes).toBeLessThan(before);
    expect(part.earliest).toBeGreaterThan(earliest);
    earliest = part.earliest;
    expect(part.read(0, 20).map((r) => r.offset)).toEqual(Array.from({ length: 12 - earliest }, (_, i) => earliest + i));
  }
  expect(part.bytes).toBe(0);
  expect(part.dropOldestChunk()).toBe(0);
});

test("a partition holding a few small records costs kilobytes, and its chunks grow to 1 MiB as it fills", () => {
  const part = new MemoryPartition("t", 0, 100_000);
  const rec = (i: number): LogRecord => ({ topic: "t", key: null, value: Buffer.from(`v${i}`.padEnd(100, ".")), timestamp: i, headers: [] });
  part.append(rec(0));
  // What EMBEDDED_RETENTION_BYTES is charged for a topic a client named once.
  expect(part.bytes).toBeLessThanOrEqual(4096);
  for (let i = 1; i < 40_000; i++) part.append(rec(i));
  // ~4.7 MB of records: chunks of 4 KiB, 8 KiB … then 1 MiB each, so at most one chunk's worth is
  // unused; and the ring of 65,536 slots that indexes them.
  expect(part.bytes).toBeLessThan(40_000 * 117 + (1 << 20) + 65_536 * 12);
  expect(part.read(0, 1)[0]!.offset).toBe(0);
  expect(part.read(39_999, 1)[0]!.timestamp).toBe(39_999);
});

test("the ring that indexes the records is charged with them, and given back as retention empties the partition (outside probe: it was neither)", () => {
  // A capacity that is no power of two: the ring grows to it, and halves from it to odd sizes.
  const part = new MemoryPartition("t", 0, 100_000);
  // 19 bytes a record in its chunk: timestamp 8, null key 4, a 1-byte value 4 + 1, no headers 2.
  for (let i = 0; i < 90_000; i++) part.append({ topic: "t", key: null, value: Buffer.from([i & 0xff]), timestamp: i, headers: [] });
  // Chunks hold 1.71-2.76 MB of it (at most one 1 MiB chunk part used); the ring of 100,000 slots 1.2 MB more.
  expect(part.bytes).toBeGreaterThanOrEqual(90_000 * (19 + 12));
  let freed = 0;
  const peak = part.bytes;
  for (let n; (n = part.dropOldestChunk()) > 0; ) freed += n;
  expect(part.bytes).toBe(0);
  expect(freed).toBe(peak);
  // And it still takes records, indexed from its small ring again.
  part.append({ topic: "t", key: null, value: Buffer.from([1]), timestamp: 0, headers: [] });
  expect(part.read(90_000, 5).map((r) => r.offset)).toEqual([90_000]);
});
