import { afterAll, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { type Broker, samePorts, startBroker } from "../support/kafka-broker";
import { LivenessWatch, Pump, oneAttemptClient, readyStatus, within } from "./harm";

// This file's own broker, killed and restarted on the same ports and data: the shared one must not be harmed.
const dir = mkdtempSync(join(tmpdir(), "kgw-kafka-outage-"));
let broker: Broker | null = null;
let gw: GatewayProcess | null = null;

afterAll(async () => {
  if (process.env.DUMP_GATEWAY_LOG) Bun.write(process.env.DUMP_GATEWAY_LOG, gw?.lines.join("\n") ?? "");
  await gw?.stop();
  await broker?.stop();
}, 60_000);

test("the only broker stops: not ready within 5 s, publishes refused UNAVAILABLE at once, quiet logs, and all recovers when it returns", async () => {
  broker = await startBroker({ dir });
  const ports = samePorts(broker);
  gw = await startGateway({ KAFKA_BROKERS: broker.brokers, KAFKA_WORKERS: "2", KAFKA_MESSAGE_TIMEOUT_MS: "10000" });
  const topic = freshTopic("outage");
  const control = await oneAttemptClient(gw.wsUrl);
  expect(await control.publish({ type: "warm" }, { topic })).toMatchObject({ topic });
  const pump = new Pump(control, [topic], { batch: 5, maxInflight: 4, pauseMs: 50 }).start();
  const watch = new LivenessWatch(gw.url);
  await Bun.sleep(1500);

  const linesBefore = gw.lines.length;
  process.kill(broker.pid, "SIGKILL");
  const killedAt = Date.now();
  const notReadyMs = await within(15_000, async () => (await readyStatus(gw!.url)) === 503);
  expect(notReadyMs).toBeGreaterThanOrEqual(0);
  expect(Date.now() - killedAt).toBeLessThan(5000 + 1000); // 5 s, plus the last poll's own round trip

  // Each worker finds out by itself; once all have, every publish is refused at once, retriable and
  // certainly not written.
  const allDown = async () => ((await gw!.health()) as any).log.workers.every((w: { brokers: string }) => w.brokers === "down");
  expect(await within(15_000, allDown)).toBeGreaterThanOrEqual(0);
  expect(Date.now() - killedAt).toBeLessThan(5000 + 1000);
  // /health says why.
  expect(await within(10_000, async () => ((await gw!.health()) as any).log.workers.some((w: { lastError?: string }) => w.lastError))).toBeGreaterThanOrEqual(0);
  const probe = await oneAttemptClient(gw.wsUrl);
  for (let i = 0; i < 5; i++) {
    const at = Date.now();
    const r = await probe.publish({ type: "during" }, { topic }).catch((e) => e);
    expect(r).toMatchObject({ name: "PublishError", code: "UNAVAILABLE", retriable: true, mayBePersisted: false });
    expect(Date.now() - at).toBeLessThan(1000);
  }
  const http = await fetch(`${gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "during" }), signal: AbortSignal.timeout(1000) });
  expect(http.status).toBe(503);
  await Bun.sleep(8000); // long enough for unlimited warnings to pile up (43/s before)
  const outageLines = gw.lines.slice(linesBefore);
  expect(outageLines.filter((l) => l.includes("worker_status")).length).toBeLessThan(20);
  expect(outageLines.length).toBeLessThan(40);

  broker = await startBroker({ dir, env: { ...ports, KAFKA_KEEP_DATA: "1" } });
  expect(await within(60_000, async () => (await readyStatus(gw!.url)) === 200)).toBeGreaterThanOrEqual(0);
  const acked = await within(30_000, () => probe.publish({ type: "after" }, { topic }).then(() => true, () => false));
  expect(acked).toBeGreaterThanOrEqual(0);
  const ackedBefore = pump.acked.length;
  await within(10_000, () => pump.acked.length > ackedBefore + 20);
  expect(pump.acked.length).toBeGreaterThan(ackedBefore + 20);
  // Recovered, /health no longer shows the outage's error as if it were current (it kept it for good).
  const after = (await gw.health()) as any;
  expect(after.status).toBe("ok");
  for (const w of after.log.workers) expect(w.lastError).toBeUndefined();

  // Every request of the control connection got its answer, each within the message timeout and its margin.
  await pump.stop(30_000);
  await watch.stop();
  expect(pump.answered).toBe(pump.sent);
  expect(pump.maxLatencyMs).toBeLessThan(10_000 + 5000 + 1000); // the deadline, and the watchdog's tick
  for (const n of pump.nacked) expect(["UNAVAILABLE", "PUBLISH_TIMEOUT", "KAFKA_RETRIABLE"]).toContain(n.code!);
  expect(watch.failures).toEqual([]);
  probe.close();
  control.close();
}, 240_000);

test("the only broker hangs with its connections open (SIGSTOP): the probes find it out within seconds, and all recovers when it resumes", async () => {
  if (!broker || !gw) throw new Error("needs the broker and gateway of the test before");
  const g = gw;
  const topic = freshTopic("hung");
  const control = await oneAttemptClient(g.wsUrl);
  expect(await control.publish({ type: "warm" }, { topic })).toMatchObject({ topic });
  const pump = new Pump(control, [topic], { batch: 5, maxInflight: 4, pauseMs: 50 }).start();
  await Bun.sleep(1000);
  const pid = broker.pid;
  process.kill(pid, "SIGSTOP");
  const stoppedAt = Date.now();
  try {
    // Three failed probes of 1.5 s: a few seconds, where a stall shorter than that stays backpressure.
    expect(await within(15_000, async () => (await readyStatus(g.url)) === 503)).toBeGreaterThanOrEqual(0);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    const allDown = async () => ((await g.health()) as any).log.workers.every((w: { brokers: string }) => w.brokers === "down");
    expect(await within(10_000, allDown)).toBeGreaterThanOrEqual(0);
    const probe = await oneAttemptClient(g.wsUrl);
    const at = Date.now();
    expect(await probe.publish({ type: "during" }, { topic }).catch((e) => e)).toMatchObject({ name: "PublishError", code: "UNAVAILABLE", mayBePersisted: false });
    expect(Date.now() - at).toBeLessThan(1000);
    probe.close();
  } finally {
    process.kill(pid, "SIGCONT");
  }
  expect(await within(30_000, async () => (await readyStatus(g.url)) === 200)).toBeGreaterThanOrEqual(0);
  const ackedBefore = pump.acked.length;
  await within(15_000, () => pump.acked.length > ackedBefore + 20);
  await pump.stop(30_000);
  expect(pump.acked.length).toBeGreaterThan(ackedBefore + 20);
  expect(pump.answered).toBe(pump.sent);
  expect(pump.maxLatencyMs).toBeLessThan(10_000 + 5000 + 1000);
  control.close();
}, 120_000);
