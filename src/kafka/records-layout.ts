/**
 * The RECORDS layout (./ipc.ts), both halves: the worker encodes what its consumer read, the gateway
 * decodes it. Kept apart from the worker's Kafka code so both sides (and the tests) share one definition.
 */
import type { ConsumedRecord } from "../log/event-log";
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
  for (const h of headers) {
    const [name, v] = headerOf(h);
    w.longString(name);
    const bytes = typeof v === "string" ? Buffer.from(v) : v;
    w.u32(bytes.byteLength);
    w.bytes(bytes);
  }
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

/** The records of one RECORDS message (layout in ./ipc.ts), copied out of the message body. */
export function readRecords(r: ByteReader): ConsumedRecord[] {
  const count = r.u32();
  const records: ConsumedRecord[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const topic = r.shortString();
    const partition = r.i32();
    const offset = r.f64();
    const timestamp = r.f64();
    const key = r.nullableSlice();
    const value = r.nullableSlice();
    const headerCount = r.u32();
    if (headerCount > r.buf.length - r.pos) throw new RangeError(`${headerCount} headers cannot fit in the rest of the message`);
    const headers: ConsumedRecord["headers"] = new Array(headerCount);
    for (let h = 0; h < headerCount; h++) headers[h] = [r.longString(), Buffer.from(r.slice(r.u32()))];
    records[i] = { topic, partition, offset, timestamp, key: key && Buffer.from(key), value: value && Buffer.from(value), headers };
  }
  return records;
}
