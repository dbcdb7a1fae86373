/**
 * Refused connection attempts are answered late. A client in a reconnect loop is closed-loop: the
 * sooner its refusal comes, the sooner it tries again, and each attempt costs the gateway an accept,
 * an HTTP parse and a response (about 65 µs here). Answered at once, 64 lanes of reconnects got
 * ~14,000 refusals/s and took a whole core; answered after a second, the same lanes get 64/s.
 *
 * Only attempts a rate refused are delayed, never a request that was admitted. The answer is made
 * when it is sent, its retry hint less the time already waited, so a client that honours it loses
 * nothing (HTTP's Retry-After is whole seconds, at least 1, either way). Delayed
 * answers are bounded (`maxDelayed`): past that many waiting, refusals are answered at once, so
 * that the delay cannot be turned into holding the gateway's sockets.
 */
export class RefusalDelay {
  private waiting = 0;

  constructor(
    /** 0: refusals are answered at once. */
    private readonly delayMs: number,
    private readonly maxDelayed = 1024,
  ) {}

  /** `make(waitedMs)`: the refusal, made when it is sent. */
  answer(make: (waitedMs: number) => Response): Response | Promise<Response> {
    if (this.delayMs === 0 || this.waiting >= this.maxDelayed) return make(0);
    this.waiting++;
    return new Promise((resolve) =>
      setTimeout(() => {
        this.waiting--;
        resolve(make(this.delayMs));
      }, this.delayMs),
    );
  }
}
