import { afterAll, beforeAll, expect, test } from "bun:test";
import { type DeliveredEvent, type GatewayClient, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";

/**
 * A subscription that starts in the past reads through a reader of its own until it has caught up;
 * then it is moved onto its topic's shared live feed, at a moment when both have handed over exactly
 * the same offsets. Before, it kept its own reader for good: after a restart every resumed
 * subscription held a Kafka consumer, and past MAX_FEEDS the next resumes were refused.
 */
let kafka: GatewayProcess;
let embedded: GatewayProcess;
beforeAll(async () => {
  [kafka, embedded] = await Promise.all([
    startGateway({ KAFKA_BROKERS: await kafkaBrokers(), MAX_REPLAYS_PER_ADDRESS: "64", REPLAY_START_RATE: "0" }),
    startGateway({ KAFKA_BROKERS: "", MAX_REPLAYS_PER_ADDRESS: "64", REPLAY_START_RATE: "0" }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([kafka?.stop(), embedded?.stop()]);
});

const health = async (gw: GatewayProcess) => (await (await fetch(`${gw.url}/health`)).json()) as { subscriptions: { liveFeeds: number; replayFeeds: number } };
const handedOver = async (gw: GatewayProcess) => Number(/^gateway_replays_handed_over_total (\d+)/m.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1] ?? 0);

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

type Seen = { events: DeliveredEvent[]; live: number; gaps: number; token: () => string | undefined };

async function follow(client: GatewayClient, topic: string, start: "earliest" | { token: string }, filter?: string): Promise<Seen> {
  const sub = await client.subscribe(topic, { start, ...(filter ? { filter: { types: [filter] } } : {}) });
  const seen: Seen = { events: [], live: 0, gaps: 0, token: () => sub.token };
  sub.onEvent((e) => seen.events.push(e));
  sub.onNotice((n) => {
    if (n.kind === "live") seen.live++;
    if (n.kind === "gap") seen.gaps++;
  });
  return seen;
}

/** Each partition's offsets as received, in order. */
function byPartition(events: DeliveredEvent[]): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const e of events) {
    const list = m.get(e.partition);
    if (list) list.push(e.offset);
    else m.set(e.partition, [e.offset]);
  }
  return m;
}

for (const [name, gateway] of [["Kafka", () => kafka], ["the embedded log", () => embedded]] as const) {
test(`${name}: replays that catch up while events keep coming move onto the topic's live feed, each with every offset once and in order (a filtered one too), their own readers closed`, async () => {
  const gw = gateway();
  const topic = freshTopic("hand-over");
  if (gw === kafka) await ensureTopic(await kafkaBrokers(), topic, 3);
  const pub = await connect({ url: gw.wsUrl });
  const acked: Array<{ partition: number; offset: number }> = [];
  const publish = async (n: number, from: number) => {
    const settled = await pub.publishBatch(Array.from({ length: n }, (_, i) => ({ type: (from + i) % 3 === 0 ? "third" : "t", key: `k${(from + i) % 31}`, data: { n: from + i } })), { topic });
    for (const r of settled) {
      expect(r.status).toBe("fulfilled");
      if (r.status === "fulfilled") acked.push({ partition: r.value.partition, offset: r.value.offset });
    }
  };
  await publish(600, 0);
  // A publisher that keeps going throughout, in small batches, so the move happens while events arrive.
  let publishing = true;
  let sent = 600;
  const background = (async () => {
    while (publishing) {
      await publish(5, sent);
      sent += 5;
      await Bun.sleep(40);
    }
  })();
  const subscriber = await connect({ url: gw.wsUrl });
  const movedBefore = await handedOver(gw);
  const subs = await Promise.all(Array.from({ length: 12 }, () => follow(subscriber, topic, "earliest")));
  const filtered = await follow(subscriber, topic, "earliest", "third");
  try {
    await until("every replay moved onto the live feed", async () => (await handedOver(gw)) - movedBefore >= 13 && (await health(gw)).subscriptions.replayFeeds === 0, 90_000);
    expect((await health(gw)).subscriptions.liveFeeds).toBe(1);
    await Bun.sleep(1000); // on the live feed, with events arriving
  } finally {
    publishing = false;
    await background;
  }
  const expected = byPartition(acked as DeliveredEvent[]);
  for (const offsets of expected.values()) offsets.sort((a, b) => a - b);
  const total = acked.length;
  await until("every event at every subscription", () => subs.every((s) => s.events.length >= total), 30_000).catch(() => {});
  for (const s of subs) {
    expect(s.gaps).toBe(0);
    expect(s.live).toBe(1);
    const got = byPartition(s.events);
    for (const [p, offsets] of expected) expect({ p, offsets: got.get(p) }).toEqual({ p, offsets });
  }
  // The filtered one: exactly the events of its type, each once, in order.
  const thirds = subs[0]!.events.filter((e) => e.event.type === "third");
  await until("every event of the filtered subscription's type", () => filtered.events.length >= thirds.length, 30_000).catch(() => {});
  expect(filtered.gaps).toBe(0);
  const wanted = byPartition(thirds);
  const gotThirds = byPartition(filtered.events);
  for (const [p, offsets] of wanted) expect({ p, offsets: gotThirds.get(p) }).toEqual({ p, offsets });
  // The token after the move resumes exactly where the subscription stood.
  const last = subs[0]!;
  const token = last.token()!;
  await subscriber.close();
  const before = acked.length;
  await publish(30, sent);
  const again = await connect({ url: gw.wsUrl });
  const resumed = await follow(again, topic, { token });
  await until("the 30 events published since", () => resumed.events.length >= 30, 30_000).catch(() => {});
  expect(resumed.events.map((e) => `${e.partition}/${e.offset}`).sort()).toEqual(acked.slice(before).map((a) => `${a.partition}/${a.offset}`).sort());
  await again.close();
  await pub.close();
}, 180_000);
}

test("Kafka: a crowd resuming from tokens is not refused once caught up: past MAX_FEEDS they share one reader", async () => {
  // MAX_FEEDS of 6: before, the seventh resume was refused for as long as the first six stayed.
  const small = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), MAX_FEEDS: "6", MAX_REPLAYS_PER_ADDRESS: "64", REPLAY_START_RATE: "0" });
  try {
    const topic = freshTopic("hand-over-crowd");
    await ensureTopic((await kafkaBrokers()), topic, 2);
    const pub = await connect({ url: small.wsUrl });
    await pub.publishBatch(Array.from({ length: 40 }, (_, i) => ({ type: "t", key: `k${i}`, data: { i } })), { topic });
    const first = await connect({ url: small.wsUrl });
    const s = await follow(first, topic, "earliest");
    await until("the first subscription's 40 events", () => s.events.length >= 40);
    const token = s.token()!;
    await first.close();
    const crowd = await connect({ url: small.wsUrl });
    const resumed: Seen[] = [];
    for (let i = 0; i < 20; i++) {
      // Each a replay of its own until it is moved: at most a few at once under MAX_FEEDS.
      for (let tries = 0; ; tries++) {
        try {
          resumed.push(await follow(crowd, topic, { token }));
          break;
        } catch (e) {
          if (tries > 100 || (e as { code?: string }).code !== "TOO_MANY_SUBSCRIPTIONS") throw e;
          await Bun.sleep(200);
        }
      }
    }
    await pub.publishBatch(Array.from({ length: 10 }, (_, i) => ({ type: "t", key: `n${i}`, data: { i } })), { topic });
    await until("the 10 new events at all 20", () => resumed.every((r) => r.events.length >= 10), 30_000);
    for (const r of resumed) expect(r.events.length).toBe(10);
    await crowd.close();
    await pub.close();
  } finally {
    await small.stop();
  }
}, 180_000);
