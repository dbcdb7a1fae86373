import { afterAll, describe, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { type DeliveredEvent, type GatewayClient, connect } from "../../src/client";

/**
 * Replay is checked against the log itself: the acks say where every event landed, so the expected
 * stream of each partition is known exactly. A replay must hand over every partition in offset order
 * with nothing missing, send `live` exactly once between the last historical event and the first
 * live one, and a resume from any frame's token must yield exactly what followed that frame.
 */
const HISTORY = 50_000;
// The test client shares its two cores with the gateway: give subscribers room, so that the slow-consumer
// policy (tested on its own in slow.test.ts) never drops what this test checks.
const ROOMY = { SUBSCRIBER_BUFFER_BYTES: String(256 * 1024 * 1024) };
const LIVE = 200;

type Pos = { partition: number; offset: number };
const key = (p: Pos) => `${p.partition}/${p.offset}`;

async function publish(pub: GatewayClient, topic: string, from: number, count: number): Promise<Pos[]> {
  const out: Pos[] = [];
  for (let i = from; i < from + count; i += 1000) {
    const n = Math.min(1000, from + count - i);
    const settled = await pub.publishBatch(Array.from({ length: n }, (_, j) => ({ id: `o-${i + j}`, type: "order.test", key: `k${(i + j) % 97}`, data: { n: i + j } })), { topic });
    for (const r of settled) {
      expect(r.status).toBe("fulfilled");
      if (r.status === "fulfilled") out.push({ partition: r.value.partition, offset: r.value.offset });
    }
  }
  return out;
}

/** What a subscription handed over, in arrival order: each event with the subscription's token as it was handed over, and the notices. */
type Item = { kind: "event"; e: DeliveredEvent; token: string } | { kind: "live" | "lagged" | "gap" | "ended" };

/** Subscribes and records every event and notice of the subscription, in arrival order. */
async function record(url: string, topic: string, start: "earliest" | { token: string }): Promise<{ frames: Item[]; client: GatewayClient }> {
  const client = await connect({ url });
  const frames: Item[] = [];
  const sub = await client.subscribe(topic, { start });
  sub.onEvent((e) => frames.push({ kind: "event", e, token: sub.token! }));
  sub.onNotice((n) => frames.push({ kind: n.kind }));
  return { frames, client };
}

const eventsOf = (f: Item): Array<Pos & { event: any }> => (f.kind === "event" ? [f.e] : []);
const isLive = (f: Item) => f.kind === "live";
const isLagged = (f: Item) => f.kind === "lagged";

async function until(cond: () => boolean, what: string | (() => string), timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "function" ? (what as () => string)() : what}`);
    await Bun.sleep(20);
  }
}

function perPartition(list: Pos[]): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const p of list) {
    let a = m.get(p.partition);
    if (!a) m.set(p.partition, (a = []));
    a.push(p.offset);
  }
  return m;
}

async function checkReplay(gw: GatewayProcess, topic: string): Promise<void> {
  const pub = await connect({ url: gw.wsUrl });
  const history = await publish(pub, topic, 0, HISTORY);

  const { frames, client } = await record(gw.wsUrl, topic, "earliest");
  const total = () => frames.reduce((n, f) => n + eventsOf(f).length, 0);
  await until(() => frames.some(isLive), "live");
  const live = await publish(pub, topic, HISTORY, LIVE);
  await until(() => total() >= HISTORY + LIVE, () => `live events (have ${total()}: ${frames.map((f) => f.kind).join(",").slice(-200)})`);
  await Bun.sleep(300);

  expect(frames.filter(isLagged)).toEqual([]); // nothing dropped: this test reads everything
  // Exactly one `live`, after every historical event and before every live one.
  const liveAt = frames.findIndex(isLive);
  expect(frames.filter(isLive).length).toBe(1);
  const before = frames.slice(0, liveAt).flatMap(eventsOf);
  const after = frames.slice(liveAt + 1).flatMap(eventsOf);
  expect(before.length).toBe(HISTORY);
  expect(new Set(before.map(key))).toEqual(new Set(history.map(key)));
  expect(new Set(after.map(key))).toEqual(new Set(live.map(key)));

  // Each partition in offset order, with nothing missing: exactly the log's own order.
  const all = [...before, ...after];
  const expected = perPartition([...history, ...live].sort((a, b) => a.offset - b.offset));
  expect(perPartition(all)).toEqual(expected);

  // Resume from the token of every 10th event frame: exactly what came after that frame. The
  // subscription's token moves to a frame's own as the frame's last event is handed over, so the
  // last event of a frame is the one whose token differs from the event before it.
  const eventFrames: Array<{ f: Item & { kind: "event" }; i: number }> = [];
  let previous: string | undefined;
  frames.forEach((f, i) => {
    if (f.kind !== "event") return;
    if (previous !== undefined && f.token !== previous) eventFrames.push({ f, i });
    previous = f.token;
  });
  let resumes = 0;
  for (let k = 0; k < eventFrames.length - 1; k += 10) {
    const { f, i } = eventFrames[k]!;
    const rest = frames.slice(i + 1).flatMap(eventsOf);
    const resumed = await record(gw.wsUrl, topic, { token: f.token });
    await until(() => resumed.frames.some(isLive), `live after resuming from frame ${k}`);
    const got = resumed.frames.flatMap(eventsOf);
    expect(resumed.frames.filter(isLagged)).toEqual([]);
    expect(resumed.frames.filter(isLive).length).toBe(1);
    expect(got.length).toBe(rest.length);
    expect(perPartition(got)).toEqual(perPartition(rest));
    resumed.client.close();
    resumes++;
  }
  expect(resumes).toBeGreaterThanOrEqual(5);
  client.close();
  pub.close();
}

describe("replay of 50,000 events is in log order, with one live frame in place and exact resumes", () => {
  const gateways: GatewayProcess[] = [];
  afterAll(async () => {
    for (const g of gateways) await g.stop();
  }, 60_000);

  test("embedded log", async () => {
    const gw = await startGateway({ EMBEDDED_PARTITIONS: "3", ...ROOMY });
    gateways.push(gw);
    await checkReplay(gw, freshTopic("order-mem"));
  }, 180_000);

  test("Kafka", async () => {
    const brokers = await kafkaBrokers();
    const topic = freshTopic("order-kafka");
    await ensureTopic(brokers, topic, 3);
    const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2", ...ROOMY });
    gateways.push(gw);
    await checkReplay(gw, topic);
  }, 240_000);
});
