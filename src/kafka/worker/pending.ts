import { type ByteWriter, type DeliveryError, IpcType } from "../wire/ipc";

/** Delivery results of one PRODUCE batch, column by column; reused for later batches. */
export class Pending {
  batchId = 0;
  count = 0;
  remaining = 0;
  partitions = new Int32Array(256);
  offsets = new Float64Array(256);
  errorIndex = new Int32Array(256);
  errors: DeliveryError[] = [];

  open(batchId: number, count: number): void {
    if (this.partitions.length < count) {
      const size = Math.max(count, this.partitions.length * 2);
      this.partitions = new Int32Array(size);
      this.offsets = new Float64Array(size);
      this.errorIndex = new Int32Array(size);
    }
    this.batchId = batchId;
    this.count = count;
    this.remaining = count;
    this.errorIndex.fill(-1, 0, count);
    this.errors.length = 0;
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
    const errors = this.errors.length ? Buffer.from(JSON.stringify(this.errors)) : NO_ERRORS;
    out.u32(errors.length);
    out.bytes(errors);
    out.endMessage(start);
  }
}

/** The errors of a batch without any, as DELIVERY carries them. */
const NO_ERRORS = Buffer.from("[]");
/** Pooled Pending columns kept for reuse beyond those in flight. */
export const SPARE_PENDING = 64;
