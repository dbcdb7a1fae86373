import { expect, test } from "bun:test";
import fc from "fast-check";
import type { LogRecord } from "../../src/log/event-log";
import { ByteReader, HeaderKind, IpcType, MessageReader, ReceivedTable } from "../../src/kafka/wire/ipc";
import type { SocketWriter } from "../../src/kafka/wire/socket-writer";
import { type RecordSink, WorkerSlot } from "../../src/kafka/worker-slot";
import { toRecord } from "../../src/ingest/to-record";
import { parseEnvelope } from "../../src/protocol/envelope";
import { GatewayError } from "../../src/protocol/errors";
import { validEnvelope } from "./arbitraries";

// Records cross to the Kafka workers as PRODUCE messages (layout at the top of src/kafka/wire/ipc.ts),
// written by WorkerSlot.add with per-connection string tables for topics and repeating headers.
// The worker's decoder (onProduce in src/kafka/worker/producer.ts) runs only inside the worker process, so
// the decoder below follows the documented layout and the worker's code step by step: same
// ReceivedTable, same ByteReader calls. Whatever the gateway accepts must come out exactly.

interface Decoded {
  topic: string;
  key: string | null;
  value: string | null;
  timestamp: number;
  headers: Array<[string, string]>;
}
const hex = (v: Uint8Array | null) => (v === null ? null : Buffer.from(v).toString("hex"));

/** One worker connection's receiving side: string tables live as long as the connection. */
function workerSide() {
  const topics = new ReceivedTable<string>();
  const headerEntries = new ReceivedTable<[string, string | Buffer]>();
  const batches: Array<{ batchId: number; records: Decoded[] }> = [];
  const reader = new MessageReader((type, body) => {
    expect(type).toBe(IpcType.PRODUCE);
    const r = new ByteReader(body);
    const batchId = r.u32();
    const count = r.u32();
    const records: Decoded[] = [];
    for (let i = 0; i < count; i++) {
      const topic = topics.resolve(r.u16(), () => r.shortString());
      const key = hex(r.nullableSlice());
      const value = hex(r.nullableSlice());
      const timestamp = r.f64();
      const headerCount = r.u32();
      const headers: Array<[string, string]> = [];
      for (let h = 0; h < headerCount; h++) {
        const [name, v] = headerEntries.resolve(r.u16(), () => {
          const n = r.longString();
          const kind = r.u8();
          // Copied: the body is only valid during this callback, table entries outlive it.
          return [n, kind === HeaderKind.TEXT ? r.longString() : Buffer.from(r.slice(r.u32()))];
        });
        headers.push([name, typeof v === "string" ? `text:${v}` : `bytes:${hex(v)}`]);
      }
      records.push({ topic, key, value, timestamp, headers });
    }
    expect(r.pos).toBe(body.length); // nothing left over, nothing read past the end
    batches.push({ batchId, records });
  });
  return { reader, batches };
}

function expected(r: LogRecord): Decoded {
  return {
    topic: r.topic,
    key: r.key === null ? null : hex(typeof r.key === "string" ? Buffer.from(r.key, "utf8") : r.key),
    value: hex(r.value),
    timestamp: r.timestamp,
    headers: r.headers.map(([n, v]) => [n, typeof v === "string" ? `text:${v}` : `bytes:${hex(v)}`]),
  };
}

const noRecord = () => ({ topic: "t", key: null, headers: [] });
const sink: RecordSink = { delivered() {}, failed() {}, record: noRecord };

/** The gateway's side: a WorkerSlot whose socket is a byte sink. */
function gatewaySide() {
  const chunks: Buffer[] = [];
  const slot = new WorkerSlot(0, 35_000, 1000);
  // A copy of each write, as the kernel takes it: the slot may reuse its buffer once a write returns.
  const take = (b: Uint8Array) => void chunks.push(Buffer.from(b));
  slot.connected({ write: take, writeTransient: take } as unknown as SocketWriter);
  let batchId = 0;
  const add = (r: LogRecord, index: number) => slot.add(r.topic, r.key, r.value, r.timestamp, r.headers, sink, index, () => ++batchId);
  return { slot, chunks, add };
}

/** Feeds the stream to the worker side cut at the given points, as a socket might deliver it. */
function deliver(chunks: Buffer[], cuts: number[], reader: MessageReader): void {
  const all = Buffer.concat(chunks);
  let from = 0;
  for (const c of [...cuts.map((x) => x % (all.length + 1))].sort((a, b) => a - b)) {
    reader.push(all.subarray(from, Math.max(from, c)));
    from = Math.max(from, c);
  }
  reader.push(all.subarray(from));
}

function recordFor(e: unknown, topic: string): LogRecord | null {
  const parsed = parseEnvelope(e, null);
  if (!parsed.ok) return null;
  try {
    return toRecord(parsed.envelope, parsed.envelope.id ?? "generated-id", topic, "msgpack", "/gateway/ws", 1_764_000_000_000);
  } catch (err) {
    if (err instanceof GatewayError && err.code === "INVALID_EVENT") return null;
    throw err;
  }
}

const topic = fc.oneof(fc.constantFrom("orders", "users", "a"), fc.stringMatching(/^[a-zA-Z0-9._-]{1,249}$/));
// Repeating header values (ce_type, ce_source, content-type) from a small set, so refs get reused.
const repeating = fc.constantFrom("order.created", "order.paid", "user.x", "/shop/eu");
const step = fc.record({
  envelope: fc.oneof(validEnvelope, fc.record({ type: repeating, source: repeating, data: fc.constant({ n: 1 }) })),
  topic,
  flushAfter: fc.boolean(),
});

test("every record an accepted envelope becomes reaches the worker exactly, across batches, string tables and socket cuts", () => {
  let sent = 0;
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 25 }), fc.array(fc.nat(), { maxLength: 6 }), (steps, cuts) => {
      const gw = gatewaySide();
      const worker = workerSide();
      const want: Decoded[][] = [[]];
      steps.forEach((s, i) => {
        const r = recordFor(s.envelope, s.topic);
        if (r === null) return;
        gw.add(r, i);
        want.at(-1)!.push(expected(r));
        if (s.flushAfter) {
          gw.slot.flush();
          want.push([]);
        }
      });
      gw.slot.flush();
      deliver(gw.chunks, cuts, worker.reader);
      const batches = want.filter((b) => b.length > 0);
      expect(worker.batches.map((b) => b.records)).toEqual(batches);
      // Every batch the worker will report on is one the gateway is waiting for, with as many records.
      for (const b of worker.batches) expect(gw.slot.sent.get(b.batchId)?.sinks.length).toBe(b.records.length);
      sent += batches.length;
    }),
    { numRuns: 1500 },
  );
  expect(sent).toBeGreaterThan(3000);
});

test("past 4,096 distinct repeating headers the tables fall back to literals, and nothing is lost", () => {
  fc.assert(
    fc.property(fc.integer({ min: 4000, max: 6000 }), fc.nat(), (n, seed) => {
      const gw = gatewaySide();
      const worker = workerSide();
      const want: Decoded[] = [];
      for (let i = 0; i < n; i++) {
        // Distinct types fill the table; every third record repeats an early one, which must still resolve.
        const r = recordFor({ type: i % 3 === 0 ? `t${i % 50}` : `type-${seed}-${i}`, source: "/s" }, "orders")!;
        gw.add(r, i);
        want.push(expected(r));
      }
      gw.slot.flush();
      deliver(gw.chunks, [], worker.reader);
      expect(worker.batches.flatMap((b) => b.records)).toEqual(want);
    }),
    { numRuns: 5 },
  );
});

const manyHeaders = (n: number) => ({ type: "t", headers: Object.fromEntries(Array.from({ length: n }, (_, i) => [`h${i}`, ""])) });

// Was a defect: the header count was a u16 written after the rest of the record, so an event with
// 65,536 headers left half a record in the batch and every later record of it was read out of step.
// Counts are 32-bit now, a record that fails half-way is taken back out, and the envelope schema
// refuses more than 1000 headers (the gateway applies MAX_HEADERS_PER_EVENT first).
test("an event with 65,532 or more headers is refused or reaches the worker, and the records after it arrive intact", () => {
  fc.assert(
    fc.property(fc.integer({ min: 65_000, max: 70_000 }), (n) => {
      const gw = gatewaySide();
      const worker = workerSide();
      const big = recordFor(manyHeaders(n), "orders");
      const after = recordFor({ type: "after", key: "k" }, "orders")!;
      const want: Decoded[] = [];
      if (big !== null) {
        // Whoever called add may survive its throw (the publisher answers the frame); the slot lives on.
        try {
          gw.add(big, 0);
          want.push(expected(big));
        } catch {}
      }
      gw.add(after, 1);
      want.push(expected(after));
      gw.slot.flush();
      deliver(gw.chunks, [], worker.reader);
      expect(worker.batches.flatMap((b) => b.records).map((r) => [r.key, r.headers.length])).toEqual(want.map((r) => [r.key, r.headers.length]));
    }),
    { numRuns: 10 },
  );
});

test("a record the layout cannot carry is refused through its sink, and leaves nothing of itself in the batch", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0x10000, max: 0x20000 }), fc.boolean(), (len, first) => {
      const gw = gatewaySide();
      const worker = workerSide();
      const failed: number[] = [];
      const refusing: RecordSink = { delivered() {}, failed: (i) => void failed.push(i), record: noRecord };
      const before = recordFor({ type: "before", key: "b" }, "orders")!;
      const after = recordFor({ type: "after", key: "a" }, "orders")!;
      if (!first) gw.add(before, 0);
      // A topic too long for its 16-bit length: the only field that keeps one.
      gw.slot.add("t".repeat(len), null, null, 0, [["ce_type", `x${len}`]], refusing, 1, () => 99);
      gw.add(after, 2);
      gw.slot.flush();
      deliver(gw.chunks, [], worker.reader);
      expect(failed).toEqual([1]);
      expect(worker.batches.flatMap((b) => b.records)).toEqual(first ? [expected(after)] : [expected(before), expected(after)]);
    }),
    { numRuns: 10 },
  );
});
