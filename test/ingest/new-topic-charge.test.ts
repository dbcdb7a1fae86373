import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { RawSocket } from "./wire";

/**
 * The first publish naming a topic waits for the topic's own bounds (Kafka's DescribeConfigs) before
 * its events are checked and encoded. That work ran after an await, outside the frame's handling,
 * which had charged only the decode (second review): a client naming a new topic in each request had
 * its events checked for free. A batch of 1,000 invalid events (`0`s) costs little to decode and
 * milliseconds to check, each its own error; at RATE_LIMIT_HANDLING_MS=1 that is seconds of debt,
 * so the connection's next frame waits. Before, its ping was answered at once.
 */
const file = kafkaGatewayForFile();

/** Sends `frame`, waits for its reply, then times a ping: how long the connection rests for what the frame cost. */
async function restAfter(s: RawSocket, frame: string, cid: number): Promise<{ reply: Record<string, any>; restMs: number }> {
  s.send(frame);
  const [reply] = await s.waitFor((r) => r.frame.cid === cid, 1, 30_000);
  const pinged = performance.now();
  s.send(`{"t":15,"cid":${cid + 1}}`);
  await s.waitFor((r) => r.frame.cid === cid + 1, 1, 60_000);
  return { reply: reply!.frame, restMs: performance.now() - pinged };
}

test("the checks of a publish that waited for its topic's bounds are charged to its connection's handling time, as they are for a topic already known", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: file.brokers, KAFKA_WORKERS: "1", RATE_LIMIT_HANDLING_MS: "20", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });
  try {
    const s = await RawSocket.connect(gw.wsUrl, "json");
    const known = freshTopic("new-topic-charge-known");
    const batch = (cid: number, topic: string) => `{"t":11,"cid":${cid},"topic":"${topic}","events":[${new Array(1000).fill("0").join(",")}]}`;
    // The known topic learned, and the code warmed, first.
    await restAfter(s, `{"t":10,"cid":1,"topic":"${known}","event":{"type":"warm"}}`, 1);
    await restAfter(s, batch(3, known), 3);
    const atKnown = await restAfter(s, batch(5, known), 5);
    const atNew = await restAfter(s, batch(7, freshTopic("new-topic-charge")), 7);
    for (const { reply } of [atKnown, atNew]) {
      expect(reply.t).toBe(22);
      expect(reply.errors).toHaveLength(1000);
    }
    console.log(`the ping after a batch of 1,000 invalid events waited ${atKnown.restMs.toFixed(0)} ms at a known topic, ${atNew.restMs.toFixed(0)} ms at a new one`);
    // Checking them takes milliseconds, a tenth of a second's rest each at 20 ms a second, and decoding
    // them (all that was charged at a new topic) a few hundredths of that.
    expect(atKnown.restMs).toBeGreaterThan(200);
    expect(atNew.restMs).toBeGreaterThan(atKnown.restMs / 3);
    s.close();
  } finally {
    await gw.stop();
  }
}, 120_000);
