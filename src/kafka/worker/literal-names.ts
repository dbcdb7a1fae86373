import { addressOf } from "../librdkafka";

/**
 * NUL-terminated copies of the header names that cross as literals record after record (ce_id,
 * ce_time, ce_subject: their values change, so they never enter the string table), for records to
 * point at instead of copying their name into the batch each time. Bounded: past `capacity` names
 * (or for a name longer than `maxLen`) a name is copied with its batch as before. Entries are
 * never replaced, so an address handed out stays valid for a batch waiting in the backlog.
 */
export class LiteralNames {
  private readonly bufs: Buffer[] = [];
  private readonly addrs: number[] = [];
  private last = 0; // the entry found last: the next name is usually the one after it

  constructor(
    private readonly capacity = 32,
    private readonly maxLen = 64,
  ) {}

  /** The address of a kept copy of `src[at, at + len)` with its NUL, or 0. */
  find(src: Buffer, at: number, len: number): number {
    if (len > this.maxLen) return 0;
    const n = this.bufs.length;
    for (let k = 1; k <= n; k++) {
      const j = (this.last + k) % n;
      const b = this.bufs[j]!;
      if (b.length !== len + 1) continue;
      let i = 0;
      while (i < len && b[i] === src[at + i]) i++;
      if (i === len) {
        this.last = j;
        return this.addrs[j]!;
      }
    }
    if (n >= this.capacity) return 0;
    const b = Buffer.alloc(len + 1);
    src.copy(b, 0, at, at + len);
    this.bufs.push(b);
    this.addrs.push(addressOf(b));
    this.last = n;
    return this.addrs[n]!;
  }
}
