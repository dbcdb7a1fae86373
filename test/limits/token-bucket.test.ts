/**
 * The token bucket's debt (src/limits/token-bucket.ts), on the clock it is given: a debt is paid back
 * at the rate, and one capped by maxDebt is forgiven past the cap, counted from the time it is looked at.
 */
import { expect, test } from "bun:test";
import { STALL_CREDIT_MS, TokenBucket } from "../../src/limits/token-bucket";

test("a request passes while tokens are left and pays all it costs: a debt is waited out at the rate", () => {
  const bucket = new TokenBucket(100, 100, 0);
  expect(bucket.waitMs(0)).toBe(0);
  bucket.spend(1_100); // 1,000 in debt: 10 s at 100/s
  expect(bucket.waitMs(0)).toBe(10_010);
  expect(bucket.waitMs(5_000)).toBe(5_010);
  expect(bucket.waitMs(10_011)).toBe(0);
});

test("a capped debt is forgiven past the cap: after any load the wait is at most maxDebt / rate", () => {
  // The busy connections' handling total (RATE_LIMIT_HANDLING_TOTAL_MS) is charged by delivery whatever
  // the clients do: a minute of overload must not make them rest for a minute after it.
  const bucket = new TokenBucket(300, 300, 0, 1_500);
  for (let t = 0; t < 60_000; t += 100) {
    bucket.waitMs(t);
    bucket.spend(90); // 900 ms of work per second, three times the rate
  }
  expect(bucket.waitMs(60_000)).toBeLessThanOrEqual(5_004);
  expect(bucket.waitMs(60_000)).toBeGreaterThan(4_000);
  expect(bucket.waitMs(65_010)).toBe(0);
});

test("whenever the debt was run up, a look at the clock finds at most maxDebt of it", () => {
  const bucket = new TokenBucket(100, 100, 0, 200);
  bucket.spend(10_000); // spend() does not know the time: the cap applies when the clock is next read
  expect(bucket.waitMs(3_000)).toBe(2_010);
  expect(bucket.waitMs(5_010)).toBe(0);
});

test("a bucket of 3 passes 3 at once, not a fourth on the fraction refilled meanwhile, and says the wait for the next", () => {
  const bucket = new TokenBucket(1, 3, 0); // REFRESH_RATE_LIMIT's: 1/s from a bucket of 3
  for (const t of [0, 2, 4]) {
    expect(bucket.waitMs(t)).toBe(0);
    bucket.spend(1);
  }
  // 10 ms after the first: 0.01 of a token back, and 990 ms to a whole one.
  const wait = bucket.waitMs(10);
  expect(wait).toBeGreaterThanOrEqual(990);
  expect(wait).toBeLessThanOrEqual(991);
  expect(bucket.waitMs(1_010)).toBe(0);
});

test("what a stall of the gateway earned above the burst is kept for the backlog read on waking, not for good", () => {
  const stalls = { total: 0 };
  // 100/s, a burst of 50.
  const bucket = new TokenBucket(100, 50, 0, undefined, stalls);
  bucket.spend(50);
  // A 20 s stall: 2,000 earned, kept past the burst for the backlog sent meanwhile.
  stalls.total = 20_000;
  expect(bucket.waitMs(20_000)).toBe(0);
  bucket.spend(1_500);
  expect(bucket.waitMs(20_001)).toBe(0);
  // A client idle through it: after STALL_CREDIT_MS the rest is cut back to the burst.
  const idle = new TokenBucket(100, 50, 0, undefined, stalls);
  stalls.total = 40_000;
  expect(idle.waitMs(40_000)).toBe(0);
  expect(idle.waitMs(40_000 + STALL_CREDIT_MS + 1)).toBe(0);
  idle.spend(51);
  expect(idle.waitMs(40_000 + STALL_CREDIT_MS + 1)).toBeGreaterThan(0);
});
