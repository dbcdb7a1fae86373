import { afterAll, expect, test } from "bun:test";
import { unpack } from "msgpackr";
import { type GatewayClient, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { type Broker, consumeAll, ensureTopic, startBroker } from "../support/kafka-broker";
import { health, within } from "../kafka/harm";

let gw: GatewayProcess | null = null;
let frozen: { gw: GatewayProcess | null; broker: Broker | null } = { gw: null, broker: null };
afterAll(async () => {
  await gw?.stop();
  await frozen.gw?.stop();
  if (frozen.broker) process.kill(frozen.broker.pid, "SIGCONT");
  await frozen.broker?.stop();
}, 60_000);

/**
 * Per-key inversions among `records` in log order: pairs of a key's events where the later one (by
 * publish order) was written before the earlier one.
 */
function inversionsOf(records: Array<{ partition: number; offset: number; key?: Uint8Array | null; value?: Uint8Array | null }>): Array<{ earlier: number; later: number }> {
  const byKey = new Map<string, number[]>();
  for (const r of [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const key = Buffer.from(r.key!).toString();
    const list = byKey.get(key) ?? [];
    list.push((unpack(r.value!) as { seq: number }).seq);
    byKey.set(key, list);
  }
  const inversions: Array<{ earlier: number; later: number }> = [];
  for (const list of byKey.values()) for (let i = 1; i < list.length; i++) if (list[i]! < list[i - 1]!) inversions.push({ earlier: list[i]!, later: list[i - 1]! });
  return inversions;
}

/**
 * Publishes `perTick` events every 10 ms, one at a time as a service would, over 8 keys, each with
 * its publish order as `seq`, until stopped; then waits for every publish to settle.
 */
function orderedLoad(client: GatewayClient, topic: string, perTick: number): { publishedAt: number[]; stop(): Promise<{ published: number; failed: number }> } {
  let n = 0;
  const publishedAt: number[] = [];
  let failed = 0;
  const acks: Array<Promise<unknown>> = [];
  let running = true;
  const pump = (async () => {
    while (running) {
      for (let i = 0; i < perTick; i++) {
        const seq = n++;
        publishedAt[seq] = performance.now();
        acks.push(client.publish({ type: "ordered", id: `e${seq}`, key: `k${seq % 8}`, data: { seq } }, { topic }).catch(() => void failed++));
      }
      await Bun.sleep(10);
    }
  })();
  return {
    publishedAt,
    async stop() {
      running = false;
      await pump;
      await Promise.all(acks);
      return { published: n, failed };
    },
  };
}

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
  const load = orderedLoad(client, topic, 15); // 1,500 events/s
  await Bun.sleep(1500);
  for (let kill = 0; kill < 4; kill++) {
    const workers = (await health(g.url)).log.workers as Array<{ pid: number; state: string }>;
    const victim = workers[kill % workers.length]!;
    process.kill(victim.pid, "SIGKILL");
    await within(30_000, async () => ((await health(g.url)).log.workers as Array<{ pid: number; state: string }>).every((w) => w.pid !== victim.pid && w.state === "ready"));
    await Bun.sleep(1000);
  }
  const { published: n, failed } = await load.stop();
  client.close();
  const records = await consumeAll(brokers, topic, { expect: n - failed, timeoutMs: 60_000 });
  const inversions = inversionsOf(records);
  console.log(`${n} published across 4 worker kills: ${records.length} in Kafka, ${failed} failed, ${inversions.length} per-key inversions`);
  expect(failed).toBe(0);
  // Each event once: a re-send of one whose write was in doubt gets the original's ack.
  expect(records.length).toBe(n);
  expect(inversions).toEqual([]);
}, 180_000);

/**
 * The chaos tester froze the broker for 40 s, past KAFKA_MESSAGE_TIMEOUT_MS (30 s): every event in
 * flight timed out (PUBLISH_TIMEOUT) and was retried, and 7,215 of 30,000 were written after later
 * events of their key. A retried event's key was held only while it waited out its delay, not while
 * its re-send was in flight: when that re-send was refused again, later events of its key went first.
 */
test("per-key order holds through the SDK's retries when the broker is frozen past the message timeout", async () => {
  frozen.broker = await startBroker();
  const broker = frozen.broker;
  frozen.gw = await startGateway({ KAFKA_BROKERS: broker.brokers, KAFKA_WORKERS: "2", RATE_LIMIT_EVENTS: "0", KAFKA_MESSAGE_TIMEOUT_MS: "3000" });
  const g = frozen.gw;
  const topic = freshTopic("key-order-frozen");
  await ensureTopic(broker.brokers, topic, 4);
  // When each event was first refused (to be retried): a later event of its key published before
  // that was in flight with it, the one exception allowed below.
  const refusedAt = new Map<number, number>();
  const onRetry = ({ id }: { id: string }) => void (refusedAt.has(Number(id.slice(1))) || refusedAt.set(Number(id.slice(1)), performance.now()));
  const client = await connect({ url: g.wsUrl, maxAttempts: 1000, onRetry });
  const load = orderedLoad(client, topic, 5); // 500 events/s
  await Bun.sleep(1500);
  process.kill(broker.pid, "SIGSTOP");
  const frozeAt = performance.now();
  await Bun.sleep(7000); // past the 3 s message timeout, twice
  process.kill(broker.pid, "SIGCONT");

  await Bun.sleep(3000);
  const { published: n, failed } = await load.stop();
  client.close();
  const records = await consumeAll(broker.brokers, topic, { expect: n - failed, timeoutMs: 60_000 });
  const inversions = inversionsOf(records);
  console.log(`${n} published across a 7 s broker freeze (message timeout 3 s): ${records.length} in Kafka, ${failed} failed, ${inversions.length} per-key inversions`);
  expect(failed).toBe(0);
  expect(records.length).toBe(n);
  // The one exception docs/client.md states: events of a key in flight together when the first of
  // them was refused (PUBLISH_TIMEOUT: the broker froze while they were in flight, or came back just
  // as the first timed out); the gateway may write a later one while the first is being retried.
  // An event published as the broker froze is refused up to a second past the message timeout
  // (librdkafka looks for timed-out messages once a second): CI saw pairs published 4 s apart, the
  // later sent 15 ms before the earlier's refusal. So "together" is told by when the first was
  // refused, not by how close they were published.
  // Any other inversion is a defect (before the SDK held keys through retries: 7,215 of 30,000).
  const at = load.publishedAt;
  for (const { earlier, later } of inversions) console.log(`inversion: ${earlier}, published ${(at[earlier]! - frozeAt).toFixed(0)} ms from the freeze, first refused ${((refusedAt.get(earlier) ?? Number.NaN) - at[earlier]!).toFixed(0)} ms after it; written after ${later}, published ${(at[later]! - at[earlier]!).toFixed(0)} ms after it`);
  const outside = inversions.filter(({ earlier, later }) => !(at[later]! < (refusedAt.get(earlier) ?? Number.NEGATIVE_INFINITY)));
  expect(outside.map(({ earlier, later }) => `${earlier} after ${later}`)).toEqual([]);
  expect(inversions.length).toBeLessThanOrEqual(8);
}, 180_000);
