import { type Assignment, type ConsumedRecord, type LogReader, Offset, type ReaderHandlers } from "./event-log";
import type { MemoryLog } from "./memory-log";
import { keyValueBytes } from "./memory-partition";

const CREDIT = 4;

/** A partition's key in the readers' positions and in a share group's commits (MemoryLog). */
export const placeOf = (topic: string, partition: number): string => `${topic}\0${partition}`;
const BATCH = 500;
// Bytes of keys and values in one batch, as a Kafka worker's RECORDS message holds (1 MiB): each
// batch becomes one frame per subscription, and 500 records of 200 KB made a 100 MB frame, queued
// whole for a subscriber whose own bound is SUBSCRIBER_BUFFER_BYTES. The first record always goes.
const BATCH_BYTES = 1024 * 1024;

interface Position {
  topic: string;
  partition: number;
  next: number;
}

/**
 * The embedded log's reader: the same contract as a Kafka reader (manual assignment, credits). It
 * reads when the log gives it a turn (MemoryLog's read slices), never on its own: a Kafka reader's
 * reading costs a worker process, this one's costs the gateway's thread.
 */
export class MemoryReader implements LogReader {
  readonly ready = Promise.resolve();
  private readonly positions = new Map<string, Position>();
  private outstanding = 0;
  private closed = false;

  /**
   * `committed`: a share group's positions (MemoryLog keeps them), which storeOffsets moves on. A
   * group's reader whose position retention has passed goes on from the log's start, as a Kafka
   * group's does (auto.offset.reset=earliest), rather than stopping there.
   */
  constructor(
    private readonly log: MemoryLog,
    private readonly handlers: ReaderHandlers,
    private readonly committed?: Map<string, number>,
  ) {}

  assign(list: Assignment[]): void {
    for (const a of list) {
      // A topic not written yet is empty, not absent: its reader waits at 0 for the first append.
      const offsets = this.log.offsets(a.topic);
      const marks = offsets[a.partition] ?? (offsets.length === 0 && a.partition < this.log.partitionsPerTopic ? EMPTY : undefined);
      if (!marks) continue;
      // An explicit offset is taken as it is: one retention has dropped is found, and told, when read.
      const next = a.offset === Offset.BEGINNING ? marks.earliest : a.offset === Offset.END ? marks.next : a.offset;
      this.positions.set(placeOf(a.topic, a.partition), { topic: a.topic, partition: a.partition, next });
    }
    this.notify();
  }

  unassign(list: Assignment[]): void {
    for (const a of list) this.positions.delete(placeOf(a.topic, a.partition));
  }

  storeOffsets(list: Assignment[]): void {
    if (!this.committed || this.closed) return;
    for (const a of list) if (a.offset >= 0) this.committed.set(placeOf(a.topic, a.partition), a.offset);
  }

  close(): void {
    this.closed = true;
    this.log.removeReader(this);
  }

  /** There may be something to read (an append, an assignment, a credit back): asks the log for a turn. */
  notify(): void {
    if (!this.closed) this.log.wantsToRead(this);
  }

  /** Reads and hands over one batch, if it has a credit and something to read; false when it has nothing more to do now. */
  readOnce(): boolean {
    if (this.closed || this.outstanding >= CREDIT) return false;
    const batch: ConsumedRecord[] = [];
    let bytes = 0;
    for (const [place, pos] of this.positions) {
      // Retention dropped the next record before it was read. A group's reader goes on from the log's
      // start, as a Kafka group's does (auto.offset.reset=earliest), and reads on now: skipped until
      // the next append, on a partition whose every append moves its start it never read again. Any
      // other reader stops reading the partition and says so, as a Kafka reader does, rather than
      // going on from the log's start as if nothing were missing.
      if (pos.next < this.log.earliest(pos.topic, pos.partition)) {
        if (this.committed) pos.next = this.log.earliest(pos.topic, pos.partition);
        else {
          this.positions.delete(place);
          this.handlers.onOutOfRange(pos.topic, pos.partition, pos.next);
          continue;
        }
      }
      // Only a batch's first record may be larger than the budget on its own.
      for (const r of this.log.read(pos.topic, pos.partition, pos.next, BATCH - batch.length, BATCH_BYTES - bytes, batch.length === 0)) {
        bytes += keyValueBytes(r);
        batch.push(r);
        pos.next = r.offset + 1;
      }
      if (batch.length >= BATCH || bytes >= BATCH_BYTES) {
        // The partition that filled the batch goes last: walked from the first every time, a
        // partition that always had a batch's worth (a replay paced below its write rate) kept every
        // other from being read at all.
        this.positions.delete(place);
        this.positions.set(place, pos);
        break;
      }
    }
    if (batch.length === 0) return false;
    this.outstanding++;
    let released = false;
    this.handlers.onRecords(batch, () => {
      if (released) return;
      released = true;
      this.outstanding--;
      this.notify();
    });
    return !this.closed && this.outstanding < CREDIT;
  }
}

const EMPTY = { earliest: 0, next: 0 };
