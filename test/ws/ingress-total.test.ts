import { expect, test } from "bun:test";
import { HandlingBudget, HEAVY_FRAME_BYTES } from "../../src/limits/handling-budget";
import { TokenBucket } from "../../src/limits/token-bucket";
import { Ingress, type IngressSocket, type Inbox, inbox } from "../../src/ws/ingress";

/**
 * RATE_LIMIT_HANDLING_TOTAL_MS, the time busy clients share, held only as far as it was checked:
 * after each frame, for the client that sent it. The outside tester's eight connections of 945 KB
 * JSON frames (45 ms each) put an innocent client's publish at 0.4-1.1 s (test/ingest/dense-json:
 * a p99 of 508 ms in a fresh-clone CI). Here the scheduler is driven directly, with frames whose
 * handling takes real time, so what ran when is exact.
 */
type Sock = IngressSocket & { box: Inbox; id: number };

function harness(total: TokenBucket, ownBucket: () => TokenBucket, costMs: number) {
  const ran: Array<{ id: number; at: number }> = [];
  const t0 = performance.now();
  const ingress = new Ingress<Sock>({ sliceMs: 1, maxQueuedBytes: 64 << 20 }, (s) => s.box, (s) => {
    const until = performance.now() + costMs;
    while (performance.now() < until);
    ran.push({ id: s.id, at: performance.now() - t0 });
  });
  const socket = (id: number): Sock => ({ id, box: inbox(new HandlingBudget(ownBucket(), total)), pause() {}, resume() {} });
  return { ran, ingress, socket };
}

test("heavy frames wait for a spent total whatever their clients' own budgets: fresh connections' first frames are not each taken at once", async () => {
  // Before: a client within its own budget never met the total, and a new connection always is,
  // so each new connection's first frames ran back to back, whatever they cost.
  const now = performance.now();
  const total = new TokenBucket(30, 15, now); // 30 ms a second, a burst of 15 ms
  const { ran, ingress, socket } = harness(total, () => new TokenBucket(1000, 1000, performance.now()), 20);
  const heavy = "x".repeat(HEAVY_FRAME_BYTES);
  const socks = [1, 2, 3, 4].map(socket);
  for (const s of socks) for (let i = 0; i < 3; i++) ingress.offer(s, heavy);
  await Bun.sleep(2000);
  // 15 ms of burst and 30 ms a second: one 20 ms frame at once, one when the debt is paid back
  // (~200 ms), then one every ~670 ms. Before, all twelve ran within ~250 ms.
  console.log(`heavy frames run in 2 s: ${ran.length} (${ran.map((r) => r.at.toFixed(0)).join(", ")} ms)`);
  expect(ran.length).toBeGreaterThanOrEqual(2);
  expect(ran.length).toBeLessThanOrEqual(4);
  for (const s of socks) ingress.closed(s);
});

test("connections resting for the total do not each take a frame when it is paid back: it is checked before every frame", async () => {
  // Before: a resting connection woke and ran its next frame before anything was checked, so all
  // those that rested for the total woke together and each ran one (eight 45 ms frames back to
  // back), and the total went ever deeper into debt.
  const now = performance.now();
  const total = new TokenBucket(30, 15, now);
  // Own budgets that one frame leaves below half (busy) but not in debt: the total is what holds them.
  const { ran, ingress, socket } = harness(total, () => new TokenBucket(2, 40, performance.now()), 30);
  const socks = [1, 2, 3, 4].map(socket);
  for (const s of socks) for (let i = 0; i < 4; i++) ingress.offer(s, "small");
  await Bun.sleep(3000);
  // Each connection's first frame is small and its client not yet busy: four run at once, leaving
  // the total 105 ms in debt, which 3 s at 30 ms a second does not pay back.
  console.log(`frames run in 3 s: ${ran.length} (${ran.map((r) => `${r.id}@${r.at.toFixed(0)}`).join(", ")} ms)`);
  expect(ran.slice(0, 4).map((r) => r.id).sort()).toEqual([1, 2, 3, 4]);
  expect(ran.length).toBe(4);
  for (const s of socks) ingress.closed(s);
});
