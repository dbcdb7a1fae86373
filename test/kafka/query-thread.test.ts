import { expect, test } from "bun:test";
import { type Answer, QueryThread } from "../../src/kafka/worker/query-thread";
import type { ThreadQuery } from "../../src/kafka/worker/queries";
import { until } from "../support/until";

// test-plan: alone (it bounds a time from above; scripts/test-plan.ts).

/**
 * The Kafka worker's helper threads (query-thread.ts), with a thread that blocks as one stuck in
 * rd_kafka_new() would. What a thread let go makes after its question failed must still reach
 * someone: a consumer's handle made by a stuck opener was otherwise never destroyed.
 */
const script = new URL("../support/sleepy-thread.ts", import.meta.url).href;
const sleep = (ms: number) => ({ kind: "sleep", ms }) as unknown as ThreadQuery;

test("a stalled thread's questions fail, the next go to a new thread, and its late answers reach `late`", async () => {
  const stalls: string[] = [];
  const late: Answer[] = [];
  const q = new QueryThread(() => 0, { consumer: {} }, { ms: 150, stalled: (r) => stalls.push(r), late: (a) => late.push(a) }, script);
  const answers: Array<[string, Answer, number]> = [];
  const began = performance.now();
  const ask = (name: string, ms: number) => q.ask(sleep(ms), (a) => answers.push([name, a, performance.now() - began]));
  ask("stuck", 600);
  ask("behind it", 0);
  await until("both answers", () => answers.length === 2, 2000);
  // Both failed when the watchdog fired, not when the stuck call returned.
  expect(answers.map(([n, a]) => [n, a.error !== undefined])).toEqual([["stuck", true], ["behind it", true]]);
  expect(answers[0]![2]).toBeLessThan(450);
  expect(stalls).toHaveLength(1);
  // A new thread answers at once while the old one is still blocked.
  ask("after", 0);
  await until("the new thread's answer", () => answers.length === 3, 1000);
  expect(answers[2]![1]).toEqual({ result: 3, reqId: 3 } as Answer);
  expect(answers[2]![2]).toBeLessThan(450);
  // Then the old thread answers both questions it had been asked, to nobody waiting.
  await until("the late answers", () => late.length === 2, 3000);
  expect(late.map((a) => a.result)).toEqual([1, 2]);
  expect(answers).toHaveLength(3);
  q.terminate();
});

test("a thread that keeps answering is slow, not stuck, however long the queue", async () => {
  const stalls: string[] = [];
  const q = new QueryThread(() => 0, { consumer: {} }, { ms: 150, stalled: (r) => stalls.push(r), late: () => {} }, script);
  const answers: Answer[] = [];
  for (let i = 0; i < 8; i++) q.ask(sleep(60), (a) => answers.push(a)); // 480 ms in all, 60 ms apart
  await until("eight answers", () => answers.length === 8, 3000);
  expect(answers.every((a) => a.error === undefined)).toBe(true);
  expect(stalls).toEqual([]);
  q.terminate();
});
