import { expect, test } from "bun:test";
import { ByteReader, ByteWriter, InternTable, LITERAL, MessageReader, ReceivedTable } from "../../src/kafka/wire/ipc";

/** Writes `values` the way WorkerSlot writes topics and repeating headers, reads them as the worker does. */
function roundTrip(values: string[], capacity: number): { read: string[]; literals: number } {
  const sent = new InternTable(capacity);
  const w = new ByteWriter(64);
  let literals = 0;
  for (const v of values) {
    const ref = sent.known("ce_type", v);
    if (ref >= 0) w.u16(ref);
    else {
      const id = sent.add("ce_type", v);
      if (id === LITERAL) literals++;
      w.u16(id);
      w.shortString(v);
    }
  }
  const received = new ReceivedTable<string>();
  const r = new ByteReader(w.take());
  return { read: values.map(() => received.resolve(r.u16(), () => r.shortString())), literals };
}

test("string tables: repeats cross as refs, and a full table falls back to literals without losing a value", () => {
  const values = ["a", "b", "a", "c", "d", "e", "a", "d", "b", "e", "f"];
  const { read, literals } = roundTrip(values, 3);
  expect(read).toEqual(values);
  // a, b, c fill the table; d, e (twice each) and f are literals every time.
  expect(literals).toBe(5);
});

test("string tables: a ref the receiver never saw defined is an error, not a wrong value", () => {
  const received = new ReceivedTable<string>();
  expect(() => received.resolve(3, () => "x")).toThrow(/out of step/);
});

test("MessageReader: messages come out whole and in order however the stream is cut", () => {
  const w = new ByteWriter(64);
  const sent: Array<[number, string]> = [];
  for (let i = 0; i < 40; i++) {
    const body = "x".repeat((i * 37) % 300) + i;
    const start = w.beginMessage(10 + (i % 5));
    w.longString(body);
    w.endMessage(start);
    sent.push([10 + (i % 5), body]);
  }
  const stream = w.take();
  // Every single cut point, then random cuts into many pieces.
  const cuttings: number[][] = [];
  for (let at = 0; at <= stream.length; at += 7) cuttings.push([at]);
  let seed = 7;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let k = 0; k < 50; k++) cuttings.push(Array.from({ length: 1 + Math.floor(rand() * 30) }, () => Math.floor(rand() * stream.length)).sort((a, b) => a - b));
  for (const cuts of cuttings) {
    const got: Array<[number, string]> = [];
    const reader = new MessageReader((type, body) => got.push([type, new ByteReader(body).longString()]));
    let from = 0;
    for (const at of [...cuts, stream.length]) {
      reader.push(Buffer.from(stream.subarray(from, at)));
      from = at;
    }
    expect(got).toEqual(sent);
  }
});

test("MessageReader: a body said owned stays whole after its callback, whatever becomes of the chunks it came in; one byte at a time too", () => {
  const w = new ByteWriter(64);
  const sent: string[] = [];
  for (let i = 0; i < 12; i++) {
    const body = String(i).repeat(1 + ((i * 997) % 5000));
    const start = w.beginMessage(20);
    w.longString(body);
    w.endMessage(start);
    sent.push(body);
  }
  const stream = w.take();
  for (const step of [1, 3, 4, 5, 1000, 4096]) {
    const kept: Buffer[] = [];
    const got: string[] = [];
    const reader = new MessageReader((_, body, owned) => {
      got.push(new ByteReader(body).longString());
      if (owned) kept.push(body);
    });
    for (let at = 0; at < stream.length; at += step) {
      const chunk = Buffer.from(stream.subarray(at, at + step));
      reader.push(chunk);
      chunk.fill(0xee); // a socket's buffer, used again for its next read
    }
    expect(got).toEqual(sent);
    // Every message that spanned chunks was assembled in a buffer of its own, and is still intact.
    expect(kept.length).toBeGreaterThan(0);
    for (const body of kept) expect(sent).toContain(new ByteReader(body).longString());
  }
});

test("MessageReader reusing its buffer: the same messages, however cut, keeping nothing of a chunk", () => {
  // Messages from a few bytes to well past the reader's first 64 KiB buffer, so it grows mid-stream.
  const w = new ByteWriter(64);
  const sent: Array<[number, string]> = [];
  for (let i = 0; i < 30; i++) {
    const body = (i % 7 === 3 ? "y".repeat(70_000 + i * 5_000) : "x".repeat((i * 37) % 300)) + i;
    const start = w.beginMessage(10 + (i % 5));
    w.longString(body);
    w.endMessage(start);
    sent.push([10 + (i % 5), body]);
  }
  const stream = w.take();
  const cuttings: number[][] = [[], [4], [stream.length - 1]];
  for (let at = 0; at <= stream.length; at += 9_973) cuttings.push([at, at + 3]);
  let seed = 11;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let k = 0; k < 40; k++) cuttings.push(Array.from({ length: 1 + Math.floor(rand() * 60) }, () => Math.floor(rand() * stream.length)).sort((a, b) => a - b));
  for (const cuts of cuttings) {
    const got: Array<[number, string]> = [];
    const reader = new MessageReader((type, body) => got.push([type, new ByteReader(body).longString()]), true);
    let from = 0;
    for (const at of [...cuts.filter((c) => c <= stream.length), stream.length]) {
      const chunk = Buffer.from(stream.subarray(from, at));
      reader.push(chunk);
      // A socket may hand the same memory to its next read: nothing of it may be kept.
      chunk.fill(0xee);
      from = at;
    }
    expect(got.length).toBe(sent.length);
    expect(got).toEqual(sent);
  }
});

test("MessageReader: a handler that throws costs its own message only; framing holds for the rest of the stream", () => {
  // Found by a second review: a throw in the gateway's handler of one worker message lost the rest of
  // its chunk, and every later message was read from the middle of another: delivery reports lost,
  // the worker killed as hung, everything in flight nacked WORKER_LOST.
  const w = new ByteWriter(64);
  const sent: Array<[number, string]> = [];
  for (let i = 0; i < 12; i++) {
    const start = w.beginMessage(20 + (i % 3));
    w.longString(`m${i}`);
    w.endMessage(start);
    sent.push([20 + (i % 3), `m${i}`]);
  }
  const stream = w.take();
  for (const reuse of [false, true]) {
    for (const cuts of [[], [5], [17, 40], [stream.length - 3]]) {
      const got: Array<[number, string]> = [];
      const failed: string[] = [];
      const reader = new MessageReader(
        (type, body) => {
          const text = new ByteReader(body).longString();
          if (text === "m0" || text === "m5") throw new Error(`handler fails on ${text}`);
          got.push([type, text]);
        },
        reuse,
        (e) => failed.push(String((e as Error).message)),
      );
      let from = 0;
      for (const at of [...cuts, stream.length]) {
        reader.push(Buffer.from(stream.subarray(from, at)));
        from = at;
      }
      expect(failed).toEqual(["handler fails on m0", "handler fails on m5"]);
      expect(got).toEqual(sent.filter(([, text]) => text !== "m0" && text !== "m5"));
    }
  }
});

test("string tables: a remembered hit never outlives its entry (rollback, clear) and never answers for another value", () => {
  const t = new InternTable(8);
  const a = t.add("ce_type", "a");
  expect(t.knownAt(2, "ce_type", "a")).toBe(a);
  expect(t.knownAt(2, "ce_type", "a")).toBe(a);
  // Same value under another name, another value at the same position: not the remembered id.
  expect(t.knownAt(2, "ce_source", "a")).toBe(-1);
  expect(t.knownAt(2, "ce_type", "b")).toBe(-1);
  const mark = t.mark();
  const b = t.add("ce_type", "b");
  expect(t.knownAt(3, "ce_type", "b")).toBe(b);
  t.rollback(mark); // the record that added b was not sent: the receiver never saw b
  expect(t.knownAt(3, "ce_type", "b")).toBe(-1);
  expect(t.knownAt(2, "ce_type", "a")).toBe(a);
  t.clear(); // a new worker connection
  expect(t.knownAt(2, "ce_type", "a")).toBe(-1);
  expect(t.add("ce_type", "c")).toBe(0);
  expect(t.knownAt(2, "ce_type", "c")).toBe(0);
});

test("DELIVERY_PART carries only the errors of its own records, indexed afresh; DELIVERY every record's", async () => {
  const { Pending } = await import("../../src/kafka/worker/pending");
  const { IpcType } = await import("../../src/kafka/wire/ipc");
  const p = new Pending();
  p.open(7, 4);
  const fail = (i: number, code: number) => {
    p.partitions[i] = -1;
    p.offsets[i] = -1;
    p.errorIndex[i] = p.addError({ code, name: `E${code}`, message: "m", retriable: false });
    return p.settled(i);
  };
  const read = (w: ByteWriter) => {
    const r = new ByteReader(w.take());
    const len = r.u32();
    const type = r.u8();
    const batch = r.u32();
    const count = r.u32();
    const rows: Array<{ index: number; errorIndex: number }> = [];
    for (let k = 0; k < count; k++) {
      const index = type === IpcType.DELIVERY_PART ? r.u32() : k;
      r.i32();
      r.f64();
      rows.push({ index, errorIndex: r.i32() });
    }
    const errors = JSON.parse(r.buf.toString("utf8", r.pos + 4, r.pos + 4 + r.u32())) as Array<{ code: number }>;
    return { len, type, batch, rows, codes: rows.map((row) => (row.errorIndex < 0 ? null : errors[row.errorIndex]!.code)), errorCount: errors.length };
  };
  fail(2, 11);
  p.partitions[0] = 1;
  p.offsets[0] = 5;
  p.settled(0);
  const w1 = new ByteWriter(64);
  p.writeDeliveryPart(w1);
  expect(read(w1)).toMatchObject({ type: IpcType.DELIVERY_PART, batch: 7, codes: [11, null], errorCount: 1 });
  fail(1, 22);
  const w2 = new ByteWriter(64);
  p.writeDeliveryPart(w2);
  // Only the new record's error, at index 0: not the batch's first error again.
  expect(read(w2)).toMatchObject({ type: IpcType.DELIVERY_PART, codes: [22], errorCount: 1 });
  expect(fail(3, 33)).toBe(true);
  const w3 = new ByteWriter(64);
  p.writeDelivery(w3);
  expect(read(w3)).toMatchObject({ type: IpcType.DELIVERY, codes: [null, 22, 11, 33], errorCount: 3 });
});

test("records failing alike share one error in DELIVERY and DELIVERY_PART: a broker outage sent one copy per record", async () => {
  const { Pending } = await import("../../src/kafka/worker/pending");
  const p = new Pending();
  p.open(9, 6);
  const fail = (i: number, code: number, unpartitioned?: true) => {
    p.partitions[i] = -1;
    p.offsets[i] = -1;
    p.errorIndex[i] = p.addError({ code, name: `E${code}`, message: "m", retriable: false, ...(unpartitioned ? { unpartitioned } : {}) });
    return p.settled(i);
  };
  const errorsOf = (w: ByteWriter, rowBytes: number) => {
    const r = new ByteReader(w.take());
    r.u32();
    r.u8();
    r.u32();
    const count = r.u32();
    r.pos += count * rowBytes;
    return JSON.parse(r.buf.toString("utf8", r.pos + 4, r.pos + 4 + r.u32())) as Array<{ code: number; unpartitioned?: true }>;
  };
  fail(0, -192);
  fail(1, -192);
  fail(2, -192);
  const part = new ByteWriter(64);
  p.writeDeliveryPart(part);
  expect(errorsOf(part, 20)).toEqual([expect.objectContaining({ code: -192 })]);
  fail(3, -192, true); // the same code, told apart by what it says
  fail(4, -192, true);
  fail(5, -192);
  const all = new ByteWriter(64);
  p.writeDelivery(all);
  expect(errorsOf(all, 16).map((e) => [e.code, e.unpartitioned ?? false])).toEqual([
    [-192, false],
    [-192, true],
    [-192, false],
  ]);
});
