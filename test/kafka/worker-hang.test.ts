import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { LivenessWatch, Pump, health, oneAttemptClient, readyStatus, within } from "./harm";

let gw: GatewayProcess;
let victimPid = 0;

beforeAll(async () => {
  gw = await startGateway({ KAFKA_WORKERS: "2", KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKER_PING_TIMEOUT_MS: "3000" });
}, 60_000);
afterAll(async () => {
  // A frozen worker must not outlive the test, whatever the gateway did with it.
  for (const signal of ["SIGCONT", "SIGKILL"] as const) {
    try {
      if (victimPid) process.kill(victimPid, signal);
    } catch {}
  }
  await gw.stop();
}, 60_000);

test("a worker that hangs without dying (SIGSTOP): detected within seconds, its events nacked WORKER_LOST, not ready until replaced, ingestion goes on", async () => {
  const topic = freshTopic("hang");
  const control = await oneAttemptClient(gw.wsUrl);
  expect(await control.publish({ type: "warm" }, { topic })).toMatchObject({ topic });
  const pump = new Pump(control, [topic], { batch: 10, maxInflight: 8, pauseMs: 10 }).start();
  const watch = new LivenessWatch(gw.url);
  await Bun.sleep(1500);

  const victim = (await health(gw.url)).log.workers[0];
  victimPid = victim.pid;
  const readiness: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      readiness.push(await readyStatus(gw.url));
      await Bun.sleep(100);
    }
  })();
  process.kill(victim.pid, "SIGSTOP");
  const stoppedAt = Date.now();

  // Detected (the ping goes unanswered for 3 s), killed and replaced.
  const detectedMs = await within(20_000, async () => (await health(gw.url)).log.workers[0].pid !== victim.pid);
  expect(detectedMs).toBeGreaterThanOrEqual(0);
  expect(detectedMs).toBeLessThan(10_000);
  expect(await within(30_000, async () => (await health(gw.url)).log.workers[0].state === "ready")).toBeGreaterThanOrEqual(0);
  const backAt = pump.events;
  expect(await within(20_000, () => pump.acked.some((a) => Number(a.id.slice(2)) >= backAt))).toBeGreaterThanOrEqual(0);
  sampling = false;
  await sampler;
  await pump.stop(30_000);
  await watch.stop();

  // Not ready between the hang's detection and the replacement.
  expect(readiness).toContain(503);
  expect(readiness.at(-1)).toBe(200);
  // Every request answered, none held anywhere near the 30 s message timeout, let alone the 45 s of a long hang.
  expect(pump.answered).toBe(pump.sent);
  expect(pump.maxLatencyMs).toBeLessThan(15_000);
  expect(pump.nacked.some((n) => n.code === "WORKER_LOST" && n.mayBePersisted === true)).toBe(true);
  for (const n of pump.nacked) expect(["WORKER_LOST", "UNAVAILABLE"]).toContain(n.code!);
  const stalledRequests = pump.requests.filter(([sent]) => sent >= stoppedAt);
  expect(stalledRequests.length).toBeGreaterThan(0);
  expect(watch.failures).toEqual([]);
  expect(gw.lines.some((l) => l.includes("worker_exit") && l.includes("ping"))).toBe(true);
  control.close();
}, 180_000);
