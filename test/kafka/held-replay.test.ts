import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { RawWsClient } from "../support/raw-ws";

/**
 * A replay whose client stops reading holds its Kafka reader back, and a reader held for a moment
 * lets go of its partitions (what librdkafka fetched ahead, held decompressed, is freed) and is
 * assigned again at the offsets it stopped at once the client reads on (src/kafka/worker/readers.ts).
 * The client must not see the difference: every record once, in order per partition.
 */
const file = kafkaGatewayForFile({ KAFKA_WORKERS: "2", RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0" });

const eventsOf = (f: Record<string, any>): Array<{ partition: number; offset: number; event: any }> => (f.t === 24 ? [f as any] : f.t === 25 ? f.events : []);

test("a replay whose client stops reading three times, each long enough for its reader to be let go, gets every record once and in order", async () => {
  const topic = freshTopic("held");
  await ensureTopic(file.brokers, topic, 3);
  const pub = await connect({ url: file.gw.wsUrl });
  const pad = "z".repeat(4000);
  const N = 8000;
  for (let sent = 0; sent < N; sent += 100) {
    const acks = await pub.publishBatch(Array.from({ length: 100 }, (_, i) => ({ type: "held", key: `k${(sent + i) % 17}`, data: { i: sent + i, pad } })), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
  }
  pub.close();
  const c = await RawWsClient.connect(file.gw.port);
  try {
    c.send({ t: 1, v: 1 });
    c.send({ t: 12, cid: 1, sub: "r", topic, start: "earliest" });
    const got = () => c.frames.reduce((n, f) => n + eventsOf(f).length, 0);
    for (let stop = 0; stop < 3; stop++) {
      const at = got();
      for (const deadline = Date.now() + 30_000; got() < at + 200 && Date.now() < deadline; ) await Bun.sleep(5);
      c.pause();
      await Bun.sleep(1500); // far past the 200 ms after which a held reader lets go
      c.resume();
    }
    for (const deadline = Date.now() + 60_000; got() < N && Date.now() < deadline; ) await Bun.sleep(20);
    await Bun.sleep(500);
    const events = c.frames.flatMap(eventsOf).filter((e) => e.event.type === "held");
    const seen = new Set(events.map((e) => e.event.data.i));
    expect(events.length).toBe(N);
    expect(seen.size).toBe(N);
    const last = new Map<number, number>();
    for (const e of events) {
      expect(e.offset).toBeGreaterThan(last.get(e.partition) ?? -1);
      last.set(e.partition, e.offset);
    }
    expect(c.frames.filter((f) => f.t === 32 || f.t === 27)).toEqual([]); // no gap, no lagged
  } finally {
    c.destroy();
  }
}, 120_000);
