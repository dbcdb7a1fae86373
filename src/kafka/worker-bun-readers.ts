/**
 * The consuming half of the Bun Kafka worker (worker-bun.ts), with the Node worker's protocol
 * (worker-readers.ts): a reader is a consumer with manual assignment and no commits, or, for a
 * shared subscription, a group member with auto-commit; it sends RECORDS only while fewer than
 * READER_CREDIT of them await a RECORDS_ACK. Each record's key, value and headers are copied once,
 * from librdkafka's memory straight into the outgoing message.
 */
import type { Assignment } from "../log/event-log";
import { ByteWriter, IpcType, READER_CREDIT, jsonMessage } from "./ipc";
import { Consumer, MessageBatch } from "./librdkafka";
import { copyOut } from "./librdkafka/memory";

const BATCH = 500;
const MAX_STRLEN = 0xffff;

class Reader {
  private readonly consumer: Consumer;
  private readonly batch = new MessageBatch(BATCH);
  private readonly out = new ByteWriter(64 * 1024);
  private outstanding = 0;
  private closing = false;

  constructor(
    readonly id: number,
    config: Record<string, string | number | boolean>,
    private readonly send: (buf: Buffer) => void,
    groupTopics?: string[],
  ) {
    const mode: Record<string, string | boolean> = groupTopics ? { "enable.auto.commit": true, "auto.offset.reset": "latest" } : { "enable.auto.commit": false };
    this.consumer = new Consumer({ ...config, ...mode, "enable.partition.eof": false });
    if (groupTopics) this.consumer.subscribe(groupTopics);
    // rd_kafka_new() returns at once and connects in the background, as the Node reader's 'ready' did.
    send(jsonMessage(IpcType.READER_READY, { readerId: id }));
  }

  assign(list: Assignment[]): void {
    this.consumer.incrementalAssign(list);
  }

  unassign(list: Assignment[]): void {
    this.consumer.incrementalUnassign(list.map(({ topic, partition }) => ({ topic, partition })));
  }

  acked(): void {
    this.outstanding--;
  }

  close(): void {
    this.closing = true;
    try {
      this.consumer.beginClose();
    } catch {
      // Already closing or never joined: destroy() in tick() finishes it either way.
    }
  }

  /** Reads what is ready (never blocks). Returns false once closed and freed. */
  tick(): boolean {
    if (this.closing) {
      this.consumer.consume(this.batch, 0); // serves the close; records are discarded
      this.batch.release();
      if (!this.consumer.closed()) return true;
      this.consumer.destroy();
      return false;
    }
    if (this.outstanding >= READER_CREDIT) return true;
    const n = this.consumer.consume(this.batch, 0);
    if (n > 0) {
      const msg = this.encode(n);
      this.batch.release();
      if (msg) {
        this.outstanding++;
        this.send(msg);
      }
    }
    return true;
  }

  /** RECORDS for the batch's records (errors are reported, not forwarded); null if none. */
  private encode(n: number): Buffer | null {
    const b = this.batch;
    const w = this.out;
    const start = w.beginMessage(IpcType.RECORDS);
    w.u32(this.id);
    const countPos = w.pos;
    w.u32(0);
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (b.err(i) !== 0) {
        this.send(jsonMessage(IpcType.STATUS, { level: "warn", event: "reader_error", readerId: this.id, message: b.errorString(i) }));
        continue;
      }
      count++;
      w.shortString(b.topic(i));
      w.i32(b.partition(i));
      w.f64(b.offset(i));
      w.f64(b.timestamp(i));
      // i32 length (-1 null), then the bytes, copied straight from librdkafka's memory.
      const keyLen = b.keyLen(i);
      w.ensure(4 + Math.max(0, keyLen));
      w.i32(keyLen);
      if (keyLen > 0) b.copyKey(i, w.buf, w.pos);
      w.pos += Math.max(0, keyLen);
      const valueLen = b.valueLen(i);
      w.ensure(4 + Math.max(0, valueLen));
      w.i32(valueLen);
      if (valueLen > 0) b.copyValue(i, w.buf, w.pos);
      w.pos += Math.max(0, valueLen);
      const hc = b.headerCount(i);
      w.u16(hc);
      for (let h = 0; h < hc; h++) {
        b.header(h);
        const nameLen = b.headerNameLen();
        w.ensure(2 + nameLen + 4 + Math.max(0, b.headerValueLen));
        w.u16(Math.min(nameLen, MAX_STRLEN));
        copyOut(w.buf, w.pos, b.headerName, Math.min(nameLen, MAX_STRLEN));
        w.pos += Math.min(nameLen, MAX_STRLEN);
        const len = Math.max(0, b.headerValueLen);
        w.u32(len);
        copyOut(w.buf, w.pos, b.headerValue, len);
        w.pos += len;
      }
    }
    if (count === 0) {
      w.pos = 0;
      return null;
    }
    w.buf.writeUInt32LE(count, countPos);
    w.endMessage(start);
    return w.take();
  }
}

/** The readers of one worker process, driven by the gateway's JSON control messages. */
export class FfiReaders {
  private readonly readers = new Map<number, Reader>();

  constructor(
    private readonly config: Record<string, string | number | boolean>,
    private readonly send: (buf: Buffer) => void,
  ) {}

  get size(): number {
    return this.readers.size;
  }

  handle(type: number, msg: { readerId: number; group?: { id: string; topics: string[] }; assignments?: Assignment[] }): void {
    if (type === IpcType.OPEN_READER) {
      const groupId = msg.group?.id ?? `kgw-reader-${process.pid}-${msg.readerId}`;
      this.readers.set(msg.readerId, new Reader(msg.readerId, { ...this.config, "group.id": groupId }, this.send, msg.group?.topics));
      return;
    }
    const reader = this.readers.get(msg.readerId);
    if (!reader) return;
    if (type === IpcType.ASSIGN) reader.assign(msg.assignments ?? []);
    else if (type === IpcType.UNASSIGN) reader.unassign(msg.assignments ?? []);
    else if (type === IpcType.RECORDS_ACK) reader.acked();
    else if (type === IpcType.CLOSE_READER) {
      // Kept until its close completes (tick), then freed; the gateway has already forgotten it.
      this.readers.delete(msg.readerId);
      reader.close();
      this.closing.add(reader);
    }
  }

  private readonly closing = new Set<Reader>();

  /** Serves every reader once without blocking. */
  tick(): void {
    for (const r of this.readers.values()) r.tick();
    for (const r of this.closing) if (!r.tick()) this.closing.delete(r);
  }

  closeAll(): void {
    for (const r of this.readers.values()) {
      r.close();
      this.closing.add(r);
    }
    this.readers.clear();
  }

  /** Whether readers are still finishing their close. */
  get closingCount(): number {
    return this.closing.size;
  }
}
