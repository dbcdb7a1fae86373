import { afterEach, expect, test } from "bun:test";
import * as net from "node:net";
import { connect } from "../../src/client";
import { underControl } from "../ingest/control";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { RawWsClient } from "../support/raw-ws";

/**
 * Subscribing costs the gateway more than a frame: a feed (a log reader) per new topic or replay, an
 * audit line, watermark questions. Two bounds keep one client from taking that from the others:
 * - MAX_FEEDS_PER_ADDRESS: the feeds one client address's subscriptions hold, over all its
 *   connections. Before, ten connections of one address subscribing to made-up topics took every
 *   feed of the instance (MAX_FEEDS), and every other client's subscribe to a new topic was refused.
 * - SUBSCRIBE_RATE_LIMIT: subscribes per second per connection. Before, refusals of subscribes never
 *   closed a connection, so a loop of them cost the gateway its work (and an audit line) forever.
 */
let gw: GatewayProcess | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
}, 60_000);

/** The status of a GET /api/v1/stream made from `localAddress`. */
function sseStatus(port: number, localAddress: string, topic: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: "127.0.0.1", localAddress });
    sock.on("error", reject);
    sock.on("connect", () => sock.write(`GET /api/v1/stream?topic=${topic} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    sock.once("data", (d: Buffer) => {
      resolve(Number(d.toString().split(" ")[1]));
      sock.destroy();
    });
  });
}

/** The reply to each cid 1..n (the last one per cid, and how many came for it). */
async function repliesByCid(c: RawWsClient, n: number, timeoutMs = 30_000): Promise<Map<number, { frame: Record<string, any>; count: number }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const byCid = new Map<number, { frame: Record<string, any>; count: number }>();
    for (const f of c.frames) if (typeof f.cid === "number" && f.cid >= 1) byCid.set(f.cid, { frame: f, count: (byCid.get(f.cid)?.count ?? 0) + 1 });
    if (byCid.size >= n || Date.now() > deadline || c.closeCode !== null) return byCid;
    await Bun.sleep(20);
  }
}

test("one client address cannot take every feed: past MAX_FEEDS_PER_ADDRESS its subscribes that need a new feed are refused, and other addresses still subscribe", async () => {
  gw = await startGateway({ MAX_FEEDS: "200", MAX_FEEDS_PER_ADDRESS: "50" });
  const g = gw;
  await underControl(g, "five connections of one address subscribing to 500 made-up topics", async () => {
    const attackers = await Promise.all(Array.from({ length: 5 }, () => RawWsClient.connect(g.port, "/ws", "", "127.0.0.2")));
    attackers.forEach((a, c) => {
      a.send({ t: 1, v: 1 });
      for (let i = 0; i < 100; i++) a.send({ t: 12, cid: i + 1, sub: `s${i}`, topic: `made-up-${c}-${i}` });
    });
    let accepted = 0;
    const refusals = new Set<string>();
    for (const a of attackers) {
      const replies = await repliesByCid(a, 100);
      expect(replies.size).toBe(100);
      for (const { frame, count } of replies.values()) {
        expect(count).toBe(1);
        if (frame.t === 23) accepted++;
        else refusals.add(String(frame.code));
      }
    }
    expect(accepted).toBe(50);
    expect([...refusals]).toEqual(["TOO_MANY_SUBSCRIPTIONS"]);

    // A topic the address reads already costs it no new feed: still accepted at its bound.
    const first = attackers.findIndex((a) => a.frames.some((f) => f.t === 23));
    const held = attackers[first]!.frames.find((f) => f.t === 23)!.topics[0];
    attackers[(first + 1) % 5]!.send({ t: 12, cid: 1000, sub: "again", topic: held });
    expect((await attackers[(first + 1) % 5]!.waitFor((f) => f.cid === 1000)).t).toBe(23);

    // Another address: its own subscribes to new topics all go through.
    const other = await connect({ url: g.wsUrl });
    for (let i = 0; i < 20; i++) await other.subscribe(`other-${i}`);
    other.close();
    for (const a of attackers) a.destroy();
  });
}, 120_000);

test("a connection sending subscribes in a loop gets RATE_LIMITED past SUBSCRIBE_RATE_LIMIT and is closed 4429; each subscribe before the close is answered once", async () => {
  gw = await startGateway({ SUBSCRIBE_RATE_LIMIT: "50" });
  const g = gw;
  await underControl(g, "a connection subscribing in a loop", async () => {
    const a = await RawWsClient.connect(g.port);
    a.send({ t: 1, v: 1 });
    for (let i = 0; i < 3000; i++) a.send({ t: 12, cid: i + 1, sub: `s${i}`, topic: "looped" });
    await Promise.race([a.ended, Bun.sleep(30_000)]);
    expect(a.closeCode).toBe(4429);
    const replies = await repliesByCid(a, 3000, 0);
    const codes = new Map<string, number>();
    for (const { frame, count } of replies.values()) {
      expect(count).toBe(1);
      const code = frame.t === 23 ? "subscribed" : String(frame.code);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    console.log(`subscribe loop: ${JSON.stringify(Object.fromEntries(codes))} before the close`);
    expect(codes.get("RATE_LIMITED") ?? 0).toBeGreaterThan(0);
    // The bucket holds MAX_SUBSCRIPTIONS_PER_CONNECTION: a reconnecting client resubscribes them all at once.
    expect(codes.get("subscribed")).toBe(100);
  });
}, 120_000);

test("feeds left idle by an address that subscribed and left do not keep other addresses out: a new subscribe takes their room", async () => {
  gw = await startGateway({ MAX_FEEDS: "50", FEED_IDLE_CLOSE_MS: "60000" });
  const g = gw;
  await underControl(g, "an address subscribing to 50 topics and leaving", async () => {
    const a = await RawWsClient.connect(g.port, "/ws", "", "127.0.0.2");
    a.send({ t: 1, v: 1 });
    for (let i = 0; i < 50; i++) a.send({ t: 12, cid: i + 1, sub: `s${i}`, topic: `left-${i}` });
    const replies = await repliesByCid(a, 50);
    expect([...replies.values()].every((r) => r.frame.t === 23)).toBe(true);
    a.destroy();
    await a.ended;
    await Bun.sleep(200);
    // The 50 feeds wait idle for a resubscribe (a minute here); another address's new topics go through.
    const other = await connect({ url: g.wsUrl });
    for (let i = 0; i < 10; i++) await other.subscribe(`fresh-${i}`);
    // A topic whose feed still waits is picked up again, not reopened.
    await other.subscribe("left-49");
    expect((await g.health()).subscriptions.liveFeeds).toBeLessThanOrEqual(50);
    other.close();
  });
}, 120_000);

test("one address cannot hold every replay slot: past MAX_REPLAYS_PER_ADDRESS its replays are refused, another address's replay goes through", async () => {
  gw = await startGateway({ MAX_REPLAY_SUBSCRIPTIONS: "8", MAX_REPLAYS_PER_ADDRESS: "4", REPLAY_RATE_LIMIT: "10", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });
  const g = gw;
  const pub = await connect({ url: g.wsUrl });
  for (let i = 0; i < 4; i++) await pub.publishBatch(Array.from({ length: 500 }, (_, j) => ({ type: "h", data: { i: i * 500 + j } })), { topic: "history" });
  await underControl(g, "an address opening replays it never reads", async () => {
    const a = await RawWsClient.connect(g.port, "/ws", "", "127.0.0.2");
    a.send({ t: 1, v: 1 });
    for (let i = 0; i < 8; i++) a.send({ t: 12, cid: i + 1, sub: `r${i}`, topic: "history", start: "earliest" });
    const replies = await repliesByCid(a, 8);
    a.pause();
    const codes = [...replies.values()].map((r) => (r.frame.t === 23 ? "subscribed" : String(r.frame.code)));
    expect(codes.filter((c) => c === "subscribed")).toHaveLength(4);
    expect(new Set(codes.filter((c) => c !== "subscribed"))).toEqual(new Set(["TOO_MANY_SUBSCRIPTIONS"]));
    const other = await connect({ url: g.wsUrl });
    const sub = await other.subscribe("history", { start: "earliest" });
    expect(sub.live).toBe(false);
    other.close();
    a.destroy();
  });
  pub.close();
}, 120_000);

test("an address cannot get round the subscribe rate by opening connections: SUBSCRIBE_RATE_LIMIT_PER_ADDRESS bounds them together, over WebSocket and SSE", async () => {
  // 2/s from a bucket of 10: slow enough that the bucket stays empty while the test looks.
  gw = await startGateway({ SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "2" });
  const g = gw;
  await underControl(g, "ten connections of one address subscribing 100 times each", async () => {
    const conns = await Promise.all(Array.from({ length: 10 }, () => RawWsClient.connect(g.port, "/ws", "", "127.0.0.3")));
    conns.forEach((c, n) => {
      c.send({ t: 1, v: 1 });
      for (let i = 0; i < 100; i++) c.send({ t: 12, cid: i + 1, sub: `s${i}`, topic: `rate-${n}-${i % 10}` });
    });
    let subscribed = 0;
    let limited = 0;
    for (const c of conns) {
      for (const { frame } of (await repliesByCid(c, 100)).values()) {
        if (frame.t === 23) subscribed++;
        else if (frame.code === "RATE_LIMITED") limited++;
      }
    }
    console.log(`ten connections of one address: ${subscribed} subscribed, ${limited} RATE_LIMITED`);
    // A bucket of five seconds of 2/s, and a little more while the frames were read: not 100 per connection.
    expect(subscribed).toBeLessThan(20);
    expect(limited).toBeGreaterThan(900);
    for (const c of conns) c.destroy();
    // SSE streams from that address meet the same bucket (two in a row: one token may have come back
    // meanwhile); one from another address does not.
    const t0 = performance.now();
    const sse = [await sseStatus(g.port, "127.0.0.3", "rate-0-0"), await sseStatus(g.port, "127.0.0.3", "rate-0-0")];
    expect(sse).toContain(429);
    // The 429 is answered late, as a refused connection is (CONNECTION_REFUSAL_DELAY_MS, 1 s): a client
    // in a reconnect loop comes back no faster than that (before, 13,700 refusals a second).
    expect(performance.now() - t0).toBeGreaterThan(900);
    expect(await sseStatus(g.port, "127.0.0.4", "rate-0-0")).toBe(200);
  });
}, 120_000);

test("one address holds at most MAX_SUBSCRIPTIONS_PER_ADDRESS subscriptions over all its connections; ending some makes room, and other addresses are not affected", async () => {
  // Before, only connections (1,000 an address) and subscriptions per connection (100) were bounded:
  // one address could hold 100,000 filtered subscriptions (hostile tester).
  gw = await startGateway({ KAFKA_BROKERS: "", MAX_SUBSCRIPTIONS_PER_ADDRESS: "150", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0" });
  const g = gw;
  const [a, b] = await Promise.all([RawWsClient.connect(g.port, "/ws", "", "127.0.0.5"), RawWsClient.connect(g.port, "/ws", "", "127.0.0.5")]);
  for (const c of [a, b]) {
    c.send({ t: 1, v: 1 });
    for (let i = 0; i < 100; i++) c.send({ t: 12, cid: i + 1, sub: `s${i}`, topic: "per-address", filter: { where: `data.n > ${i}` } });
  }
  const outcomes: string[] = [];
  for (const c of [a, b]) for (const { frame } of (await repliesByCid(c, 100)).values()) outcomes.push(frame.t === 23 ? "subscribed" : String(frame.code));
  const heldByA = outcomes.slice(0, 100).filter((o) => o === "subscribed").length;
  expect(outcomes.filter((o) => o === "subscribed")).toHaveLength(150);
  expect(outcomes.filter((o) => o === "TOO_MANY_SUBSCRIPTIONS")).toHaveLength(50);
  // Another address subscribes as usual.
  const other = await RawWsClient.connect(g.port, "/ws", "", "127.0.0.6");
  other.send({ t: 1, v: 1 });
  other.send({ t: 12, cid: 1, sub: "x", topic: "per-address" });
  expect([...(await repliesByCid(other, 1)).values()][0]!.frame.t).toBe(23);
  // The first connection gone, its hundred are the address's to take again.
  const held = () => g.health().then((h) => h.subscriptions.subscriptions);
  const before = await held();
  a.destroy();
  for (const deadline = Date.now() + 10_000; (await held()) > before - heldByA && Date.now() < deadline; ) await Bun.sleep(50);
  // A new connection of the address takes the room (not b: it may hold MAX_SUBSCRIPTIONS_PER_CONNECTION
  // already, depending on which connection's subscribes the gateway read first).
  const c = await RawWsClient.connect(g.port, "/ws", "", "127.0.0.5");
  c.send({ t: 1, v: 1 });
  c.send({ t: 12, cid: 1, sub: "again", topic: "per-address" });
  expect([...(await repliesByCid(c, 1, 10_000)).values()][0]?.frame.t).toBe(23);
  b.destroy();
  c.destroy();
  other.destroy();
}, 60_000);

test("one address's distinct filters on a topic stop at MAX_FILTER_TERMS_PER_ADDRESS: another address's new filter on that topic is taken", async () => {
  // Before, one address's subscriptions with distinct filters took a topic's whole
  // MAX_FILTER_TERMS_PER_TOPIC, and every other client's new filter there was refused until they left.
  gw = await startGateway({ MAX_FILTER_TERMS_PER_TOPIC: "3000", MAX_FILTER_TERMS_PER_ADDRESS: "1000" });
  const g = gw;
  await underControl(g, "one address subscribing 300 distinct filters to one topic", async () => {
    const conns = await Promise.all(Array.from({ length: 3 }, () => RawWsClient.connect(g.port, "/ws", "", "127.0.0.4")));
    // Each filter: one term for itself and 10 patterns, 11 terms.
    conns.forEach((c, n) => {
      c.send({ t: 1, v: 1 });
      for (let i = 0; i < 100; i++) c.send({ t: 12, cid: i + 1, sub: `s${i}`, topic: "terms", filter: { types: Array.from({ length: 10 }, (_, j) => `t${n}-${i}-${j}`) } });
    });
    const codes = new Map<string, number>();
    for (const c of conns) {
      for (const { frame } of (await repliesByCid(c, 100)).values()) {
        const code = frame.t === 23 ? "subscribed" : String(frame.code);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    // 90 of 11 terms fit in 1,000; the one that would pass it and those after are refused.
    expect(Object.fromEntries(codes)).toEqual({ subscribed: 90, TOO_MANY_SUBSCRIPTIONS: 210 });
    // The same filter again costs that address nothing more.
    const again = await RawWsClient.connect(g.port, "/ws", "", "127.0.0.4");
    again.send({ t: 1, v: 1 });
    again.send({ t: 12, cid: 1, sub: "same", topic: "terms", filter: { types: Array.from({ length: 10 }, (_, j) => `t0-0-${j}`) } });
    expect((await repliesByCid(again, 1)).get(1)!.frame.t).toBe(23);
    // Another address: its own filters go through.
    const other = await connect({ url: g.wsUrl });
    for (let i = 0; i < 20; i++) await other.subscribe("terms", { filter: { types: Array.from({ length: 10 }, (_, j) => `other-${i}-${j}`) } });
    other.close();
    for (const c of [...conns, again]) c.destroy();
  });
}, 120_000);
