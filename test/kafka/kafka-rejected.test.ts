import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { type PublishError, connect } from "../../src/client";

/**
 * Kafka refusing records is no fault of the client's: a producer whose publishes Kafka keeps
 * rejecting (here, records over the topic's max.message.bytes) gets KAFKA_REJECTED for each, and is
 * not taken for a client sending invalid requests (INVALID_FRAMES_CLOSE_AFTER, close 4400).
 */
let brokers: string;
let gw: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", INVALID_FRAMES_CLOSE_AFTER: "5" });
}, 120_000);
afterAll(async () => {
  await gw?.stop();
}, 60_000);

test("records Kafka refuses are nacked KAFKA_REJECTED, and the producer's connection is never closed for them", async () => {
  const topic = freshTopic("rejected");
  await ensureTopic(brokers, topic, 1, { "max.message.bytes": "1000" });
  const drops: string[] = [];
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1, onState: (state, d) => state !== "open" && drops.push(`${state} ${d?.code ?? ""}`) });
  // Each alone fits the topic's max.message.bytes (so the gateway, which knows it, takes it); sent
  // together, librdkafka batches them past it, and Kafka refuses the batch. Random bytes, so that
  // compression cannot bring a batch under the limit.
  const event = () => ({ type: "t.mid", data: { pad: randomBytes(400).toString("base64") } });
  const codes = new Map<string, number>();
  for (let round = 0; round < 10 && (codes.get("KAFKA_REJECTED") ?? 0) < 20; round++) {
    const replies = await Promise.all(Array.from({ length: 20 }, () => client.publish(event(), { topic }).then(() => "acked", (err: PublishError) => err.code)));
    for (const c of replies) codes.set(c, (codes.get(c) ?? 0) + 1);
  }
  console.log("outcomes", Object.fromEntries(codes));
  expect(new Set(codes.keys()).difference(new Set(["acked", "KAFKA_REJECTED"]))).toEqual(new Set());
  // Past INVALID_FRAMES_CLOSE_AFTER (5) several times over, and the connection is still open.
  expect(codes.get("KAFKA_REJECTED") ?? 0).toBeGreaterThanOrEqual(20);
  expect(await client.publish({ type: "t.small", data: {} }, { topic })).toMatchObject({ partition: 0 });
  expect(drops).toEqual([]);
  client.close();
}, 120_000);
