import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";

/**
 * A connection closed for abuse (4429: it sent on into RATE_LIMITED; 4400: into refusals for invalid
 * requests) still gets the reply of every publish the gateway had already handed to Kafka. Closed at
 * once, those replies were lost while the events were written: the outside chaos tester found up to
 * 14,961 requests unanswered and 3,300 events in Kafka that their client was never told of (and
 * re-sent elsewhere, so written twice).
 */
let brokers: string;
let gw: GatewayProcess;
beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({
    KAFKA_BROKERS: brokers,
    RATE_LIMIT_EVENTS: "2000",
    RATE_LIMIT_BURST_SECONDS: "1",
    RATE_LIMIT_CLOSE_AFTER: "50",
    INVALID_FRAMES_CLOSE_AFTER: "50",
    // The penalty would refuse the control's reconnects; the control holds one socket, but keep it short.
    RATE_LIMIT_CLOSE_PENALTY_SECONDS: "1",
  });
}, 90_000);
afterAll(async () => {
  await gw?.stop();
}, 60_000);

/** Replies by cid (every frame with a cid), each with how many times it came. */
function repliesByCid(c: RawWsClient): Map<number, { frame: Record<string, any>; count: number }> {
  const byCid = new Map<number, { frame: Record<string, any>; count: number }>();
  for (const f of c.frames) if (typeof f.cid === "number" && f.cid >= 1) byCid.set(f.cid, { frame: f, count: (byCid.get(f.cid)?.count ?? 0) + 1 });
  return byCid;
}

for (const { close, invalid } of [
  { close: 4429, invalid: false },
  { close: 4400, invalid: true },
]) {
  test(`closed ${close} with publishes in flight: every event written to Kafka was acked to its client before the close, and no request was answered twice`, async () => {
    const topic = freshTopic(`abuse-${close}`);
    await ensureTopic(brokers, topic, 3);
    const n = 4000;
    const c = await RawWsClient.connect(gw.port);
    await underControl(gw, `a connection closed ${close} with publishes in flight`, async () => {
      c.send({ t: 1, v: 1 });
      for (let i = 0; i < n; i++) {
        // For 4400, every other frame is a request the gateway refuses for what it holds (1xxx).
        if (invalid && i % 2 === 1) c.send({ t: 10, cid: i + 1, topic, event: { type: "" } });
        else c.send({ t: 10, cid: i + 1, topic, event: { id: `ev-${i}`, type: "abuse", key: `k${i % 7}`, data: { i } } });
      }
      await Promise.race([c.ended, Bun.sleep(60_000)]);
    });
    expect(c.closeCode).toBe(close);
    const replies = repliesByCid(c);
    for (const { count } of replies.values()) expect(count).toBe(1);
    await Bun.sleep(500); // anything the gateway wrote is in the log by now
    const records = await consumeAll(brokers, topic, { timeoutMs: 5000 });
    const written = records.map((r) => Number(r.headers.ce_id!.slice(3)));
    const unacked = written.filter((i) => replies.get(i + 1)?.frame.t !== 20);
    const acked = [...replies.values()].filter((r) => r.frame.t === 20).length;
    console.log(`closed ${close}: ${replies.size} of ${n} requests answered before the close (${acked} acked), ${written.length} events in Kafka, ${unacked.length} of them unacked`);
    expect(written.length).toBeGreaterThan(0);
    expect(unacked).toEqual([]);
    // Every ack names an event that is in Kafka.
    expect(acked).toBe(written.length);
  }, 120_000);
}
