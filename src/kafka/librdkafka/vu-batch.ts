/**
 * Many records' rd_kafka_vu_t arrays in one reused buffer, written in one pass and produced later
 * record by record (rd_kafka_produceva takes one record per call). A worker writes a whole IPC
 * batch here, produces what librdkafka accepts, and keeps the rest, in order, for when its queue has
 * room again: the vus of the waiting records are already made.
 *
 * Addresses written here must stay valid until the record is produced: they point into buffers the
 * caller keeps referenced (JavaScriptCore does not move ArrayBuffer contents while they are alive).
 */
import { RD_KAFKA_MSG_F_COPY, RD_KAFKA_PARTITION_UA, VType, VU } from "./layout";
import { addressOf, write64 } from "./memory";

const WORDS = VU.SIZE / 4;

/** What VuBatch produces through (Producer; an interface, so the two modules do not import each other). */
export interface VuProducer {
  producevaAt(vus: number, count: number): number;
}

export class VuBatch {
  private bytes: Uint8Array;
  private u32: Uint32Array;
  private i32: Int32Array;
  private base: number; // address of `bytes`, taken again when it grows
  private used = 0; // vus written
  private starts: Int32Array = new Int32Array(1024);
  private counts: Int32Array = new Int32Array(1024);
  /** Records begun so far. */
  records = 0;

  constructor(initialVus = 16 * 1024) {
    this.bytes = new Uint8Array(initialVus * VU.SIZE);
    this.u32 = new Uint32Array(this.bytes.buffer);
    this.i32 = new Int32Array(this.bytes.buffer);
    this.base = addressOf(this.bytes);
  }

  reset(): void {
    this.used = 0;
    this.records = 0;
  }

  /**
   * Starts record number `this.records`: its topic as a handle (`rkt`, from Producer.topicHandle)
   * or, when `rkt` is 0, as the NUL-terminated name at `topicAddr`; opaque; partition.
   */
  begin(topicAddr: number, opaque: number, partition = RD_KAFKA_PARTITION_UA, rkt = 0): void {
    const r = this.records++;
    if (r >= this.starts.length) {
      this.starts = grow(this.starts);
      this.counts = grow(this.counts);
    }
    this.starts[r] = this.used;
    this.counts[r] = 0;
    let w = this.next(rkt ? VType.RKT : VType.TOPIC);
    write64(this.u32, w + 2, rkt || topicAddr);
    w = this.next(VType.MSGFLAGS);
    this.i32[w + 2] = RD_KAFKA_MSG_F_COPY;
    w = this.next(VType.PARTITION);
    this.i32[w + 2] = partition;
    w = this.next(VType.OPAQUE);
    write64(this.u32, w + 2, opaque);
  }

  /** `len` -1: a null value (not written). */
  value(addr: number, len: number): void {
    if (len < 0) return;
    const w = this.next(VType.VALUE);
    write64(this.u32, w + 2, addr);
    write64(this.u32, w + 4, len);
  }

  /** `len` -1: no key. */
  key(addr: number, len: number): void {
    if (len < 0) return;
    const w = this.next(VType.KEY);
    write64(this.u32, w + 2, addr);
    write64(this.u32, w + 4, len);
  }

  /** Milliseconds since the epoch; 0 lets librdkafka use the current time. */
  timestamp(ms: number): void {
    const w = this.next(VType.TIMESTAMP);
    write64(this.u32, w + 2, ms);
  }

  header(nameAddr: number, valueAddr: number, len: number): void {
    const w = this.next(VType.HEADER);
    write64(this.u32, w + 2, nameAddr);
    write64(this.u32, w + 4, len < 0 ? 0 : valueAddr);
    write64(this.u32, w + 6, len);
  }

  /**
   * Produces record `r`. Returns 0 or a librdkafka error code (Err.QUEUE_FULL: not taken, try it
   * again later; anything else: the record failed and will get no delivery report).
   */
  produce(producer: VuProducer, r: number): number {
    return producer.producevaAt(this.base + this.starts[r]! * VU.SIZE, this.counts[r]!);
  }

  private next(vtype: number): number {
    if (this.used >= this.bytes.length / VU.SIZE) {
      const bigger = new Uint8Array(this.bytes.length * 2);
      bigger.set(this.bytes);
      this.bytes = bigger;
      this.u32 = new Uint32Array(bigger.buffer);
      this.i32 = new Int32Array(bigger.buffer);
      this.base = addressOf(bigger);
    }
    this.counts[this.records - 1]!++;
    const w = this.used++ * WORDS;
    this.u32[w] = vtype;
    return w;
  }
}

function grow(a: Int32Array): Int32Array {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

