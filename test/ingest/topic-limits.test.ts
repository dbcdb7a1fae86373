import { expect, test } from "bun:test";
import { TopicLimits } from "../../src/ingest/topic-limits";
import { NO_BOUND, type TopicRecordLimits } from "../../src/log/event-log";

/**
 * TopicLimits' account of whether Kafka has a topic, which decides what the publisher bounds
 * (KAFKA_NEW_TOPIC_MAX_INFLIGHT) and refuses at once (markAbsent): every answer and acknowledgement
 * order an outside reviewer found wrong, driven with answers the test hands out itself.
 */
const MISSING: TopicRecordLimits = { maxBatchBytes: NO_BOUND, timestampAfterMs: NO_BOUND, timestampBeforeMs: NO_BOUND, keyRequired: false, missing: true };
const EXISTS: TopicRecordLimits = { maxBatchBytes: 1_000_000, timestampAfterMs: NO_BOUND, timestampBeforeMs: NO_BOUND, keyRequired: false };

/** A TopicLimits whose questions wait until the test answers them, in the order they were asked. */
function scripted() {
  const asked: Array<{ resolve: (l: TopicRecordLimits | null) => void; reject: (e: unknown) => void }> = [];
  const limits = new TopicLimits(() => new Promise((resolve, reject) => asked.push({ resolve, reject })));
  /** Answers the oldest question (an Error fails it, as a gateway whose ACLs do not let it describe topics sees), and lets the answer be taken in. */
  const answer = async (a: TopicRecordLimits | Error) => {
    const q = asked.shift()!;
    if (a instanceof Error) q.reject(a);
    else q.resolve(a);
    await Bun.sleep(0);
  };
  return { limits, asked, answer };
}

const DENIED = new Error("TOPIC_AUTHORIZATION_FAILED");

test("an answer asked before a write was acknowledged does not make the topic unconfirmed or absent again", async () => {
  const { limits, asked, answer } = scripted();
  limits.learning("t");
  await answer(MISSING);
  expect(limits.unconfirmed("t")).toBe(true);
  limits.markAbsent("t");
  expect(limits.absent("t")).toBe(true);
  // A re-ask goes out (the refusal's doubt), then a write is acknowledged, then the re-ask answers from
  // a broker whose metadata lags: "missing".
  limits.doubt("t");
  limits.get("t", Date.now() + 60_000);
  expect(asked).toHaveLength(1);
  limits.confirmed("t");
  expect(limits.absent("t")).toBe(false);
  await answer(MISSING);
  expect(limits.unconfirmed("t")).toBe(false);
  expect(limits.absent("t")).toBe(false);
});

test("a topic refused as unknown is refused at once for a while, not for good: then its events go to Kafka again", async () => {
  const { limits, answer } = scripted();
  limits.learning("t");
  await answer(MISSING);
  const now = Date.now();
  limits.markAbsent("t", now);
  expect(limits.absent("t", now + 5_000)).toBe(true);
  // Brokers that auto-create make it at the next write that reaches them, but DescribeConfigs never makes it.
  expect(limits.absent("t", now + 10_001)).toBe(false);
});

test("a topic whose question failed is unconfirmed until a write to it is acknowledged, and a failed re-ask keeps it absent", async () => {
  const { limits, answer } = scripted();
  // A gateway whose ACLs do not let it describe topics: every question fails.
  limits.learning("t");
  await answer(DENIED);
  expect(limits.unconfirmed("t")).toBe(true);
  limits.markAbsent("t");
  limits.get("t", Date.now() + 120_000);
  await answer(DENIED);
  expect(limits.absent("t")).toBe(true);
  limits.confirmed("t");
  expect(limits.unconfirmed("t")).toBe(false);
  expect(limits.absent("t")).toBe(false);
  // Its refresh failing again later does not make it unconfirmed.
  limits.get("t", Date.now() + 120_000);
  await answer(DENIED);
  expect(limits.unconfirmed("t")).toBe(false);
});

test("a topic found missing again after its writes were acknowledged (deleted) is unconfirmed again; one that exists never is", async () => {
  const { limits, answer } = scripted();
  limits.learning("t");
  await answer(MISSING);
  limits.confirmed("t");
  await Bun.sleep(2);
  limits.get("t", Date.now() + 60_000); // asked after the acknowledgement
  await answer(MISSING);
  expect(limits.unconfirmed("t")).toBe(true);
  limits.learning("u");
  await answer(EXISTS);
  expect(limits.unconfirmed("u")).toBe(false);
  limits.markAbsent("u");
  expect(limits.absent("u")).toBe(false);
});
