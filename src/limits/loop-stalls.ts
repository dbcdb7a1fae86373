/**
 * The gateway's own pauses (the process stopped or starved, a VM paused, a long collection), as the
 * clients' rates should see time. A client that keeps to its rate sends on while the gateway does
 * not read, and the gateway then reads all of it at once: buckets refilled only up to their burst
 * refused that backlog RATE_LIMITED and closed the connection 4429 as a flooder, its address
 * penalised (outside chaos tester: a 12 s SIGSTOP, a publisher at 6% of its rate closed 43 ms after
 * the gateway woke, 2,282 of its requests never answered). A bucket refilling across a stall may hold,
 * beyond its burst, what its rate earned during the stall (token-bucket.ts).
 */
import type { Stalls } from "./token-bucket";

/** Longer than this without a look at the clock is a stall: a loaded loop's turns stay well under it. */
const STALL_MS = 1_000;
const TICK_MS = 100;

export class LoopStalls implements Stalls {
  total = 0;
  private last: number;
  private readonly ticker: ReturnType<typeof setInterval>;

  constructor(now = performance.now()) {
    this.last = now;
    this.ticker = setInterval(() => this.observe(performance.now()), TICK_MS);
    this.ticker.unref();
  }

  /**
   * Called with the time wherever rates read it, and by a ticker: after a stall, whichever looks
   * first counts it, so the first frame read after it already finds it counted.
   */
  observe(now: number): void {
    // Stopped (the gateway drains): no ticker looks any more, so gaps say nothing.
    if (this.stopped) return;
    const gap = now - this.last;
    this.last = now;
    if (gap > STALL_MS) this.total += gap - TICK_MS;
  }

  private stopped = false;

  stop(): void {
    this.stopped = true;
    clearInterval(this.ticker);
  }
}
