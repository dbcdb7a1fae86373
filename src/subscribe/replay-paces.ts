import { TokenBucket } from "../limits/token-bucket";

/**
 * A rate several replaying feeds share, served in the order they asked: each feed polling one bucket
 * on its own timer gave every slot to the feed whose timer was set first, so one address's first
 * replay read its whole history while its others waited. A bucket of one token that may go into debt:
 * a batch goes once the batches before it are paid for, so the schedule has no burst above the rate.
 */
export class SharedPace {
  private readonly bucket: TokenBucket;
  private readonly queue: Array<{ n: number; go: () => void }> = [];
  private timer: Timer | null = null;

  constructor(rate: number) {
    this.bucket = new TokenBucket(rate, 1, performance.now());
  }

  /**
   * True when a batch of `n` events may go now (it is paid for). Else false, and `go` is called when it
   * is the batch's turn (paid for then); a feed that ends meanwhile calls cancel.
   */
  claim(n: number, go: () => void): boolean {
    if (this.queue.length === 0 && this.bucket.waitMs(performance.now()) === 0) {
      this.bucket.spend(n);
      return true;
    }
    this.queue.push({ n, go });
    this.arm();
    return false;
  }

  cancel(go: () => void): void {
    const i = this.queue.findIndex((w) => w.go === go);
    if (i >= 0) this.queue.splice(i, 1);
    if (this.queue.length === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private arm(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const head = this.queue[0];
      if (head && this.bucket.waitMs(performance.now()) === 0) {
        this.queue.shift();
        this.bucket.spend(head.n);
        head.go();
      }
      this.arm();
    }, this.bucket.waitMs(performance.now()));
  }
}

/**
 * The replay rate each client address's replaying subscriptions share (REPLAY_RATE_LIMIT_PER_ADDRESS).
 * REPLAY_RATE_LIMIT paces each replay alone, so sixteen replays from one address asked sixteen times
 * the rate of one: the reading, encoding and sending of it took the cores every other client's acks
 * wait for.
 */
export class ReplayPaces {
  private readonly paces = new Map<string, { pace: SharedPace; feeds: number }>();

  constructor(
    /** Events/s per address; 0: no rate per address. */
    private readonly rate: number,
  ) {}

  /** The address's pace, for one more replaying feed; give it back with release. Null with no rate. */
  take(address: string): SharedPace | null {
    if (this.rate === 0) return null;
    let held = this.paces.get(address);
    if (!held) this.paces.set(address, (held = { pace: new SharedPace(this.rate), feeds: 0 }));
    held.feeds++;
    return held.pace;
  }

  /** A feed of `address` has ended; the address is forgotten with its last one (addresses are the clients'). */
  release(address: string): void {
    const held = this.paces.get(address);
    if (held && --held.feeds === 0) this.paces.delete(address);
  }
}
