import type { ConsumedRecord, LogRecord } from "./event-log";
import { GatewayError } from "../protocol/errors";
import { RepeatedNames } from "../bytes/repeated-names";
import { copyBytes, writeUtf8 } from "../bytes/utf8";

const CHUNK_BYTES = 1 << 20;
// A partition's first chunk: its chunks double from this to CHUNK_BYTES, so a partition holding one
// small record costs (and is charged, against EMBEDDED_RETENTION_BYTES) kilobytes, not a megabyte.
const FIRST_CHUNK_BYTES = 4096;
const INITIAL_RING = 16;
/**
 * What one slot of the ring costs (a chunk reference and an Int32 position), charged in `bytes` past
 * the initial ring: the ring grows with the records held and was never charged nor given back, so a
 * partition that once held 100,000 records kept about 0.24 MB after retention had emptied it
 * (outside probe: RSS 33 to 92 MB over 100 topics under a 16 MB EMBEDDED_RETENTION_BYTES).
 */
const RING_SLOT_BYTES = 12;

interface Chunk {
  buf: Buffer;
  used: number;
  /** The newest offset with bytes in this chunk. */
  last: number;
}

/**
 * One partition of the embedded log: a ring of `capacity` records whose bytes live in chunks (4 KiB
 * doubling to 1 MiB), as a Kafka segment holds them, rather than as objects.
 *
 * Why bytes: retained records as objects (record, headers, tuples, strings, views) are millions of
 * live objects for the garbage collector to trace; at 300,000 retained records that halved ingest
 * (S1: 518k events/s against 971k with almost nothing retained). Encoded, retention is a few large
 * buffers, and memory is bounded by bytes. Reading decodes, with zero-copy views for keys, values
 * and header values, which is what readers hand on anyway.
 *
 *   record = f64 timestamp · i32 keyLen (-1 = null) · key · i32 valueLen (-1 = null) · value
 *            · u16 headerCount · headerCount × (u16 nameLen · name · u32 valueLen · value)
 */
export class MemoryPartition {
  // Where each retained record is, by offset modulo the ring's size. The ring grows by doubling up to
  // `capacity` as records are retained (from 16 slots): allocated whole (1.2 MB at 100,000), every partition of
  // every topic a client names would cost that before holding a record.
  private chunkOf: Array<Chunk | undefined>;
  private positionOf: Int32Array;
  private ring: number;
  private readonly chunks: Chunk[] = [];
  private start = 0; // offset of the oldest retained record
  next = 0; // offset the next record gets
  /** Bytes of the chunks held: what this partition costs in memory. */
  bytes = 0;
  private nextChunkBytes = FIRST_CHUNK_BYTES;
  /** Header names, mostly the same in every record. */
  private readonly names = new RepeatedNames();

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly capacity: number,
  ) {
    this.ring = Math.min(capacity, INITIAL_RING);
    this.chunkOf = new Array(this.ring);
    this.positionOf = new Int32Array(this.ring);
  }

  get earliest(): number {
    return this.start;
  }

  /** Appends a record; returns its offset. Throws, before writing anything, for one the layout cannot hold. */
  append(rec: LogRecord): number {
    checkFits(rec);
    const chunk = this.room(rec);
    const b = chunk.buf;
    let p = chunk.used;
    const offset = this.next++;
    if (offset - this.start >= this.ring && this.ring < this.capacity) this.grow();
    this.chunkOf[offset % this.ring] = chunk;
    this.positionOf[offset % this.ring] = p;
    p = b.writeDoubleLE(rec.timestamp, p);
    p = writeBytes(b, p, rec.key);
    p = writeBytes(b, p, rec.value);
    p = b.writeUInt16LE(rec.headers.length, p);
    for (const [name, value] of rec.headers) {
      const n = writeUtf8(b, p + 2, name);
      b.writeUInt16LE(n, p);
      p = writeBytes(b, p + 2 + n, value, true);
    }
    chunk.used = p;
    chunk.last = offset;
    if (this.next - this.start > this.capacity) this.start = this.next - this.capacity;
    // Release chunks that hold only records retention has dropped.
    while (this.chunks.length > 1 && this.chunks[0]!.last < this.start) this.bytes -= this.chunks.shift()!.buf.length;
    return offset;
  }

  /**
   * Drops the oldest chunk and the records in it, as retention by size does; returns the bytes
   * released (0 when nothing is held). Records after it stay where they are.
   */
  dropOldestChunk(): number {
    const chunk = this.chunks.shift();
    if (!chunk) return 0;
    const from = this.start;
    this.start = Math.max(this.start, chunk.last + 1);
    // The ring's slots of the dropped records would keep the chunk alive until they are reused.
    for (let o = from; o < this.start; o++) this.chunkOf[o % this.ring] = undefined;
    this.bytes -= chunk.buf.length;
    return chunk.buf.length + this.fitRing();
  }

  /** Halves the ring while it is four times what the records held need (never below the first); returns the bytes given back. */
  private fitRing(): number {
    const held = this.next - this.start;
    let ring = this.ring;
    // Halved whole: a ring at a capacity that is no power of two halves to odd sizes, which is fine.
    while (ring > INITIAL_RING && held * 4 <= ring) ring = Math.max(INITIAL_RING, Math.floor(ring / 2));
    if (ring === this.ring) return 0;
    const before = this.bytes;
    this.resize(ring, this.next);
    return before - this.bytes;
  }

  /**
   * Up to `max` retained records from `from` on, and no more than `maxBytes` of keys and values
   * (keyValueBytes); the first record comes whatever its size unless `firstMayExceed` is false.
   */
  read(from: number, max: number, maxBytes = Number.POSITIVE_INFINITY, firstMayExceed = true): ConsumedRecord[] {
    const out: ConsumedRecord[] = [];
    let bytes = 0;
    for (let o = Math.max(from, this.start); o < this.next && out.length < max; o++) {
      const r = this.decode(o);
      bytes += keyValueBytes(r);
      if (bytes > maxBytes && (out.length > 0 || !firstMayExceed)) break;
      out.push(r);
    }
    return out;
  }

  /** The first retained offset whose timestamp is at or after `timestampMs`, else `next`. */
  offsetForTime(timestampMs: number): number {
    for (let o = this.start; o < this.next; o++) {
      if (this.chunkOf[o % this.ring]!.buf.readDoubleLE(this.positionOf[o % this.ring]!) >= timestampMs) return o;
    }
    return this.next;
  }

  private decode(offset: number): ConsumedRecord {
    const b = this.chunkOf[offset % this.ring]!.buf;
    let p = this.positionOf[offset % this.ring]!;
    const timestamp = b.readDoubleLE(p);
    p += 8;
    const keyLen = b.readInt32LE(p);
    p += 4;
    const key = keyLen < 0 ? null : b.subarray(p, p + keyLen);
    p += Math.max(0, keyLen);
    const valueLen = b.readInt32LE(p);
    p += 4;
    const value = valueLen < 0 ? null : b.subarray(p, p + valueLen);
    p += Math.max(0, valueLen);
    const headers: Array<[string, Uint8Array]> = new Array(b.readUInt16LE(p));
    p += 2;
    for (let h = 0; h < headers.length; h++) {
      const nameLen = b.readUInt16LE(p);
      const name = this.names.read(h, b, p + 2, nameLen);
      p += 2 + nameLen;
      const len = b.readUInt32LE(p);
      headers[h] = [name, b.subarray(p + 4, p + 4 + len)];
      p += 4 + len;
    }
    return { topic: this.topic, partition: this.partition, offset, timestamp, key, value, headers };
  }

  /** Doubles the ring (at most to `capacity`), for the record being appended (its offset taken, its slot not yet written). */
  private grow(): void {
    this.resize(Math.min(this.capacity, this.ring * 2), this.next - 1);
  }

  /** A ring of `ring` slots, the slots of the records before `end` moved to their new places, and `bytes` charged for it. */
  private resize(ring: number, end: number): void {
    const chunkOf: Array<Chunk | undefined> = new Array(ring);
    const positionOf = new Int32Array(ring);
    for (let o = this.start; o < end; o++) {
      chunkOf[o % ring] = this.chunkOf[o % this.ring];
      positionOf[o % ring] = this.positionOf[o % this.ring]!;
    }
    this.bytes += (ring - this.ring) * RING_SLOT_BYTES;
    this.chunkOf = chunkOf;
    this.positionOf = positionOf;
    this.ring = ring;
  }

  /**
   * The chunk to write `rec` into, starting a new one when the current cannot hold it. The cheap bound
   * (3 bytes per UTF-16 unit) decides when it fits; when it does not, the exact size does, so a large
   * text event does not cost three times its bytes in chunks that the garbage collector must free.
   */
  private room(rec: LogRecord): Chunk {
    const current = this.chunks.at(-1);
    const room = current ? current.buf.length - current.used : 0;
    if (current && room >= upperBound(rec)) return current;
    const need = exactSize(rec);
    if (current && room >= need) return current;
    const chunk: Chunk = { buf: Buffer.allocUnsafeSlow(Math.max(this.nextChunkBytes, need)), used: 0, last: -1 };
    this.nextChunkBytes = Math.min(CHUNK_BYTES, chunk.buf.length * 2);
    this.chunks.push(chunk);
    this.bytes += chunk.buf.length;
    return chunk;
  }
}

/** What a record counts against a batch's byte budget: its key and value. */
export function keyValueBytes(r: ConsumedRecord): number {
  return (r.key?.byteLength ?? 0) + (r.value?.byteLength ?? 0);
}

const U16_MAX = 0xffff;

/** The layout's u16 fields (header count, header name length) must hold the record's values. */
function checkFits(rec: LogRecord): void {
  if (rec.headers.length > U16_MAX) throw new GatewayError("INVALID_EVENT", `${rec.headers.length} headers; a record holds at most ${U16_MAX}`);
  for (const [name] of rec.headers) {
    if (name.length * 3 > U16_MAX && Buffer.byteLength(name) > U16_MAX) throw new GatewayError("INVALID_EVENT", `a header name of ${Buffer.byteLength(name)} bytes; at most ${U16_MAX}`);
  }
}

/** The record's layout size, with text measured by `textBytes` (no closure: this runs per append). */
function recordBytes(rec: LogRecord, textBytes: (s: string) => number): number {
  let n = 8 + 4 + valueBytes(rec.key, textBytes) + 4 + valueBytes(rec.value, textBytes) + 2;
  for (const [name, value] of rec.headers) n += 2 + textBytes(name) + 4 + valueBytes(value, textBytes);
  return n;
}

function valueBytes(v: Uint8Array | string | null, textBytes: (s: string) => number): number {
  return v === null ? 0 : typeof v === "string" ? textBytes(v) : v.byteLength;
}

/** UTF-8 is at most 3 bytes per UTF-16 unit: a bound that costs no pass over the text. */
const textBound = (s: string) => s.length * 3;
const upperBound = (rec: LogRecord) => recordBytes(rec, textBound);
const utf8Length = (s: string) => Buffer.byteLength(s);
const exactSize = (rec: LogRecord) => recordBytes(rec, utf8Length);

/** Length-prefixed bytes or UTF-8 text; -1 for null (i32), or a u32 length when `unsigned`. */
function writeBytes(b: Buffer, p: number, v: Uint8Array | string | null, unsigned = false): number {
  if (v === null) return b.writeInt32LE(-1, p);
  let n: number;
  if (typeof v === "string") n = writeUtf8(b, p + 4, v);
  else {
    copyBytes(b, p + 4, v);
    n = v.byteLength;
  }
  if (unsigned) b.writeUInt32LE(n, p);
  else b.writeInt32LE(n, p);
  return p + 4 + n;
}
