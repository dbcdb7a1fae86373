/**
 * Bytes the gateway holds for clients that have not read them (replies waiting in a connection's
 * outbound queue, and whatever sits in Bun's buffer for its socket: frames, and the pongs uWebSockets
 * writes there itself), by client address and over the instance.
 *
 * Each connection was bounded alone (16 MiB of unread replies, 4 MiB of unread pongs), so one client
 * address with its MAX_CONNECTIONS_PER_IP connections could have the gateway hold gigabytes for it:
 * ten connections of one address leaving 7.4 MB of replies each, or 3.8 MB of pongs, were none closed
 * (test/ws/unread-bytes). Each connection's holding counts towards its address's and the
 * instance's totals in whole UNREAD_QUANTUM (so a connection's small moves do not each reach the
 * ledger), and the one whose holding takes either past its bound is closed as not reading when it
 * holds at least the average there, or whatever it holds once the bound is a quarter past (see move).
 * Counted only from 1 MiB, as it first was, MAX_CONNECTIONS_PER_IP connections of one address
 * could each leave just under that, a gigabyte the address's bound never saw.
 */
export interface UnreadLimits {
  /** UNREAD_BYTES_PER_ADDRESS */
  perAddress: number;
  /** UNREAD_BYTES_TOTAL */
  total: number;
}

/** What a connection holds counts rounded down to this: at most this much of each goes uncounted. */
export const UNREAD_QUANTUM = 64 * 1024;

export type UnreadBound = "address" | "total";

export class UnreadBytes {
  private readonly byAddress = new Map<string, { bytes: number; holders: number }>();
  private total = 0;
  private holders = 0;

  constructor(private readonly limits: UnreadLimits) {}

  /** One connection's part, counted under its client address. */
  share(address: string): UnreadShare {
    return new UnreadShare(this, address);
  }

  /** Bytes counted now, for an address or (without one) the instance. */
  counted(address?: string): number {
    return address === undefined ? this.total : (this.byAddress.get(address)?.bytes ?? 0);
  }

  /**
   * @internal A share's counted bytes moved by `delta` to `held` (`holders`: +1 as it begins to count,
   * -1 as it stops). The bound its growth went past, if any, and only when it holds at least its
   * scope's average or the scope is past SPARING_SLACK of its bound: the connections not reading are
   * the ones holding most, and a reader holding a large frame for a moment, as others fill the bound,
   * is let be (they meet it as they grow), while the bound still holds within a quarter.
   */
  move(address: string, delta: number, holders: number, held: number): UnreadBound | null {
    let at = this.byAddress.get(address);
    if (at === undefined) this.byAddress.set(address, (at = { bytes: 0, holders: 0 }));
    at.bytes += delta;
    at.holders += holders;
    if (at.holders === 0) this.byAddress.delete(address);
    this.total += delta;
    this.holders += holders;
    if (delta <= 0) return null;
    if (past(at.bytes, this.limits.perAddress, held, at.holders)) return "address";
    return past(this.total, this.limits.total, held, this.holders) ? "total" : null;
  }
}

// How far over its bound a scope may go while the connections growing it hold less than its average.
const SPARING_SLACK = 1.25;

/** Over the bound, the grower holding at least the average goes; past the slack, any grower does. */
function past(bytes: number, bound: number, held: number, holders: number): boolean {
  return bytes > bound && (held * holders >= bytes || bytes > bound * SPARING_SLACK);
}

export class UnreadShare {
  private countedBytes = 0;
  private released = false;

  constructor(
    private readonly ledger: UnreadBytes,
    private readonly address: string,
  ) {}

  /** The connection now holds `bytes` unread; the bound its growth went past, if any. */
  holds(bytes: number): UnreadBound | null {
    if (this.released) return null;
    const counted = bytes - (bytes % UNREAD_QUANTUM);
    if (counted === this.countedBytes) return null;
    const holders = (counted > 0 ? 1 : 0) - (this.countedBytes > 0 ? 1 : 0);
    const delta = counted - this.countedBytes;
    this.countedBytes = counted;
    return this.ledger.move(this.address, delta, holders, counted);
  }

  /** The connection is gone or going: nothing of it is counted from now on. */
  release(): void {
    this.holds(0);
    this.released = true;
  }
}
