import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

let brokers: string;
let gw: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_WORKERS: "2", KAFKA_BROKERS: brokers });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

test("a Kafka worker killed with SIGKILL mid-stream: restarted, no acked event missing, the rest nacked retriable", async () => {
  const topic = freshTopic("crash");
  await ensureTopic(brokers, topic, 3);
  const client = await GatewayClient.connect(gw.wsUrl);
  const before = (await gw.health()).log.workers;
  const victim = before[0];

  const acked = new Map<string, { partition: number; offset: number }>();
  const nacked: Array<Record<string, unknown>> = [];
  let seq = 0;
  let stop = false;
  let killedAt = 0;
  const inflight = new Set<Promise<void>>();

  const pump = async () => {
    while (!stop) {
      while (inflight.size < 20 && !stop) {
        const events = Array.from({ length: 50 }, () => ({ id: `e-${seq}`, type: "test.crash", key: `k-${seq++ % 16}`, data: { at: Date.now() } }));
        const p: Promise<void> = client.publishBatch(events, topic).then((r) => {
          expect(r.t === 22 || r.t === 21).toBe(true);
          if (r.t === 21) return void nacked.push(...events.map(() => r));
          r.ids.forEach((id: string, i: number) => {
            if (r.partitions[i] >= 0) acked.set(id, { partition: r.partitions[i], offset: r.offsets[i] });
            else nacked.push(r.errors.find((e: { i: number }) => e.i === i));
          });
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      await Promise.race(inflight);
    }
  };
  const pumping = pump();
  await Bun.sleep(1000);
  process.kill(victim.pid, "SIGKILL");
  killedAt = acked.size;
  // Keep streaming through the restart.
  const deadline = Date.now() + 20_000;
  let after = before;
  while (Date.now() < deadline) {
    after = (await gw.health()).log.workers;
    if (after[0].pid !== victim.pid && after[0].state === "ready" && acked.size > killedAt + 2000) break;
    await Bun.sleep(100);
  }
  stop = true;
  await pumping;
  await Promise.all(inflight);
  client.close();

  expect(after[0].restarts).toBe(1);
  expect(after[0].pid).not.toBe(victim.pid);
  expect(after[0].state).toBe("ready");
  expect(after[1].restarts).toBe(0);
  // Everything not acked was nacked with a retriable code; the lost worker's events say they may be in Kafka.
  expect(nacked.length).toBeGreaterThan(0);
  for (const n of nacked) {
    expect(n.retriable).toBe(true);
    expect(["WORKER_LOST", "UNAVAILABLE"]).toContain(n.code as string);
  }
  expect(nacked.some((n) => n.code === "WORKER_LOST" && n.mayBePersisted === true)).toBe(true);
  expect(acked.size + nacked.length).toBe(seq);

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
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  expect(metrics).toMatch(/gateway_kafka_worker_restarts_total 1/);
});
