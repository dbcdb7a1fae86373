/**
 * The RECORDS layout (./ipc.ts), both halves: the worker encodes what its consumer read, the gateway
 * decodes it. Kept apart from the worker's Kafka code so both sides (and the tests) share one definition.
 */
import { type ConsumedRecord, ENVELOPE_HEADER_NAMES, MAX_HEADER_NAMES } from "../../log/event-log";
import { RepeatedNames } from "../../bytes/repeated-names";
import type { ByteReader, ByteWriter } from "./ipc";

/** A message as the Kafka binding hands it to a consumer. */
export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  timestamp?: number;
  key?: Buffer | string | null;
  value: Buffer | null;
  headers?: Array<Record<string, Buffer | string>>;
}

/** One consumed record, in the RECORDS layout (./ipc.ts). */
export function encodeRecord(w: ByteWriter, m: ConsumedMessage, headers: Array<Record<string, Buffer | string>>): void {
  // Kafka caps topic names at 249 characters; checked anyway, before writing.
  if (Buffer.byteLength(m.topic) > 0xffff) throw new RangeError("topic name too long");
  w.shortString(m.topic);
  w.i32(m.partition);
  w.f64(m.offset);
  w.f64(m.timestamp ?? 0);
  w.nullableBytes(m.key == null ? null : typeof m.key === "string" ? Buffer.from(m.key) : m.key);
  w.nullableBytes(m.value);
  w.u32(headers.length);
  w.u32(0); // none left out
  for (const h of headers) {
    const [name, v] = headerOf(h);
    w.longString(name);
    const bytes = typeof v === "string" ? Buffer.from(v) : v;
    w.u32(bytes.byteLength);
    w.bytes(bytes);
  }
}

/**
 * A batch of consumed records read in place (the Bun worker's MessageBatch over librdkafka's
 * memory): each key, value and header is copied once, straight into the message being written.
 * headerCount(i) selects record i for header(h), which loads one header for the three accessors after it.
 */
export interface RecordSource {
  topic(i: number): string;
  partition(i: number): number;
  offset(i: number): number;
  timestamp(i: number): number;
  /** -1 for null. */
  keyLen(i: number): number;
  valueLen(i: number): number;
  copyKey(i: number, dst: Uint8Array, at: number): void;
  copyValue(i: number, dst: Uint8Array, at: number): void;
  headerCount(i: number): number;
  header(h: number): void;
  headerNameLen(): number;
  /** -1 for a null value (written as empty, as the Node binding hands it on). */
  readonly headerValueLen: number;
  copyHeaderName(dst: Uint8Array, at: number): void;
  copyHeaderValue(dst: Uint8Array, at: number): void;
}

/**
 * Headers of one record the worker copies to the gateway as they are. Another producer's record of
 * 70,000 headers was copied whole, and each header turned into a string and a byte array on the
 * gateway's event loop (~70 ms a record), where the delivery then read only its first 1,000 names
 * (MAX_HEADER_NAMES): five such records held other clients up to 823 ms (outside tester). A record
 * with more headers is read here as the gateway reads it: the envelope's headers (ce_type, …) and
 * its first MAX_HEADER_NAMES other names, each once with its last value, in the order they first
 * appear; the headers of the names past those are counted, not carried.
 */
export const MAX_CARRIED_HEADERS = 1024;

/**
 * Record `i` of `src`, in the same layout as encodeRecord; `withHeaders` false writes none (degraded
 * delivery). With `only`, the key and value are written null and only the headers of those names
 * (ReaderOptions.onlyHeaders).
 */
export function encodeSourceRecord(w: ByteWriter, src: RecordSource, i: number, withHeaders: boolean, only: readonly Uint8Array[] | null = null): void {
  const topic = src.topic(i);
  if (Buffer.byteLength(topic) > 0xffff) throw new RangeError("topic name too long");
  w.shortString(topic);
  w.i32(src.partition(i));
  w.f64(src.offset(i));
  w.f64(src.timestamp(i));
  const keyLen = only ? -1 : src.keyLen(i);
  w.ensure(4 + Math.max(0, keyLen));
  w.i32(keyLen);
  if (keyLen > 0) src.copyKey(i, w.buf, w.pos);
  w.pos += Math.max(0, keyLen);
  const valueLen = only ? -1 : src.valueLen(i);
  w.ensure(4 + Math.max(0, valueLen));
  w.i32(valueLen);
  if (valueLen > 0) src.copyValue(i, w.buf, w.pos);
  w.pos += Math.max(0, valueLen);
  const count = withHeaders ? src.headerCount(i) : 0;
  if (count > MAX_CARRIED_HEADERS && !only) return encodeManyHeaders(w, src, count);
  const countAt = w.pos;
  w.u32(count);
  w.u32(0);
  let written = 0;
  for (let h = 0; h < count; h++) {
    src.header(h);
    const headerAt = w.pos;
    writeHeaderName(w, src);
    if (only && !only.some((name) => sameBytes(name, w.buf, headerAt + 4, w.pos - headerAt - 4))) {
      w.pos = headerAt; // not wanted: the name written to compare is taken back
      continue;
    }
    written++;
    writeHeaderValue(w, src);
  }
  if (written !== count) w.buf.writeUInt32LE(written, countAt);
}

/** The headers part of a record with more than MAX_CARRIED_HEADERS (see there); header(h) of src's record selected. */
function encodeManyHeaders(w: ByteWriter, src: RecordSource, inRecord: number): void {
  // Each name's last header, in the order names first appear (a Map keeps the first insertion's place).
  const last = new Map<string, number>();
  let names = 0;
  let leftOut = 0;
  let scratch = Buffer.allocUnsafe(256);
  for (let h = 0; h < inRecord; h++) {
    src.header(h);
    const nameLen = src.headerNameLen();
    if (nameLen > scratch.length) scratch = Buffer.allocUnsafe(nameLen);
    src.copyHeaderName(scratch, 0);
    const name = scratch.toString("latin1", 0, nameLen); // the bytes one to one: a key, not text
    if (last.has(name) || ENVELOPE_HEADER_NAMES.has(name)) last.set(name, h);
    else if (names < MAX_HEADER_NAMES) {
      names++;
      last.set(name, h);
    } else leftOut++;
  }
  w.u32(last.size);
  w.u32(leftOut);
  for (const h of last.values()) {
    src.header(h);
    writeHeaderName(w, src);
    writeHeaderValue(w, src);
  }
}

/** The selected header's name (u32 length, bytes), with room made for its value's too. */
function writeHeaderName(w: ByteWriter, src: RecordSource): void {
  const nameLen = src.headerNameLen();
  w.ensure(8 + nameLen + Math.max(0, src.headerValueLen));
  w.u32(nameLen);
  src.copyHeaderName(w.buf, w.pos);
  w.pos += nameLen;
}

/** The selected header's value (u32 length, bytes), after writeHeaderName made room for it. */
function writeHeaderValue(w: ByteWriter, src: RecordSource): void {
  const len = Math.max(0, src.headerValueLen);
  w.u32(len);
  if (len > 0) src.copyHeaderValue(w.buf, w.pos);
  w.pos += len;
}

function sameBytes(a: Uint8Array, buf: Uint8Array, at: number, len: number): boolean {
  if (a.length !== len) return false;
  for (let i = 0; i < len; i++) if (buf[at + i] !== a[i]) return false;
  return true;
}

/**
 * The binding gives each header as a one-key object built by assignment, so a header named
 * "__proto__" does not become a property: it becomes the object's prototype (its value, a Buffer).
 * Own keys only; nothing inherited is ever read as a header.
 */
function headerOf(h: Record<string, Buffer | string>): [string, Buffer | string] {
  const names = Object.keys(h);
  if (names.length === 1) return [names[0]!, h[names[0]!]!];
  const proto: unknown = Object.getPrototypeOf(h);
  if (names.length === 0 && proto instanceof Uint8Array) return ["__proto__", Buffer.from(proto.buffer, proto.byteOffset, proto.byteLength)];
  throw new RangeError(`a header object with ${names.length} names`);
}

/**
 * The records of one RECORDS message (layout in ./ipc.ts), each key, value and header value copied
 * out of the message body on its own (so a record kept keeps only its own bytes alive). Copied with
 * Uint8Array's slice from a plain view of the body: a Buffer's subarray then Buffer.from cost 1.4x
 * as much per record of five headers (bench/RESULTS.md, "Records read from the workers"). One copy
 * of the whole record with views into it was slower still: a view needs the copy's ArrayBuffer,
 * which JSC makes only when asked.
 *
 * `owned`: the body's buffer was made for this message alone (MessageReader), so a value that is most
 * of it stays a view of it instead (field's `mayView`).
 */
export function readRecords(r: ByteReader, names = new RepeatedNames(), owned = false): ConsumedRecord[] {
  const count = r.u32();
  const records: ConsumedRecord[] = new Array(count);
  const buf = r.buf;
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i < count; i++) {
    const topicLen = r.u16();
    const topic = names.read(0, buf, r.pos, topicLen);
    r.pos += topicLen;
    const partition = r.i32();
    const offset = r.f64();
    const timestamp = r.f64();
    const key = field(r, bytes, false);
    const value = field(r, bytes, owned);
    const headerCount = r.u32();
    const leftOut = r.u32();
    if (headerCount > buf.length - r.pos) throw new RangeError(`${headerCount} headers cannot fit in the rest of the message`);
    const headers: ConsumedRecord["headers"] = new Array(headerCount);
    for (let h = 0; h < headerCount; h++) {
      const nameLen = r.u32();
      if (nameLen > buf.length - r.pos) throw new RangeError(`a header name of ${nameLen} bytes cannot fit in the rest of the message`);
      const name = names.read(1 + h, buf, r.pos, nameLen);
      r.pos += nameLen;
      const len = r.u32();
      headers[h] = [name, bytes.slice(r.pos, r.pos + len)];
      r.pos += len;
    }
    if (r.pos > buf.length) throw new RangeError("a record runs past the end of the message");
    records[i] = { topic, partition, offset, timestamp, key, value, headers };
    if (leftOut > 0) records[i]!.headersLeftOut = leftOut;
  }
  return records;
}

// A value of at least this many bytes and half the message's is kept as a view of the message (which
// it then keeps alive, at most twice its own size): a copy of a record of 5 MB from another producer
// was 22 ms of page faults in one turn on this machine's kind, every other client waiting.
const VIEW_MIN_BYTES = 64 * 1024;

/**
 * A length-prefixed field (-1: null), copied; with `mayView` (the message's buffer is its own), a view
 * instead when it is at least VIEW_MIN_BYTES and half the message.
 */
function field(r: ByteReader, bytes: Uint8Array, mayView: boolean): Uint8Array | null {
  const n = r.i32();
  if (n < 0) return null;
  const v = mayView && n >= VIEW_MIN_BYTES && n * 2 >= bytes.length ? bytes.subarray(r.pos, r.pos + n) : bytes.slice(r.pos, r.pos + n);
  r.pos += n;
  return v;
}
