import { expect, test } from "bun:test";
import fc from "fast-check";
import { SeenIds } from "../../src/ingest/seen-ids";

/**
 * SeenIds keeps its ids in chunks of typed arrays, taken and dropped as the FIFO moves; what it must answer is what
 * the plain definition answers: a FIFO of every id added (forgotten ones too, until they age out),
 * trimmed by age before each write and by count before each new id, where a lookup finds the id's position
 * within the window (its first, unless a later write of it in the same partition came since) unless
 * its partition was forgotten since.
 */
class Model {
  entries: Array<{ topic: string; id: string; partition: number; offset: number; at: number; forgotten: boolean }> = [];
  evictedEarly = 0;
  constructor(private readonly windowMs: number, private readonly maxIds: number) {}
  private live(topic: string, id: string) {
    return this.entries.find((e) => !e.forgotten && e.topic === topic && e.id === id);
  }
  get(topic: string, id: string, now: number) {
    const e = this.live(topic, id);
    return e !== undefined && now - e.at <= this.windowMs ? { partition: e.partition, offset: e.offset } : undefined;
  }
  add(topic: string, id: string, partition: number, offset: number, now: number) {
    this.trim(now, 0);
    const known = this.live(topic, id);
    if (known) {
      // A later write of it in the same partition replaces it; any other keeps the first.
      if (known.partition !== partition || known.offset >= offset) return;
      known.forgotten = true;
    }
    this.trim(now, 1);
    this.entries.push({ topic, id, partition, offset, at: now, forgotten: false });
  }
  private trim(now: number, room: number) {
    while (this.entries.length > 0) {
      const full = this.entries.length + room > this.maxIds;
      const young = this.entries[0]!.at >= now - this.windowMs;
      if (!full && young) break;
      if (full && young) this.evictedEarly++;
      this.entries.shift();
    }
  }
  forgetPartition(topic: string, partition: number) {
    for (const e of this.entries) if (e.topic === topic && e.partition === partition) e.forgotten = true;
  }
  clear() {
    this.entries = [];
  }
}

const op = fc.oneof(
  { weight: 600, arbitrary: fc.record({ kind: fc.constant("add" as const), topic: fc.constantFrom("a", "b", "c"), id: fc.integer({ min: 0, max: 40 }), partition: fc.integer({ min: 0, max: 2 }), advance: fc.constantFrom(0, 0, 0, 1, 5, 40), repeat: fc.integer({ min: 1, max: 8 }), back: fc.constantFrom(0, 0, 0, 0, 97, 500) }) },
  { weight: 300, arbitrary: fc.record({ kind: fc.constant("get" as const), topic: fc.constantFrom("a", "b", "c"), id: fc.integer({ min: 0, max: 40 }), advance: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant("forget" as const), topic: fc.constantFrom("a", "b", "c"), partition: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("epoch" as const) }) },
);

test("SeenIds answers as the plain FIFO definition does, across its chunks, through forgetting and new epochs", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1000, max: 1100 }), fc.oneof(fc.integer({ min: 50, max: 3000 }), fc.constant(10_000_000)), fc.array(op, { minLength: 1, maxLength: 3000, size: "max" }), (maxIds, windowMs, ops) => {
      let epoch = 0;
      const seen = new SeenIds({ windowMs, maxIds, epoch: () => epoch });
      const model = new Model(windowMs, maxIds);
      let now = 1_000_000;
      let offset = 0;
      for (const o of ops) {
        if (o.kind === "add") {
          now += o.advance;
          // Spread over many distinct ids, and several at a time, so that the FIFO crosses its chunks' ends.
          for (let k = 0; k < o.repeat; k++) {
            const id = `${o.id}-${offset % 97}`;
            // Now and then an id read back at an earlier position than the one remembered (another instance's older copy).
            const at = Math.max(0, offset - o.back);
            seen.add(o.topic, id, o.partition, at, now);
            model.add(o.topic, id, o.partition, at, now);
            offset++;
          }
        } else if (o.kind === "get") {
          now += o.advance;
          for (let k = 0; k < 97; k += 13) {
            const id = `${o.id}-${k}`;
            expect(seen.get(o.topic, id, now)).toEqual(model.get(o.topic, id, now));
          }
        } else if (o.kind === "forget") {
          seen.forgetPartition(o.topic, o.partition);
          model.forgetPartition(o.topic, o.partition);
        } else {
          epoch++;
          model.clear();
        }
        expect(seen.size).toBe(model.entries.length);
      }
      expect(seen.evictedEarly).toBe(model.evictedEarly);
    }),
    { numRuns: 60, endOnFailure: true },
  );
});

test("across many chunks, every id within the bound keeps its position", () => {
  const seen = new SeenIds({ windowMs: 60_000, maxIds: 5000 });
  for (let i = 0; i < 23_456; i++) seen.add("t", `id-${i}`, i % 7, i, 1000 + i);
  expect(seen.size).toBe(5000);
  expect(seen.evictedEarly).toBe(23_456 - 5000);
  for (let i = 23_456 - 5000; i < 23_456; i++) expect(seen.get("t", `id-${i}`, 30_000)).toEqual({ partition: i % 7, offset: i });
  expect(seen.get("t", `id-${23_456 - 5001}`, 30_000)).toBeUndefined();
});
