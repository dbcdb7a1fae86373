import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { type Broker, startBroker } from "../support/kafka-broker";
import { connect } from "../../src/client";

/**
 * A worker whose gateway died has nobody to acknowledge to: whatever it still holds can only reach
 * Kafka unacknowledged, after the clients have re-sent it through another instance (a duplicate that
 * arrives too late for idempotent publish to see). So it leaves at once instead of draining, even
 * when the broker is slow to take what it holds.
 */
let broker: Broker;
let gw: GatewayProcess;
beforeAll(async () => {
  broker = await startBroker();
}, 120_000);
afterAll(async () => {
  try {
    process.kill(broker.pid, "SIGCONT");
  } catch {}
  if (gw?.proc.exitCode === null) gw.proc.kill("SIGKILL");
  await broker.stop();
}, 60_000);

/** Running: a zombie (dead, not yet reaped by whoever adopted it) counts as gone. */
const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
};

test("the gateway is SIGKILLed while its worker holds records for a frozen broker: the worker exits at once, without writing them later", async () => {
  gw = await startGateway({ KAFKA_BROKERS: broker.brokers, KAFKA_WORKERS: "1" });
  const topic = freshTopic("orphan");
  // The gateway is killed under it: the client must not reconnect to anything meanwhile.
  const c = await connect({ url: gw.wsUrl, reconnect: { minMs: 60_000, maxMs: 60_000 } });
  expect(await c.publish({ type: "warm" }, { topic })).toMatchObject({ topic });
  const worker: number = (await gw.health()).log.workers[0].pid;
  process.kill(broker.pid, "SIGSTOP");
  void c.publishBatch(Array.from({ length: 50 }, (_, i) => ({ type: "held", key: `k${i}` })), { topic });
  await Bun.sleep(500); // handed to the worker, waiting on the broker
  gw.proc.kill("SIGKILL");
  await gw.proc.exited;
  const killedAt = performance.now();
  while (alive(worker) && performance.now() - killedAt < 5000) await Bun.sleep(10);
  const tookMs = performance.now() - killedAt;
  process.kill(broker.pid, "SIGCONT");
  console.log(`worker left ${tookMs.toFixed(0)} ms after its gateway was killed`);
  c.close();
  expect(alive(worker)).toBe(false);
  expect(tookMs).toBeLessThan(1000);
}, 60_000);

test("a gateway that stops answering (SIGSTOP) leaves its workers without a gateway: they leave within seconds rather than hold their readers' partitions, and it starts new ones when it continues", async () => {
  // Before, the workers of a stopped gateway ran on: a share group's partitions stayed with them, and
  // no member on another instance got their records for 5 minutes (max.poll.interval.ms), while the
  // other instance said ok (chaos tester).
  const g = await startGateway({ KAFKA_BROKERS: broker.brokers, KAFKA_WORKERS: "2" });
  try {
    const pids: number[] = (await g.health()).log.workers.map((w: { pid: number }) => w.pid);
    expect(pids.every(alive)).toBe(true);
    process.kill(g.proc.pid, "SIGSTOP");
    const t0 = performance.now();
    while (pids.some(alive) && performance.now() - t0 < 25_000) await Bun.sleep(100);
    const goneAfterMs = performance.now() - t0;
    process.kill(g.proc.pid, "SIGCONT");
    console.log(`gateway stopped: its workers left after ${(goneAfterMs / 1000).toFixed(1)} s`);
    expect(pids.some(alive)).toBe(false);
    expect(goneAfterMs).toBeLessThan(20_000);
    // Continued, it starts new workers and publishes again.
    const c = await connect({ url: g.wsUrl });
    try {
      const ack = await c.publish({ type: "after-stop" }, { topic: freshTopic("silent") });
      expect(ack.offset).toBeGreaterThanOrEqual(0);
    } finally {
      c.close();
    }
  } finally {
    try {
      process.kill(g.proc.pid, "SIGCONT");
    } catch {}
    await g.stop();
  }
}, 90_000);
