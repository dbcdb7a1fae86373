import { resolve } from "node:path";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, deleteTopic, ensureTopic } from "../support/kafka-broker";
import { collect } from "../support/sdk-collector";
import { until } from "../support/until";
import { type Frame, GatewayClient as RawClient } from "../support/ws-client";

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

/**
 * Found by the chaos tester: the group committed whatever its worker had read, so when the only
 * member on an instance dropped its connection, the records in flight to it (read, not yet handed to
 * its socket) were committed for the group and never reached anyone: 376 of 40,000 on a plain close.
 * Shared subscriptions are at-least-once: each record reaches some member, maybe twice.
 */
test("a member's connection drops mid-stream: every record still reaches the group (the group commits only what members were handed)", async () => {
  const topic = freshTopic("share-drop");
  await ensureTopic(brokers, topic, 3);
  const group = `g-drop-${Date.now()}`;
  // Raw clients: the dropping member closes its socket with frames on the way, which the SDK would resume.
  const seen = new Set<string>();
  const byMember = { a: 0, b: 0, subscribed: 0 };
  const mark = (f: Frame) => {
    for (const e of f.t === 25 ? (f.events as Frame[]) : f.t === 24 ? [f] : []) {
      seen.add(`${e.partition}:${e.offset}`);
      byMember.b++;
    }
  };
  // The member on A runs in a process of its own, so that it can stall and die as a crashed client does.
  const dropping = Bun.spawn([process.execPath, resolve(import.meta.dir, "../support/share-member.ts"), a.wsUrl, topic, group], { stdout: "pipe", stderr: "inherit" });
  void (async () => {
    let buf = "";
    for await (const chunk of dropping.stdout as unknown as AsyncIterable<Uint8Array>) {
      buf += Buffer.from(chunk).toString();
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) {
        if (l === "subscribed") byMember.subscribed = 1;
        else if (l) {
          seen.add(l);
          byMember.a++;
        }
      }
    }
  })();
  for (const deadline = Date.now() + 20_000; !byMember.subscribed && Date.now() < deadline; ) await Bun.sleep(20);
  const staying = await RawClient.connect(b.wsUrl);
  const subscribed = await staying.subscribe({ sub: "m", topic, share: group }, mark);
  expect(subscribed.t).toBe(23);
  // A member has no position of its own to resume from: no token (it was ""), no start (it was {}).
  expect({ token: "token" in subscribed, start: "start" in subscribed }).toEqual({ token: false, start: false });
  // Both instances in the group with partitions assigned: probe until each member has had events.
  const pub = await RawClient.connect(b.wsUrl);
  for (const deadline = Date.now() + 30_000; Date.now() < deadline && (byMember.a === 0 || byMember.b === 0); await Bun.sleep(300)) {
    await pub.publishBatch(Array.from({ length: 30 }, (_, i) => ({ type: "probe", key: `p${i}` })), topic);
  }
  expect(byMember.a * byMember.b).toBeGreaterThan(0);
  // A stream of 12,000 records, and a second in, the member on A stalls and dies: what reached its
  // socket after that was never read.
  const stream = (async () => {
    for (let i = 0; i < 40; i++) {
      expect((await pub.publishBatch(Array.from({ length: 300 }, (_, j) => ({ type: "job", key: `k${(i * 300 + j) % 64}` })), topic)).t).toBe(22);
      await Bun.sleep(50);
    }
  })();
  await Bun.sleep(1000);
  dropping.kill("SIGUSR1");
  await dropping.exited;
  await stream;
  // The group rebalances (session 10 s at most), and the member left reads on from the group's commit.
  // The stream's records (probes from before the group had settled were never the group's to read).
  const records = (await consumeAll(brokers, topic, { expect: 12_000, timeoutMs: 60_000 })).filter((r) => r.headers.ce_type === "job");
  expect(records.length).toBe(12_000);
  for (const deadline = Date.now() + 40_000; Date.now() < deadline; await Bun.sleep(500)) if (records.every((r) => seen.has(`${r.partition}:${r.offset}`))) break;
  const missing = records.filter((r) => !seen.has(`${r.partition}:${r.offset}`));
  console.log(`share group, a member dropped mid-stream: ${records.length} records, ${missing.length} reached no member`);
  expect(missing.length).toBe(0);
  staying.close();
  pub.close();
}, 150_000);

test("a new share group gets the events published right after its first member's subscribed, though its reader has not joined the group yet", async () => {
  // A new group (no commits) started at the end as of its reader's join, seconds after `subscribed`:
  // the chaos tester's member got 30 of 60 events published straight after it.
  const topic = freshTopic("share-new");
  await ensureTopic(brokers, topic, 3);
  const pub = await connect({ url: a.wsUrl });
  await pub.publish({ type: "before", key: "k" }, { topic }); // history the group must not get
  const member = await connect({ url: a.wsUrl });
  const sub = await member.subscribe(topic, { share: `new-${Date.now().toString(36)}` });
  const got = new Set<number>();
  sub.onEvent((e) => void got.add((e.event.data as { i: number }).i));
  const acks = await pub.publishBatch(Array.from({ length: 60 }, (_, i) => ({ type: "after", key: `k${i % 7}`, data: { i } })), { topic });
  expect(acks.every((r) => r.status === "fulfilled")).toBe(true);
  await until("the 60 events", () => got.size >= 60, 30_000);
  expect(got.size).toBe(60);
  member.close();
  pub.close();
}, 60_000);

test("a share group that has a member takes a subscribe for a topic new to it, on either instance; every event after subscribed reaches a member", async () => {
  // Kafka refuses a commit from outside a group that has members: the start commit for the new
  // topic's partitions was refused, and every such subscribe got UNAVAILABLE (retriable) for as long
  // as the first member stayed (chaos tester: 15 attempts over 29 s). A start held by the subscribing
  // instance instead lost what was written after `subscribed` when its member left before its reader
  // had joined (retest: 0 of 10): such partitions start at the log's start, at least once.
  const [t1, t2, t3] = [freshTopic("share-t1"), freshTopic("share-t2"), freshTopic("share-t3")];
  for (const t of [t1, t2, t3]) await ensureTopic(brokers, t, 3);
  const group = `grow-${Date.now().toString(36)}`;
  const pub = await connect({ url: a.wsUrl });
  for (const t of [t1, t2, t3]) await pub.publish({ type: "before", key: "k" }, { topic: t });
  const first = await connect({ url: a.wsUrl });
  const m1 = collect(await first.subscribe(t1, { share: group }));
  // The first member's reader joins the group: from then on it has a member.
  for (let probe = 0; m1.events.length === 0; probe++) {
    expect(probe).toBeLessThan(100);
    await pub.publish({ type: "probe", key: "p" }, { topic: t1 });
    await Bun.sleep(300);
  }
  const send30 = async (topic: string) => {
    const acks = await pub.publishBatch(Array.from({ length: 30 }, (_, i) => ({ type: "after", key: `k${i % 7}`, data: { i } })), { topic });
    expect(acks.every((r) => r.status === "fulfilled")).toBe(true);
  };
  // A member that leaves before its reader has joined: the next member gets what was written meanwhile.
  const leaving = await connect({ url: b.wsUrl, maxAttempts: 1 });
  await leaving.subscribe(t2, { share: group });
  await send30(t2);
  leaving.close();
  const second = await connect({ url: b.wsUrl, maxAttempts: 1 });
  const third = await connect({ url: a.wsUrl, maxAttempts: 1 });
  const m2 = collect(await second.subscribe(t2, { share: group }));
  const m3 = collect(await third.subscribe([t1, t3], { share: group }));
  await send30(t3);
  // Each event once at least (a rebalance may hand an uncommitted one again: at least once); the
  // history of a topic new to the group may come too.
  const after = (cs: Array<typeof m2>, t: string) => [...new Set(cs.flatMap((c) => c.events.filter((e) => e.topic === t && e.event.type === "after").map((e) => (e.event.data as { i: number }).i)))].sort((x, y) => x - y);
  const all30 = Array.from({ length: 30 }, (_, i) => i);
  await until("t2's 30 events at the second member", () => after([m2], t2).length === 30, 30_000);
  await until("t3's 30 events at a member", () => after([m1, m3], t3).length === 30, 30_000);
  expect(after([m2], t2)).toEqual(all30);
  expect(after([m1, m3], t3)).toEqual(all30);
  for (const c of [first, second, third, pub]) c.close();
}, 120_000);

test("a share group's topic deleted and created again: its members get the new log, from its start", async () => {
  // Kafka drops a deleted topic's commits, so the group rejoins with none: its reader must read the new
  // log from its start, not from wherever the end is when it has rejoined (the chaos tester's members
  // missed the new log's first records, written before that). Whether those come first is a race
  // here, so this does not fail on the old reset (latest) every time; it holds the new one to it.
  const topic = freshTopic("share-reset");
  await ensureTopic(brokers, topic, 3);
  const pub = await connect({ url: a.wsUrl });
  const member = await connect({ url: a.wsUrl });
  const sub = await member.subscribe(topic, { share: `reset-${Date.now().toString(36)}` });
  const got: Array<{ phase: string; i: number }> = [];
  sub.onEvent((e) => void got.push(e.event.data as { phase: string; i: number }));
  const send = (phase: string, n: number) => pub.publishBatch(Array.from({ length: n }, (_, i) => ({ type: "r", key: "one", data: { phase, i } })), { topic });
  expect((await send("old", 50)).every((r) => r.status === "fulfilled")).toBe(true);
  await until("the old log's 50", () => got.length >= 50, 30_000);
  await Bun.sleep(6000); // the group commits every 5 s
  await deleteTopic(brokers, topic);
  await ensureTopic(brokers, topic, 3);
  await until("the gateway to publish to the new topic", async () => (await send("new", 40)).every((r) => r.status === "fulfilled"), 30_000);
  await until("the new log's 40", () => got.filter((g) => g.phase === "new").length >= 40, 30_000);
  expect(got.filter((g) => g.phase === "new").map((g) => g.i)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  member.close();
  pub.close();
}, 120_000);
