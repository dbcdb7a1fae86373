import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import type { PublishResult } from "../../src/client";
import { acks, at, client } from "./idempotence.support";

// test-plan: alone (it bounds a time from above; scripts/test-plan.ts). Apart from the rest of
// idempotence.test.ts, which times nothing and so runs beside other files.


const gateways: GatewayProcess[] = [];
beforeAll(async () => {
  const brokers = await kafkaBrokers();
  for (let i = 0; i < 2; i++) gateways.push(await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" }));
}, 90_000);
afterAll(async () => {
  for (const g of gateways) await g.stop();
}, 60_000);

test("a topic the first publish with ids creates: the publishes after it are not held while the ids reader learns it, and re-sends still get their original acks", async () => {
  // Found in the bench (acks at 10,000 events/s: p99 650-870 ms, all of it the second second): a
  // second after the first write created the topic, every publish waited while the ids reader, new
  // to the topic, found it and read what that second had written.
  const [a, b] = gateways as [GatewayProcess, GatewayProcess];
  const topic = freshTopic("idem-fresh"); // created by the first publish, as a new topic is
  const c = await client(a.wsUrl);
  const written: Array<{ event: { id: string; type: string }; ack: PublishResult }> = [];
  const took: number[] = [];
  for (let i = 0, end = Date.now() + 3000; Date.now() < end; i++) {
    const events = Array.from({ length: 100 }, (_, j) => ({ id: `fresh-${i}-${j}`, type: "idem" }));
    const t0 = performance.now();
    const got = await acks(c, events, topic);
    took.push(performance.now() - t0);
    got.forEach((ack, j) => written.push({ event: events[j]!, ack }));
  }
  // The first batch waits for the topic to be created; none after it waits for the reader.
  const longest = Math.max(...took.slice(1));
  console.log(`batches after the first: ${took.length - 1}, the longest ${longest.toFixed(0)} ms (the first ${took[0]!.toFixed(0)} ms)`);
  expect(longest).toBeLessThan(400);
  const sample = written.filter((_, k) => k % 97 === 0);
  expect((await acks(c, sample.map((w) => w.event), topic)).map(at)).toEqual(sample.map((w) => at(w.ack)));
  c.close();
  const other = await client(b.wsUrl);
  expect((await acks(other, sample.map((w) => w.event), topic)).map(at)).toEqual(sample.map((w) => at(w.ack)));
  other.close();
}, 60_000);
