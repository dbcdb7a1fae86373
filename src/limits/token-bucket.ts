/** The holder's own stalls (src/limits/loop-stalls.ts), as a bucket sees them. */
export interface Stalls {
  /** Milliseconds the holder has stood still in all, as far as seen so far. */
  readonly total: number;
}

/** How long what a stall earned above the burst is kept for the backlog that built up during it. */
export const STALL_CREDIT_MS = 10_000;

/**
 * A token bucket that may go into debt: a request passes whenever the bucket holds a whole token and
 * then pays all it costs, so a batch larger than the burst is still possible (it just has to be paid
 * back before the next). Refills continuously from the clock it is given; no timers.
 *
 * A whole token, not any of one: passing on a fraction let a bucket of 3 refreshes take a fourth a
 * few milliseconds later, and its wait (until a whole token) then said 2 s at 1/s (outside tester).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    /** Tokens per second; 0 means no limit. */
    private rate: number,
    private burst: number,
    now: number,
    /** The deepest debt kept: what was spent past it is forgiven (Infinity: all of it is owed). */
    private readonly maxDebt = Number.POSITIVE_INFINITY,
    /** The holder's own stalls (loop-stalls.ts): what the rate earned during one is kept past the burst. */
    private readonly stalls: Stalls | null = null,
  ) {
    this.tokens = burst;
    this.last = now;
    this.stallsSeen = stalls?.total ?? 0;
  }

  private stallsSeen: number;
  /** When the last stall was counted: what it left above the burst is kept until STALL_CREDIT_MS after. */
  private creditFrom = Number.NEGATIVE_INFINITY;

  /** 0 when a request may pass now, else the milliseconds until it may (at least 1). */
  waitMs(now: number): number {
    if (this.rate === 0) return 0;
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.rate));
  }

  /** Pays for a request that passed `waitMs`. */
  spend(cost: number): void {
    if (this.rate !== 0) this.tokens -= cost;
  }

  /**
   * From `now` on, refills at `rate` up to `burst` (what it holds is kept, up to the new burst): for
   * a client that finds its share of a rate shared with others (client/pacer.ts).
   */
  setRate(rate: number, burst: number, now: number): void {
    this.refill(now);
    this.rate = rate;
    this.burst = burst;
    this.tokens = Math.min(this.tokens, burst);
  }

  /** Keeps no tokens in hand (a debt stays): the next request waits for the refill. */
  empty(now: number): void {
    this.refill(now);
    this.tokens = Math.min(this.tokens, 0);
  }

  /** Whether less than half the burst is left (once `cost` more is spent): its holder has been spending faster than the rate. */
  isBelowHalf(now: number, cost = 0): boolean {
    if (this.rate === 0) return false;
    this.refill(now);
    return this.tokens - cost < this.burst / 2;
  }

  /** Whether the bucket is full again, so it holds nothing worth keeping it for. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    const elapsed = now - this.last;
    this.last = now;
    let cap = this.burst;
    if (this.stalls !== null && this.stalls.total !== this.stallsSeen) {
      cap += ((this.stalls.total - this.stallsSeen) * this.rate) / 1000;
      this.stallsSeen = this.stalls.total;
      this.creditFrom = now;
    }
    // The credit is for the backlog a client sent while the gateway stood still, read as soon as it
    // wakes; kept longer, a client idle through a minute's stall could send a minute's worth at once
    // whenever it liked.
    else if (this.tokens > this.burst && now - this.creditFrom > STALL_CREDIT_MS) this.tokens = this.burst;
    // What a stall left above the burst is spent, never cut back by a later refill.
    if (elapsed > 0 && this.tokens < cap) this.tokens = Math.min(cap, this.tokens + (elapsed * this.rate) / 1000);
    // Forgiven only here, once the time since the last look is counted: spend() does not know the time.
    if (this.tokens < -this.maxDebt) this.tokens = -this.maxDebt;
  }
}
