import { expect, test } from "bun:test";
import { unpack } from "msgpackr";
import { startGateway } from "../support/gateway";
import { freshTopic, kafkaBroker } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { type PublishError, connect } from "../../src/client";
import { rssMiB } from "../support/proc";


/**
 * The broker freezes (SIGSTOP) under load, as during a leader failover. librdkafka's queue is made
 * tiny so produce() hits queue-full at once. The stall must come back to the client as retriable
 * OVERLOADED nacks, with gateway memory flat, and once the broker thaws every acked event must be
 * in Kafka at its acked offset, in per-key order.
 */
test("a broker stall becomes backpressure: OVERLOADED nacks, bounded memory, nothing acked lost, order kept", async () => {
  const { brokers, pid: brokerPid } = await kafkaBroker();
  if (!brokerPid) return console.warn("skipped: needs the broker this run started (KAFKA_BROKERS is external)");
  const topic = freshTopic("stall");
  await ensureTopic(brokers, topic, 3);
  const gw = await startGateway({
    KAFKA_BROKERS: brokers,
    KAFKA_WORKERS: "1",
    KAFKA_MAX_INFLIGHT_PER_WORKER: "2000",
    KAFKA_PROPERTIES: "queue.buffering.max.messages=300",
    PUBLISH_WINDOW: "100000",
    // The client here pushes on through the stall at 20,000 events/s: the rate limit (which would close it with
    // 4429) is not what this test is about.
    RATE_LIMIT_EVENTS: "0",
  });
  // One attempt per event: the test re-sends by itself, and counts the gateway's own refusals.
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1 });
  const acked = new Map<string, { partition: number; offset: number }>();
  const nackCodes = new Map<string, number>();
  let seq = 0;
  let stop = false;
  const pending = new Set<Promise<void>>();
  const pump = (async () => {
    while (!stop) {
      // At most 400 events per 20 ms tick, acked or nacked: about the rate the broker takes, so the
      // stall's nacks make no more garbage than the acks before it did.
      for (let sent = 0; sent < 4 && pending.size < 30 && !stop; sent++) {
        const events = Array.from({ length: 100 }, () => {
          const n = seq++;
          return { id: `s-${n}`, type: "test.stall", key: `k${n % 10}`, data: { n } };
        });
        const p: Promise<void> = client.publishBatch(events, { topic }).then((settled) => {
          for (const r of settled) {
            if (r.status === "fulfilled") acked.set(r.value.id, { partition: r.value.partition, offset: r.value.offset });
            else {
              const code = (r.reason as PublishError).code;
              nackCodes.set(code, (nackCodes.get(code) ?? 0) + 1);
            }
          }
        });
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
      await Bun.sleep(20);
    }
  })();

  // The same 3 s of load with the broker up first: its peak is the baseline, since garbage the
  // collector has yet to free is part of either peak.
  let rssBefore = 0;
  for (let i = 0; i < 30; i++) {
    await Bun.sleep(100);
    rssBefore = Math.max(rssBefore, rssMiB(gw.proc.pid));
  }
  process.kill(brokerPid, "SIGSTOP");
  let rssPeak = 0;
  let inflightPeak = 0;
  try {
    for (let i = 0; i < 30; i++) {
      await Bun.sleep(100);
      rssPeak = Math.max(rssPeak, rssMiB(gw.proc.pid));
      inflightPeak = Math.max(inflightPeak, (await gw.health()).eventsInflight);
    }
  } finally {
    process.kill(brokerPid, "SIGCONT");
  }
  const overloadedDuringStall = nackCodes.get("OVERLOADED") ?? 0;
  await Bun.sleep(1500);
  stop = true;
  await pump;
  await Promise.all(pending);
  client.close();
  await gw.stop();

  expect(overloadedDuringStall).toBeGreaterThan(0);
  for (const code of nackCodes.keys()) expect(code).toBe("OVERLOADED");
  // 3 s of a client pushing on through the stall peaked less than 64 MiB above 3 s of it acked.
  expect(rssPeak - rssBefore).toBeLessThan(64);
  // What the gateway holds for the stalled broker is the worker's in-flight bound, however long it lasts.
  expect(inflightPeak).toBeLessThanOrEqual(2000);
  console.log(`stall: ${acked.size} acked, ${overloadedDuringStall} nacked OVERLOADED during the stall, at most ${inflightPeak} in flight, gateway RSS peak ${rssBefore.toFixed(0)} MiB before, ${rssPeak.toFixed(0)} MiB during`);

  const records = await consumeAll(brokers, topic, { expect: acked.size });
  const inKafka = new Map(records.map((r) => [r.headers.ce_id!, r]));
  const lastByKey = new Map<string, number>();
  for (const r of [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const key = Buffer.from(r.key!).toString();
    const n = (unpack(r.value!) as { n: number }).n;
    expect(n).toBeGreaterThan(lastByKey.get(key) ?? -1);
    lastByKey.set(key, n);
  }
  for (const [id, pos] of acked) {
    const r = inKafka.get(id);
    expect(r && { partition: r.partition, offset: r.offset }).toEqual(pos);
  }
}, 90_000);
