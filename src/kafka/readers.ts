import type { ConsumedRecord, LogReader, ReaderGroup, ReaderHandlers, ReaderOptions } from "../log/event-log";
import { GatewayError } from "../protocol/errors";
import { RepeatedNames } from "../bytes/repeated-names";
import { type ByteReader, IpcType, jsonMessage } from "./wire/ipc";
import { readRecords } from "./wire/records-layout";
import type { WorkerSlot } from "./worker-slot";

interface OpenReader {
  slot: WorkerSlot;
  handlers: ReaderHandlers;
  isReady: boolean;
  markReady: () => void;
  fail: (e: Error) => void;
  /** Its topic and header names, the same in most records (RepeatedNames). */
  names: RepeatedNames;
}

/**
 * The gateway side of the readers of every worker: opens them, routes their batches, fails them over.
 *
 * Failover: a worker's readers die with it. Their owners are told (onLost) once, and only when the
 * lost worker's replacement is ready, so that the reopening has somewhere to go: told at once, they
 * would reopen on a worker that cannot take them, be lost again, and spin (a wedged gateway). The
 * pool's restart backoff spaces the attempts when a worker keeps dying. A reader lost before it was
 * ready has no positions to resume from: its `ready` rejects, and whoever is awaiting it handles that.
 */
export class ReaderRegistry {
  private readonly readers = new Map<number, OpenReader>();
  /** Readers lost with a worker, waiting for a replacement to be ready. */
  private orphans: Array<{ slot: WorkerSlot; reason: string; handlers: ReaderHandlers }> = [];
  private nextId = 1;

  /** `readyTimeoutMs`: how long a new reader may take to connect before its opener is told UNAVAILABLE. */
  constructor(private readonly readyTimeoutMs = 15_000) {}

  open(slot: WorkerSlot, handlers: ReaderHandlers, group?: ReaderGroup, options: ReaderOptions = {}): LogReader {
    const readerId = this.nextId++;
    let markReady!: () => void;
    let fail!: (e: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      fail = reject;
    });
    ready.catch(() => {}); // the opener awaits it; an opener that stopped caring must not crash us
    const reader: OpenReader = { slot, handlers, isReady: false, markReady: () => {}, fail, names: new RepeatedNames() };
    reader.markReady = () => {
      reader.isReady = true;
      markReady();
    };
    this.readers.set(readerId, reader);
    const control = (type: number, body: object) => slot.writer?.write(jsonMessage(type, { readerId, ...body }));
    const { onlyHeaders, bulk } = options;
    control(IpcType.OPEN_READER, { ...(group ? { group } : {}), ...(onlyHeaders ? { onlyHeaders } : {}), ...(bulk ? { bulk } : {}) });
    // A consumer that cannot connect (no broker) never says READER_READY; its opener must not wait forever.
    const timer = setTimeout(() => {
      if (reader.isReady || this.readers.get(readerId) !== reader) return;
      this.readers.delete(readerId);
      control(IpcType.CLOSE_READER, {});
      fail(new GatewayError("UNAVAILABLE", `the Kafka reader did not connect within ${this.readyTimeoutMs} ms`));
    }, this.readyTimeoutMs);
    void ready.then(() => clearTimeout(timer), () => clearTimeout(timer));
    return {
      ready,
      assign: (assignments) => control(IpcType.ASSIGN, { assignments }),
      unassign: (assignments) => control(IpcType.UNASSIGN, { assignments }),
      storeOffsets: (assignments) => control(IpcType.STORE_OFFSETS, { assignments }),
      close: () => {
        if (!this.readers.delete(readerId)) {
          // Lost with its worker and not yet told: closed, it is never to be told (its owner reopens itself).
          this.orphans = this.orphans.filter((o) => o.handlers !== handlers);
          return;
        }
        control(IpcType.CLOSE_READER, {});
        // Whoever awaits `ready` must not wait for good: a feed closed while its reader starts would
        // hold its subscription's replay slot for as long as the process lives.
        if (!reader.isReady) fail(new GatewayError("UNAVAILABLE", "the Kafka reader was closed before it was ready"));
      },
    };
  }

  onReady(readerId: number): void {
    this.readers.get(readerId)?.markReady();
  }

  onOutOfRange(readerId: number, topic: string, partition: number, offset: number): void {
    this.readers.get(readerId)?.handlers.onOutOfRange(topic, partition, offset);
  }

  onDenied(readerId: number, topic: string, message: string): void {
    this.readers.get(readerId)?.handlers.onDenied?.(topic, message);
  }

  onEnd(readerId: number, topic: string, partition: number, offset: number): void {
    this.readers.get(readerId)?.handlers.onEnd?.(topic, partition, offset);
  }

  /** `owned`: the message's buffer is its own, and a large value may stay a view of it (readRecords). */
  onRecords(r: ByteReader, owned = false): void {
    const readerId = r.u32();
    const reader = this.readers.get(readerId);
    if (!reader) return;
    let records: ConsumedRecord[];
    try {
      records = readRecords(r, reader.names, owned);
    } catch {
      // Only a bug on either side of the socket gets here: the credit goes back so the reader is not wedged.
      reader.slot.writer?.write(jsonMessage(IpcType.RECORDS_ACK, { readerId }));
      return;
    }
    let acked = false;
    const done = () => {
      if (acked || !this.readers.has(readerId)) return;
      acked = true;
      reader.slot.writer?.write(jsonMessage(IpcType.RECORDS_ACK, { readerId }));
    };
    try {
      reader.handlers.onRecords(records, done);
    } catch (e) {
      // The credit goes back, or the reader would wait for it for good; the pool logs the error.
      done();
      throw e;
    }
  }

  /** A worker died: its readers are gone with it. Nothing is called back here (see the class comment). */
  onSlotLost(slot: WorkerSlot, reason: string): void {
    const lost: OpenReader[] = [];
    for (const [id, reader] of this.readers) {
      if (reader.slot !== slot) continue;
      this.readers.delete(id);
      lost.push(reader);
    }
    for (const reader of lost) {
      if (reader.isReady) this.orphans.push({ slot, reason, handlers: reader.handlers });
      else reader.fail(new GatewayError("UNAVAILABLE", `the Kafka worker exited (${reason}) before the reader was ready`));
    }
  }

  /** A worker is ready: the readers lost with its predecessor are told, once, to reopen. */
  onSlotReady(slot: WorkerSlot): void {
    if (!this.orphans.some((o) => o.slot === slot)) return;
    const now = this.orphans.filter((o) => o.slot === slot);
    this.orphans = this.orphans.filter((o) => o.slot !== slot);
    for (const o of now) o.handlers.onLost(o.reason);
  }

  /** The pool is closing: nobody will reopen anything. */
  clear(): void {
    this.orphans = [];
  }
}
