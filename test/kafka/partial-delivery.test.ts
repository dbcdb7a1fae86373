import { afterAll, beforeAll, expect, test } from "bun:test";
import type { KafkaLog } from "../../src/kafka/kafka-log";
import { freshTopic, inProcessPool } from "../support/kafka";
import { type Broker, consumeAll, ensureTopic, startBroker } from "../support/kafka-broker";

/**
 * The worker pool in-process against a broker of its own that does not auto-create topics. Records
 * of many requests travel to a worker in one PRODUCE batch, and the worker answered each batch whole
 * (one DELIVERY when its last record had an outcome): records for a topic Kafka will not make waited
 * out the message timeout, and every other record of their batch with them. An existing topic's
 * publishes were held 30 s behind a flood to missing topics (outside tester). Now records that have
 * their outcome while others of their batch wait go back on their own (DELIVERY_PART).
 */
let broker: Broker;
let log: KafkaLog;

beforeAll(async () => {
  broker = await startBroker({ env: { KAFKA_AUTO_CREATE: "0" } });
  log = inProcessPool(broker.brokers, "partial-delivery-test", { "linger.ms": 5, "message.timeout.ms": 8000 });
  await log.start();
}, 120_000);
afterAll(async () => {
  await log?.close(5000);
  await broker?.stop();
}, 60_000);

const record = (topic: string, i: number) => ({ topic, key: Buffer.from(`k${i % 7}`), value: Buffer.from(`v${i}`), headers: [["ce_id", `id-${i}`]] as Array<[string, string]>, timestamp: Date.now() });

test("records of an existing topic that share a worker batch with records Kafka holds until their timeout are answered as soon as they are written", async () => {
  const existing = freshTopic("partial-exists");
  await ensureTopic(broker.brokers, existing, 3);
  expect((await log.append([record(existing, 0)])).errors).toBeNull(); // the producer knows the topic
  const missing = freshTopic("partial-missing");
  const started = Date.now();
  // Appended in the same turn: one PRODUCE batch carries both.
  const held = log.append(Array.from({ length: 100 }, (_, i) => record(missing, i))).then((r) => ({ r, ms: Date.now() - started }));
  const innocent = await log.append(Array.from({ length: 16 }, (_, i) => record(existing, i))).then((r) => ({ r, ms: Date.now() - started }));
  console.log(`16 records to ${existing}, batched with 100 to ${missing}: answered in ${innocent.ms} ms`);
  expect(innocent.r.errors).toBeNull();
  expect(innocent.ms).toBeLessThan(3000);
  const other = await held;
  console.log(`the 100 records to ${missing}: ${other.r.errors?.find(Boolean)?.code} after ${other.ms} ms`);
  expect(other.r.errors?.every((e) => e !== undefined && e !== null)).toBe(true);
  expect(other.ms).toBeGreaterThan(5000);
  // The brokers answered throughout and never had the topic: Kafka refused it, the records were never sent.
  expect(other.r.errors?.[0]).toMatchObject({ code: "KAFKA_REJECTED", topicUnknown: true });
  // Each innocent record was written once, where its answer said.
  const written = await consumeAll(broker.brokers, existing, { expect: 17 });
  expect(written).toHaveLength(17);
  for (let i = 0; i < 16; i++) expect(written.some((w) => w.partition === innocent.r.partitions[i] && w.offset === innocent.r.offsets[i])).toBe(true);
}, 90_000);

test("records whose topic stayed unknown because the brokers could not be reached time out PUBLISH_TIMEOUT, not as a topic Kafka refused", async () => {
  // Told "Kafka does not have it" (KAFKA_REJECTED, not retriable), a client would drop events that a
  // retry after the outage writes, and the gateway would refuse the topic at once meanwhile.
  const unseen = freshTopic("partial-outage");
  process.kill(broker.pid, "SIGSTOP");
  try {
    const started = Date.now();
    const r = await log.append(Array.from({ length: 10 }, (_, i) => record(unseen, i)));
    console.log(`10 records to ${unseen} with the broker frozen: ${JSON.stringify(r.errors?.[0])} after ${Date.now() - started} ms`);
    expect(r.errors?.every((e) => e?.code === "PUBLISH_TIMEOUT" && e.topicUnknown !== true)).toBe(true);
  } finally {
    process.kill(broker.pid, "SIGCONT");
  }
}, 90_000);

test("a broker frozen for part of the message timeout (too short for the probe to call it down) still makes it PUBLISH_TIMEOUT", async () => {
  // librdkafka raises no error for a broker that stops answering (its socket timeout is a minute), and
  // the probe calls the brokers down only at its third failure: told KAFKA_REJECTED, "answered
  // throughout", the client dropped events a retry would have written where the brokers make topics.
  const unseen = freshTopic("partial-short-freeze");
  // The worker back from the freeze above: its brokers up again, so nothing is refused before it is tried.
  const existing = freshTopic("partial-thawed");
  await ensureTopic(broker.brokers, existing, 1);
  for (let until = Date.now() + 30_000; (await log.append([record(existing, 0)])).errors !== null && Date.now() < until; ) await Bun.sleep(500);
  await Bun.sleep(3000);
  process.kill(broker.pid, "SIGSTOP");
  const thawed = Bun.sleep(3000).then(() => process.kill(broker.pid, "SIGCONT"));
  try {
    await Bun.sleep(500);
    const r = await log.append(Array.from({ length: 5 }, (_, i) => record(unseen, i)));
    console.log(`5 records to ${unseen}, sent 0.5 s into a 3 s freeze: ${JSON.stringify(r.errors?.[0])}`);
    expect(r.errors?.every((e) => e?.code === "PUBLISH_TIMEOUT" && e.topicUnknown !== true)).toBe(true);
  } finally {
    await thawed;
  }
}, 90_000);
