import type { Assignment } from "../log/event-log";
import type { DecodedRecord } from "./decoded-record";

interface Part {
  topic: string;
  partition: number;
  /** Offsets dealt to a member and not yet handed to its socket (or given up), ascending from `head`. */
  order: number[];
  head: number;
  done: Set<number>;
  /** The offset after the last record read. */
  read: number;
  /** What was last given to storeOffsets. */
  stored: number;
}

/**
 * What a share group may commit, per partition: the offset before which every record read was
 * handed to a member's socket (or went to none: no member's filter took it). A record dealt to a member
 * whose connection then drops is not handed, so the group's commit stays before it, and it is read
 * again by whoever owns the partition next: shared subscriptions are at-least-once. Without this the
 * worker committed whatever it had read, and a member's records in flight were lost to the group.
 */
export class ShareLedger {
  private readonly parts = new Map<string, Part>();
  private readonly dirty = new Set<Part>();

  /** Every record the feed reads, in the order it reads them. */
  read(rec: DecodedRecord): void {
    const p = this.part(rec.record.topic, rec.record.partition);
    const offset = rec.record.offset;
    if (offset < p.read) {
      // Read again (a rebalance gave the partition back at the group's commit): what was outstanding before is being read anew.
      p.order.length = 0;
      p.head = 0;
      p.done.clear();
    }
    p.read = offset + 1;
    this.dirty.add(p);
  }

  /** `rec` (read last) went to a member. */
  dealt(rec: DecodedRecord): void {
    this.part(rec.record.topic, rec.record.partition).order.push(rec.record.offset);
  }

  /** Handed to a member's socket, or given up by its slow-consumer policy (it was told: `lagged`). */
  done(records: readonly DecodedRecord[]): void {
    for (const rec of records) {
      const p = this.parts.get(key(rec.record.topic, rec.record.partition));
      if (!p) continue;
      p.done.add(rec.record.offset);
      while (p.head < p.order.length && p.done.delete(p.order[p.head]!)) p.head++;
      if (p.head > 1024 && p.head * 2 > p.order.length) {
        p.order.splice(0, p.head);
        p.head = 0;
      }
      this.dirty.add(p);
    }
  }

  /** The positions that moved since the last call: what the group may now commit. */
  take(): Assignment[] {
    const out: Assignment[] = [];
    for (const p of this.dirty) {
      const at = p.head < p.order.length ? p.order[p.head]! : p.read;
      if (at !== p.stored) out.push({ topic: p.topic, partition: p.partition, offset: (p.stored = at) });
    }
    this.dirty.clear();
    return out;
  }

  private part(topic: string, partition: number): Part {
    const k = key(topic, partition);
    let p = this.parts.get(k);
    if (!p) this.parts.set(k, (p = { topic, partition, order: [], head: 0, done: new Set(), read: -1, stored: -1 }));
    return p;
  }
}

const key = (topic: string, partition: number) => `${topic}\0${partition}`;
