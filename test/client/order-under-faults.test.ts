import { afterAll, expect, test } from "bun:test";
import { unpack } from "msgpackr";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { health, within } from "../kafka/harm";

let gw: GatewayProcess | null = null;
afterAll(() => gw?.stop(), 60_000);

/**
 * The SDK retries what a worker's death refused (WORKER_LOST, UNAVAILABLE). Per-key order must hold
 * through it: a retried event goes before every later event of its key, never after them.
 */
test("per-key order holds through the SDK's retries while workers are killed under load", async () => {
  const brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2", RATE_LIMIT_EVENTS: "0" });
  const g = gw;
  const topic = freshTopic("key-order");
  await ensureTopic(brokers, topic, 3);
  const client = await connect({ url: g.wsUrl });
  const keys = 8;
  let n = 0;
  let failed = 0;
  const acks: Array<Promise<unknown>> = [];
  let running = true;
  const pump = (async () => {
    while (running) {
      // 1,500 events/s in small publishes, as a service would make them.
      for (let i = 0; i < 15; i++) {
        const seq = n++;
        acks.push(client.publish({ type: "ordered", key: `k${seq % keys}`, data: { seq } }, { topic }).catch(() => void failed++));
      }
      await Bun.sleep(10);
    }
  })();
  await Bun.sleep(1500);
  for (let kill = 0; kill < 4; kill++) {
    const workers = (await health(g.url)).log.workers as Array<{ pid: number; state: string }>;
    const victim = workers[kill % workers.length]!;
    process.kill(victim.pid, "SIGKILL");
    await within(30_000, async () => ((await health(g.url)).log.workers as Array<{ pid: number; state: string }>).every((w) => w.pid !== victim.pid && w.state === "ready"));
    await Bun.sleep(1000);
  }
  running = false;
  await pump;
  await Promise.all(acks);
  client.close();
  const records = await consumeAll(brokers, topic, { expect: n - failed, timeoutMs: 60_000 });
  const byKey = new Map<string, number[]>();
  for (const r of [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const key = Buffer.from(r.key!).toString();
    const list = byKey.get(key) ?? [];
    list.push((unpack(r.value!) as { seq: number }).seq);
    byKey.set(key, list);
  }
  let inversions = 0;
  for (const list of byKey.values()) for (let i = 1; i < list.length; i++) if (list[i]! < list[i - 1]!) inversions++;
  console.log(`${n} published across 4 worker kills: ${records.length} in Kafka, ${failed} failed, ${inversions} per-key inversions`);
  expect(failed).toBe(0);
  // Each event once: a re-send of one whose write was in doubt gets the original's ack.
  expect(records.length).toBe(n);
  expect(inversions).toBe(0);
}, 180_000);
