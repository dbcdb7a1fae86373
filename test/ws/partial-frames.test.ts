import { afterEach, beforeEach, expect, test } from "bun:test";
import { type Socket, connect as tcp } from "node:net";
import { connect } from "../../src/client";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { until } from "../support/until";

/**
 * Bun assembles a frame before the gateway sees any of it, up to 4 x MAX_FRAME_BYTES a connection.
 * Found here: 100 connections of one address that said hello and sent 4 MB of a frame each, and no
 * more, held 390 MB in under 4 s, and would have for as long as they trickled a byte now and then
 * (1,000 connections an address: 4 GB). No bound of the gateway's saw it. Over MEMORY_LIMIT_BYTES
 * it now refuses new connections, says 503 on /health/ready, and closes the quiet connections of
 * the address holding the most.
 */
// test-plan: alone: 100 connections of 4 MB each load the machine.
// How many attackers get in before the guard's next reading (each 250 ms) sees the limit depends on
// the machine's pace and on what else the gateway holds: CI once let exactly 60 in where more than 60
// were expected. So the tests ask what the claims need: an attack of some size took the gateway over
// its limit (503), and its connections, not the others', were closed.
// A gateway of its own for each test: what one attack leaves resident (however briefly) must not
// count against the next test's limit, and a gateway that ends by itself is reported with its last
// lines by stop().

/** At least this many 4 MB partial frames (80 MB) before the gateway refuses: an attack, not a stray connection. */
const MIN_ATTACKERS = 20;

let gw: GatewayProcess;
beforeEach(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "", MEMORY_LIMIT_BYTES: String(300 * 1024 * 1024) });
}, 60_000);
afterEach(async () => {
  await gw.stop();
}, 60_000);

/** A raw WebSocket from `localAddress` that says hello, then sends all but 100 bytes of a `size`-byte frame. */
async function partialFrame(port: number, localAddress: string, size: number): Promise<{ socket: Socket; closed: () => boolean } | null> {
  const socket = tcp({ port, host: "127.0.0.1", localAddress });
  let closed = false;
  socket.on("close", () => (closed = true));
  socket.on("error", () => {});
  const next = () => new Promise<string | null>((r) => (socket.once("data", (d) => r(String(d))), socket.once("close", () => r(null))));
  await new Promise((r) => socket.once("connect", r));
  socket.write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  if (!(await next())?.startsWith("HTTP/1.1 101")) return (socket.destroy(), null); // refused: over the limit
  const hello = Buffer.from(JSON.stringify({ t: 1, v: 1 }));
  socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | hello.length, 0, 0, 0, 0]), hello])); // mask key 0: the payload as it is
  if ((await next()) === null) return null;
  const header = Buffer.alloc(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(size), 2);
  socket.write(header);
  const chunk = Buffer.alloc(64 * 1024, 7);
  for (let left = size - 100; left > 0 && !closed; left -= chunk.length) {
    if (!socket.write(left >= chunk.length ? chunk : chunk.subarray(0, left))) await new Promise((r) => socket.once("drain", r));
  }
  return { socket, closed: () => closed };
}

test("connections holding most of a large frame each take the gateway over MEMORY_LIMIT_BYTES: it refuses new ones and closes the quiet ones of the address holding the most, other addresses' quiet clients and a publishing control keep theirs", async () => {
  const port = Number(new URL(gw.wsUrl).port);
  // Quiet clients of another address: subscribed, and sending nothing.
  const dropped: string[] = [];
  const bystanders = await Promise.all([0, 1, 2].map((i) => connect({ url: gw.wsUrl, maxAttempts: 1, onState: (s, d) => s !== "open" && dropped.push(`${i}: ${s} ${d?.code}`) })));
  await bystanders[0]!.publish({ type: "before", data: 0 }, { topic: "bystanders" });
  for (const b of bystanders) await b.subscribe("bystanders");
  await Bun.sleep(5500); // quiet from here on

  await underControl(gw, "100 connections of one address with 4 MB of a frame each", async () => {
    const attackers = [];
    for (let i = 0; i < 100; i++) attackers.push(await partialFrame(port, "127.0.0.2", 4_000_000));
    const opened = attackers.filter((a) => a !== null);
    // Over the limit at once: not ready, and a new connection is refused with a code.
    await until("/health/ready to say 503", async () => (await fetch(`${gw.url}/health/ready`)).status === 503, 10_000);
    const refused = await fetch(`${gw.url}/ws`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("UNAVAILABLE");
    // The attackers' connections are closed once they have been quiet 5 s, and the memory comes back.
    await until("the attackers' connections to be closed", () => opened.every((a) => a!.closed()), 30_000);
    await until("/health/ready to say 200 again", async () => (await fetch(`${gw.url}/health/ready`)).status === 200, 30_000);
    expect(opened.length).toBeGreaterThan(MIN_ATTACKERS);
  });
  expect(dropped).toEqual([]);
  // The bystanders still work.
  for (const b of bystanders) await b.publish({ type: "after", data: 1 }, { topic: "bystanders" });
  for (const b of bystanders) b.close();
}, 120_000);

/** `n` raw subscribers of `topic` from `address`, each sending nothing after its subscribe, once subscribed. */
async function rawSubscribers(port: number, n: number, address: string, topic: string): Promise<RawWsClient[]> {
  const subs: RawWsClient[] = [];
  for (let i = 0; i < n; i++) {
    const r = await RawWsClient.connect(port, "/ws", "", address);
    r.send({ t: 1, v: 1 });
    r.send({ t: 12, cid: 1, sub: "s", topic });
    subs.push(r);
  }
  for (const r of subs) await r.waitFor((f) => f.t === 23);
  return subs;
}

/** 100 connections from `address` with 4 MB of a frame each: the gateway goes over its limit, closes them, and comes back under it. */
async function attackUntilShed(port: number, address: string): Promise<void> {
  const attackers = [];
  for (let i = 0; i < 100; i++) attackers.push(await partialFrame(port, address, 4_000_000));
  const opened = attackers.filter((a) => a !== null);
  expect(opened.length).toBeGreaterThan(MIN_ATTACKERS);
  await until("/health/ready to say 503", async () => (await fetch(`${gw.url}/health/ready`)).status === 503, 10_000);
  await until("the attackers' connections to be closed", () => opened.every((a) => a!.closed()), 30_000);
  await until("/health/ready to say 200 again", async () => (await fetch(`${gw.url}/health/ready`)).status === 200, 30_000);
}

test("subscribers that read what they are sent are not quiet: past MEMORY_LIMIT_BYTES the shed passes over an address of more reading subscribers than the attackers have connections", async () => {
  const port = Number(new URL(gw.wsUrl).port);
  // More connections than the attackers will hold, on one address: subscribers that never send a
  // frame after subscribing, and read everything a publisher sends them.
  const readers = await rawSubscribers(port, 110, "127.0.0.3", "readers");
  const publisher = await connect({ url: gw.wsUrl, maxAttempts: 1 });
  let publishing = true;
  const publishes = (async () => {
    while (publishing) {
      await publisher.publish({ type: "tick", data: 0 }, { topic: "readers" });
      await Bun.sleep(20);
    }
  })();
  // Awaited below; marked handled so that a failure before then is reported as itself, not as the
  // publisher's "shutting down" when the gateway is stopped under it.
  publishes.catch(() => {});
  await Bun.sleep(5500); // quiet senders from here on, but reading

  // 110 readers, more than the 100 connections an attack can hold: counted by connections alone, the
  // readers' address would have been shed first.
  await underControl(gw, "100 connections with 4 MB of a frame each beside 110 reading subscribers", () => attackUntilShed(port, "127.0.0.4"));
  publishing = false;
  await publishes;
  publisher.close();
  // Every reader still open, and still reading.
  expect(readers.filter((r) => r.closeCode !== null || r.abnormal).map((r) => r.closeCode)).toEqual([]);
  const counts = readers.map((r) => r.frames.filter((f) => f.t === 24 || f.t === 25).length);
  expect(Math.min(...counts)).toBeGreaterThan(0);
  for (const r of readers) r.destroy();
}, 180_000);

test("a subscriber with nothing to read is shed last: idle subscribers of the attackers' own address keep their connections", async () => {
  const port = Number(new URL(gw.wsUrl).port);
  const idle = await rawSubscribers(port, 10, "127.0.0.5", "nobody-writes-here");
  await Bun.sleep(5500); // quiet, and nothing sent to them either

  await underControl(gw, "100 connections with 4 MB of a frame each from the address of 10 idle subscribers", () => attackUntilShed(port, "127.0.0.5"));
  expect(idle.filter((r) => r.closeCode !== null || r.abnormal).map((r) => r.closeCode)).toEqual([]);
  for (const r of idle) r.destroy();
}, 180_000);
