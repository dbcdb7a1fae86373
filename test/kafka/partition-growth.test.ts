import { afterAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { addPartitions, ensureTopic } from "../support/kafka-broker";
import { rawProduce } from "../support/raw-producer";
import { within } from "./harm";

/**
 * Partitions added to a topic while it is read (kafka-topics --alter). Readers are assigned their
 * partitions by hand, and before, none of them ever heard of new ones: the chaos tester's live and
 * replaying subscribers, and a subscriber that came after, missed 3,105 of 5,865 events (all those
 * in the new partitions) without a gap; and another instance wrote re-sends of their ids again, its
 * ids reader not reading the new partitions either.
 */
const gateways: GatewayProcess[] = [];
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
});

test("partitions added while a topic is read: live, replaying and later subscribers get their records, and re-sends to another instance get the original acks", async () => {
  const brokers = await kafkaBrokers();
  // The producers look for new partitions each second (librdkafka's default is 5 minutes), so
  // publishes spread onto them soon after they exist, as another producer's would at once.
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", PARTITION_CHECK_MS: "500", KAFKA_PROPERTIES: "topic.metadata.refresh.interval.ms=1000" };
  const [a, b] = await Promise.all([startGateway(env), startGateway(env)]);
  gateways.push(a, b);
  const topic = freshTopic("grow");
  await ensureTopic(brokers, topic, 2);
  const [ca, cb] = await Promise.all([connect({ url: a.wsUrl }), connect({ url: b.wsUrl })]);
  const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ id: `g-${from + i}`, type: "grow", key: `k${from + i}`, data: { n: from + i } }));
  const first = await ca.publishBatch(batch(0, 20), { topic });
  expect(first.every((r) => r.status === "fulfilled")).toBe(true);
  // b follows the topic's ids from here on.
  expect((await cb.publishBatch(batch(0, 20), { topic })).map((r) => r.status === "fulfilled" && r.value.offset)).toEqual(first.map((r) => r.status === "fulfilled" && r.value.offset));

  const collect = (sub: AsyncIterable<{ event: { data?: unknown } }>) => {
    const seen = new Set<number>();
    void (async () => {
      for await (const e of sub) seen.add((e.event.data as { n: number }).n);
    })();
    return seen;
  };
  const live = collect(await ca.subscribe(topic));
  const replay = collect(await cb.subscribe(topic, { start: "earliest" }));

  await addPartitions(brokers, topic, 6);
  // Published until some land in the new partitions.
  const acked = new Map<number, { partition: number; offset: number }>();
  let next = 20;
  const deadline = Date.now() + 30_000;
  while ([...acked.values()].filter((p) => p.partition >= 2).length < 20 && Date.now() < deadline) {
    const results = await ca.publishBatch(batch(next, 20), { topic });
    results.forEach((r, i) => r.status === "fulfilled" && acked.set(next + i, r.value));
    next += 20;
    await Bun.sleep(100);
  }
  const inNew = [...acked].filter(([, p]) => p.partition >= 2).map(([n]) => n);
  expect(inNew.length).toBeGreaterThanOrEqual(20);
  const later = collect(await cb.subscribe(topic, { start: "earliest" }));

  const all = [...acked.keys()];
  const missing = (seen: Set<number>) => all.filter((n) => !seen.has(n));
  await within(20_000, () => missing(live).length === 0 && missing(replay).length === 0 && missing(later).length === 0);
  expect({ live: missing(live), replay: missing(replay), later: missing(later) }).toEqual({ live: [], replay: [], later: [] });

  // b's ids reader reads the new partitions too: a re-send there gets a's ack, not a second record.
  // It finds them within PARTITION_CHECK_MS and then reads them: given that time, as the re-send
  // race in docs/protocol.md says (in CI the re-sends came first, once).
  await Bun.sleep(2000);
  const resent = await cb.publishBatch(inNew.map((n) => batch(n, 1)[0]!), { topic });
  const place = (r: PromiseSettledResult<{ partition: number; offset: number }>) => (r.status === "fulfilled" ? `${r.value.partition}@${r.value.offset}` : "refused");
  expect(resent.map(place)).toEqual(inNew.map((n) => `${acked.get(n)!.partition}@${acked.get(n)!.offset}`));
  ca.close();
  cb.close();
}, 180_000);

test("partitions added while a share group reads a topic: its members get their records within seconds, not at librdkafka's 5-minute metadata refresh", async () => {
  const brokers = await kafkaBrokers();
  // No KAFKA_PROPERTIES: the share group's reader must find new partitions by itself (chaos tester:
  // 0 of 100 records for 282 s, the default topic.metadata.refresh.interval.ms).
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", PARTITION_CHECK_MS: "1000" });
  gateways.push(gw);
  const topic = freshTopic("grow-share");
  await ensureTopic(brokers, topic, 2);
  const c = await connect({ url: gw.wsUrl });
  const sub = await c.subscribe(topic, { share: `g-${topic}` });
  const seen = new Set<string>();
  sub.onEvent((e) => seen.add(`${e.partition}:${e.offset}`));
  await addPartitions(brokers, topic, 4);
  const written = await rawProduce(brokers, topic, Array.from({ length: 20 }, (_, i) => ({ partition: 2 + (i % 2), value: JSON.stringify({ i }), headers: [["ce_specversion", "1.0"], ["ce_type", "grown"], ["ce_id", `g${i}`], ["ce_source", "/java"], ["content-type", "application/json"]] })));
  const tookMs = await within(40_000, () => written.every((w) => seen.has(`${w.partition}:${w.offset}`)));
  expect(tookMs).toBeGreaterThanOrEqual(0);
  c.close();
}, 90_000);
