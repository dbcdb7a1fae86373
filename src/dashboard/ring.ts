import type { DeliveredEvent } from "../client/index";

/**
 * The recent events, at most `capacity`: event number `seq` lives in slot seq % capacity until
 * `capacity` newer ones push it out. Appending never allocates; the view reads by sequence number,
 * so a paused view keeps pointing at the same events while new ones arrive.
 */
export class EventRing {
  private readonly slots: Array<DeliveredEvent | undefined>;
  /** Sequence number the next event gets; the newest is next - 1. */
  next = 0;

  constructor(readonly capacity: number) {
    this.slots = new Array(capacity);
  }

  push(e: DeliveredEvent): void {
    this.slots[this.next % this.capacity] = e;
    this.next++;
  }

  /** The oldest sequence number still held. */
  get oldest(): number {
    return Math.max(0, this.next - this.capacity);
  }

  get(seq: number): DeliveredEvent | undefined {
    return seq >= this.oldest && seq < this.next ? this.slots[seq % this.capacity] : undefined;
  }

  clear(): void {
    this.slots.fill(undefined);
    this.next = 0;
  }
}
