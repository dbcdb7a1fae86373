import { expect, test } from "bun:test";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { canonical, damage, plainValue } from "./arbitraries";
import { encodeEntry } from "../../src/protocol/event-frames";
import { ownKeysUnpacker } from "../../src/protocol/own-keys";
import { INT64_AUTO } from "../../src/protocol/integers";
import { DecodedRecord, payloadLimits } from "../../src/subscribe/decoded-record";

/**
 * A msgpack payload's own bytes are spliced into msgpack entries as their `data`
 * (DecodedRecord.msgpackEntry) instead of its decoded value packed again. The shortcut must deliver
 * what the schema says: a subscriber's decoder (the SDK's options) reads from the entry the value it
 * read from the entry encoded whole, for payloads any msgpack writer may have written, and for any
 * bytes at all (damaged, hostile, not msgpack) the entry is exactly the one encoded whole.
 */
const limits = payloadLimits(65_536);
const record = (value: Uint8Array, extra: Array<[string, string]> = [], type = "application/msgpack") =>
  new DecodedRecord(
    {
      topic: "t",
      partition: 2,
      offset: 7,
      timestamp: 1_700_000_000_000,
      key: Buffer.from("k"),
      value,
      headers: ([["ce_type", "x.y"], ["content-type", type], ...extra] as Array<[string, string]>).map(([n, v]) => [n, Buffer.from(v)] as [string, Uint8Array]),
    },
    limits,
  );

/** The entry as encoded before the shortcut: the envelope, data decoded, encoded whole, or its degraded form. */
function whole(r: DecodedRecord): Uint8Array {
  const at = { topic: r.record.topic, partition: r.record.partition, offset: r.record.offset };
  try {
    return encodeEntry({ ...at, event: r.event("msgpack") }, "msgpack") as Uint8Array;
  } catch {
    return encodeEntry({ ...at, ...r.deliverable("msgpack") }, "msgpack") as Uint8Array;
  }
}

// What the SDK decodes frames with (src/client/wire.ts).
const decode = ownKeysUnpacker({ useRecords: false, ...INT64_AUTO });
/** -0 as 0: packed again, a -0 was written as the integer 0; passed through, it keeps its sign (the one difference). */
const unsigned = (v: unknown): unknown =>
  Object.is(v, -0) ? 0 : Array.isArray(v) ? v.map(unsigned) : v && typeof v === "object" && !(v instanceof Uint8Array) && !(v instanceof Date) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unsigned(x)])) : v;
const same = (a: Uint8Array, b: Uint8Array) => expect(canonical(unsigned(decode(a)))).toEqual(canonical(unsigned(decode(b))));
const writers = [
  new Packr({ useRecords: false }),
  new Packr({ useRecords: false, variableMapSize: true }),
  new Packr({ useRecords: false, useFloat32: 1 }), // every float as a float32
];
const value = plainValue({ bytes: true, dates: true, maxDepth: 4 });
const headers = fc.array(fc.tuple(fc.constantFrom("a", "ce_id", "ce_subject", "x-1"), fc.string({ maxLength: 6 })), { maxLength: 3 });

test("payloads msgpack writers wrote: a subscriber decodes from the entry what it decoded from the entry encoded whole", () => {
  fc.assert(
    fc.property(value, fc.nat(writers.length - 1), headers, (v, w, extra) => {
      const bytes = writers[w]!.pack(v);
      const spliced = record(bytes, extra).entry("msgpack") as Uint8Array;
      same(spliced, whole(record(bytes, extra)));
    }),
    { numRuns: 3000 },
  );
});

test("the payload's bytes are the entry's last bytes, as written: integers keep their width, -0 its sign", () => {
  for (const bytes of [
    Uint8Array.of(0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0), // float64 -0
    Uint8Array.of(0xd3, 0, 0, 0, 0, 0, 0, 0, 1), // int64 1
    Uint8Array.of(0x81, 0x01, 0xa1, 0x61), // {1: "a"}: an integer key
    Uint8Array.of(0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02), // {a: 1, a: 2}: a decoder keeps the last
  ]) {
    const e = record(bytes).entry("msgpack") as Uint8Array;
    expect(Buffer.from(e.subarray(e.length - bytes.length)).equals(Buffer.from(bytes))).toBe(true);
    same(e, whole(record(bytes)));
  }
  const negativeZero = decode(record(Uint8Array.of(0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0)).entry("msgpack") as Uint8Array) as { event: { data: number } };
  expect(Object.is(negativeZero.event.data, -0)).toBe(true);
});

test("any bytes (damaged, hostile, not msgpack) that are not passed through: the entry is exactly the one encoded whole", () => {
  const hostile = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.tuple(value, damage).map(([v, d]) => {
      let b = Array.from(new Packr({ useRecords: false }).pack(v));
      for (const { kind, at, byte } of d) {
        const i = b.length === 0 ? 0 : at % b.length;
        if (kind === "set" && b.length) b[i] = byte;
        else if (kind === "insert") b.splice(i, 0, byte);
        else if (kind === "delete") b.splice(i, 1);
        else b = b.slice(0, i);
      }
      return Uint8Array.from(b);
    }),
  );
  fc.assert(
    fc.property(hostile, (bytes) => {
      const r = record(bytes);
      const entry = r.entry("msgpack") as Uint8Array;
      const before = whole(record(bytes));
      // Passed through only when it decodes to what the whole entry carries; otherwise byte for byte the old entry.
      if (Buffer.from(entry).equals(Buffer.from(before))) return;
      same(entry, before);
      expect(Buffer.from(entry.subarray(entry.length - bytes.length)).equals(Buffer.from(bytes))).toBe(true);
    }),
    { numRuns: 5000 },
  );
  // What the scan refuses goes whole or degraded, as before: an ext type, NaN, invalid UTF-8, "__proto__", trailing bytes.
  for (const bytes of [Uint8Array.of(0xd4, 0x65, 0), Uint8Array.of(0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), Uint8Array.of(0xa1, 0xff), Uint8Array.of(0x81, 0xa9, ...Buffer.from("__proto__"), 1), Uint8Array.of(0x01, 0x02)]) {
    expect(Buffer.from(record(bytes).entry("msgpack") as Uint8Array).equals(Buffer.from(whole(record(bytes))))).toBe(true);
  }
});

test("payloads of another content type are not passed through", () => {
  const bytes = new Packr({ useRecords: false }).pack({ a: 1 });
  for (const type of ["application/octet-stream", "application/json", "text/plain"]) {
    expect(Buffer.from(record(bytes, [], type).entry("msgpack") as Uint8Array).equals(Buffer.from(whole(record(bytes, [], type))))).toBe(true);
  }
});
