import { connect as tcp, type Socket } from "node:net";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { rssMiB } from "../support/proc";
import { underControl } from "../ingest/control";
import { RawWsClient, UPGRADE_REQUEST, textFrame } from "../support/raw-ws";
import { GatewayClient } from "../support/ws-client";
import { kafkaBrokers } from "../support/kafka";

/**
 * Found by the hostile tester: each bound on what a subscription may hold queued held on its own
 * (1 MiB per subscription, 100 subscriptions per connection), and nothing bounded their sum: 20
 * connections that never read, with 100 subscriptions each, took the gateway from 62 MB to 3.4 GB.
 * Now a connection's subscriptions together (SUBSCRIBER_CONNECTION_BUFFER_BYTES, 16 MiB) and the
 * instance's (SUBSCRIBER_TOTAL_BUFFER_BYTES) are bounded too, and past them the subscription that is
 * behind applies its policy.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0" });
}, 60_000);
afterAll(() => gw.stop(), 60_000);

/**
 * A connection that says hello, subscribes 100 times to `topic` (each its own filter, so that no two
 * share an encoding) and then never reads again.
 */
async function nonReader(topic: string, settleMs: number, localAddress?: string): Promise<Socket> {
  const s = tcp({ port: gw.port, host: "127.0.0.1", ...(localAddress ? { localAddress } : {}) });
  s.write(UPGRADE_REQUEST);
  s.write(textFrame(JSON.stringify({ t: 1, v: 1 })));
  for (let i = 0; i < 100; i++) s.write(textFrame(JSON.stringify({ t: 12, cid: i + 1, sub: `s${i}`, topic, filter: { where: `data.n >= ${-i - 1}` } })));
  await Bun.sleep(settleMs);
  s.pause();
  return s;
}

/** Every subscription's row of the delivery-health view: what it holds queued, whose it is, how far behind. */
async function deliveryRows(): Promise<Array<{ queuedBytes: number; peer: string; lag: number | null }>> {
  const d = (await (await fetch(`${gw.url}/api/v1/admin/delivery?limit=2000`)).json()) as { subscriptions: Array<{ queuedBytes: number; peer: string; lag: number | null }> };
  return d.subscriptions;
}

const queuedIn = (rows: Array<{ queuedBytes: number }>) => rows.reduce((sum, r) => sum + r.queuedBytes, 0);

test("connections that subscribe 100 times and never read hold at most their connection's bound, and others are served", async () => {
  const topic = `non-readers-${Date.now()}`;
  const sockets: Socket[] = [];
  const before = rssMiB(gw.proc.pid);
  await underControl(gw, "4 connections x 100 subscriptions that never read", async () => {
    for (let c = 0; c < 4; c++) sockets.push(await nonReader(topic, 100));
    await Bun.sleep(500);
    expect((await gw.health()).subscriptions.subscriptions).toBe(400);
    // 1.5 MB of events: every subscription is sent more than its own 1 MiB.
    const p = await GatewayClient.connect(gw.wsUrl);
    const pad = "z".repeat(1000);
    for (let b = 0; b < 15; b++) expect((await p.publishBatch(Array.from({ length: 100 }, (_, i) => ({ type: "b", data: { n: b * 100 + i, pad } })), topic)).t).toBe(22);
    p.close();
    // Measured once every subscription has been dealt all of it (deliveries are spread over turns,
    // so the acks come before that), and a second more.
    for (let n = 0; n < 100; n++) {
      const rows = await deliveryRows();
      if (rows.length === 400 && rows.every((r) => r.lag === 0)) break;
      await Bun.sleep(100);
    }
  });
  // What stays held, not the garbage of the frames dropped meanwhile (when the collector runs varied
  // the figure from 90 to 400 MiB, before and after the same change): the least over 4 s.
  let least = Number.POSITIVE_INFINITY;
  for (let n = 0; n < 20; n++, await Bun.sleep(200)) least = Math.min(least, rssMiB(gw.proc.pid));
  const grew = least - before;
  console.log(`400 subscriptions that never read, 1.5 MB published to each: RSS grew ${grew.toFixed(0)} MiB`);
  // 4 x 16 MiB queued at most (before: 400 x 1 MiB), plus the heap's slack.
  expect(grew).toBeLessThan(200);
  for (const s of sockets) s.destroy();
}, 120_000);

test("a connection that never reads holds at most its connection's bound when events are large, though each subscription keeps only one frame (outside tester)", async () => {
  // 16 KB events at a few hundred a second: each read batch makes one frame of up to about 1 MiB per
  // subscription, and each subscription kept its newest frame whatever its connection held: 100 of
  // them held 100 MiB against the 16 MiB bound.
  const topic = `non-readers-large-${Date.now()}`;
  const s = await nonReader(topic, 300);
  const queued = async () => queuedIn(await deliveryRows());
  let most = 0;
  await underControl(gw, "100 subscriptions of 16 KB events that never read", async () => {
    const p = await GatewayClient.connect(gw.wsUrl);
    const pad = "z".repeat(16_000);
    for (let b = 0; b < 20; b++) {
      expect((await p.publishBatch(Array.from({ length: 60 }, (_, i) => ({ type: "b", data: { n: b * 60 + i, pad } })), topic)).t).toBe(22);
      await Bun.sleep(50);
      most = Math.max(most, await queued());
    }
    p.close();
    await Bun.sleep(500);
    most = Math.max(most, await queued());
  });
  console.log(`100 subscriptions of one connection that never reads, 19 MB published: at most ${(most / 2 ** 20).toFixed(1)} MiB queued`);
  // The bound, and one frame that went over it (at most about 1 MiB).
  expect(most).toBeLessThan(18 * 2 ** 20);
  s.destroy();
}, 120_000);

test("one client address's connections that never read hold at most the address's bound together, below the instance's", async () => {
  // Eight connections of one address, each within its own 16 MiB, held 128 MiB of the instance's
  // 256: two such addresses left nothing for the subscribers of every other, whose subscriptions
  // were then dropped as soon as they were a frame behind.
  const topic = `non-readers-address-${Date.now()}`;
  const address = "127.0.0.5";
  const sockets: Socket[] = [];
  for (let c = 0; c < 8; c++) sockets.push(await nonReader(topic, 100, address));
  await Bun.sleep(500);
  const queuedBy = async (peer: string) => {
    const rows = await deliveryRows();
    return { bytes: queuedIn(rows.filter((r) => r.peer === peer)), caughtUp: rows.length >= 800 && rows.every((r) => r.lag === 0) };
  };
  let most = 0;
  await underControl(gw, "8 connections x 100 subscriptions of one address that never read", async () => {
    const p = await GatewayClient.connect(gw.wsUrl);
    const pad = "z".repeat(1000);
    for (let b = 0; b < 15; b++) {
      expect((await p.publishBatch(Array.from({ length: 100 }, (_, i) => ({ type: "b", data: { n: b * 100 + i, pad } })), topic)).t).toBe(22);
      most = Math.max(most, (await queuedBy(address)).bytes);
    }
    p.close();
    for (let n = 0; n < 100; n++) {
      const q = await queuedBy(address);
      most = Math.max(most, q.bytes);
      if (q.caughtUp) break;
      await Bun.sleep(100);
    }
  });
  console.log(`800 subscriptions of one address that never read, 1.5 MB published to each: at most ${(most / 2 ** 20).toFixed(1)} MiB queued for the address`);
  // SUBSCRIBER_ADDRESS_BUFFER_BYTES (64 MiB), and the frames that crossed it.
  expect(most).toBeLessThan(72 * 2 ** 20);
  for (const s of sockets) s.destroy();
}, 180_000);

test("past the instance's bound, the subscriptions holding more than their share give way: subscribers that read lose nothing and are not closed", async () => {
  // Found by an outside chaos tester: subscriptions that never read, each within every bound of its
  // own, kept the instance's bound passed, and every subscription that then queued a second frame
  // paid: subscribers reading at 600 events/s lost 770-1,350 events each in 25 s, or (policy
  // disconnect) were closed 4001 again and again. Here, 40 of 1 MiB against 32 MiB, on Kafka (whose
  // reads come several to a turn, so a reader queues two frames between flushes).
  const small = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", CONNECTION_RATE_PER_IP: "0", RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0", SUBSCRIBER_TOTAL_BUFFER_BYTES: String(32 * 2 ** 20) });
  const sockets: Socket[] = [];
  try {
    const topic = `non-readers-share-${Date.now()}`;
    const p = await GatewayClient.connect(small.wsUrl);
    expect((await p.publishBatch([{ type: "b", data: { n: -1 } }], topic)).t).toBe(22); // the topic exists
    for (let c = 0; c < 40; c++) {
      const s = tcp({ port: small.port, host: "127.0.0.1" });
      s.write(UPGRADE_REQUEST);
      s.write(textFrame(JSON.stringify({ t: 1, v: 1 })));
      s.write(textFrame(JSON.stringify({ t: 12, cid: 1, sub: "s", topic, filter: { where: `data.n >= ${-c - 2}` } })));
      sockets.push(s);
    }
    const deadline = Date.now() + 30_000;
    while ((await small.health()).subscriptions.subscriptions < 40 && Date.now() < deadline) await Bun.sleep(100);
    for (const s of sockets) s.pause();
    const readers = await Promise.all(
      ["drop-oldest", "disconnect"].map(async (policy) => {
        const c = await RawWsClient.connect(small.port);
        c.send({ t: 1, v: 1, cid: 1 });
        await c.waitFor((f) => f.t === 2);
        c.send({ t: 12, cid: 2, sub: "r", topic, policy });
        await c.waitFor((f) => f.t === 23, 30_000);
        return { policy, c };
      }),
    );
    const pad = "z".repeat(1000);
    // A control publishing throughout: every one of its requests answered.
    await underControl(small, "40 non-readers past the instance's bound, 2 readers", async () => {
      const acks: Array<Promise<unknown>> = [];
      for (let b = 0; b < 400; b++) {
        acks.push(p.publishBatch(Array.from({ length: 25 }, (_, i) => ({ type: "b", data: { n: b * 25 + i, pad } })), topic));
        // About 2.5 MB/s: the readers are this process's, which parses every frame as it sends. At
        // 5 MB/s (5 ms), a fresh-clone CI's shards and, now and then, a quiet box left a reader more
        // than its own 1 MiB behind, and it was cut for that, as a reader that slow would be (old
        // code 3 of 8 runs, this 2 of 11). At this pace the rule before the fix still fails 3 of 3;
        // at 15 ms it passed.
        await Bun.sleep(10);
      }
      await Promise.all(acks);
    });
    p.close();
    const got = (c: RawWsClient) => new Set(c.frames.flatMap((f) => (f.t === 25 ? f.events : f.t === 24 ? [f] : [])).map((e: Record<string, any>) => e.event.data.n)).size;
    const until = Date.now() + 20_000;
    while (readers.some((r) => got(r.c) < 10_000 && r.c.closeCode === null) && Date.now() < until) await Bun.sleep(50);
    const held = queuedIn(((await (await fetch(`${small.url}/api/v1/admin/delivery?limit=2000`)).json()) as { subscriptions: Array<{ queuedBytes: number }> }).subscriptions);
    console.log(`40 subscriptions that never read against a 32 MiB bound: ${(held / 2 ** 20).toFixed(1)} MiB queued`);
    expect(readers.map((r) => ({ policy: r.policy, got: got(r.c), lagged: r.c.frames.filter((f) => f.t === 27).length, close: r.c.closeCode }))).toEqual([
      { policy: "drop-oldest", got: 10_000, lagged: 0, close: null },
      { policy: "disconnect", got: 10_000, lagged: 0, close: null },
    ]);
    // The bound still holds (and a frame that crossed it).
    expect(held).toBeLessThan(34 * 2 ** 20);
    for (const r of readers) r.c.destroy();
  } finally {
    for (const s of sockets) s.destroy();
    await small.stop();
  }
}, 120_000);
