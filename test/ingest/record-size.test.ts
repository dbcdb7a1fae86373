// On the raw test client: the exact nack of each event is what is checked.
import { describe, expect, test } from "bun:test";
import { gatewayForBlock } from "../support/gateway";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { consumeAll } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

/**
 * One Kafka record is at most librdkafka's message.max.bytes (1,000,000 by default) of key, value and
 * headers, below MAX_FRAME_BYTES (1 MiB): an event between the two passed every check, went to the
 * Kafka worker and came back KAFKA_REJECTED ("MSG_SIZE_TOO_LARGE"), while the embedded log took it.
 * Found by the conformance tester: the bound is checked per event before the work, on both logs.
 */
const bytes = (n: number) => new Uint8Array(n).fill(0x61);

async function check(url: string, topic: string) {
  const c = await GatewayClient.connect(url);
  // Just under: key, value and headers together within 1,000,000 bytes.
  expect(await c.publish({ type: "big", key: "k", data: bytes(999_000) }, topic)).toMatchObject({ t: 20, topic });
  // Over by its value alone, and over by its headers and key with a value under the bound.
  expect(await c.publish({ type: "big", data: bytes(1_000_001) }, topic)).toMatchObject({ t: 21, code: "EVENT_TOO_LARGE", message: expect.stringContaining("message.max.bytes") });
  expect(await c.publish({ type: "big", key: "k".repeat(30_000), headers: { h: "v".repeat(40_000) }, data: bytes(940_000) }, topic)).toMatchObject({ t: 21, code: "EVENT_TOO_LARGE" });
  // In a batch, only that event: the one beside it is acked.
  const batch = await c.request({ t: 11, topic, events: [{ type: "small", id: "small-1" }, { type: "big", data: bytes(1_000_001) }] });
  expect(batch).toMatchObject({ t: 22, ids: ["small-1", expect.any(String)], errors: [{ i: 1, code: "EVENT_TOO_LARGE" }] });
  expect(batch.offsets[0]).toBeGreaterThanOrEqual(0);
  c.close();
}

describe("Kafka", () => {
  const file = kafkaGatewayForFile({ RATE_LIMIT_BYTES: "0" }); // about 4 MB a test, sent at once
  test("an event whose record would pass librdkafka's message.max.bytes is refused EVENT_TOO_LARGE, that event only; one under it lands", async () => {
    const topic = freshTopic("record-size");
    await check(file.gw.wsUrl, topic);
    const records = await consumeAll(file.brokers, topic, { expect: 2 });
    expect(records.map((r) => r.headers.ce_type).sort()).toEqual(["big", "small"]);
  }, 60_000);
});

describe("embedded log", () => {
  const block = gatewayForBlock({ KAFKA_BROKERS: "", RATE_LIMIT_BYTES: "0" });
  test("the same bound: the embedded log has Kafka's semantics", async () => {
    await check(block.gw.wsUrl, "record-size");
  }, 60_000);
});
