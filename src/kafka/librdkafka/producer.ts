/**
 * A librdkafka producer for Bun. Records go in with rd_kafka_produceva() from a reused rd_kafka_vu_t
 * array and RD_KAFKA_MSG_F_COPY, so librdkafka copies value, key and headers during the call and no
 * pointer into JS memory outlives it. Delivery reports arrive as RD_KAFKA_EVENT_DR events on the
 * main queue, which poll() drains on the JS thread; the per-record opaque is a number the caller
 * chooses (an index into its own typed arrays), so a report needs no object.
 */
import { Client, newHandle } from "./client";
import type { KafkaProps } from "./conf";
import { errString, KafkaError } from "./errors";
import { MSG, RD_KAFKA_EVENT_DR, RD_KAFKA_EVENT_ERROR, RD_KAFKA_MSG_STATUS_NOT_PERSISTED, RD_KAFKA_PARTITION_UA, RD_KAFKA_PRODUCER } from "./layout";
import { addressOf, cstr, read, readI64 } from "./memory";
import { VuBatch } from "./vu-batch";
import { rdk } from "./symbols";

/** What poll() reports; called on the JS thread, once per delivered or failed record. */
export interface DeliveryVisitor {
  delivered(opaque: number, partition: number, offset: number): void;
  /**
   * `neverSent`: librdkafka never assigned it a partition (its topic never known) and says it was
   * not persisted (rd_kafka_message_status).
   */
  failed(opaque: number, code: number, neverSent: boolean): void;
  /** A client-level error event (broker down, authentication, fatal idempotence errors, …). */
  error?(code: number, message: string, fatal: boolean): void;
}

/** A record for the convenience `produce()`; the hot path fills a VuBatch itself. */
export interface ProduceRecord {
  topic: string;
  value: Uint8Array | null;
  key?: Uint8Array | string | null;
  partition?: number;
  timestamp?: number;
  headers?: Array<[string, Uint8Array | string]>;
  opaque?: number;
}

const DR_BATCH = 4096;
// A non-NULL address for empty values and keys: NULL with length 0 would mean null, not empty.
const EMPTY = new Uint8Array(8);
export const EMPTY_ADDR = addressOf(EMPTY);

export class Producer extends Client {
  /** Set by producevaAt() when it fails: whether librdkafka calls the error retriable. */
  lastErrorRetriable = false;
  private readonly queue: number;
  // rd_kafka_event_message_array's output: DR_BATCH message pointers as 32-bit halves.
  private readonly messages = new Uint32Array(DR_BATCH * 2);
  private readonly vus = new VuBatch(64);
  private readonly topics = new Map<string, Buffer>();
  // Topic handles made by topicHandle(), released by destroy().
  private readonly handles: number[] = [];
  // Looked up once: the symbol table is a property read away, and this is called once per record.
  private readonly produceva = rdk().rd_kafka_produceva;

  constructor(props: KafkaProps) {
    super(newHandle(RD_KAFKA_PRODUCER, props, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR));
    this.queue = rdk().rd_kafka_queue_get_main(this.rk as never) as number;
  }

  /**
   * An rd_kafka_topic_t for the NUL-terminated name at `nameAddr`, kept until destroy(), or 0 when
   * librdkafka refuses the name (produce by name then, and get its error per record). A record
   * given a handle (VuBatch.begin with `rkt`) costs produceva a reference count; given a name, it
   * costs a write lock on the client and a search of its topics, per record.
   */
  topicHandle(nameAddr: number): number {
    const rkt = rdk().rd_kafka_topic_new(this.rk as never, nameAddr as never, null) as number | null;
    if (!rkt) return 0;
    this.handles.push(rkt);
    return rkt;
  }

  /**
   * rd_kafka_produceva() of the `count` vus at address `vus` (one record; see VuBatch). Returns 0,
   * or the librdkafka error code: Err.QUEUE_FULL means "try again after poll()", the record was
   * not taken; any other code means it failed and will get no delivery report.
   */
  producevaAt(vus: number, count: number): number {
    const e = this.produceva(this.rk as never, vus as never, count) as number | null;
    if (!e) return 0;
    const lib = rdk();
    const code = lib.rd_kafka_error_code(e as never);
    this.lastErrorRetriable = lib.rd_kafka_error_is_retriable(e as never) !== 0;
    lib.rd_kafka_error_destroy(e as never);
    return code;
  }

  /** Produces one record given as JS values (tests, tools): copies into temporary buffers. */
  produce(r: ProduceRecord): number {
    const keep: Uint8Array[] = []; // referenced until produceva returns
    const addr = (b: Uint8Array) => (keep.push(b), b.byteLength ? addressOf(b) : EMPTY_ADDR);
    const topic = this.topicName(r.topic);
    const vus = this.vus;
    vus.reset();
    vus.begin(addressOf(topic), r.opaque ?? 0, r.partition);
    if (r.value) vus.value(addr(r.value), r.value.byteLength);
    if (r.key != null) {
      const k = typeof r.key === "string" ? Buffer.from(r.key) : r.key;
      vus.key(addr(k), k.byteLength);
    }
    if (r.timestamp !== undefined) vus.timestamp(r.timestamp);
    for (const [name, v] of r.headers ?? []) {
      const value = typeof v === "string" ? Buffer.from(v) : v;
      vus.header(addr(cstr(name)), addr(value), value.byteLength);
    }
    const code = vus.produce(this, 0);
    keep.length = 0;
    return code;
  }

  /** A NUL-terminated topic name, made once per topic. */
  topicName(topic: string): Buffer {
    let t = this.topics.get(topic);
    if (!t) {
      t = cstr(topic);
      if (this.topics.size < 10_000) this.topics.set(topic, t);
    }
    return t;
  }

  /**
   * Drains ready events without blocking: delivery reports (in batches of up to DR_BATCH) and
   * errors. Returns how many delivery reports it handled; stops after `maxEvents` events.
   */
  poll(visitor: DeliveryVisitor, maxEvents = 64): number {
    const lib = rdk();
    const m = this.messages;
    let reports = 0;
    for (let n = 0; n < maxEvents; n++) {
      const ev = lib.rd_kafka_queue_poll(this.queue as never, 0) as number | null;
      if (!ev) break;
      const type = lib.rd_kafka_event_type(ev as never);
      if (type === RD_KAFKA_EVENT_DR) {
        // A DR event may hold more messages than DR_BATCH: message_array continues where it left off.
        for (;;) {
          const count = Number(lib.rd_kafka_event_message_array(ev as never, m, DR_BATCH));
          for (let i = 0; i < count; i++) {
            const msg = m[2 * i]! + m[2 * i + 1]! * 4294967296;
            const err = read.i32(msg, MSG.ERR);
            const opaque = read.ptr(msg, MSG.OPAQUE);
            if (err === 0) visitor.delivered(opaque, read.i32(msg, MSG.PARTITION), readI64(msg, MSG.OFFSET));
            else visitor.failed(opaque, err, read.i32(msg, MSG.PARTITION) === RD_KAFKA_PARTITION_UA && lib.rd_kafka_message_status(msg as never) === RD_KAFKA_MSG_STATUS_NOT_PERSISTED);
          }
          reports += count;
          if (count < DR_BATCH) break;
        }
      } else if (type === RD_KAFKA_EVENT_ERROR) {
        const code = lib.rd_kafka_event_error(ev as never);
        visitor.error?.(code, String(lib.rd_kafka_event_error_string(ev as never) ?? errString(code)), lib.rd_kafka_event_error_is_fatal(ev as never) !== 0);
      }
      lib.rd_kafka_event_destroy(ev as never);
    }
    return reports;
  }

  /** Records produced but not yet reported (librdkafka's queue and in flight). */
  outqLen(): number {
    return rdk().rd_kafka_outq_len(this.rk as never);
  }

  /**
   * Polls until every produced record has its delivery report or `timeoutMs` passes; true when
   * nothing is left. (rd_kafka_flush() cannot be used: with RD_KAFKA_EVENT_DR it waits for the
   * reports to be consumed from the queue, which only this thread does, so it would just block.)
   */
  async drain(visitor: DeliveryVisitor, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.poll(visitor, 1000);
      if (this.outqLen() === 0) return true;
      if (Date.now() >= deadline) return false;
      await Bun.sleep(1);
    }
  }

  override destroy(): void {
    if (!this.rk) return;
    rdk().rd_kafka_queue_destroy(this.queue as never);
    for (const rkt of this.handles.splice(0)) rdk().rd_kafka_topic_destroy(rkt as never);
    super.destroy();
  }
}
