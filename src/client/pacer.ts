import { TokenBucket } from "../limits/token-bucket";

/** The publish rates a gateway advertises in welcome (0 or absent: none). */
export interface AdvertisedRates {
  eventsPerSec?: number;
  bytesPerSec?: number;
  principalEventsPerSec?: number;
  principalBytesPerSec?: number;
  burstSeconds?: number;
}

// As the gateway sizes its buckets (limits/rate-limits.ts), 5% slower: the gateway reads frames with
// jitter, and two read in one turn find fewer tokens than they were sent with.
const MARGIN = 0.95;
// A connection's share of its principal's rates never goes under this, however often it is refused.
const MIN_SHARE = 1 / 64;
// After a cut the share grows back by this much of the whole per second: from half to all in 5 s.
const GROWTH_PER_SEC = 0.1;

/** The lower of two rates where 0 is none. */
const lowerRate = (a: number, b: number) => (a === 0 ? b : b === 0 ? a : Math.min(a, b));

/**
 * Paces one connection's publishes to the rates welcome advertised, in the gateway's own bucket
 * arithmetic (limits/token-bucket.ts), so that frames wait here rather than being sent into
 * RATE_LIMITED: past RATE_LIMIT_CLOSE_AFTER refusals the gateway closes the socket (4429).
 *
 * The principal's rates are shared by all of the principal's connections, which one connection
 * cannot see. So it takes all of them at first, as a principal's only connection (the usual case),
 * and a refusal for the principal's rate (`scope: "principal"`) halves its share, which then grows
 * back steadily: additive increase, multiplicative decrease, as TCP finds its share of a link.
 * Connections of one principal settle near equal shares, each refused about once per cycle of a few
 * seconds, far under what closes a connection.
 */
export class Pacer {
  readonly countsBytes: boolean;
  private readonly events: TokenBucket;
  private readonly bytes: TokenBucket;
  private share = 1;
  private cutTo = 1;
  private cutAt = 0;

  /** Null when there is nothing to pace: no rates, or a gateway too old to say its burst. */
  static from(rates: AdvertisedRates, now: number): Pacer | null {
    const r = { eventsPerSec: 0, bytesPerSec: 0, principalEventsPerSec: 0, principalBytesPerSec: 0, burstSeconds: 0, ...rates };
    if (r.burstSeconds <= 0 || r.eventsPerSec + r.bytesPerSec + r.principalEventsPerSec + r.principalBytesPerSec === 0) return null;
    return new Pacer(r, now);
  }

  private constructor(
    private readonly rates: Required<AdvertisedRates>,
    now: number,
  ) {
    this.events = new TokenBucket(this.rate("events"), this.burst("events"), now);
    this.bytes = new TokenBucket(this.rate("bytes"), this.burst("bytes"), now);
    this.countsBytes = this.rate("bytes") > 0;
  }

  /** 0 when a frame may go now, else the milliseconds until one may. */
  waitMs(now: number): number {
    this.grow(now);
    return Math.max(this.events.waitMs(now), this.bytes.waitMs(now));
  }

  /** Pays for a frame that was sent. */
  spend(events: number, bytes: number): void {
    this.events.spend(events);
    this.bytes.spend(bytes);
  }

  /** A refusal for the principal's rate: another connection of the principal takes part of it. */
  principalRefused(now: number): void {
    this.grow(now);
    this.cutTo = Math.max(MIN_SHARE, this.share / 2);
    this.cutAt = now;
    this.share = this.cutTo;
    this.apply(now);
    // The gateway's bucket is in debt: whatever this one still holds would be refused too.
    this.empty(now);
  }

  /** Keeps nothing in hand: the next frame waits for the refill, at the rate. */
  empty(now: number): void {
    this.events.empty(now);
    this.bytes.empty(now);
  }

  private grow(now: number): void {
    if (this.share === 1) return;
    const share = Math.min(1, this.cutTo + ((now - this.cutAt) / 1000) * GROWTH_PER_SEC);
    // Re-rated at most every 1% of growth: a bucket is cheap to re-rate, but not free per frame.
    if (share < 1 && share - this.share < 0.01) return;
    this.share = share;
    this.apply(now);
  }

  private apply(now: number): void {
    this.events.setRate(this.rate("events"), this.burst("events"), now);
    this.bytes.setRate(this.rate("bytes"), this.burst("bytes"), now);
  }

  private rate(unit: "events" | "bytes"): number {
    const r = this.rates;
    const own = unit === "events" ? r.eventsPerSec : r.bytesPerSec;
    const principal = (unit === "events" ? r.principalEventsPerSec : r.principalBytesPerSec) * this.share;
    return lowerRate(own, principal) * MARGIN;
  }

  private burst(unit: "events" | "bytes"): number {
    return Math.max(1, this.rate(unit) * this.rates.burstSeconds);
  }
}
