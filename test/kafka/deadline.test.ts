import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { health, oneAttemptClient } from "./harm";

let gw: GatewayProcess;
let workerPid = 0;

beforeAll(async () => {
  // A ping timeout too long to matter here: only the delivery deadline (1 s + 5 s) can answer.
  gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", KAFKA_MESSAGE_TIMEOUT_MS: "1000", KAFKA_WORKER_PING_TIMEOUT_MS: "600000" });
}, 60_000);
afterAll(async () => {
  try {
    if (workerPid) process.kill(workerPid, "SIGCONT");
  } catch {}
  await gw.stop();
}, 60_000);

test("events a worker never answers for are nacked PUBLISH_TIMEOUT at the gateway's own deadline, and its late reports are ignored", async () => {
  const topic = freshTopic("deadline");
  const c = await oneAttemptClient(gw.wsUrl);
  expect(await c.publish({ type: "warm" }, { topic })).toMatchObject({ topic });
  workerPid = (await health(gw.url)).log.workers[0].pid;
  process.kill(workerPid, "SIGSTOP");
  const sentAt = Date.now();
  const replies = await Promise.all([c.publishBatch(Array.from({ length: 20 }, (_, i) => ({ type: "stuck", id: `s${i}` })), { topic }), c.publishBatch([{ type: "stuck" }], { topic })]);
  const tookMs = Date.now() - sentAt;
  const refused = replies.flat();
  expect(refused).toHaveLength(21);
  for (const r of refused) expect(r).toMatchObject({ status: "rejected", reason: { name: "PublishError", code: "PUBLISH_TIMEOUT", retriable: true, mayBePersisted: true } });
  // KAFKA_MESSAGE_TIMEOUT_MS + 5 s, give or take the watchdog's tick and a busy machine.
  expect(tookMs).toBeGreaterThanOrEqual(5500);
  expect(tookMs).toBeLessThan(12_000);

  // The worker resumes and reports on those events after all: nothing is answered twice, nothing leaks.
  process.kill(workerPid, "SIGCONT");
  const ok = await c.publishBatch(Array.from({ length: 5 }, () => ({ type: "after" })), { topic });
  for (const r of ok) expect(r).toMatchObject({ status: "fulfilled", value: { partition: expect.any(Number) } });
  await Bun.sleep(1000);
  const w = (await health(gw.url)).log.workers[0];
  expect(w.pid).toBe(workerPid);
  expect(w.inflight).toBe(0);
  c.close();
}, 60_000);
