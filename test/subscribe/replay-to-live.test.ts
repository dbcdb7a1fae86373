import { describe, expect, test } from "bun:test";
import { type DeliveredEvent, connect } from "../../src/client";
import { type GatewayProcess, gatewayForBlock } from "../support/gateway";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { until } from "../support/until";

/**
 * A replay reads at its subscriber's pace, so a subscriber that keeps up loses nothing, also at the
 * moment it catches up. Before, the feed went live as soon as it had read up to where the log ended
 * at subscribe time, with up to four read-ahead batches of what was written meanwhile still waiting:
 * delivered at once as live events, they went past SUBSCRIBER_BUFFER_BYTES, and 500 events were
 * dropped (`lagged`) from a client that was reading as fast as they came.
 */
async function replayWhilePublishing(gw: GatewayProcess, topic: string): Promise<void> {
  const pub = await connect({ url: gw.wsUrl });
  const pad = "p".repeat(1000);
  for (let i = 0; i < 6000; i += 500) {
    const acks = await pub.publishBatch(Array.from({ length: 500 }, (_, j) => ({ type: "r", key: `k${(i + j) % 3}`, data: { i: i + j, pad } })), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
  }
  let publishing = true;
  let written = 6000;
  const more = (async () => {
    while (publishing) {
      const acks = await pub.publishBatch(Array.from({ length: 25 }, (_, j) => ({ type: "r", key: `k${(written + j) % 3}`, data: { i: written + j, pad } })), { topic });
      expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
      written += 25;
      await Bun.sleep(50);
    }
  })();
  const client = await connect({ url: gw.wsUrl });
  const sub = await client.subscribe(topic, { start: "earliest" });
  const got: DeliveredEvent[] = [];
  const notices: string[] = [];
  let live = false;
  sub.onEvent((e) => got.push(e)).onNotice((n) => {
    notices.push(n.kind);
    if (n.kind === "live") live = true;
  });
  await until("live", () => live, 60_000);
  await Bun.sleep(1000);
  publishing = false;
  await more;
  await until("every event written", () => got.length >= written || notices.some((n) => n !== "live"), 60_000);
  expect(notices.filter((n) => n !== "live")).toEqual([]);
  expect(live).toBe(true);
  const seen = got.map((e) => (e.event.data as { i: number }).i).sort((a, b) => a - b);
  expect(seen.length).toBe(written);
  expect(seen.every((v, i) => v === i)).toBe(true);
  client.close();
  pub.close();
}

describe("embedded log", () => {
  const block = gatewayForBlock({ REPLAY_RATE_LIMIT: "2000", RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0" });
  test("a replay that catches up while events are written gets every one, with no lagged", () => replayWhilePublishing(block.gw, freshTopic("catch-up")), 120_000);
});

describe("Kafka", () => {
  const file = kafkaGatewayForFile({ REPLAY_RATE_LIMIT: "2000", RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0" });
  test("a replay that catches up while events are written gets every one, with no lagged", async () => {
    const topic = freshTopic("catch-up");
    await ensureTopic(file.brokers, topic, 3);
    await replayWhilePublishing(file.gw, topic);
  }, 120_000);
});
