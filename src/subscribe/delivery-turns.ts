/**
 * One budget of delivery work per event-loop turn, shared by every feed of the gateway.
 *
 * Each feed used to take its own 5 ms a turn, so the cost of a turn grew with the number of busy
 * feeds: sixteen SSE replays from one address held every other client for about 80 ms a turn, and
 * the hostile tester's control publish had a p99 of 330 ms while its p50 stayed at 1 ms. Feeds now
 * deliver within one budget: the first in line may use all of it, and a feed that finds it spent
 * waits at the back of the line for the next turn. So a turn's delivery costs about `turnMs` however
 * many feeds are busy, and each busy feed still gets its turn in order.
 */
export class DeliveryTurns {
  private spentMs = 0;
  private armed = false;
  /** Feeds waiting for a turn, in the order they asked (a Set keeps insertion order). */
  private readonly waiting = new Set<() => void>();

  constructor(
    private readonly turnMs: number,
    /** Told of all delivery work too: the busy publishers' total pays for it (see SubscriptionManager). */
    private readonly onWork: (ms: number) => void = () => {},
  ) {}

  /** Milliseconds of delivery left in this turn; none left: wait(). */
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
