import { type ByteWriter, type DeliveryError, IpcType } from "../wire/ipc";

/**
 * How long a batch's records that have their outcome wait for the rest before they are reported on
 * their own (DELIVERY_PART). A batch mixes many clients' records, and one record librdkafka holds
 * (a topic the brokers will not make, a partition without a leader) held every other record's ack
 * with it until its message timeout: an existing topic's publishes waited 30 s behind a flood to
 * missing topics (outside tester). Batches answer within milliseconds when all is well, so this
 * costs nothing then.
 */
export const PARTIAL_AFTER_MS = 200;

/** Delivery results of one PRODUCE batch, column by column; reused for later batches. */
export class Pending {
  batchId = 0;
  count = 0;
  remaining = 0;
  /** performance.now() when it was opened. */
  openedAt = 0;
  partitions = new Int32Array(256);
  offsets = new Float64Array(256);
  errorIndex = new Int32Array(256);
  errors: DeliveryError[] = [];
  /** Indexes of the records with an outcome, in the order they got it; the first `reported` went out in DELIVERY_PART. */
  done = new Int32Array(256);
  doneCount = 0;
  reported = 0;

  open(batchId: number, count: number): void {
    if (this.partitions.length < count) {
      const size = Math.max(count, this.partitions.length * 2);
      this.partitions = new Int32Array(size);
      this.offsets = new Float64Array(size);
      this.errorIndex = new Int32Array(size);
      this.done = new Int32Array(size);
    }
    this.batchId = batchId;
    this.count = count;
    this.remaining = count;
    this.openedAt = performance.now();
    this.doneCount = 0;
    this.reported = 0;
    this.errorIndex.fill(-1, 0, count);
    this.errors.length = 0;
  }

  /**
   * The index of `error` in the batch's errors, added unless it is the same as the last one added: a
   * broker outage or a missing topic fails thousands of records alike, and each one's copy went
   * through JSON both ways and became an Error of its own in the gateway.
   */
  addError(error: DeliveryError): number {
    const last = this.errors[this.errors.length - 1];
    if (last !== undefined && sameError(last, error)) return this.errors.length - 1;
    return this.errors.push(error) - 1;
  }

  /** Record `i` has its outcome (in its columns); true when it was the batch's last. */
  settled(i: number): boolean {
    this.done[this.doneCount++] = i;
    return --this.remaining === 0;
  }

  /** Whether records with an outcome have waited for the rest long enough to go on their own. */
  partialDue(now: number): boolean {
    return this.doneCount > this.reported && now - this.openedAt >= PARTIAL_AFTER_MS;
  }

  /**
   * A DELIVERY_PART message (see ipc.ts) of the records settled since the last one, appended to
   * `out`, with only their errors (indexed afresh): a batch whose records fail a few at a time sent
   * every error so far with each part, every PARTIAL_SWEEP_MS (outside reviewer).
   */
  writeDeliveryPart(out: ByteWriter): void {
    const start = out.beginMessage(IpcType.DELIVERY_PART);
    const n = this.doneCount - this.reported;
    out.u32(this.batchId);
    out.u32(n);
    out.ensure(n * 20);
    const buf = out.buf;
    let pos = out.pos;
    let errors: DeliveryError[] | null = null;
    // The batch's index of the error last carried, and its index here.
    let lastFrom = -1;
    let lastTo = -1;
    for (let d = this.reported; d < this.doneCount; d++, pos += 20) {
      const i = this.done[d]!;
      const e = this.errorIndex[i]!;
      buf.writeUInt32LE(i, pos);
      buf.writeInt32LE(this.partitions[i]!, pos + 4);
      buf.writeDoubleLE(this.offsets[i]!, pos + 8);
      if (e >= 0 && e !== lastFrom) {
        lastFrom = e;
        lastTo = (errors ??= []).push(this.errors[e]!) - 1;
      }
      buf.writeInt32LE(e < 0 ? -1 : lastTo, pos + 16);
    }
    out.pos = pos;
    this.reported = this.doneCount;
    this.endWithErrors(out, start, errors ?? NONE);
  }

  /** The batch's DELIVERY message (see ipc.ts), appended to `out`. */
  writeDelivery(out: ByteWriter): void {
    const start = out.beginMessage(IpcType.DELIVERY);
    out.u32(this.batchId);
    out.u32(this.count);
    out.ensure(this.count * 16);
    const buf = out.buf;
    let pos = out.pos;
    for (let i = 0; i < this.count; i++, pos += 16) {
      buf.writeInt32LE(this.partitions[i]!, pos);
      buf.writeDoubleLE(this.offsets[i]!, pos + 4);
      buf.writeInt32LE(this.errorIndex[i]!, pos + 12);
    }
    out.pos = pos;
    this.endWithErrors(out, start);
  }

  /** The errors JSON both DELIVERY and DELIVERY_PART end with (ipc.ts), closing the message begun at `start`. */
  private endWithErrors(out: ByteWriter, start: number, errors: readonly DeliveryError[] = this.errors): void {
    const json = errors.length ? Buffer.from(JSON.stringify(errors)) : NO_ERRORS;
    out.u32(json.length);
    out.bytes(json);
    out.endMessage(start);
  }
}

function sameError(a: DeliveryError, b: DeliveryError): boolean {
  return a.code === b.code && a.retriable === b.retriable && a.unpartitioned === b.unpartitioned && a.message === b.message && a.name === b.name;
}

/** The errors of a batch without any, as DELIVERY carries them. */
const NO_ERRORS = Buffer.from("[]");
const NONE: readonly DeliveryError[] = [];
/** Pooled Pending columns kept for reuse beyond those in flight. */
export const SPARE_PENDING = 64;
