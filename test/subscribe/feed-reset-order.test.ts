import { expect, test } from "bun:test";
import type { EventLog } from "../../src/log/event-log";
import { TurnBudget } from "../../src/limits/turn-budget";
import { createMetrics } from "../../src/observability/metrics";
import { Feed } from "../../src/subscribe/feed";

/**
 * The order in which a feed learns that a topic was made again with fewer partitions, driven
 * directly: which report comes first depends on timing (CI once saw the partition check's come
 * after the reader's), so a real broker cannot be made to show each order. The log is a stand-in
 * that answers when told; what a gap's token would name is the feed's positions when it is told.
 */
function harness(positions: number[], ids?: Map<string, string | null>) {
  let handlers!: { onOutOfRange: (t: string, p: number, o: number) => void; onRecords: (r: unknown[], done: () => void) => void };
  let answer: (marks: Array<{ low: number; high: number }>) => void = () => {};
  const assigned: string[] = [];
  const log = {
    epoch: 0,
    openReader(h: typeof handlers) {
      handlers = h;
      return {
        ready: Promise.resolve(),
        assign: (l: Array<{ partition: number; offset: number }>) => assigned.push(`assign ${l.map((a) => `${a.partition}@${a.offset}`).join(" ")}`),
        unassign: (l: Array<{ partition: number }>) => assigned.push(`unassign ${l.map((a) => a.partition).join(" ")}`),
        storeOffsets() {},
        close() {},
      };
    },
    watermarks: () => new Promise((resolve) => (answer = resolve)),
  } as unknown as EventLog;
  const map = new Map([["t", positions]]);
  const told: Array<{ gap: string; positions: number[] }> = [];
  const logger = {
    info() {},
    debug() {},
    error() {},
    warn(message: string, fields: { partition: number; from: number; to: number; reason: string }) {
      if (message.includes("next offset is gone")) told.push({ gap: `${fields.partition}:${fields.from}->${fields.to} ${fields.reason}`, positions: [...map.get("t")!] });
    },
  };
  const feed = new Feed(log, ["t"], map, { turns: new TurnBudget(50), payload: { maxDepth: 32 } as never, ids }, createMetrics(), logger as never);
  return { feed, told, assigned, handlers: () => handlers, answer: (m: Array<{ low: number; high: number }>) => answer(m), positions: map };
}

test("a partition found reset in a topic now with fewer partitions: every partition moves to its new log, and those it lacks are let go, before any gap is told, so no token names an old offset", async () => {
  const h = harness([25, 10, 5, 7]);
  await h.feed.open();
  // Made again with 3 partitions: p0's new log has 3 records, so its reader reports 25 out of range.
  h.handlers().onOutOfRange("t", 0, 25);
  h.answer([{ low: 0, high: 3 }, { low: 0, high: 30 }, { low: 0, high: 4 }]);
  await Bun.sleep(20);
  // Before: p0's gap was told with p3 still at 7 (its own gap came a partition check or two later),
  // and p1 and p2 waited for reports of their own.
  const all = [0, 0, 0];
  expect(h.told).toEqual([
    { gap: "0:25->0 log_reset", positions: all },
    { gap: "1:10->0 log_reset", positions: all },
    { gap: "2:5->0 log_reset", positions: all },
    { gap: "3:7->0 log_reset", positions: all },
  ]);
  // Read again by a new reader, from the new logs' starts.
  expect(h.assigned.at(-1)).toBe("assign 0@0 1@0 2@0");
  h.feed.close();
});

test("a partition whose new log grew past its old position is read from the new log's start once another partition's reset is found: what its old reader still hands over is dropped", async () => {
  const h = harness([25, 10, 5, 7]);
  await h.feed.open();
  const old = h.handlers();
  old.onOutOfRange("t", 0, 25);
  // p1's reader, reading on from 10 within its new log of 30, hands over 10..29 meanwhile.
  const rec = (p: number, o: number) => ({ topic: "t", partition: p, offset: o, timestamp: 0, key: null, value: null, headers: [] });
  old.onRecords(Array.from({ length: 20 }, (_, i) => rec(1, 10 + i)), () => {});
  h.answer([{ low: 0, high: 3 }, { low: 0, high: 30 }, { low: 0, high: 4 }]);
  await Bun.sleep(20);
  // Before: p1 was left to a report of its own, which never came (its new log was past 10): it read
  // on, and the new log's 0..9 were skipped in silence (outside probe: 644 and 700 records of p0).
  expect(h.positions.get("t")).toEqual([0, 0, 0]);
  const reader = h.handlers();
  expect(reader).not.toBe(old);
  reader.onRecords(Array.from({ length: 30 }, (_, i) => rec(1, i)), () => {});
  expect(h.positions.get("t")).toEqual([0, 30, 0]);
  h.feed.close();
});

test("a partition found reset within its new log is read again by a new reader: what the old one still hands over of it is not delivered, so the new log's records below it are not skipped", async () => {
  const h = harness([10]);
  await h.feed.open();
  const rec = (p: number, o: number) => ({ topic: "t", partition: p, offset: o, timestamp: 0, key: null, value: null, headers: [] });
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => rec(0, from + i));
  const old = h.handlers();
  h.feed.watermarksNow("t", [{ low: 0, high: 50 }]);
  old.onRecords(range(10, 20), () => {});
  // The topic made again: its end is behind the highest seen, twice running, and p0 at 20 lies within it.
  h.feed.watermarksNow("t", [{ low: 0, high: 30 }]);
  h.feed.watermarksNow("t", [{ low: 0, high: 30 }]);
  await Bun.sleep(20);
  expect(h.told).toEqual([{ gap: "0:20->0 log_reset", positions: [0] }]);
  // The old reader, reading on from 20 in the new log, still hands over 20..29. Before, they were
  // delivered after the move (p0 at 30), and the new log's 0..19 were then skipped as read already.
  old.onRecords(range(20, 30), () => {});
  expect(h.positions.get("t")).toEqual([0]);
  const reader = h.handlers();
  expect(reader).not.toBe(old);
  expect(h.assigned.at(-1)).toBe("assign 0@0");
  reader.onRecords(range(0, 30), () => {});
  expect(h.positions.get("t")).toEqual([30]);
  h.feed.close();
});

test("a reset found while the reader's worker is gone, its loss told later: one reader reads on, and none is left open once the feed closes", async () => {
  // Second review: the feed still took the lost reader for its own (the pool tells a loss once the
  // worker's replacement is ready), opened a new one for the reset, and the loss then opened a third;
  // the second was never closed, and read on from wherever it was told last.
  const readers: Array<{ handlers: { onLost: (reason: string) => void }; closed: boolean }> = [];
  const log = {
    epoch: 0,
    openReader(handlers: (typeof readers)[number]["handlers"]) {
      const r = { handlers, closed: false };
      readers.push(r);
      return { ready: Promise.resolve(), assign() {}, unassign() {}, storeOffsets() {}, close: () => void (r.closed = true) };
    },
    watermarks: () => new Promise(() => {}),
  } as unknown as EventLog;
  const logger = { info() {}, debug() {}, error() {}, warn() {} };
  const feed = new Feed(log, ["t"], new Map([["t", [20]]]), { turns: new TurnBudget(50), payload: { maxDepth: 32 } as never }, createMetrics(), logger as never);
  await feed.open();
  feed.watermarksNow("t", [{ low: 0, high: 50 }]);
  feed.watermarksNow("t", [{ low: 0, high: 30 }]);
  feed.watermarksNow("t", [{ low: 0, high: 30 }]);
  await Bun.sleep(20);
  readers[0]!.handlers.onLost("worker exited");
  await Bun.sleep(20);
  expect(readers.length).toBe(2);
  expect(readers.map((r) => r.closed)).toEqual([true, false]);
  feed.close();
  expect(readers.every((r) => r.closed)).toBe(true);
});

test("a topic id asked before a reset its reader found is not taken for the partitions read again: the next check's new id resets nothing a second time", async () => {
  // Second review: the reader found p0 past its new end before any check had seen the new id, so the
  // partitions read again had no id; a check asked before that answered the old one, which was taken
  // for them, and the next check's new id reset them again (a second gap, the new log read twice).
  const h = harness([10, 10], new Map([["t", "X"]]));
  await h.feed.open();
  const asked = h.feed.idClears; // the check asks the topic's id here
  h.handlers().onOutOfRange("t", 0, 10);
  h.answer([{ low: 0, high: 3 }, { low: 0, high: 40 }]);
  await Bun.sleep(20);
  expect(h.told.map((t) => t.gap)).toEqual(["0:10->0 log_reset", "1:10->0 log_reset"]);
  // The new reader reads the new logs.
  const rec = (p: number, o: number) => ({ topic: "t", partition: p, offset: o, timestamp: 0, key: null, value: null, headers: [] });
  h.handlers().onRecords([rec(0, 0), rec(0, 1), rec(0, 2), ...Array.from({ length: 20 }, (_, i) => rec(1, i))], () => {});
  expect(h.positions.get("t")).toEqual([3, 20]);
  h.feed.topicIdNow("t", "X", null, asked); // its answer, the old id
  h.feed.topicIdNow("t", "Y", [{ low: 0, high: 3 }, { low: 0, high: 40 }], h.feed.idClears); // the next check's
  await Bun.sleep(20);
  expect(h.told.map((t) => t.gap)).toEqual(["0:10->0 log_reset", "1:10->0 log_reset"]);
  expect(h.feed.logIdOf("t")).toBe("Y");
  h.feed.close();
});

test("a topic made again, its new id seen at a check: the partitions of the old log are read again with their gaps, and one found since with the new id reads on", async () => {
  const h = harness([10, 10], new Map([["t", "X"]]));
  await h.feed.open();
  // p2 added at the check that saw the new id, its new log read from 0 up to 6 meanwhile.
  h.feed.topicIdNow("t", "Y", [{ low: 0, high: 30 }, { low: 0, high: 40 }, { low: 0, high: 6 }], h.feed.idClears);
  h.feed.partitionsNow(new Map([["t", 3]]));
  h.handlers().onRecords(Array.from({ length: 6 }, (_, i) => ({ topic: "t", partition: 2, offset: i, timestamp: 0, key: null, value: null, headers: [] })), () => {});
  await Bun.sleep(20);
  expect(h.told.map((t) => t.gap)).toEqual(["0:10->0 log_reset", "1:10->0 log_reset"]);
  expect(h.positions.get("t")).toEqual([0, 0, 6]);
  expect(h.feed.logIdOf("t")).toBe("Y");
  h.feed.close();
});
