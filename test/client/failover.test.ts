import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayClient, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { record, startLoad, verify } from "./failover.support";

/**
 * The SDK through the loss of its gateway, over real processes and real Kafka: a gateway stopped
 * (SIGTERM) and started again on its port, and one of two instances killed (SIGKILL) with the client
 * given both URLs. Checked against what kcat reads back from Kafka.
 */
const RESUME_TOKEN_KEYS = "sdk-failover-resume-key-of-at-least-32-bytes";
let brokers: string;
beforeAll(async () => {
  brokers = await kafkaBrokers(); // the broker's start-up (a JVM) is not part of any test's time
}, 180_000);
const gateways: GatewayProcess[] = [];
const clients: GatewayClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  for (const g of gateways) await g.stop("SIGKILL");
}, 60_000);

async function gateway(env: Record<string, string>): Promise<GatewayProcess> {
  const gw = await startGateway(env);
  gateways.push(gw);
  return gw;
}

async function client(url: string | string[], states: string[] = []): Promise<GatewayClient> {
  const c = await connect({ url, reconnect: { minMs: 50, maxMs: 500 }, maxAttempts: 40, onState: (s, d) => void states.push(`${s} ${d?.url ?? ""}`) });
  clients.push(c);
  return c;
}

test("SIGTERM mid-publish and mid-subscribe, then a new gateway on the same port: every publish settles, every acked event is in Kafka, the subscription resumes with no gap and no duplicate", async () => {
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS };
  const topic = freshTopic("sdk-term");
  await ensureTopic(brokers, topic, 3);
  const first = await gateway(env);
  const states: string[] = [];
  const c = await client(first.wsUrl, states);
  const seen = record(await c.subscribe(topic, { start: "earliest" }));
  const load = startLoad(c, topic);
  await Bun.sleep(1500);
  const before = load.acked.length;
  expect(await first.stop("SIGTERM")).toBe(0);
  const second = await gateway({ ...env, PORT: String(first.port) });
  for (const t = Date.now(); load.acked.length < before + 200 && Date.now() - t < 30_000; ) await Bun.sleep(100);
  await load.stop();
  expect(states.filter((s) => s.startsWith("open")).length).toBeGreaterThanOrEqual(2); // it did reconnect
  expect(load.acked.length).toBeGreaterThan(before); // and published through the new gateway
  const { duplicateIds, records } = await verify(brokers, topic, load, seen);
  console.log(`SIGTERM: ${load.acked.length} acked, ${records} records, ${duplicateIds} ids written more than once`);
  // A drain answers what it wrote before closing, and a re-send of anything else gets its original ack.
  expect(duplicateIds).toBe(0);
  expect(second.proc.exitCode).toBeNull();
}, 120_000);

test("two instances, the client given both: SIGKILL the one it uses while it publishes and subscribes; it moves to the other, every acked event is in Kafka, the subscription has no gap and no duplicate", async () => {
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS };
  const topic = freshTopic("sdk-kill2");
  await ensureTopic(brokers, topic, 3);
  const [a, b] = await Promise.all([gateway(env), gateway(env)]);
  const states: string[] = [];
  const c = await client([a.wsUrl, b.wsUrl], states);
  expect(c.url).toBe(a.wsUrl);
  const seen = record(await c.subscribe(topic, { start: "earliest" }));
  const load = startLoad(c, topic);
  await Bun.sleep(1500);
  const before = load.acked.length;
  a.proc.kill("SIGKILL");
  await a.proc.exited;
  for (const t = Date.now(); load.acked.length < before + 200 && Date.now() - t < 30_000; ) await Bun.sleep(100);
  await load.stop();
  expect(c.url).toBe(b.wsUrl);
  expect(states).toContain(`open ${b.wsUrl}`);
  expect(load.acked.length).toBeGreaterThan(before);
  const { duplicateIds, records } = await verify(brokers, topic, load, seen);
  // Written by A but acked never: re-sent to B with the same id, which B answers with A's original
  // position (idempotent publish), having read it from the log.
  console.log(`SIGKILL of 1 of 2: ${load.acked.length} acked, ${records} records, ${duplicateIds} ids written more than once`);
  expect(duplicateIds).toBe(0);
}, 120_000);

test("failing over onto a busy instance: resubscribes refused for a retriable reason (TOO_MANY_SUBSCRIPTIONS) are tried again, never ended; every subscription gets every event", async () => {
  // B replays at most 2 subscriptions at once: the 12 resuming behind the end are replays.
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS };
  const topic = freshTopic("sdk-busy");
  await ensureTopic(brokers, topic, 3);
  const [a, b] = await Promise.all([gateway(env), gateway({ ...env, MAX_REPLAY_SUBSCRIPTIONS: "2", REPLAY_RATE_LIMIT: "200" })]);
  const c = await client([a.wsUrl, b.wsUrl]);
  const notices: string[] = [];
  const subs = await Promise.all(Array.from({ length: 12 }, () => c.subscribe(topic, { start: "latest" })));
  const got = subs.map((s) => {
    const ids = new Set<string>();
    s.onEvent((e) => ids.add(e.event.id));
    s.onNotice((n) => n.kind === "ended" && notices.push(`${n.code}: ${n.message}`));
    return ids;
  });
  const publisher = await client(b.wsUrl);
  const first = await publisher.publishBatch(Array.from({ length: 20 }, (_, i) => ({ type: "before", key: `k${i}`, data: i })), { topic });
  expect(first.every((r) => r.status === "fulfilled")).toBe(true);
  for (const t = Date.now(); got.some((g) => g.size < 20) && Date.now() - t < 10_000; ) await Bun.sleep(50);
  a.proc.kill("SIGKILL");
  await a.proc.exited;
  // Written while the subscriptions are away: each resumes behind the end, so each is a replay on B.
  const later = await publisher.publishBatch(Array.from({ length: 100 }, (_, i) => ({ type: "after", key: `k${i}`, data: i })), { topic });
  expect(later.every((r) => r.status === "fulfilled")).toBe(true);
  for (const t = Date.now(); got.some((g) => g.size < 120) && Date.now() - t < 40_000; ) await Bun.sleep(100);
  expect(notices).toEqual([]);
  expect(got.map((g) => g.size)).toEqual(Array(12).fill(120));
}, 120_000);

test("the instance in use hangs with its connection open (SIGSTOP): the heartbeat gives it up, and publishes and the subscription go on on the other", async () => {
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS };
  const topic = freshTopic("sdk-hang");
  await ensureTopic(brokers, topic, 3);
  const [a, b] = await Promise.all([gateway(env), gateway(env)]);
  const states: string[] = [];
  const c = await connect({ url: [a.wsUrl, b.wsUrl], reconnect: { minMs: 50, maxMs: 500 }, heartbeat: { idleMs: 500, timeoutMs: 1000 }, onState: (s, d) => void states.push(`${s} ${d?.url ?? ""}`) });
  clients.push(c);
  expect(c.url).toBe(a.wsUrl);
  const sub = await c.subscribe(topic, { start: "latest" });
  const got = new Set<string>();
  sub.onEvent((e) => got.add(e.event.id));
  expect((await c.publish({ type: "before" }, { topic })).offset).toBeGreaterThanOrEqual(0);
  a.proc.kill("SIGSTOP");
  try {
    const t0 = performance.now();
    const ack = await Promise.race([c.publish({ id: "during-hang", type: "during" }, { topic }), Bun.sleep(15_000).then(() => null)]);
    const ms = performance.now() - t0;
    console.log(`an instance hung: the publish was acked by the other after ${ms.toFixed(0)} ms`);
    expect(ack).not.toBeNull();
    expect(c.url).toBe(b.wsUrl);
    for (const t = Date.now(); !got.has("during-hang") && Date.now() - t < 10_000; ) await Bun.sleep(50);
    expect(got.has("during-hang")).toBe(true);
  } finally {
    a.proc.kill("SIGCONT");
  }
}, 120_000);

test("an instance that is down, or accepts and never welcomes, is passed over for the next in the list", async () => {
  const gw = await gateway({ KAFKA_BROKERS: "" });
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const dead = `ws://127.0.0.1:${probe.port}/ws`;
  probe.stop(true);
  // Upgrades, then says nothing: only the client's connect timeout gets it off this one.
  const silent = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 400 })), websocket: { message() {} } });
  try {
    const states: string[] = [];
    const c = await connect({ url: [dead, `ws://127.0.0.1:${silent.port}/ws`], urls: [gw.wsUrl], connectTimeoutMs: 500, reconnect: { minMs: 20, maxMs: 100 }, onState: (s, d) => void states.push(`${s} ${d?.url}`) });
    clients.push(c);
    expect(c.url).toBe(gw.wsUrl);
    expect(states).toEqual([`reconnecting ${dead}`, `reconnecting ws://127.0.0.1:${silent.port}/ws`, `open ${gw.wsUrl}`]);
    expect(await c.publish({ type: "reached" }, { topic: "failover-list" })).toMatchObject({ offset: expect.any(Number) });
  } finally {
    silent.stop(true);
  }
}, 60_000);
