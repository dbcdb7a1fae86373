import type { ConsumedRecord, LogReader, ReaderGroup, ReaderHandlers } from "../log/event-log";
import { type ByteReader, IpcType, jsonMessage } from "./ipc";
import type { WorkerSlot } from "./worker-slot";

interface OpenReader {
  slot: WorkerSlot;
  handlers: ReaderHandlers;
  markReady: () => void;
}

/** The gateway side of the readers of every worker: opens them, routes their batches, fails them over. */
export class ReaderRegistry {
  private readonly readers = new Map<number, OpenReader>();
  private nextId = 1;

  open(slot: WorkerSlot, handlers: ReaderHandlers, group?: ReaderGroup): LogReader {
    const readerId = this.nextId++;
    let markReady!: () => void;
    const ready = new Promise<void>((r) => (markReady = r));
    this.readers.set(readerId, { slot, handlers, markReady });
    const control = (type: number, body: object) => slot.writer?.write(jsonMessage(type, { readerId, ...body }));
    control(IpcType.OPEN_READER, group ? { group } : {});
    return {
      ready,
      assign: (assignments) => control(IpcType.ASSIGN, { assignments }),
      unassign: (assignments) => control(IpcType.UNASSIGN, { assignments }),
      close: () => {
        if (this.readers.delete(readerId)) control(IpcType.CLOSE_READER, {});
      },
    };
  }

  onReady(readerId: number): void {
    this.readers.get(readerId)?.markReady();
  }

  onRecords(r: ByteReader): void {
    const readerId = r.u32();
    const reader = this.readers.get(readerId);
    if (!reader) return;
    const count = r.u32();
    const records: ConsumedRecord[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const topic = r.shortString();
      const partition = r.i32();
      const offset = r.f64();
      const timestamp = r.f64();
      const key = r.nullableSlice();
      const value = r.nullableSlice();
      const headerCount = r.u16();
      const headers: ConsumedRecord["headers"] = new Array(headerCount);
      for (let h = 0; h < headerCount; h++) headers[h] = [r.shortString(), Buffer.from(r.slice(r.u32()))];
      records[i] = { topic, partition, offset, timestamp, key: key && Buffer.from(key), value: value && Buffer.from(value), headers };
    }
    let acked = false;
    reader.handlers.onRecords(records, () => {
      if (acked || !this.readers.has(readerId)) return;
      acked = true;
      reader.slot.writer?.write(jsonMessage(IpcType.RECORDS_ACK, { readerId }));
    });
  }

  /** A worker died: its readers are gone with it. */
  onSlotLost(slot: WorkerSlot, reason: string): void {
    for (const [id, reader] of this.readers) {
      if (reader.slot !== slot) continue;
      this.readers.delete(id);
      reader.handlers.onLost(reason);
    }
  }
}
