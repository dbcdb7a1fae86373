import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { collect } from "../support/sdk-collector";

let brokers: string;
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  [a, b] = await Promise.all([startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" }), startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" })]);
}, 60_000);
afterAll(async () => {
  await Promise.all([a.stop(), b.stop()]);
}, 60_000);

test("a share group across two instances splits the events: each one to exactly one member, per key to one member", async () => {
  const topic = freshTopic("share");
  await ensureTopic(brokers, topic, 4);
  const group = `g-${Date.now()}`;
  const clients = await Promise.all([a, a, b].map((gw) => connect({ url: gw.wsUrl })));
  const members = await Promise.all(clients.map(async (c) => collect(await c.subscribe(topic, { share: group, filter: { types: ["job.*"] } }))));
  // Let the group settle: both instances joined, partitions assigned. Probe until both readers get events.
  const pub = await connect({ url: a.wsUrl });
  const deadline = Date.now() + 30_000;
  let probe = 0;
  while (Date.now() < deadline) {
    await pub.publishBatch(Array.from({ length: 40 }, (_, i) => ({ type: "probe", key: `p${i}`, data: { probe } })), { topic });
    probe++;
    await Bun.sleep(300);
    const metricsA = await (await fetch(`${a.url}/metrics`)).text();
    const metricsB = await (await fetch(`${b.url}/metrics`)).text();
    const read = (m: string) => Number(/gateway_filter_seconds_count (\d+)/.exec(m)?.[1] ?? 0);
    if (read(metricsA) > 0 && read(metricsB) > 0) break;
  }

  const ids: string[] = [];
  const keyOf = new Map<string, string>();
  for (let i = 0; i < 30; i++) {
    const events = Array.from({ length: 100 }, (_, j) => {
      const n = i * 100 + j;
      ids.push(`j-${n}`);
      keyOf.set(`j-${n}`, `key-${n % 25}`);
      return { id: `j-${n}`, type: "job.run", key: `key-${n % 25}`, data: { n } };
    });
    for (const r of await pub.publishBatch(events, { topic })) expect(r.status).toBe("fulfilled");
  }
  const total = () => members.reduce((s, m) => s + m.events.length, 0);
  const until = Date.now() + 20_000;
  while (total() < ids.length && Date.now() < until) await Bun.sleep(50);
  await Bun.sleep(300);

  const got = members.flatMap((m) => m.events.map((e) => e.event.id));
  expect(new Set(got).size).toBe(got.length); // nobody got an event twice
  expect(got.sort()).toEqual([...ids].sort()); // and none was lost
  expect(members.filter((m) => m.events.length > 0).length).toBeGreaterThanOrEqual(2);
  const ownerOfKey = new Map<string, number>();
  members.forEach((m, i) => {
    for (const e of m.events) {
      const key = keyOf.get(e.event.id)!;
      expect(ownerOfKey.get(key) ?? i).toBe(i);
      ownerOfKey.set(key, i);
    }
    expect(m.inOrderPerPartition()).toBe(true);
  });
  for (const c of [...clients, pub]) c.close();
}, 90_000);
