import { RepeatedNames } from "../../src/bytes/repeated-names";
import { expect, test } from "bun:test";
import fc from "fast-check";
import { Packr, Unpackr } from "msgpackr";
import { ByteReader, ByteWriter } from "../../src/kafka/wire/ipc";
import { type ConsumedMessage, type RecordSource, encodeRecord, encodeSourceRecord, readRecords } from "../../src/kafka/wire/records-layout";
import type { ConsumedRecord } from "../../src/log/event-log";
import { createMetrics } from "../../src/observability/metrics";
import { MAX_HEADER_NAMES } from "../../src/log/event-log";
import { DecodedRecord } from "../../src/subscribe/decoded-record";
import { compileFilter } from "../../src/subscribe/filter";
import type { QueuedFrame, SubscriberSocket } from "../../src/subscribe/queued-frame";
import { QueueLimits, Subscription } from "../../src/subscribe/subscription";
import { mapKey, plainValue } from "./arbitraries";

// Whatever a Kafka record holds (it may come from any producer), every subscriber gets an entry for
// it at its offset, whole or in a documented degraded form (docs/protocol.md, "Events that cannot be
// encoded"), in both codecs, and the records around it are unaffected.

const metrics = createMetrics();
// Maps as Map, so that a "__proto__" key comes back as it was sent (objects would rename it).
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: "bigint" });
const producerPackr = new Packr({ useRecords: false, variableMapSize: true });

function subscriber(codec: "msgpack" | "json") {
  const frames: Array<Uint8Array | string> = [];
  const socket: SubscriberSocket = {
    queuedEventBytes: 0,
    frame: (f: QueuedFrame) => void frames.push(f.data),
    discard() {},
    reply() {},
    flushAll() {},
    backlogged: () => false,
    close() {},
  };
  const sub = new Subscription("s", ["t"], compileFilter({}), "drop-oldest", codec, socket, new QueueLimits(1 << 30, 1 << 30, 1 << 30, 1 << 30), metrics, new Map([["t", [0]]]), () => undefined);
  return { sub, frames };
}

/** Frames back to entries, maps as Maps (msgpack) or plain objects (JSON.parse keeps "__proto__" own). */
function entries(frames: Array<Uint8Array | string>): Array<Map<string, unknown>> {
  const out: Array<Map<string, unknown>> = [];
  for (const raw of frames) {
    const f = typeof raw === "string" ? toMap(JSON.parse(raw)) : (unpackr.unpack(raw) as Map<string, unknown>);
    if (f.get("t") === 24) out.push(f);
    else for (const e of f.get("events") as Array<Map<string, unknown>>) out.push(e);
  }
  return out;
}
function toMap(v: unknown): any {
  if (Array.isArray(v)) return v.map(toMap);
  if (typeof v === "object" && v !== null) return new Map(Object.entries(v).map(([k, x]) => [k, toMap(x)]));
  return v;
}

const CE = new Set(["ce_id", "ce_source", "ce_type", "ce_subject", "content-type", "ce_time", "ce_specversion"]);
const headerName = fc.oneof(mapKey, fc.constantFrom("__proto__", "ce_type", "ce_id", "content-type", "ce_specversion"), fc.string({ unit: "binary", maxLength: 6 }));
const bigMap = Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [i.toString(36), i]));
const bigJson = { ct: "application/json", value: Buffer.from(JSON.stringify(bigMap)) };
const bigMsgpack = { ct: "application/msgpack", value: Buffer.from(producerPackr.pack(bigMap)) };
const many = Array.from({ length: 70_000 }, (_, i): [string, Buffer] => [`h${i}`, Buffer.from(String(i))]);
const payload = fc.oneof(
  { weight: 4, arbitrary: plainValue({ bytes: false, dates: false }).map((v) => ({ ct: "application/json", value: Buffer.from(JSON.stringify(v) ?? "null") })) },
  { weight: 4, arbitrary: plainValue({ bytes: true, dates: true }).map((v) => ({ ct: "application/msgpack", value: Buffer.from(producerPackr.pack(v)) })) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom("application/json", "application/msgpack", "text/plain", undefined), fc.uint8Array({ maxLength: 40 })).map(([ct, b]) => ({ ct, value: Buffer.from(b) })) },
  { weight: 1, arbitrary: fc.constantFrom(bigJson, bigMsgpack) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 100_000 }).map((n) => ({ ct: "application/json", value: Buffer.from("[".repeat(n) + "]".repeat(n)) })) },
  { weight: 1, arbitrary: fc.constant({ ct: undefined, value: null }) },
);
const record = fc.record({
  payload,
  headers: fc.array(fc.tuple(headerName, fc.uint8Array({ maxLength: 12 })), { maxLength: 8 }),
  manyHeaders: fc.oneof({ weight: 19, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  key: fc.option(fc.uint8Array({ maxLength: 8 }), { nil: null }),
});

type StoredRecord = typeof record extends fc.Arbitrary<infer T> ? T : never;

function toConsumed(r: StoredRecord, offset: number): ConsumedRecord {
  const headers: Array<[string, Uint8Array]> = r.headers.map(([n, v]): [string, Uint8Array] => [n, Buffer.from(v)]);
  if (r.payload.ct) headers.push(["content-type", Buffer.from(r.payload.ct)]);
  if (r.manyHeaders) headers.push(...many);
  return { topic: "t", partition: 0, offset, timestamp: 1_764_000_000_000, key: r.key && Buffer.from(r.key), value: r.payload.value, headers };
}

const sorted = (m: Map<string, string>) => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

const strict = new TextDecoder("utf-8", { fatal: true });
/** A key or header value as a subscriber should get it: its text when it is UTF-8, else its bytes (`b:` base64). */
function expectedValue(v: Uint8Array): string {
  try {
    return `t:${strict.decode(v)}`;
  } catch {
    return `b:${Buffer.from(v).toString("base64")}`;
  }
}
/** A delivered key or header value, in the same notation. */
const gotValue = (v: unknown) => (typeof v === "string" ? `t:${v}` : `b:${Buffer.from(v as Uint8Array).toString("base64")}`);

/** The headers a subscriber should see: not the CloudEvents ones, last value wins, in first-seen order. */
function expectedHeaders(rec: ConsumedRecord): Map<string, string> {
  const m = new Map<string, string>();
  for (const [n, v] of rec.headers) if (!CE.has(n)) m.set(n, expectedValue(v));
  return m;
}

/** The headers delivered: text and bytes in `headers`, or for JSON the bytes in `headers_base64`. */
function deliveredHeaders(ev: Map<string, unknown>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [n, v] of (ev.get("headers") as Map<string, unknown> | undefined) ?? []) m.set(n, gotValue(v));
  for (const [n, v] of (ev.get("headers_base64") as Map<string, string> | undefined) ?? []) m.set(n, `b:${v}`);
  return m;
}

test("every stored record reaches subscribers of both codecs, whole or degraded as documented, batched with ordinary ones", () => {
  fc.assert(
    fc.property(fc.array(record, { minLength: 1, maxLength: 4 }), (rs) => {
      const consumed = rs.map((r, i) => toConsumed(r, i));
      for (const codec of ["msgpack", "json"] as const) {
        const { sub, frames } = subscriber(codec);
        for (const c of consumed) sub.collect(new DecodedRecord(c));
        sub.endBatch();
        const got = entries(frames);
        expect(got.map((e) => e.get("offset"))).toEqual(consumed.map((_, i) => i));
        got.forEach((e, i) => {
          const rec = consumed[i]!;
          const ev = e.get("event") as Map<string, unknown>;
          const degraded = e.get("degraded") as string | undefined;
          expect([undefined, "data", "headers", "event"]).toContain(degraded);
          if (degraded !== undefined) expect(typeof e.get("reason")).toBe("string");
          // Header order is not kept (integer-like names come first), so compared as sets.
          const want = expectedHeaders(rec);
          const headers = deliveredHeaders(ev);
          if (degraded !== "event") {
            if (rec.key === null) expect(ev.has("key") || ev.has("key_base64")).toBe(false);
            else expect(ev.has("key_base64") ? `b:${ev.get("key_base64")}` : gotValue(ev.get("key"))).toBe(expectedValue(rec.key));
          }
          if (degraded === undefined || degraded === "data") expect(sorted(headers)).toEqual(sorted(want));
          else if (degraded === "headers") {
            expect(headers.size).toBe(MAX_HEADER_NAMES);
            for (const [n, v] of headers) expect(want.get(n)).toBe(v);
          }
          // Only what msgpack cannot carry is degraded: a JSON subscriber gets whole what it can.
          // (or a record with more headers than the degraded form keeps, whose decode stops there).
          if (codec === "json") expect(degraded).toBe(want.size > MAX_HEADER_NAMES ? "headers" : undefined);
          if ((degraded === "data" || degraded === "headers") && rec.value === null) expect(ev.has("data") || ev.has("data_base64")).toBe(false);
          else if (degraded === "data" || degraded === "headers") {
            const bytes = codec === "json" ? Buffer.from(ev.get("data_base64") as string, "base64") : Buffer.from(ev.get("data") as Uint8Array);
            expect(bytes.equals(rec.value!)).toBe(true);
          }
        });
      }
    }),
    { numRuns: 100 },
  );
});

test("filter.headers and where see any header name, Object.prototype's included, and nothing inherited", () => {
  fc.assert(
    fc.property(fc.constantFrom("constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf", "x"), fc.boolean(), (name, present) => {
      const headers: Array<[string, Uint8Array]> = present ? [[name, Buffer.from("v")]] : [];
      const rec = new DecodedRecord({ topic: "t", partition: 0, offset: 0, timestamp: 0, key: null, value: null, headers });
      expect(compileFilter({ headers: { [name]: "v" } }).matches(rec)).toBe(present);
      expect(compileFilter({ where: `headers.${name} == "v"` }).matches(rec)).toBe(present);
      expect(compileFilter({ where: `exists(headers.${name})` }).matches(rec)).toBe(present);
    }),
    { numRuns: 50 },
  );
});

// ---- RECORDS (layout in src/kafka/wire/ipc.ts): what the worker's consumer reads reaches the gateway exactly ----

/** A header object as the Kafka binding makes it: by assignment, so "__proto__" sets the prototype. */
function bindingHeader(name: string, value: Buffer): Record<string, Buffer> {
  const o: Record<string, Buffer> = {};
  o[name] = value;
  return o;
}

const message = fc.record({
  topic: fc.stringMatching(/^[a-zA-Z0-9._-]{1,249}$/),
  partition: fc.nat(1000),
  offset: fc.nat(),
  timestamp: fc.integer({ min: -1, max: 2 ** 45 }),
  key: fc.option(fc.oneof(fc.uint8Array({ maxLength: 10 }).map((b) => Buffer.from(b)), fc.string({ maxLength: 10 })), { nil: null }),
  value: fc.option(fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), { nil: null }),
  headers: fc.array(fc.tuple(fc.oneof(headerName, fc.constant("__proto__"), fc.string({ unit: "grapheme", maxLength: 20 })), fc.uint8Array({ maxLength: 10 })), { maxLength: 6 }),
  many: fc.oneof({ weight: 19, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(65_536, 70_000) }),
  longName: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 65_536, max: 100_000 }) }),
});

test("RECORDS: every consumed record, with any header names, counts and lengths, round-trips exactly", () => {
  // One reader's names across every case, as the gateway keeps them (RepeatedNames): a name kept from
  // an earlier message must never stand in for different bytes.
  const names = new RepeatedNames();
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 5 }), (ms) => {
      const w = new ByteWriter(1024);
      w.u32(ms.length);
      const want: ConsumedRecord[] = [];
      for (const m of ms) {
        const pairs: Array<[string, Buffer]> = m.headers.map(([n, v]) => [n, Buffer.from(v)]);
        for (let i = 0; i < m.many; i++) pairs.push([`h${i}`, Buffer.from("v")]);
        if (m.longName) pairs.push(["n".repeat(m.longName), Buffer.from("long")]);
        const msg: ConsumedMessage = { ...m, headers: pairs.map(([n, v]) => bindingHeader(n, v)) };
        encodeRecord(w, msg, msg.headers!);
        want.push({
          topic: m.topic,
          partition: m.partition,
          offset: m.offset,
          timestamp: m.timestamp,
          key: m.key === null ? null : Buffer.from(m.key),
          value: m.value,
          headers: pairs,
        });
      }
      const body = w.take();
      const r = new ByteReader(body);
      const got = readRecords(r, names);
      expect(r.pos).toBe(body.length);
      expect(got.length).toBe(want.length);
      got.forEach((g, i) => {
        const e = want[i]!;
        expect({ ...g, headers: g.headers.length }).toEqual({ ...e, headers: e.headers.length });
        for (let h = 0; h < e.headers.length; h++) {
          if (g.headers[h]![0] !== e.headers[h]![0] || !Buffer.from(g.headers[h]![1]).equals(e.headers[h]![1])) {
            throw new Error(`header ${h} differs: ${g.headers[h]![0].slice(0, 40)} vs ${e.headers[h]![0].slice(0, 40)}`);
          }
        }
      });
    }),
    { numRuns: 100 },
  );
});

/** Records in arrays, read through the RecordSource interface the Bun worker's MessageBatch implements. */
function arraySource(records: ConsumedRecord[]): RecordSource {
  let current: Array<[string, Uint8Array]> = [];
  let name = Buffer.alloc(0);
  let value: Uint8Array = new Uint8Array(0);
  return {
    topic: (i) => records[i]!.topic,
    partition: (i) => records[i]!.partition,
    offset: (i) => records[i]!.offset,
    timestamp: (i) => records[i]!.timestamp,
    keyLen: (i) => records[i]!.key?.length ?? -1,
    valueLen: (i) => records[i]!.value?.length ?? -1,
    copyKey: (i, dst, at) => dst.set(records[i]!.key!, at),
    copyValue: (i, dst, at) => dst.set(records[i]!.value!, at),
    headerCount(i) {
      current = records[i]!.headers;
      return current.length;
    },
    header(h) {
      name = Buffer.from(current[h]![0]);
      value = current[h]![1];
    },
    headerNameLen: () => name.length,
    get headerValueLen() {
      return value.length;
    },
    copyHeaderName: (dst, at) => dst.set(name, at),
    copyHeaderValue: (dst, at) => dst.set(value, at),
  };
}

test("RECORDS for a reader with onlyHeaders: null key and value, exactly the headers of those names in their order, nothing else", () => {
  const wanted = ["ce_id", "ce_source"];
  const only = wanted.map((n) => Buffer.from(n));
  const names = new RepeatedNames();
  const headerOf = fc.tuple(fc.oneof(fc.constantFrom("ce_id", "ce_source", "ce_idx", "ce_i", "ce_type"), headerName), fc.uint8Array({ maxLength: 10 }).map((b) => Buffer.from(b)));
  const rec = fc.record({
    topic: fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/),
    partition: fc.nat(100),
    offset: fc.nat(),
    timestamp: fc.nat(2 ** 45),
    key: fc.option(fc.uint8Array({ maxLength: 10 }).map((b) => Buffer.from(b)), { nil: null }),
    value: fc.option(fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), { nil: null }),
    headers: fc.array(headerOf, { maxLength: 8 }),
  });
  fc.assert(
    fc.property(fc.array(rec, { minLength: 1, maxLength: 5 }), (records) => {
      const consumed = records as ConsumedRecord[];
      const src = arraySource(consumed);
      for (const which of [only, null]) {
        const w = new ByteWriter(16);
        w.u32(consumed.length);
        consumed.forEach((_, i) => encodeSourceRecord(w, src, i, true, which));
        const body = w.take();
        const r = new ByteReader(body);
        const got = readRecords(r, names);
        expect(r.pos).toBe(body.length);
        got.forEach((g, i) => {
          const e = consumed[i]!;
          const headers = which ? e.headers.filter(([n]) => wanted.includes(n)) : e.headers;
          expect({ ...g, headers: g.headers.map(([n, v]) => [n, Buffer.from(v).toString("hex")]) }).toEqual({
            ...e,
            key: which ? null : e.key,
            value: which ? null : e.value,
            headers: headers.map(([n, v]) => [n, Buffer.from(v).toString("hex")]),
          });
        });
      }
    }),
    { numRuns: 300 },
  );
});

test("a JSON payload that is not UTF-8 is delivered as its bytes, not with its bad bytes replaced", () => {
  // Another producer's record: content-type JSON, a string holding the byte 0xff (RFC 8259 text is UTF-8).
  const value = Buffer.concat([Buffer.from('{"x":"'), Buffer.from([0xff]), Buffer.from('"}')]);
  const rec = new DecodedRecord({ topic: "t", partition: 0, offset: 0, timestamp: 0, key: null, value, headers: [["content-type", Buffer.from("application/json")]] });
  expect(rec.data).toBeInstanceOf(Uint8Array);
  expect(Buffer.from(rec.data as Uint8Array).equals(value)).toBe(true);
  // Its valid neighbour is still parsed.
  const ok = new DecodedRecord({ topic: "t", partition: 0, offset: 1, timestamp: 0, key: null, value: Buffer.from('{"x":"é"}'), headers: [["content-type", Buffer.from("application/json")]] });
  expect(ok.data).toEqual({ x: "é" });
});

test("a msgpack payload a client's frame could not be is delivered as its bytes, not as what msgpackr makes of it", () => {
  const msgpack = (value: Uint8Array) => new DecodedRecord({ topic: "t", partition: 0, offset: 0, timestamp: 0, key: null, value, headers: [["content-type", Buffer.from("application/msgpack")]] });
  const nested = (depth: number) => Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]);
  for (const bad of [
    Buffer.from([0xc1]), // msgpackr read it as {"name":"MessagePack 0xC1"}
    Buffer.from([0x81, 0xa1, 0x78, 0xc1]),
    Buffer.from([0xd4, 0x05, 0x00]), // ext type 5
    Buffer.from([0xa1, 0xff]), // a string that is not UTF-8
    Buffer.from([0x01, 0x02]), // trailing bytes
    nested(300),
  ]) {
    const rec = msgpack(bad);
    expect(rec.data).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(rec.data as Uint8Array).equals(bad)).toBe(true);
  }
  // What a client's frame may hold is still decoded: a timestamp, __proto__ as a key, 256 levels.
  expect(msgpack(Buffer.from([0x81, 0xa9, ...Buffer.from("__proto__"), 0x01])).data).toEqual(JSON.parse('{"__proto__":1}'));
  expect(msgpack(Buffer.from([0xd6, 0xff, 0, 0, 0, 1])).data).toEqual(new Date(1000));
  expect(msgpack(nested(255)).data).toBeInstanceOf(Array);
  // Another producer's NaN and Infinity: its bytes, which go degraded (JSON cannot carry them; test/subscribe/foreign-payloads).
  const nonFinite = Buffer.from([0x92, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0xca, 0xff, 0x80, 0, 0]);
  expect(Buffer.from(msgpack(nonFinite).data as Uint8Array).equals(nonFinite)).toBe(true);
});
