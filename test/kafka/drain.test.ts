import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

test("SIGTERM mid-stream: new publishes are refused SHUTTING_DOWN, everything acked is in Kafka, exit 0", async () => {
  const brokers = await kafkaBrokers();
  const topic = freshTopic("drain");
  await ensureTopic(brokers, topic, 3);
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2" });
  const client = await GatewayClient.connect(gw.wsUrl);
  const acked = new Map<string, { partition: number; offset: number }>();
  const nackCodes = new Set<string>();
  let seq = 0;
  let open = true;
  void client.closed.then(() => (open = false));
  const pending = new Set<Promise<void>>();
  const exited = (async () => {
    await Bun.sleep(500);
    return gw.stop("SIGTERM");
  })();
  while (open) {
    while (pending.size < 10 && open) {
      const events = Array.from({ length: 50 }, () => ({ id: `d-${seq++}`, type: "test.drain", key: `k${seq % 7}` }));
      const p: Promise<void> = client.publishBatch(events, topic).then((r) => {
        if (r.t === 21) return void nackCodes.add(r.code);
        r.ids.forEach((id: string, i: number) => acked.set(id, { partition: r.partitions[i], offset: r.offsets[i] }));
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await Promise.race([...pending, client.closed, Bun.sleep(50)]);
  }
  expect(await exited).toBe(0);
  expect(acked.size).toBeGreaterThan(0);
  // Requests that arrive once the drain began are refused; if none arrived before the sockets closed, none are.
  for (const code of nackCodes) expect(code).toBe("SHUTTING_DOWN");
  const inKafka = new Map((await consumeAll(brokers, topic, { expect: acked.size })).map((r) => [r.headers.ce_id!, { partition: r.partition, offset: r.offset }]));
  for (const [id, pos] of acked) expect(inKafka.get(id)).toEqual(pos);
}, 60_000);
