/**
 * Bytes the gateway holds for clients that have not read them (replies waiting in a connection's
 * outbound queue, and whatever sits in Bun's buffer for its socket: frames, and the pongs uWebSockets
 * writes there itself), by client address and over the instance.
 *
 * Each connection was bounded alone (16 MiB of unread replies, 4 MiB of unread pongs), so one client
 * address with its MAX_CONNECTIONS_PER_IP connections could have the gateway hold gigabytes for it:
 * ten connections of one address leaving 7.4 MB of replies each, or 3.8 MB of pongs, were none closed
 * (test/ws/unread-bytes). A
 * connection holding at least UNREAD_COUNTED_FROM counts towards its address's and the instance's
 * totals, and the one whose holding takes either past its bound is closed as not reading. A reading
 * client's holding stays near the outbound queue's 256 KiB high-water mark, below what is counted.
 */
export interface UnreadLimits {
  /** UNREAD_BYTES_PER_ADDRESS */
  perAddress: number;
  /** UNREAD_BYTES_TOTAL */
  total: number;
}

export const UNREAD_COUNTED_FROM = 1024 * 1024;

export type UnreadBound = "address" | "total";

export class UnreadBytes {
  private readonly byAddress = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: UnreadLimits) {}

  /** One connection's part, counted under its client address. */
  share(address: string): UnreadShare {
    return new UnreadShare(this, address);
  }

  /** Bytes counted now, for an address or (without one) the instance. */
  counted(address?: string): number {
    return address === undefined ? this.total : (this.byAddress.get(address) ?? 0);
  }

  /** @internal a share's counted bytes moved by `delta`; what it went past, growing, if anything. */
  move(address: string, delta: number): UnreadBound | null {
    const atAddress = (this.byAddress.get(address) ?? 0) + delta;
    if (atAddress === 0) this.byAddress.delete(address);
    else this.byAddress.set(address, atAddress);
    this.total += delta;
    if (delta <= 0) return null;
    if (atAddress > this.limits.perAddress) return "address";
    return this.total > this.limits.total ? "total" : null;
  }
}

export class UnreadShare {
  private countedBytes = 0;

  constructor(
    private readonly ledger: UnreadBytes,
    private readonly address: string,
  ) {}

  /** The connection now holds `bytes` unread; the bound its growth went past, if any. */
  holds(bytes: number): UnreadBound | null {
    const counted = bytes >= UNREAD_COUNTED_FROM ? bytes : 0;
    if (counted === this.countedBytes) return null;
    const delta = counted - this.countedBytes;
    this.countedBytes = counted;
    return this.ledger.move(this.address, delta);
  }

  /** The connection is gone: nothing of it is held. */
  release(): void {
    this.holds(0);
  }
}
