import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { startSlowSubscriber } from "../support/slow-subscriber";
import { within } from "../kafka/harm";

/**
 * A share group member that stops reading (its TCP socket full) and later dies. Its records must go
 * to the members that read: a work queue slows to its members' pace, it does not drop. Before, the
 * stalled member's queue overflowed under drop-oldest and what was dropped counted as handed: the
 * hostile tester's reading member never got 2,574 of 10,000 events (Kafka), 2,652 (embedded).
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "", SUBSCRIBER_BUFFER_BYTES: String(64 * 1024) });
});
afterAll(async () => {
  await gw.stop();
});

test("a share member that stops reading: its records go to the member that reads, none is lost to the group, before and after it dies", async () => {
  const topic = freshTopic("share-stall");
  const group = `g-stall-${Date.now()}`;
  const c = await connect({ url: gw.wsUrl });
  await c.publish({ type: "init" }, { topic });
  const seen = new Set<number>();
  const reading = await c.subscribe(topic, { share: group });
  void (async () => {
    for await (const e of reading) if (e.event.type === "job") seen.add((e.event.data as { i: number }).i);
  })();
  const stalled = await startSlowSubscriber(gw.port, topic, 600_000, "drop-oldest", undefined, group);
  try {
    const pad = "x".repeat(1000);
    const N = 20_000;
    for (let i = 0; i < N; i += 200) {
      const acks = await c.publishBatch(Array.from({ length: 200 }, (_, j) => ({ type: "job", key: `k${i + j}`, data: { i: i + j, pad } })), { topic });
      expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
    }
    // While the stalled member lives, the reading one gets all but what the stalled one was handed
    // into its socket (at most its kernel buffers and a queue's worth).
    await within(10_000, () => seen.size >= N / 2);
    expect(seen.size).toBeGreaterThan(N / 2);
    stalled.proc.kill("SIGKILL");
    await stalled.proc.exited;
    await within(20_000, () => seen.size === N);
    const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !seen.has(i));
    expect(missing.length).toBe(0);
  } finally {
    stalled.proc.kill("SIGKILL");
    c.close();
  }
}, 60_000);
