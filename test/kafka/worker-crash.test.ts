import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

// A worker calls into librdkafka through bun:ffi: a fault in native code (SIGSEGV), or the kernel
// (SIGKILL), takes the worker process down, and nothing more than that worker may be lost.
let brokers: string;
const gateways: GatewayProcess[] = [];

beforeAll(async () => {
  brokers = await kafkaBrokers();
}, 60_000);
afterAll(async () => {
  for (const gw of gateways) await gw.stop();
}, 60_000);

test.each(["SIGKILL", "SIGSEGV"] as const)("a Kafka worker killed with %s mid-load: restarted, WORKER_LOST nacks, no acked event missing, the client sockets stay open", async (signal) => {
  const gw = await startGateway({ KAFKA_WORKERS: "2", KAFKA_BROKERS: brokers });
  gateways.push(gw);
  const topic = freshTopic(`crash-${signal}`);
  await ensureTopic(brokers, topic, 3);
  const client = await GatewayClient.connect(gw.wsUrl);
  const control = await GatewayClient.connect(gw.wsUrl);
  const before = (await gw.health()).log.workers;
  const victim = before[0];
  // The workers really are Bun running src/kafka/worker/main.ts.
  for (const w of before) expect(readFileSync(`/proc/${w.pid}/cmdline`, "utf8").split("\0").some((a) => a.endsWith("kafka/worker/main.ts"))).toBe(true);

  const acked = new Map<string, { partition: number; offset: number }>();
  const nacked: Array<Record<string, unknown>> = [];
  let seq = 0;
  let stop = false;
  const inflight = new Set<Promise<void>>();
  const record = (ids: string[], r: Record<string, any>) => {
    expect(r.t === 22 || r.t === 21).toBe(true);
    if (r.t === 21) return void nacked.push(...ids.map(() => r));
    r.ids.forEach((id: string, i: number) => {
      if (r.partitions[i] >= 0) acked.set(id, { partition: r.partitions[i], offset: r.offsets[i] });
      else nacked.push(r.errors.find((e: { i: number }) => e.i === i));
    });
  };

  const pump = async () => {
    while (!stop) {
      while (inflight.size < 20 && !stop) {
        const events = Array.from({ length: 50 }, () => ({ id: `e-${seq}`, type: "test.crash", key: `k-${seq++ % 16}`, data: { at: Date.now() } }));
        const p: Promise<void> = client.publishBatch(events, topic).then((r) => record(events.map((e) => e.id), r));
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      await Promise.race(inflight);
    }
  };
  // The control connection publishes one event at a time throughout: every request gets its answer.
  let controlSent = 0;
  let controlAnswered = 0;
  const controlPump = async () => {
    while (!stop) {
      const id = `c-${controlSent++}`;
      seq++;
      const r = await control.publishBatch([{ id, type: "test.crash", key: "control", data: {} }], topic);
      controlAnswered++;
      record([id], r);
      await Bun.sleep(20);
    }
  };
  const pumping = Promise.all([pump(), controlPump()]);
  await Bun.sleep(1000);
  process.kill(victim.pid, signal);
  const killedAt = acked.size;
  // Keep streaming through the restart.
  const deadline = Date.now() + 30_000;
  let after = before;
  while (Date.now() < deadline) {
    after = (await gw.health()).log.workers;
    if (after[0].pid !== victim.pid && after[0].state === "ready" && acked.size > killedAt + 2000) break;
    await Bun.sleep(100);
  }
  stop = true;
  await pumping;
  await Promise.all(inflight);

  expect(after[0].restarts).toBe(1);
  expect(after[0].pid).not.toBe(victim.pid);
  expect(after[0].state).toBe("ready");
  expect(after[1].restarts).toBe(0);
  expect(controlAnswered).toBe(controlSent);
  // Everything not acked was nacked retriable; the lost worker's events say they may be in Kafka.
  expect(nacked.length).toBeGreaterThan(0);
  for (const n of nacked) {
    expect(n.retriable).toBe(true);
    expect(["WORKER_LOST", "UNAVAILABLE"]).toContain(n.code as string);
  }
  expect(nacked.some((n) => n.code === "WORKER_LOST" && n.mayBePersisted === true)).toBe(true);
  expect(acked.size + nacked.length).toBe(seq);

  // Both client sockets are still open and publish again (the gateway lost a worker, nothing else).
  expect(client.ws.readyState).toBe(WebSocket.OPEN);
  expect(control.ws.readyState).toBe(WebSocket.OPEN);
  for (const c of [client, control]) {
    const r = await c.publishBatch([{ id: `after-${seq++}`, type: "test.crash", key: "after", data: {} }], topic);
    expect(r.t).toBe(22);
    expect(r.partitions[0]).toBeGreaterThanOrEqual(0);
    acked.set(r.ids[0], { partition: r.partitions[0], offset: r.offsets[0] });
  }
  client.close();
  control.close();

  // Every acked event is in Kafka at the acked position.
  const records = await consumeAll(brokers, topic, { expect: acked.size });
  const inKafka = new Map(records.map((r) => [r.headers.ce_id!, { partition: r.partition, offset: r.offset }]));
  let missing = 0;
  for (const [id, pos] of acked) {
    const found = inKafka.get(id);
    if (!found) missing++;
    else expect(found).toEqual(pos);
  }
  expect(missing).toBe(0);
  expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/gateway_kafka_worker_restarts_total 1/);
}, 90_000);
