/**
 * The wire between the Bun gateway and its Kafka workers (worker/main.ts): length-prefixed binary messages over
 * a Unix socket, each carrying many records, so the process boundary costs one syscall per batch
 * rather than per event. Shared verbatim by both sides (the worker is bundled from this source).
 *
 *   message  = u32le length (of type + body) · u8 type · body
 *   PRODUCE  = u32 batchId · u32 count · count × record
 *   record   = u16 topicRef [· u16 topicLen · topic] · i32 keyLen (-1 = null) · key · i32 valueLen
 *              · value · f64 timestampMs · u32 headerCount · headerCount × header
 *   header   = u16 pairRef [· u32 nameLen · name · u8 kind (0 text, 1 bytes) · u32 len · value]
 *
 *   Topics and the headers that repeat (ce_type, ce_source, …) are sent once per worker connection:
 *   a ref below the receiver's table size names an entry it already has, a ref equal to the size
 *   defines the next entry (the literal follows), and LITERAL is a one-off literal. The worker then
 *   reuses one string and one header object per entry instead of decoding and allocating them for
 *   every record, which was most of its per-record cost after librdkafka's own.
 *   DELIVERY = u32 batchId · u32 count · count × (i32 partition · f64 offset · i32 errorIndex)
 *              · u32 errorsJsonLen · errorsJson (DeliveryError[])
 *   DELIVERY_PART = u32 batchId · u32 count · count × (u32 index · i32 partition · f64 offset
 *              · i32 errorIndex) · u32 errorsJsonLen · errorsJson
 *              (records of a batch still waiting for others that have their outcome already:
 *              see worker/pending.ts; the batch's DELIVERY later still carries every record)
 *   RECORDS  = u32 readerId · u32 count · count × consumed
 *   consumed = u16 topicLen · topic · i32 partition · f64 offset · f64 timestampMs · i32 keyLen · key
 *              · i32 valueLen · value · u32 headerCount · u32 headersLeftOut
 *              · headerCount × (u32 nameLen · name · u32 len · value)
 *              (a record's headers past MAX_CARRIED_HEADERS are left out, and counted)
 *
 *   Counts and lengths a client or another producer controls (header counts, header names) are 32-bit,
 *   wider than anything a frame or a Kafka record can hold; topics (at most 249 characters in Kafka)
 *   keep 16 bits. Writers check what they write against these widths before writing a record and
 *   roll back a record that fails half-way, so a batch never carries half a record.
 *   HELLO, READY, STATUS, SHUTDOWN, READER_* , ASSIGN, UNASSIGN, RECORDS_ACK, QUERY*, HEALTH, PING,
 *   PONG = JSON body
 *
 * PING (gateway → worker) is answered by PONG at once: a worker that stops answering is hung, and
 * the gateway replaces it. A worker also sends PONG on its own every WorkerConfig.aliveEveryMs: a
 * PING queues behind the PRODUCE messages already in the socket, and a worker handed a large backlog
 * at once (a broker freeze's held events) took longer to reach it than the ping timeout, and was
 * killed as hung while working (chaos tester: 195,000 events nacked WORKER_LOST). A PING may carry
 * `{ seq }`, which its PONG repeats: after a stall of its own the gateway hands a worker nothing
 * more until the answer to such a ping proves it is still there (WorkerPool.tick). HEALTH (worker → gateway) reports whether the worker's producer can reach
 * a broker, each time that changes.
 *
 * Readers are consumers with manual assignment (docs/subscriptions.md). A worker sends a reader's
 * RECORDS only while fewer than READER_CREDIT of them await a RECORDS_ACK: a slow gateway pauses
 * the consumer instead of growing a buffer.
 */
import { copyBytes, writeUtf8 } from "../../bytes/utf8";

export { MessageReader } from "./message-reader";

export const IpcType = {
  HELLO: 1,
  READY: 2,
  STATUS: 3,
  PRODUCE: 10,
  DELIVERY: 11,
  OPEN_READER: 12,
  READER_READY: 13,
  ASSIGN: 14,
  UNASSIGN: 15,
  RECORDS: 16,
  RECORDS_ACK: 17,
  CLOSE_READER: 18,
  QUERY: 19,
  QUERY_RESULT: 21,
  SHUTDOWN: 20,
  HEALTH: 22,
  PING: 23,
  PONG: 24,
  /** Gateway → worker, for a group reader: { readerId, assignments } the group may commit (records handed to members). */
  STORE_OFFSETS: 25,
  /**
   * Worker → gateway: { readerId, topic, partition, offset } a manual reader's next offset is not in the
   * partition's log (deleted by retention, or the log was reset below it). It stops reading that
   * partition until assigned again; it comes after every RECORDS of the partition before it.
   */
  OUT_OF_RANGE: 26,
  /**
   * Worker → gateway: { readerId, topic, partition, offset } a manual reader reached the partition's
   * end at `offset`, past records it was never handed (transaction markers, aborted records); sent
   * only then, after every RECORDS of the partition before it.
   */
  PARTITION_END: 27,
  /**
   * Worker → gateway: { readerId, topic, message } Kafka's ACLs refuse the reader's principal `topic`
   * (TOPIC_AUTHORIZATION_FAILED), or its group ("" for topic: GROUP_AUTHORIZATION_FAILED). librdkafka
   * goes on asking; the gateway ends what the reader serves. Sent once per reader and topic.
   */
  READER_DENIED: 28,
  /** Worker → gateway: outcomes of some records of a batch still waiting for others (see the layout above). */
  DELIVERY_PART: 29,
} as const;

export const READER_CREDIT = 4;

/**
 * Header values that are text cross as text and reach librdkafka as JS strings: the binding takes
 * a string value for about half the cost of a Buffer (12 vs 18.6 µs per record with six headers,
 * measured against 8.4 µs with none), and the headers are most of a small record's cost.
 */
export const HeaderKind = { TEXT: 0, BYTES: 1 } as const;

/** A string-table ref meaning "literal follows, do not keep it" (see the PRODUCE format above). */
export const LITERAL = 0xffff;

/** Positions InternTable.knownAt remembers a last hit for. */
const HINTS = 16;

/**
 * The sending half of a string table, of (name, value) entries: headers, or topics with an empty
 * name. Each table has its own ids.
 * Bounded, so a stream of distinct values costs literals, not memory.
 */
export class InternTable {
  private readonly ids = new Map<string, Map<string, number>>();
  private readonly added: Array<[string, string]> = [];
  private size = 0;
  // The last entry found at each of a few caller-chosen positions (a record's n-th header): the
  // same values repeat record after record, as fresh strings whose hashing made the two map
  // lookups most of the cost. Cleared with the entries they name.
  private readonly hintName: string[] = [];
  private readonly hintValue: string[] = [];
  private readonly hintId: number[] = [];
  constructor(private readonly capacity: number) {}
  /** The id of a known entry, or -1. */
  known(name: string, value: string): number {
    return this.ids.get(name)?.get(value) ?? -1;
  }
  /** As known(); `position` (below HINTS) says where the caller finds this entry, to check its last hit there first. */
  knownAt(position: number, name: string, value: string): number {
    if (position < HINTS && this.hintValue[position] === value && this.hintName[position] === name && position < this.hintId.length) return this.hintId[position]!;
    const id = this.known(name, value);
    if (id >= 0 && position < HINTS) {
      while (this.hintId.length < position) {
        this.hintName.push("");
        this.hintValue.push("");
        this.hintId.push(-1);
      }
      this.hintName[position] = name;
      this.hintValue[position] = value;
      this.hintId[position] = id;
    }
    return id;
  }
  private forgetHints(): void {
    this.hintName.length = 0;
    this.hintValue.length = 0;
    this.hintId.length = 0;
  }
  /** Adds an entry; its id, or LITERAL when the table is full. Send the literal either way. */
  add(name: string, value: string): number {
    if (this.size >= this.capacity) return LITERAL;
    let byValue = this.ids.get(name);
    if (!byValue) this.ids.set(name, (byValue = new Map()));
    byValue.set(value, this.size);
    this.added.push([name, value]);
    return this.size++;
  }
  clear(): void {
    this.forgetHints();
    this.ids.clear();
    this.added.length = 0;
    this.size = 0;
  }
  /** The table's size now, to `rollback` to if the record that is adding entries is not sent. */
  mark(): number {
    return this.size;
  }
  /** Forgets the entries added since `mark`: the receiver never saw their definitions. */
  rollback(mark: number): void {
    if (this.size > mark) this.forgetHints();
    while (this.size > mark) {
      const [name, value] = this.added.pop()!;
      this.ids.get(name)?.delete(value);
      this.size--;
    }
  }
}

/** The receiving half: resolves refs, storing each defined entry. */
export class ReceivedTable<V> {
  private readonly entries: V[] = [];
  /** The entry `ref` names; `readLiteral` is called only when the literal is on the wire. */
  resolve(ref: number, readLiteral: () => V): V {
    if (ref < this.entries.length) return this.entries[ref]!;
    const v = readLiteral();
    if (ref === this.entries.length) this.entries.push(v);
    else if (ref !== LITERAL) throw new Error(`IPC string table out of step: ref ${ref}, ${this.entries.length} entries`);
    return v;
  }
}

/** Metadata questions a worker answers with its producer's client (QUERY → QUERY_RESULT). */
export type Query =
  | { kind: "partitions"; topics: string[] }
  | { kind: "watermarks"; topic: string; partitions: number }
  | { kind: "offsetsForTime"; topic: string; partitions: number; timestampMs: number }
  /** Each topic's TopicRecordLimits (src/log/event-log.ts), null for one Kafka does not have. */
  | { kind: "recordLimits"; topics: string[] }
  /** Each topic's id (Kafka's Uuid, base64), null where Kafka has none for it or did not say. */
  | { kind: "topicIds"; topics: string[] }
  /** For partitions of `topics` where Kafka group `group` has committed nothing, commit their end now. */
  | { kind: "startGroupAtEnd"; group: string; topics: string[] };

export interface DeliveryError {
  /** librdkafka error code (negative for client-side errors, e.g. -192 message timed out). */
  code: number;
  name: string;
  message: string;
  retriable: boolean;
  /**
   * The record timed out before librdkafka ever knew a partition of its topic (its delivery report's
   * partition is still RD_KAFKA_PARTITION_UA: never sent) while the worker's brokers answered
   * throughout: Kafka lacks the topic and did not make it. Only then present.
   */
  unpartitioned?: true;
}

/** A reusable growable buffer: the hot path writes records into it without per-event allocation. */
export class ByteWriter {
  buf: Buffer;
  pos = 0;
  constructor(initial = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initial);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.pos);
    this.pos += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }
  bytes(v: Uint8Array): void {
    this.ensure(v.byteLength);
    copyBytes(this.buf, this.pos, v);
    this.pos += v.byteLength;
  }
  /** Length-prefixed UTF-8 (u16 length). */
  shortString(s: string): void {
    this.ensure(2 + s.length * 3);
    const n = writeUtf8(this.buf, this.pos + 2, s);
    this.buf.writeUInt16LE(n, this.pos);
    this.pos += 2 + n;
  }
  /** A string as UTF-8 bytes with a u32 length: the same wire form as `u32 len · bytes`. */
  longString(s: string): void {
    this.ensure(4 + s.length * 3);
    const n = writeUtf8(this.buf, this.pos + 4, s);
    this.buf.writeUInt32LE(n, this.pos);
    this.pos += 4 + n;
  }
  /** Nullable bytes with an i32 length, -1 for null. */
  nullableBytes(v: Uint8Array | null): void {
    if (v === null) return this.i32(-1);
    this.i32(v.byteLength);
    this.bytes(v);
  }
  /** As nullableBytes; a string goes as its UTF-8 bytes, written straight into the buffer. */
  nullableBytesOrString(v: Uint8Array | string | null): void {
    if (typeof v !== "string") return this.nullableBytes(v);
    this.ensure(4 + v.length * 3);
    const n = writeUtf8(this.buf, this.pos + 4, v);
    this.buf.writeInt32LE(n, this.pos);
    this.pos += 4 + n;
  }
  /** Starts a message; returns the offset to pass to `endMessage`. */
  beginMessage(type: number): number {
    const start = this.pos;
    this.ensure(5);
    this.pos += 4;
    this.buf[this.pos++] = type;
    return start;
  }
  endMessage(start: number): void {
    this.buf.writeUInt32LE(this.pos - start - 4, start);
  }
  /** What was written so far, without copying: valid until the next write or reset. */
  written(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
  /** Forgets what was written, keeping the buffer (after written()'s bytes were handed on). */
  reset(): void {
    this.pos = 0;
  }
  /** Copies out what was written and resets, so the writer's buffer can be reused at once. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

export function jsonMessage(type: number, body: unknown): Buffer {
  const w = new ByteWriter(256);
  const start = w.beginMessage(type);
  w.bytes(Buffer.from(JSON.stringify(body)));
  w.endMessage(start);
  return w.take();
}

/** Sequential reader over one message body. */
export class ByteReader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  u16(): number {
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  f64(): number {
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
  /** Zero-copy slice; librdkafka copies what it is given, so slices never outlive the call. */
  slice(n: number): Buffer {
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  u8(): number {
    return this.buf[this.pos++]!;
  }
  longString(): string {
    const n = this.u32();
    const v = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  shortString(): string {
    const n = this.u16();
    const v = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  nullableSlice(): Buffer | null {
    const n = this.i32();
    return n < 0 ? null : this.slice(n);
  }
  json<T>(): T {
    return JSON.parse(this.buf.toString("utf8", this.pos)) as T;
  }
}
