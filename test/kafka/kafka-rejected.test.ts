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

test("records Kafka refuses are nacked KAFKA_REJECTED one by one, and the producer's connection is never closed for them", async () => {
  const topic = freshTopic("rejected");
  await ensureTopic(brokers, topic, 1, { "max.message.bytes": "1000" });
  const drops: string[] = [];
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1, onState: (state, d) => state !== "open" && drops.push(`${state} ${d?.code ?? ""}`) });
  // Random bytes, so that compression cannot bring a record under the topic's limit.
  const big = () => ({ type: "t.big", data: { pad: randomBytes(3000).toString("base64") } });
  for (let i = 0; i < 20; i++) {
    const e = (await client.publish(big(), { topic }).then(() => null, (err: PublishError) => err)) as PublishError | null;
    expect(e?.code).toBe("KAFKA_REJECTED");
  }
  expect(await client.publish({ type: "t.small", data: {} }, { topic })).toMatchObject({ partition: 0 });
  expect(drops).toEqual([]);
  client.close();
}, 120_000);
