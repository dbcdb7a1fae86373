import { expect, test } from "bun:test";
import { loadConfig } from "../../src/config/load";
import { Publisher } from "../../src/ingest/publisher";
import { TopicLimits } from "../../src/ingest/topic-limits";
import type { AppendResults, LogRecord } from "../../src/log/event-log";
import { NO_BOUND } from "../../src/log/event-log";
import { createMetrics } from "../../src/observability/metrics";
import { GatewayError } from "../../src/protocol/errors";

/**
 * How the publisher tells events Kafka refused as of a topic it does not have (topicUnknown, from
 * the Kafka workers), with the log's answers scripted: KAFKA_REJECTED and the topic refused at once
 * only while it still counts as one Kafka lacks and nothing of the request was written; otherwise
 * (made meanwhile, confirmed by another request's ack) retriable (outside reviewer).
 */
const MISSING = { maxBatchBytes: NO_BOUND, timestampAfterMs: NO_BOUND, timestampBeforeMs: NO_BOUND, keyRequired: false, missing: true };
const unknownTopic = () => new GatewayError("KAFKA_REJECTED", "UNKNOWN_TOPIC: never had it", { topicUnknown: true });

async function setup(answer: (records: LogRecord[], limits: TopicLimits, topic: string) => AppendResults) {
  const topic = `t-${Math.random().toString(36).slice(2)}`;
  const limits = new TopicLimits(async () => MISSING);
  const log = { append: async (records: LogRecord[]) => answer(records, limits, topic) };
  const publisher = new Publisher(log, loadConfig({}), createMetrics(), null, limits);
  await publisher.learning(topic);
  const publish = async (n: number) => {
    const events = Array.from({ length: n }, (_, i) => ({ type: "t", key: "k", data: { i } }));
    return publisher.publish(publisher.prepare(events, topic, "json", "http", {}), "http");
  };
  return { topic, limits, publish };
}

const results = (n: number, errors: Array<GatewayError | undefined>): AppendResults => ({ partitions: new Int32Array(n), offsets: new Float64Array(n), errors });

test("every event refused as of a topic Kafka lacks, which it lacked when asked: KAFKA_REJECTED, and the topic refused at once after", async () => {
  const { topic, limits, publish } = await setup((records) => results(records.length, records.map(unknownTopic)));
  const o = await publish(2);
  expect(o.errors?.map((e) => e?.code)).toEqual(["KAFKA_REJECTED", "KAFKA_REJECTED"]);
  expect(limits.absent(topic)).toBe(true);
});

test("some events of the request written: the others are retriable, and the topic is not refused", async () => {
  const { topic, limits, publish } = await setup((records) => results(records.length, [unknownTopic(), undefined]));
  const o = await publish(2);
  expect(o.errors?.[0]?.code).toBe("UNAVAILABLE");
  expect(o.errors?.[1]).toBeUndefined();
  expect(limits.absent(topic)).toBe(false);
  expect(limits.unconfirmed(topic)).toBe(false);
});

test("the topic confirmed by another request's ack while these were out: retriable, not KAFKA_REJECTED", async () => {
  const { topic, limits, publish } = await setup((records, l, t) => {
    l.confirmed(t);
    return results(records.length, records.map(unknownTopic));
  });
  const o = await publish(1);
  expect(o.errors?.[0]?.code).toBe("UNAVAILABLE");
  expect(limits.absent(topic)).toBe(false);
});
