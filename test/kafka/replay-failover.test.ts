import { afterEach, expect, test } from "bun:test";
import { Packr, Unpackr } from "msgpackr";
import { type DeliveredEvent, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { health, within } from "./harm";

let gw: GatewayProcess | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
}, 60_000);

async function seeded(g: GatewayProcess, n: number): Promise<string> {
  const topic = freshTopic("replay-failover");
  await ensureTopic(await kafkaBrokers(), topic, 3);
  const pub = await connect({ url: g.wsUrl });
  for (let i = 0; i < n; i += 1000) {
    const settled = await pub.publishBatch(Array.from({ length: 1000 }, (_, j) => ({ type: "seed", key: `k${(i + j) % 97}`, data: { n: i + j } })), { topic });
    expect(settled.every((r) => r.status === "fulfilled")).toBe(true);
  }
  pub.close();
  return topic;
}

async function workerReplaced(g: GatewayProcess, pid: number): Promise<void> {
  expect(await within(30_000, async () => {
    const w = (await health(g.url)).log.workers[0];
    return w.pid !== pid && w.state === "ready";
  })).toBeGreaterThanOrEqual(0);
}

// One worker, so the replay's reader is on the victim. Batches the old reader had handed over and
// the feed had not yet delivered (it paces them at REPLAY_RATE_LIMIT) are read again by the new one.
test("a replay whose reader's worker is killed goes on from where it was: every record once, none repeated, none missing", async () => {
  gw = await startGateway({ KAFKA_WORKERS: "1", KAFKA_BROKERS: await kafkaBrokers(), REPLAY_RATE_LIMIT: "4000", RATE_LIMIT_EVENTS: "0" });
  const g = gw;
  const total = 12_000;
  const topic = await seeded(g, total);
  const c = await connect({ url: g.wsUrl });
  const sub = await c.subscribe(topic, { start: "earliest", policy: "disconnect" });
  const seen: DeliveredEvent[] = [];
  sub.onEvent((e) => void seen.push(e));
  expect(await within(20_000, () => seen.length >= 2500)).toBeGreaterThanOrEqual(0);
  const victim = (await health(g.url)).log.workers[0];
  process.kill(victim.pid, "SIGKILL");
  await workerReplaced(g, victim.pid);
  await within(60_000, () => seen.length >= total);
  await Bun.sleep(1000);
  const positions = seen.map((e) => `${e.partition}/${e.offset}`);
  const distinct = new Set(positions);
  console.log(`replay across a worker kill: ${seen.length} delivered, ${distinct.size} distinct, of ${total}`);
  expect(distinct.size).toBe(total);
  expect(seen.length).toBe(total);
  c.close();
}, 120_000);

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

// A replay subscribe answered `subscribed` whose reader then fails to open (its worker lost before the
// reader was ready) must not get a second reply, and must not be left registered and silent.
test("replay subscribes caught by worker kills get exactly one reply each, and every one accepted delivers", async () => {
  gw = await startGateway({ KAFKA_WORKERS: "1", KAFKA_BROKERS: await kafkaBrokers(), RATE_LIMIT_EVENTS: "0" });
  const g = gw;
  const topic = await seeded(g, 1000);
  const ws = new WebSocket(g.wsUrl);
  ws.binaryType = "arraybuffer";
  const frames: Array<Record<string, any>> = [];
  ws.onmessage = (m) => void frames.push(unpackr.unpack(new Uint8Array(m.data as ArrayBuffer)));
  await new Promise((r) => (ws.onopen = r));
  ws.send(packr.pack({ t: 1, v: 1 }));
  let cid = 1;
  const subs: Array<{ cid: number; sub: string }> = [];
  const rounds = 10;
  for (let round = 0; round < rounds; round++) {
    const victim = (await health(g.url)).log.workers[0];
    // A dozen subscribes, and the worker killed in their midst.
    for (let i = 0; i < 12; i++) {
      const s = { cid: cid++, sub: `r${round}-${i}` };
      subs.push(s);
      ws.send(packr.pack({ t: 12, ...s, topic, start: "earliest" }));
      if (i === 8) process.kill(victim.pid, "SIGKILL");
      // Spaced wider each round, so that some kills land between a subscribe's answer and its reader.
      await Bun.sleep(5 * round);
    }
    await workerReplaced(g, victim.pid);
  }
  await Bun.sleep(2000);
  const repliesOf = (c: number) => frames.filter((f) => f.cid === c);
  for (const s of subs) expect([s.sub, repliesOf(s.cid).length]).toEqual([s.sub, 1]);
  const accepted = subs.filter((s) => repliesOf(s.cid)[0]!.t === 23);
  console.log(`${subs.length} replay subscribes across ${rounds} worker kills: ${accepted.length} accepted, ${subs.length - accepted.length} refused`);
  // Every accepted one delivers all 1,000 records, or has said it ended.
  const delivered = (sub: string) => new Set(frames.filter((f) => f.sub === sub && (f.t === 24 || f.t === 25)).flatMap((f) => (f.t === 24 ? [f] : f.events)).map((e: any) => `${e.partition}/${e.offset}`)).size;
  await within(30_000, () => accepted.every((s) => delivered(s.sub) >= 1000 || frames.some((f) => f.t === 28 && f.sub === s.sub)));
  for (const s of accepted) expect([s.sub, delivered(s.sub) >= 1000 || frames.some((f) => f.t === 28 && f.sub === s.sub)]).toEqual([s.sub, true]);
  ws.close();
}, 240_000);
