import { expect, test } from "bun:test";
import { type DeliveredEvent, connect } from "../../src/client";
import { startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { until } from "../support/until";

/**
 * message.max.bytes through KAFKA_PROPERTIES, as docs/protocol.md's limits table says to raise the
 * bound on one event's record. librdkafka refuses a consumer whose fetch.max.bytes is below it, and
 * the workers set their readers' fetch.max.bytes to 256 KB: every reader failed to open, while the
 * gateway said ready and acked publishes. Subscriptions were answered and never delivered.
 */
test("message.max.bytes raised through KAFKA_PROPERTIES: an event past the default bound is acked, and live and replaying subscribers get it and the events around it", async () => {
  const brokers = await kafkaBrokers();
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", KAFKA_PROPERTIES: "message.max.bytes=2000000", MAX_FRAME_BYTES: "3000000" });
  try {
    const topic = freshTopic("big-records");
    await ensureTopic(brokers, topic, 1, { "max.message.bytes": "2000000" });
    const client = await connect({ url: gw.wsUrl });
    const live = await client.subscribe(topic);
    const got: DeliveredEvent[] = [];
    live.onEvent((e) => got.push(e));
    const big = "x".repeat(1_200_000);
    const acks = await client.publishBatch([{ type: "small", data: 1 }, { type: "big", data: big }, { type: "small", data: 2 }], { topic });
    expect(acks.map((a) => a.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    await until("the live subscriber's three events", () => got.length >= 3, 20_000);
    expect(got.map((e) => [e.offset, e.event.type])).toEqual([[0, "small"], [1, "big"], [2, "small"]]);
    expect(got[1]!.event.data).toBe(big);

    const replay = await client.subscribe(topic, { start: "earliest" });
    const replayed: DeliveredEvent[] = [];
    replay.onEvent((e) => replayed.push(e));
    await until("the replay's three events", () => replayed.length >= 3, 20_000);
    expect(replayed.map((e) => e.offset)).toEqual([0, 1, 2]);
    expect((await consumeAll(brokers, topic, { expect: 3 })).length).toBe(3);
    client.close();
  } finally {
    await gw.stop();
  }
}, 90_000);

test("group.protocol=consumer (KIP-848) through KAFKA_PROPERTIES: the gateway starts, and a share group's members get the topic's events between them", async () => {
  // The share groups' readers set session.timeout.ms and heartbeat.interval.ms, which librdkafka
  // refuses under this protocol (the broker sets them): every member's reader failed to open.
  const brokers = await kafkaBrokers();
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", KAFKA_PROPERTIES: "group.protocol=consumer" });
  try {
    const topic = freshTopic("kip848");
    await ensureTopic(brokers, topic, 2);
    const group = `kip848-${Date.now().toString(36)}`;
    const clients = await Promise.all([connect({ url: gw.wsUrl }), connect({ url: gw.wsUrl })]);
    const got: DeliveredEvent[] = [];
    for (const c of clients) (await c.subscribe(topic, { share: group })).onEvent((e) => got.push(e));
    const acks = await clients[0]!.publishBatch(Array.from({ length: 20 }, (_, i) => ({ type: "job", key: `k${i}`, data: i })), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
    await until("the group's twenty events", () => got.length >= 20, 30_000);
    expect(got.map((e) => e.event.data as number).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    for (const c of clients) c.close();
  } finally {
    await gw.stop();
  }
}, 90_000);
