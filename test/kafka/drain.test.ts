import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { type PublishError, connect } from "../../src/client";

test("SIGTERM mid-stream: new publishes are refused SHUTTING_DOWN, everything acked is in Kafka, exit 0", async () => {
  const brokers = await kafkaBrokers();
  const topic = freshTopic("drain");
  await ensureTopic(brokers, topic, 3);
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2" });
  let open = true;
  // One attempt per event, and no reconnect within the test: what is counted is this gateway's answers.
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1, reconnect: { minMs: 60_000, maxMs: 60_000 }, onState: (state) => state !== "open" && (open = false) });
  const acked = new Map<string, { partition: number; offset: number }>();
  const nackCodes = new Set<string>();
  let seq = 0;
  const pending = new Set<Promise<void>>();
  const exited = (async () => {
    await Bun.sleep(500);
    return gw.stop("SIGTERM");
  })();
  while (open) {
    while (pending.size < 10 && open) {
      const events = Array.from({ length: 50 }, () => ({ id: `d-${seq++}`, type: "test.drain", key: `k${seq % 7}` }));
      const p: Promise<void> = client.publishBatch(events, { topic }).then((settled) => {
        for (const r of settled) {
          if (r.status === "fulfilled") acked.set(r.value.id, { partition: r.value.partition, offset: r.value.offset });
          // CLIENT_CLOSED: still unanswered when the client was closed below, the SDK's own refusal.
          else if ((r.reason as PublishError).code !== "CLIENT_CLOSED") nackCodes.add((r.reason as PublishError).code);
        }
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await Promise.race([...pending, Bun.sleep(50)]);
  }
  client.close();
  await Promise.all(pending);
  expect(await exited).toBe(0);
  expect(acked.size).toBeGreaterThan(0);
  // Requests that arrive once the drain began are refused; if none arrived before the sockets closed, none are.
  for (const code of nackCodes) expect(code).toBe("SHUTTING_DOWN");
  const inKafka = new Map((await consumeAll(brokers, topic, { expect: acked.size })).map((r) => [r.headers.ce_id!, { partition: r.partition, offset: r.offset }]));
  for (const [id, pos] of acked) expect(inKafka.get(id)).toEqual(pos);
}, 60_000);
