/**
 * One budget of work per event-loop turn, shared by everyone who does that kind of work: the feeds
 * delivering what they read (SubscriptionManager), or HTTP requests decoding and preparing their
 * bodies (http/events.ts), as WebSocket frames are metered by ws/ingress.ts.
 *
 * Each feed used to take its own 5 ms a turn, so the cost of a turn grew with the number of busy
 * feeds: sixteen SSE replays from one address held every other client for about 80 ms a turn, and
 * the hostile tester's control publish had a p99 of 330 ms while its p50 stayed at 1 ms. Feeds now
 * deliver within one budget: the first in line may use all of it, and a feed that finds it spent
 * waits at the back of the line for the next turn. So a turn's delivery costs about `turnMs` however
 * many feeds are busy, and each busy feed still gets its turn in order. HTTP bodies were each handled
 * as they arrived: sixteen principals' bodies of JSON dense with integers (each within its rates)
 * ran back to back in one turn, and a WebSocket client's ack waited for all of them (outside tester:
 * its p99 from 3 ms to 0.5-2.9 s).
 */
export class TurnBudget {
  private spentMs = 0;
  private armed = false;
  /** Those waiting for a turn, in the order they asked (a Set keeps insertion order). */
  private readonly waiting = new Set<() => void>();

  constructor(
    private readonly turnMs: number,
    /** Told of all the work too (delivery: the busy publishers' total pays for it, see SubscriptionManager). */
    private readonly onWork: (ms: number) => void = () => {},
  ) {}

  /** Milliseconds of work left in this turn; none left: wait(). */
  get leftMs(): number {
    return this.turnMs - this.spentMs;
  }

  /** Counts work done in this turn. */
  spend(ms: number): void {
    this.spentMs += ms;
    this.onWork(ms);
    this.arm(); // the next turn starts with a fresh budget
  }

  /** `resume` runs in a later turn, after every feed that was waiting already. */
  wait(resume: () => void): void {
    this.waiting.add(resume);
    this.arm();
  }

  cancel(resume: () => void): void {
    this.waiting.delete(resume);
  }

  /**
   * Runs `work` in this turn if it has time left and nobody is in line, else in its turn after those
   * waiting; what it took is spent from the budget.
   */
  run<T>(work: () => T): Promise<T> {
    const timed = () => {
      const started = performance.now();
      try {
        return work();
      } finally {
        this.spend(performance.now() - started);
      }
    };
    return new Promise<T>((resolve, reject) => {
      const go = () => {
        try {
          resolve(timed());
        } catch (e) {
          reject(e);
        }
      };
      if (this.leftMs > 0 && this.waiting.size === 0) go();
      else this.wait(go);
    });
  }

  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    setImmediate(this.pass);
  }

  private readonly pass = (): void => {
    this.armed = false;
    this.spentMs = 0;
    // Only those waiting as the turn began: one that asks again joins the line behind them, and
    // those the budget does not reach stay at its front. The first always runs, so a turn's
    // budget can never be spent by nobody.
    const inLine = this.waiting.size;
    let served = 0;
    for (const resume of this.waiting) {
      if (served === inLine || (served > 0 && this.spentMs >= this.turnMs)) break;
      this.waiting.delete(resume);
      served++;
      resume();
    }
    if (this.waiting.size > 0) this.arm();
  };
}
