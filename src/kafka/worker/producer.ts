/**
 * The producing half of the Bun Kafka worker (main.ts): PRODUCE batches into librdkafka
 * through bun:ffi, DELIVERY batches back. The same guarantees as the Node worker (worker.ts):
 *  - a PRODUCE message is copied once, its records' vus are written in one pass (VuBatch) pointing
 *    into that copy, and produced with RD_KAFKA_MSG_F_COPY;
 *  - a topic becomes an rd_kafka_topic_t handle once, when its table entry arrives, so produceva
 *    takes no lock and searches no list per record;
 *  - header names that come as literals with every record (ce_id) are kept NUL-terminated once
 *    (LiteralNames) rather than copied per record;
 *  - the opaque of a record is `slot * 2^20 + index`, an index into the typed arrays of its batch
 *    (pooled with the batch's other columns), and delivery reports are read in batches from the
 *    event queue: no object per record;
 *  - the DELIVERY messages a poll completes are written into one reused buffer and leave in one
 *    socket write, after the poll (and after each PRODUCE handled): no buffer and no syscall per
 *    batch;
 *  - records refused with queue-full wait, in order, before anything newer (per-key order survives
 *    the stall); the backlog is bounded by the gateway's per-worker in-flight cap;
 *  - a record that times out fails with librdkafka's _MSG_TIMED_OUT (-192), which the pool maps to
 *    PUBLISH_TIMEOUT; the partitioner is the configured one (murmur2_random).
 */
import { ByteReader, ByteWriter, type DeliveryError, LITERAL } from "../wire/ipc";
import { LiteralNames } from "./literal-names";
import { Pending, SPARE_PENDING } from "./pending";
// EMPTY_ADDR: a non-NULL address for empty keys and values (NULL would mean null).
import { addressOf, type DeliveryVisitor, EMPTY_ADDR, Err, errName, errString, Producer, RD_KAFKA_PARTITION_UA, VuBatch } from "../librdkafka";

const INDEX_BITS = 1048576;
// A probe is asked every second (broker-probe.ts): answered within this, the brokers answer now.
const ANSWERED_RECENTLY_MS = 3000;
// How often batches waiting for some of their records are looked at (see PARTIAL_AFTER_MS).
const PARTIAL_SWEEP_MS = 50;

/** A topic or a repeating header, sent once per connection: NUL-terminated name (+ value bytes). */
interface Entry {
  buf: Buffer; // keeps the memory the addresses point into alive
  nameAddr: number;
  valueAddr: number;
  valueLen: number;
  /** Topics: librdkafka's handle (0: produce by name). */
  rkt: number;
}

/** One PRODUCE message on its way into librdkafka: its bytes, its literal header names, its vus. */
class Staged {
  body = Buffer.alloc(64 * 1024);
  names = Buffer.alloc(64 * 1024);
  readonly vus = new VuBatch();
  next = 0;
  slot = 0;
}

export class FfiProducer {
  readonly producer: Producer;
  private readonly topics: Entry[] = [];
  private readonly headers: Entry[] = [];
  private readonly pending: Array<Pending | null> = [];
  private readonly freeSlots: number[] = [];
  private readonly sparePending: Pending[] = [];
  private readonly literalNames = new LiteralNames();
  private readonly backlog: Staged[] = [];
  private readonly spare: Staged[] = [];
  // DELIVERY messages not yet written to the socket (see flush).
  private readonly out = new ByteWriter(64 * 1024);
  inflight = 0;
  private lastSweep = 0;
  /** Records written so far (delivery reports without error): the broker probe's proof of life. */
  written = 0;
  /**
   * performance.now() of the last sign that the brokers could not be reached (brokersTrouble()), or
   * of the producer's start, and of the last broker probe answered (brokersAnswered()). A record that
   * times out with no partition of its topic ever known was refused by Kafka (it lacks the topic and
   * will not make it) only if the brokers answered for the whole of its message timeout: no sign of
   * trouble within it, and a probe answered just now. Otherwise an outage may be why: a broker frozen
   * for 3 s of a 5 s timeout raises no error event, and the probe calls it down only after its third
   * failure (outside tester: KAFKA_REJECTED, "answered throughout", during a freeze).
   */
  private troubleAt = performance.now();
  private answeredAt = Number.NEGATIVE_INFINITY;
  private readonly messageTimeoutMs: number;

  constructor(
    props: Record<string, string | number | boolean>,
    /** Writes bytes to the gateway; the buffer is reused once this returns (SocketWriter.writeTransient). */
    private readonly send: (buf: Buffer) => void,
    /** librdkafka's error events, and batches that cannot be read (`event`: produce_unreadable). */
    private readonly onError: (code: number, message: string, fatal: boolean, event?: string) => void,
  ) {
    this.producer = new Producer(props);
    // delivery.timeout.ms is librdkafka's alias (KAFKA_PROPERTIES may set it); 300 s is its default.
    this.messageTimeoutMs = Number(props["message.timeout.ms"] ?? props["delivery.timeout.ms"] ?? 300_000);
  }

  /** The brokers could not be reached just now (a connection failure, ALL_BROKERS_DOWN, a failed probe). */
  brokersTrouble(): void {
    this.troubleAt = performance.now();
  }

  /** A broker answered a probe just now. */
  brokersAnswered(): void {
    this.answeredAt = performance.now();
  }

  /** Whether the brokers answered for the whole of the last message timeout, up to now (see troubleAt). */
  private answeredThroughout(now: number): boolean {
    return now - this.troubleAt > this.messageTimeoutMs && now - this.answeredAt < ANSWERED_RECENTLY_MS;
  }

  get backlogged(): boolean {
    return this.backlog.length > 0;
  }

  /**
   * A PRODUCE message (see ipc.ts). `ready`: false keeps everything in the backlog for now. Every
   * record is parsed before any is produced, so a batch that cannot be read (a bug on either side of
   * the socket) is answered with an error for each of its records rather than half-produced or left
   * pending.
   */
  onProduce(body: Buffer, ready: boolean): void {
    this.accept(body, ready);
    this.flush();
  }

  private accept(body: Buffer, ready: boolean): void {
    const st = this.spare.pop() ?? new Staged();
    if (st.body.length < body.length) st.body = Buffer.alloc(Math.max(body.length, st.body.length * 2));
    // A literal name takes more bytes in the body than it needs here with its NUL.
    if (st.names.length < body.length) st.names = Buffer.alloc(Math.max(body.length, st.names.length * 2));
    body.copy(st.body, 0);
    // Over exactly this message: the staging buffer is reused and may be longer.
    const r = new ByteReader(st.body.subarray(0, body.length));
    const batchId = r.u32();
    const count = r.u32();
    const p = this.openPending(batchId, count);
    st.slot = p;
    st.next = 0;
    this.inflight += count;
    if (count === 0) return this.release(st);
    if (count >= INDEX_BITS) {
      // Never sent by the pool (it flushes batches of 256 KiB); refused rather than mis-indexed.
      for (let i = 0; i < count; i++) this.fail(p, i, { code: Err.INVALID_ARG, name: errName(Err.INVALID_ARG), message: "batch too large", retriable: false });
      return this.release(st);
    }
    try {
      this.stage(r, st, count);
      if (r.pos !== r.buf.length) throw new RangeError(`${r.buf.length - r.pos} bytes left over after ${count} records`);
    } catch (e) {
      const message = `the worker could not read batch ${batchId} of ${count} records: ${String((e as Error)?.message ?? e)}`;
      this.onError(-1, message, true, "produce_unreadable");
      const error: DeliveryError = { code: -1, name: "ERR_IPC", message, retriable: false };
      for (let i = 0; i < count; i++) this.fail(p, i, error);
      return this.release(st);
    }
    if (this.backlog.length > 0 || !ready || !this.produceFrom(st)) this.backlog.push(st);
    else this.release(st);
  }

  /** Reads delivery reports and retries the backlog; true while anything is outstanding. */
  tick(ready: boolean): boolean {
    this.producer.poll(this.visitor, 256);
    if (ready) this.drainBacklog();
    this.reportPartials();
    this.flush();
    return this.inflight > 0;
  }

  /** Every PARTIAL_SWEEP_MS, the outcomes of batches still waiting for some records (Pending.partialDue). */
  private reportPartials(): void {
    const now = performance.now();
    if (now - this.lastSweep < PARTIAL_SWEEP_MS) return;
    this.lastSweep = now;
    for (const b of this.pending) if (b !== null && b.partialDue(now)) b.writeDeliveryPart(this.out);
  }

  /**
   * Polls until every record is reported or `timeoutMs` passes (shutdown). (Not Producer.drain:
   * the DELIVERY messages must leave as their reports come in, which tick does.)
   */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.tick(true);
      if (this.backlog.length === 0 && this.producer.outqLen() === 0) return;
      if (Date.now() >= deadline) return;
      await Bun.sleep(1);
    }
  }

  /** Writes the DELIVERY messages made since the last flush, in one write. */
  private flush(): void {
    if (this.out.pos === 0) return;
    this.send(this.out.written());
    this.out.pos = 0;
  }

  private readonly visitor: DeliveryVisitor = {
    delivered: (opaque, partition, offset) => {
      const slot = Math.floor(opaque / INDEX_BITS);
      const b = this.pending[slot];
      if (!b) return;
      const i = opaque - slot * INDEX_BITS;
      b.partitions[i] = partition;
      b.offsets[i] = offset;
      this.written++;
      if (b.settled(i)) this.finish(slot, b);
    },
    failed: (opaque, code, neverSent) => {
      const slot = Math.floor(opaque / INDEX_BITS);
      // As the Node binding reports them: a delivery error carries no retriable flag.
      const error: DeliveryError = { code, name: errName(code), message: errString(code), retriable: false };
      if (neverSent && this.answeredThroughout(performance.now())) error.unpartitioned = true;
      this.fail(slot, opaque - slot * INDEX_BITS, error);
    },
    error: (code, message, fatal) => this.onError(code, message, fatal),
  };

  /**
   * Parses every record of the batch into vus (resolving the string tables in order, now). Throws
   * on anything that does not fit the message: nothing is produced from a batch that fails here.
   */
  private stage(r: ByteReader, st: Staged, count: number): void {
    const base = addressOf(st.body);
    const namesBase = addressOf(st.names);
    let namesPos = 0;
    const vus = st.vus;
    vus.reset();
    const buf = st.body;
    const end = r.buf.length;
    const opaqueBase = st.slot * INDEX_BITS;
    const skip = (n: number) => {
      if (n > end - r.pos) throw new RangeError(`a length of ${n} runs past the end of the message`);
      r.pos += n;
    };
    for (let i = 0; i < count; i++) {
      const topicRef = r.u16();
      const topic = this.topics[topicRef];
      if (topic) vus.begin(topic.nameAddr, opaqueBase + i, RD_KAFKA_PARTITION_UA, topic.rkt);
      else {
        const n = r.u16();
        const at = r.pos;
        skip(n);
        if (topicRef === LITERAL) {
          // With the batch's literal names: a buffer of its own could be collected before produce.
          buf.copy(st.names, namesPos, at, at + n);
          st.names[namesPos + n] = 0;
          vus.begin(namesBase + namesPos, opaqueBase + i);
          namesPos += n + 1;
        } else {
          const e = entry(buf, at, n, 0, -1);
          this.define(this.topics, topicRef, e);
          e.rkt = this.producer.topicHandle(e.nameAddr);
          vus.begin(e.nameAddr, opaqueBase + i, RD_KAFKA_PARTITION_UA, e.rkt);
        }
      }
      const keyLen = r.i32();
      vus.key(keyLen > 0 ? base + r.pos : EMPTY_ADDR, keyLen);
      if (keyLen > 0) skip(keyLen);
      const valueLen = r.i32();
      vus.value(valueLen > 0 ? base + r.pos : EMPTY_ADDR, valueLen);
      if (valueLen > 0) skip(valueLen);
      vus.timestamp(r.f64());
      const headerCount = r.u32();
      if (headerCount > end - r.pos) throw new RangeError(`${headerCount} headers cannot fit in the rest of the message`);
      for (let h = 0; h < headerCount; h++) {
        const ref = r.u16();
        const known = ref === LITERAL ? undefined : this.headers[ref];
        if (known) {
          vus.header(known.nameAddr, known.valueLen > 0 ? known.valueAddr : EMPTY_ADDR, known.valueLen);
          continue;
        }
        const nameLen = r.u32();
        const nameAt = r.pos;
        skip(nameLen);
        r.u8(); // kind: text and bytes have the same wire form from here
        const valueLen = r.u32();
        const valueAt = r.pos;
        skip(valueLen);
        if (ref !== LITERAL) {
          const e = entry(buf, nameAt, nameLen, valueAt, valueLen);
          this.define(this.headers, ref, e);
          vus.header(e.nameAddr, valueLen > 0 ? e.valueAddr : EMPTY_ADDR, valueLen);
          continue;
        }
        const kept = this.literalNames.find(buf, nameAt, nameLen);
        if (kept) {
          vus.header(kept, valueLen > 0 ? base + valueAt : EMPTY_ADDR, valueLen);
          continue;
        }
        buf.copy(st.names, namesPos, nameAt, nameAt + nameLen);
        st.names[namesPos + nameLen] = 0;
        vus.header(namesBase + namesPos, valueLen > 0 ? base + valueAt : EMPTY_ADDR, valueLen);
        namesPos += nameLen + 1;
      }
    }
  }

  private define(table: Entry[], ref: number, e: Entry): void {
    if (ref === LITERAL) return;
    if (ref !== table.length) throw new Error(`IPC string table out of step: ref ${ref}, ${table.length} entries`);
    table.push(e);
  }

  /** Produces the staged records in order; false when librdkafka's queue is full. */
  private produceFrom(st: Staged): boolean {
    const vus = st.vus;
    while (st.next < vus.records) {
      const code = vus.produce(this.producer, st.next);
      if (code === Err.QUEUE_FULL) return false;
      if (code !== 0) this.fail(st.slot, st.next, { code, name: errName(code), message: errString(code), retriable: this.producer.lastErrorRetriable });
      st.next++;
    }
    return true;
  }

  private drainBacklog(): void {
    while (this.backlog.length > 0) {
      const st = this.backlog[0]!;
      if (!this.produceFrom(st)) return;
      this.backlog.shift();
      this.release(st);
    }
  }

  private release(st: Staged): void {
    if (this.spare.length < 4) this.spare.push(st);
  }

  private openPending(batchId: number, count: number): number {
    const p = this.sparePending.pop() ?? new Pending();
    p.open(batchId, count);
    const slot = this.freeSlots.pop() ?? this.pending.length;
    this.pending[slot] = p;
    if (count === 0) this.finish(slot, p);
    return slot;
  }

  private fail(slot: number, i: number, error: DeliveryError): void {
    const b = this.pending[slot];
    if (!b) return;
    b.partitions[i] = -1;
    b.offsets[i] = -1;
    b.errorIndex[i] = b.addError(error);
    if (b.settled(i)) this.finish(slot, b);
  }

  private finish(slot: number, b: Pending): void {
    this.pending[slot] = null;
    this.freeSlots.push(slot);
    this.inflight -= b.count;
    b.writeDelivery(this.out);
    if (this.sparePending.length < SPARE_PENDING) this.sparePending.push(b);
  }
}

/** A table entry: its own copy of name + NUL (+ value), so it outlives the message it came in. */
function entry(src: Buffer, nameAt: number, nameLen: number, valueAt: number, valueLen: number): Entry {
  const buf = Buffer.alloc(nameLen + 1 + Math.max(0, valueLen));
  src.copy(buf, 0, nameAt, nameAt + nameLen);
  if (valueLen > 0) src.copy(buf, nameLen + 1, valueAt, valueAt + valueLen);
  const addr = addressOf(buf);
  return { buf, nameAddr: addr, valueAddr: addr + nameLen + 1, valueLen, rkt: 0 };
}
