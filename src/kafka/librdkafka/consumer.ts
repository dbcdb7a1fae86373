/**
 * A librdkafka consumer for Bun: the consumer queue (rd_kafka_poll_set_consumer) is read in batches
 * with rd_kafka_consume_batch_queue; assignment is manual (assign / incremental assign of
 * topic-partition lists) or by a group (subscribe, librdkafka assigning as the group decides).
 *
 * A consumed batch is read through accessors by index (MessageBatch) rather than as objects, so a
 * caller that re-encodes records copies each key, value and header exactly once, straight into its
 * own buffer, and then release()s the batch.
 */
import { Client, PartitionList, newHandle } from "./client";
import type { KafkaProps } from "./conf";
import { check, errString, KafkaError, takeError } from "./errors";
import { HEADER_BEFORE_NAME, MSG, RD_KAFKA_CONSUMER, TP } from "./layout";
import { addressOf, copyOut, read, readI64, readString, strlen } from "./memory";
import { rdk } from "./symbols";

const TWO_32 = 4294967296;

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  /** Absolute offset or a logical one (layout.ts OFFSET_*); omitted: the committed/reset position. */
  offset?: number;
}

/** One consumed record as JS values (tests and tools; the worker uses MessageBatch directly). */
export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Array<[string, Uint8Array | null]>;
}

// Longer than any header name a Kafka record can hold in a 1 MB message would be a misread struct.
const MAX_NAME_BYTES = 1 << 24;

/**
 * The byte length of a header name as the record holds it. rd_kafka_header_get_all() gives names
 * as C strings, so "ce_type\0x" read as "ce_type": another producer's header of that name set
 * subscribers' `type` (hostile tester). librdkafka keeps the length beside the name (layout.ts);
 * it is read only where the value pointer stored before the name is the one librdkafka returned,
 * and is at least the C string's length; otherwise the C string's length it is.
 */
function exactNameLength(name: number, value: number): number {
  const c = strlen(name);
  if (read.ptr(name - HEADER_BEFORE_NAME.VALUE, 0) !== value) return c;
  const size = read.ptr(name - HEADER_BEFORE_NAME.NAME_SIZE, 0);
  return size >= c && size < MAX_NAME_BYTES ? size : c;
}

/** The messages of one consume() call; valid until release(). */
export class MessageBatch {
  count = 0;
  readonly ptrs: Uint32Array;
  // Out-parameters of rd_kafka_message_headers / rd_kafka_header_get_all: hdrs, name, value, size.
  private readonly out = new Uint32Array(8);
  private readonly outAddr = addressOf(this.out);
  private readonly topicCache = new Map<number, { namePtr: number; name: string }>();
  private headers = 0;
  /** After header(): the current header's name (NUL-terminated) and value; valueLen -1 for null. */
  headerName = 0;
  headerValue = 0;
  headerValueLen = 0;
  private headerNameBytes = 0;

  constructor(readonly capacity: number) {
    this.ptrs = new Uint32Array(capacity * 2);
  }

  msg(i: number): number {
    return this.ptrs[2 * i]! + this.ptrs[2 * i + 1]! * TWO_32;
  }
  /** Non-zero for a consumer error carried as a message (its text is errorString(i)). */
  err(i: number): number {
    return read.i32(this.msg(i), MSG.ERR);
  }
  errorString(i: number): string {
    const m = this.msg(i);
    const len = Number(read.ptr(m, MSG.LEN));
    const p = read.ptr(m, MSG.PAYLOAD);
    return p && len > 0 ? readString(p, len) : errString(this.err(i));
  }
  partition(i: number): number {
    return read.i32(this.msg(i), MSG.PARTITION);
  }
  /** The topic handle (rd_kafka_topic_t *): one per topic, compared without reading its name. */
  topicHandle(i: number): number {
    return read.ptr(this.msg(i), MSG.RKT);
  }
  offset(i: number): number {
    return readI64(this.msg(i), MSG.OFFSET);
  }
  /** Milliseconds since the epoch, -1 if the record has none. */
  timestamp(i: number): number {
    return Number(rdk().rd_kafka_message_timestamp(this.msg(i) as never, null));
  }
  /** The topic name, or "" for a consumer error of no topic (a group's): topic() must not be asked then. */
  topicIfAny(i: number): string {
    return read.ptr(this.msg(i), MSG.RKT) === 0 ? "" : this.topic(i);
  }
  /** The topic name; cached per topic handle (checked against its name pointer). */
  topic(i: number): string {
    const rkt = read.ptr(this.msg(i), MSG.RKT);
    const namePtr = rdk().rd_kafka_topic_name(rkt as never) as number;
    const hit = this.topicCache.get(rkt);
    if (hit && hit.namePtr === namePtr) return hit.name;
    const name = readString(namePtr);
    if (this.topicCache.size > 1000) this.topicCache.clear();
    this.topicCache.set(rkt, { namePtr, name });
    return name;
  }
  /** Key length, -1 for a null key. */
  keyLen(i: number): number {
    const m = this.msg(i);
    return read.ptr(m, MSG.KEY) ? Number(read.ptr(m, MSG.KEY_LEN)) : -1;
  }
  /** Value length, -1 for a null value. */
  valueLen(i: number): number {
    const m = this.msg(i);
    return read.ptr(m, MSG.PAYLOAD) ? Number(read.ptr(m, MSG.LEN)) : -1;
  }
  copyKey(i: number, dst: Uint8Array, dstOffset: number): void {
    const m = this.msg(i);
    copyOut(dst, dstOffset, read.ptr(m, MSG.KEY), Number(read.ptr(m, MSG.KEY_LEN)));
  }
  copyValue(i: number, dst: Uint8Array, dstOffset: number): void {
    const m = this.msg(i);
    copyOut(dst, dstOffset, read.ptr(m, MSG.PAYLOAD), Number(read.ptr(m, MSG.LEN)));
  }
  /** Number of headers of message `i`; selects it for header(). */
  headerCount(i: number): number {
    const lib = rdk();
    this.headers = 0;
    if (lib.rd_kafka_message_headers(this.msg(i) as never, this.outAddr as never) !== 0) return 0;
    this.headers = read.ptr(this.outAddr, 0);
    return Number(lib.rd_kafka_header_cnt(this.headers as never));
  }
  /** Loads header `h` of the message selected by headerCount() into headerName/headerValue/headerValueLen. */
  header(h: number): void {
    const a = this.outAddr;
    check(rdk().rd_kafka_header_get_all(this.headers as never, h, (a + 8) as never, (a + 16) as never, (a + 24) as never), "reading a header");
    this.headerName = read.ptr(a, 8);
    this.headerValue = read.ptr(a, 16);
    this.headerValueLen = this.headerValue ? Number(read.ptr(a, 24)) : -1;
    this.headerNameBytes = exactNameLength(this.headerName, this.headerValue);
  }
  /** Byte length of the current header's name, NUL bytes within it included. */
  headerNameLen(): number {
    return this.headerNameBytes;
  }
  /** Copies the current header's name (headerNameLen() bytes) into `dst`. */
  copyHeaderName(dst: Uint8Array, dstOffset: number): void {
    copyOut(dst, dstOffset, this.headerName, this.headerNameBytes);
  }
  /** Copies the current header's value (headerValueLen bytes) into `dst`. */
  copyHeaderValue(dst: Uint8Array, dstOffset: number): void {
    if (this.headerValueLen > 0) copyOut(dst, dstOffset, this.headerValue, this.headerValueLen);
  }
  /** Message `i` as JS values (copies everything out). */
  toMessage(i: number): ConsumedMessage {
    const key = this.copy(this.keyLen(i), (dst) => this.copyKey(i, dst, 0));
    const value = this.copy(this.valueLen(i), (dst) => this.copyValue(i, dst, 0));
    const headers: Array<[string, Uint8Array | null]> = [];
    const n = this.headerCount(i);
    for (let h = 0; h < n; h++) {
      this.header(h);
      const v = this.headerValueLen < 0 ? null : new Uint8Array(this.headerValueLen);
      if (v) copyOut(v, 0, this.headerValue, v.length);
      headers.push([readString(this.headerName, this.headerNameBytes), v]);
    }
    return { topic: this.topic(i), partition: this.partition(i), offset: this.offset(i), timestamp: this.timestamp(i), key, value, headers };
  }
  /** Destroys every message of the batch; accessors must not be used afterwards. */
  release(): void {
    const lib = rdk();
    for (let i = 0; i < this.count; i++) lib.rd_kafka_message_destroy(this.msg(i) as never);
    this.count = 0;
    this.headers = 0;
  }

  private copy(len: number, fill: (dst: Uint8Array) => void): Uint8Array | null {
    if (len < 0) return null;
    const dst = new Uint8Array(len);
    fill(dst);
    return dst;
  }
}

/** An `rd_kafka_t` made for a consumer, not yet owned by a Consumer. */
export class ConsumerHandle {
  constructor(readonly rk: number) {}
}

/** Blocks while librdkafka starts its threads (client.ts newHandle). */
export function newConsumerHandle(props: KafkaProps): ConsumerHandle {
  return new ConsumerHandle(newHandle(RD_KAFKA_CONSUMER, props));
}

export class Consumer extends Client {
  private readonly queue: number;
  private closing = false;

  /**
   * `source`: the properties, which must include group.id (librdkafka requires one even for manual
   * assignment), or a consumer handle made by newConsumerHandle(), perhaps on another thread.
   */
  constructor(source: KafkaProps | ConsumerHandle) {
    super(source instanceof ConsumerHandle ? source.rk : newHandle(RD_KAFKA_CONSUMER, source));
    const lib = rdk();
    // Everything (errors, rebalances, fetched records) arrives on the consumer queue, read below.
    check(lib.rd_kafka_poll_set_consumer(this.rk as never), "poll_set_consumer");
    this.queue = lib.rd_kafka_queue_get_consumer(this.rk as never) as number;
  }

  /** Replaces the whole assignment (rd_kafka_assign); [] clears it. */
  assign(list: TopicPartitionOffset[]): void {
    const l = PartitionList.of(list);
    try {
      check(rdk().rd_kafka_assign(this.rk as never, l.handle as never), "assign");
    } finally {
      l.destroy();
    }
  }

  incrementalAssign(list: TopicPartitionOffset[]): void {
    this.incremental(list, true);
  }

  incrementalUnassign(list: Array<{ topic: string; partition: number }>): void {
    this.incremental(list, false);
  }

  /**
   * Group mode with enable.auto.offset.store=false: the offsets (next to read) that the group's
   * commits may now carry. A partition no longer assigned here is refused by librdkafka, per
   * partition, and skipped: its new owner reads on from the last commit. Returns the call's error code.
   */
  storeOffsets(list: TopicPartitionOffset[]): number {
    const l = PartitionList.of(list);
    try {
      return rdk().rd_kafka_offsets_store(this.rk as never, l.handle as never) as number;
    } finally {
      l.destroy();
    }
  }

  /**
   * The group's committed offsets of these partitions (-1001, RD_KAFKA_OFFSET_INVALID, where it has
   * none), asked of its coordinator without joining. Blocks up to `timeoutMs`.
   */
  committed(list: Array<{ topic: string; partition: number }>, timeoutMs: number): number[] {
    const l = PartitionList.of(list);
    try {
      check(rdk().rd_kafka_committed(this.rk as never, l.handle as never, timeoutMs), "committed offsets");
      const out: number[] = [];
      for (let i = 0; i < l.count; i++) out.push(readI64(l.elem(i), TP.OFFSET));
      return out;
    } finally {
      l.destroy();
    }
  }

  /**
   * Where this consumer is in these partitions: the offset after the last message consume() handed
   * out, or -1001 (RD_KAFKA_OFFSET_INVALID) where it handed out none yet. Local; never blocks.
   */
  positions(list: Array<{ topic: string; partition: number }>): number[] {
    const l = PartitionList.of(list);
    try {
      check(rdk().rd_kafka_position(this.rk as never, l.handle as never), "position");
      const out: number[] = [];
      for (let i = 0; i < l.count; i++) out.push(readI64(l.elem(i), TP.OFFSET));
      return out;
    } finally {
      l.destroy();
    }
  }

  /** Commits these offsets for the group, and waits for the answer. */
  commitSync(list: TopicPartitionOffset[]): void {
    const l = PartitionList.of(list);
    try {
      check(rdk().rd_kafka_commit(this.rk as never, l.handle as never, 0), "commit");
    } finally {
      l.destroy();
    }
  }

  /** Group mode: Kafka assigns partitions of `topics` among the group's members. */
  subscribe(topics: string[]): void {
    const l = PartitionList.of(topics.map((topic) => ({ topic, partition: -1 })));
    try {
      check(rdk().rd_kafka_subscribe(this.rk as never, l.handle as never), "subscribe");
    } finally {
      l.destroy();
    }
  }

  /**
   * Takes up to `max` (at most `batch.capacity`) ready records into `batch` (release() it after use),
   * waiting at most `timeoutMs` for the first; 0 never blocks. Returns the count.
   */
  consume(batch: MessageBatch, timeoutMs = 0, max = batch.capacity): number {
    if (batch.count) batch.release();
    const n = Number(rdk().rd_kafka_consume_batch_queue(this.queue as never, timeoutMs, batch.ptrs, Math.max(1, Math.min(max, batch.capacity))));
    if (n < 0) throw new KafkaError(n, `consume: ${errString(n)}`);
    batch.count = n;
    return n;
  }

  /**
   * Starts leaving (the group, if any) without blocking; keep calling consume() (whose records are
   * then discarded) until closed() says it is done, then destroy().
   */
  beginClose(): void {
    if (this.closing || !this.rk) return;
    this.closing = true;
    const e = takeError(rdk().rd_kafka_consumer_close_queue(this.rk as never, this.queue as never) as number | null, "close");
    if (e) throw e;
  }

  closed(): boolean {
    return !this.rk || rdk().rd_kafka_consumer_closed(this.rk as never) !== 0;
  }

  /** Closes (blocking until the group is left, if not closed already) and frees the handle. */
  override destroy(): void {
    if (!this.rk) return;
    const lib = rdk();
    if (!this.closing) lib.rd_kafka_consumer_close(this.rk as never);
    lib.rd_kafka_queue_destroy(this.queue as never);
    super.destroy();
  }

  private incremental(list: TopicPartitionOffset[], assign: boolean): void {
    const l = PartitionList.of(list);
    try {
      const lib = rdk();
      const p = (assign ? lib.rd_kafka_incremental_assign : lib.rd_kafka_incremental_unassign)(this.rk as never, l.handle as never) as number | null;
      const e = takeError(p, assign ? "incremental assign" : "incremental unassign");
      if (e) throw e;
    } finally {
      l.destroy();
    }
  }
}
