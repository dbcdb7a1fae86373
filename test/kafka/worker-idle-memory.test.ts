import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { rssMiB } from "../support/proc";
import { RawWsClient } from "../support/raw-ws";

/**
 * A Kafka worker gives back what replays cost it once they end (here replays whose client stopped
 * reading, the case the hostile tester measured). The records it copies out of
 * librdkafka are buffers outside JavaScriptCore's heap, collected only as JavaScript allocates: once
 * the replays ended, nothing did, and after 16 replays of 200 KB events the two workers stayed at
 * 140–215 MB for as long as they were idle, 100–195 MB of it dead buffers (67 MB once collected).
 * The worker now collects once its readers are quiet (src/kafka/worker/idle-collector.ts).
 */
const file = kafkaGatewayForFile({ KAFKA_WORKERS: "2", RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0" });

/** The least of each worker's RSS over `ms`: what it holds, not garbage a collection just missed. */
async function leastRss(pids: number[], ms: number): Promise<number[]> {
  const least = pids.map(() => Number.POSITIVE_INFINITY);
  for (let t = 0; t < ms; t += 200) {
    await Bun.sleep(200);
    pids.forEach((pid, i) => (least[i] = Math.min(least[i]!, rssMiB(pid))));
  }
  return least;
}

test("after sixteen replays of 30 MB that were never read have closed, the workers are back near where they started", async () => {
  const topic = freshTopic("idle-memory");
  await ensureTopic(file.brokers, topic, 2);
  const pub = await connect({ url: file.gw.wsUrl });
  const blob = "y".repeat(200_000);
  for (let sent = 0; sent < 150; sent += 4) {
    const acks = await pub.publishBatch(Array.from({ length: 4 }, (_, i) => ({ type: "big", key: `k${i}`, data: { blob, n: sent + i } })), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
  }
  pub.close();
  const workers: number[] = (await file.gw.health()).log.workers.map((w: { pid: number }) => w.pid);
  const before = await leastRss(workers, 3000);

  const reader = await RawWsClient.connect(file.gw.port);
  reader.send({ t: 1, v: 1 });
  for (let i = 0; i < 16; i++) reader.send({ t: 12, cid: i + 1, sub: `r${i}`, topic, start: "earliest" });
  await reader.waitFor((f) => f.cid === 16);
  reader.pause(); // never reads again: the readers fill what they may hold, are held, and let go
  await Bun.sleep(4000);
  reader.destroy();
  await Bun.sleep(2500); // closed, and the readers quiet for the collector's second
  const after = await leastRss(workers, 3000);
  const grew = after.map((a, i) => a - before[i]!);
  console.log(`workers' RSS before ${before.map((m) => m.toFixed(0)).join(", ")} MiB; after the replays ended ${after.map((m) => m.toFixed(0)).join(", ")} MiB`);
  // The least over 3 s, so not a collection's timing. Before: 86–96 MiB more each; after: -2 to 5.
  expect(grew.reduce((a, b) => a + b, 0)).toBeLessThan(16);
}, 240_000);
