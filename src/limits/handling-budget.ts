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
 * A frame's cost is known only once it has run, so before it runs its client is taken to be busy
 * if the frame could make it so: if, at the costliest the gateway knows per byte, it would leave
 * less than half the client's burst. Judged by what the client had spent alone, a new connection
 * is always light, whatever its first frame costs: eight new connections each sending a 945 KB
 * frame dense with integers (45 ms each) took 360 ms of the loop back to back, and an innocent
 * client's publish waited 383 ms. A client whose next frame cannot take it below half its burst
 * (from a full one, a frame under ~500 KB at the defaults) is never made to wait for the others.
 */
import type { TokenBucket } from "./token-bucket";

/**
 * The most a byte of a frame or body has been seen to cost the gateway to handle: JSON dense with
 * 20-digit integers, 945 KB in 45 ms (test/ingest/dense-json.test.ts). A string of the same bytes
 * costs a twentieth of it.
 */
export const WORST_MS_PER_BYTE = 45 / 945_000;

/**
 * The most a frame or body of `bytes` is charged, however long its handling took by the clock:
 * FLOOR_MS and CAP_MS_PER_BYTE for each byte. The clock also counts the time the process was not
 * running (descheduled on a loaded machine, a collection, a short stop under the stall threshold of
 * loop-stalls.ts), which is no client's work: charged whole to whichever client's frame it fell in,
 * a publisher of small events well within its rates was rested 97 times in 40 pauses of 150-350 ms,
 * and its HTTP requests refused 429 (CI: a batch of one invalid event got 429, not 400). The thread's
 * own CPU clock would say exactly, but reading it is a system call (1.5 µs here, twice a frame).
 * The bound is what a byte can cost at worst, not WORST_MS_PER_BYTE: a batch of invalid one-byte
 * events costs 5 µs a byte (second review: 100,000 `0`s, 200 KB, 524 ms), a hundred times dense
 * integers. So it caps small frames, where a pause is most of the clock's reading, and hardly the
 * large. The slices of the event loop (ingress.ts, turn-budget.ts) still count the clock's time:
 * they share the loop's turns, and a pause is felt by everyone in them.
 */
export function chargeableMs(ms: number, bytes: number): number {
  return Math.min(ms, FLOOR_MS + bytes * CAP_MS_PER_BYTE);
}
// A small frame is handled in tens of microseconds; a first one, before the code is compiled, in a few hundred.
const FLOOR_MS = 2;
// Twice the costliest per byte measured (5.2 µs: invalid one-byte events, each its own error).
const CAP_MS_PER_BYTE = 0.01;

export class HandlingBudget {
  constructor(
    private readonly own: TokenBucket,
    /** Shared by every client of the gateway (null: no total). */
    private readonly total: TokenBucket | null,
  ) {}

  /** Charges `ms` of work done for the client on `bytes` it sent (see chargeableMs), to its own budget and to the total. */
  spend(ms: number, bytes: number): void {
    const charged = chargeableMs(ms, bytes);
    this.own.spend(charged);
    this.total?.spend(charged);
  }

  /** 0 when the client's next frame or body of `bytes` may be handled now, else the milliseconds until it may (at least 1). */
  waitMs(now: number, bytes = 0): number {
    const own = this.own.waitMs(now);
    if (own > 0 || this.total === null) return own;
    if (!this.own.isBelowHalf(now, bytes * WORST_MS_PER_BYTE)) return 0;
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
