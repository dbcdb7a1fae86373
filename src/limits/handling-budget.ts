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
 */
import type { TokenBucket } from "./token-bucket";

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

  /** 0 when the client may be served now, else the milliseconds until it may (at least 1). */
  waitMs(now: number): number {
    const own = this.own.waitMs(now);
    if (own > 0 || this.total === null || !this.own.isBelowHalf(now)) return own;
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
