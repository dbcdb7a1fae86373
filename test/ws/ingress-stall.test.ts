import { expect, test } from "bun:test";
import { HandlingBudget } from "../../src/limits/handling-budget";
import { LoopStalls } from "../../src/limits/loop-stalls";
import { TokenBucket } from "../../src/limits/token-bucket";
import { Ingress, type IngressSocket, inbox } from "../../src/ws/ingress";

/**
 * The process stopped while it handled one frame (a SIGSTOP, a VM paused, a long collection): the
 * frame's measured time held the whole stop, and its client's handling budget (100 ms a second by
 * default) was charged 12 s for it. The connection then rested 5 s at a time, one frame each, and
 * every request it had sent meanwhile waited minutes for its reply (found with a 12 s SIGSTOP of a
 * gateway on Kafka: 1,358 requests unanswered 30 s after it woke). Here the event loop really stands
 * still inside a frame's handling, for 1.5 s, as it does under a stop.
 */
test("a stall inside a frame's handling is not charged to the client that sent it: its next frames are served at once", async () => {
  const stalls = new LoopStalls();
  const paused: string[] = [];
  const socket: IngressSocket = { pause: () => paused.push("pause"), resume: () => paused.push("resume") };
  const budget = new HandlingBudget(new TokenBucket(100, 100, performance.now()), null);
  const box = inbox(budget);
  const handled: number[] = [];
  const blocker = new Int32Array(new SharedArrayBuffer(4));
  const ingress = new Ingress<IngressSocket>({ sliceMs: 1, maxQueuedBytes: 1 << 20, stalls }, () => box, (_s, raw) => {
    const n = Number(raw);
    // The first frame's handling is where the process stands still.
    if (n === 0) Atomics.wait(blocker, 0, 0, 1_500);
    handled.push(n);
  });
  await Bun.sleep(250); // the stall ticker has looked at the clock
  const started = performance.now();
  for (let i = 0; i < 20; i++) ingress.offer(socket, String(i));
  while (handled.length < 20 && performance.now() - started < 10_000) await Bun.sleep(10);
  const tookMs = performance.now() - started;
  stalls.stop();
  expect(handled).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(paused).toEqual([]);
  expect(tookMs).toBeLessThan(1_500 + 1_000);
});
