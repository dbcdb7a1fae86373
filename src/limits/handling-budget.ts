/**
 * The gateway's time a client's requests may take (decoding, checking, encoding what it sent),
 * measured after the work, since only then is its cost known.
 *
 * Each client has its own budget (RATE_LIMIT_HANDLING_MS). Alone, that let many clients together
 * take all of the event loop: eight connections at 100 ms a second each put an innocent client's
 * p99 at 0.8-1.3 s (outside tester). So the clients that are busy, those that have spent more than
 * half of their own burst, also share one total (RATE_LIMIT_HANDLING_TOTAL_MS): while it is spent,
 * a busy client waits for it too. A client well within its own budget never waits for the total,
 * however busy the others are: it is the one the total protects.
 *
 * Except for a heavy frame (HEAVY_FRAME_BYTES or more). Its cost is known only once it has run, and
 * a client's first frames are within its own budget, whatever they cost: eight new connections
 * each sending a 945 KB frame dense with integers (45 ms each) took 360 ms of the loop back to back,
 * and an innocent client's publish waited 383 ms. A frame that size is what makes a busy client, so
 * it waits for the total when the total is spent, from any client. Small frames cost at most a few
 * milliseconds each, and a client sending only those is never made to wait for the others.
 */
import type { TokenBucket } from "./token-bucket";

/** A frame or body this large waits for the total while it is spent, whatever its client's own budget (see above). */
export const HEAVY_FRAME_BYTES = 64 * 1024;

export class HandlingBudget {
  constructor(
    private readonly own: TokenBucket,
    /** Shared by every client of the gateway (null: no total). */
    private readonly total: TokenBucket | null,
  ) {}

  /** Charges `ms` of work done for the client, to its own budget and to the total. */
  spend(ms: number): void {
    this.own.spend(ms);
    this.total?.spend(ms);
  }

  /** 0 when the client's next frame or body of `bytes` may be handled now, else the milliseconds until it may (at least 1). */
  waitMs(now: number, bytes = 0): number {
    const own = this.own.waitMs(now);
    if (own > 0 || this.total === null) return own;
    if (bytes < HEAVY_FRAME_BYTES && !this.own.isBelowHalf(now)) return 0;
    return this.total.waitMs(now);
  }

  /** Whether the wait is for the client's own budget (else for the total busy clients share). */
  ownWaitMs(now: number): number {
    return this.own.waitMs(now);
  }

  isFull(now: number): boolean {
    return this.own.isFull(now);
  }
}
