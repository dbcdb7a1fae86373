import { expect, test } from "bun:test";
import * as net from "node:net";
import { connect } from "../../src/client";
import { underControl } from "../ingest/control";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { rssMiB } from "../support/proc";
import { RawWsClient } from "../support/raw-ws";

/**
 * What a reader holds for subscribers that do not take it is bounded, in the Kafka worker and in the
 * gateway, whatever the records are like. Before: each read batch was 500 records whatever their size
 * (8 MB of 16 KB records, four of them in flight per reader, held by the gateway), and a fetch of
 * records that compress 250:1 was 1 MB compressed: eight replays that never read grew the gateway by
 * 404 MiB and the two workers by 598 MiB together here. With fetches of 128 KB per partition the
 * workers still grew 310–490 MiB (near everything the eight replays could hold); with 32 KB,
 * 147–206 and 172–220 alone (the box is shared, so the bounds leave room). And a record larger than a
 * fetch still arrives.
 */
/** The least `read()` gave over `samples` samples 200 ms apart: memory once collectable garbage is gone. */
async function least(read: () => number, samples: number): Promise<number> {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < samples; i++) {
    await Bun.sleep(200);
    min = Math.min(min, read());
  }
  return min;
}

// The histories are written through the gateway: with its handling budget on, that writing rested 259
// times, 53 s of a CI run, and none of it is what is measured.
const file = kafkaGatewayForFile({ KAFKA_WORKERS: "2", RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_HANDLING_MS: "0" });

test("replays whose client never reads, of records that compress 250:1, hold bounded memory in the workers and the gateway", async () => {
  const topic = freshTopic("compressible");
  await ensureTopic(file.brokers, topic, 3);
  const pub = await connect({ url: file.gw.wsUrl });
  const blob = "y".repeat(16_000);
  for (let sent = 0; sent < 2400; sent += 50) {
    const acks = await pub.publishBatch(Array.from({ length: 50 }, (_, i) => ({ type: "bomb", key: `k${i}`, data: { blob } })), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
  }
  pub.close();
  const health = await file.gw.health();
  const workers: number[] = health.log.workers.map((w: { pid: number }) => w.pid);
  // Read once the publishing's garbage is collected: the least of 3 s of samples.
  const before = { gateway: Number.POSITIVE_INFINITY, workers: workers.map(() => Number.POSITIVE_INFINITY) };
  for (let i = 0; i < 15; i++) {
    await Bun.sleep(200);
    before.gateway = Math.min(before.gateway, rssMiB(file.gw.proc.pid));
    before.workers = before.workers.map((m, w) => Math.min(m, rssMiB(workers[w]!)));
  }

  const grown = await underControl(file.gw, "eight replays that never read", async () => {
    const reader = await RawWsClient.connect(file.gw.port);
    reader.send({ t: 1, v: 1 });
    for (let i = 0; i < 8; i++) reader.send({ t: 12, cid: i + 1, topic, start: "earliest" });
    await reader.waitFor((f) => f.cid === 8);
    reader.pause();
    let peak = { gateway: 0, workers: 0 };
    for (let i = 0; i < 30; i++) {
      await Bun.sleep(200);
      peak = { gateway: Math.max(peak.gateway, rssMiB(file.gw.proc.pid) - before.gateway), workers: Math.max(peak.workers, workers.reduce((n, pid, w) => n + rssMiB(pid) - before.workers[w]!, 0)) };
    }
    reader.destroy();
    return peak;
  });
  console.log(`eight replays of 38 MB of 250:1 records, never read: gateway +${grown.gateway.toFixed(0)} MiB, workers together +${grown.workers.toFixed(0)} MiB`);
  expect(grown.gateway).toBeLessThan(320);
  expect(grown.workers).toBeLessThan(400);
}, 180_000);

test("replays that stay unread let go of what their readers fetched ahead: 24 of them over 200 records of 990 KB that compress 250:1", async () => {
  // What librdkafka fetched ahead is held decompressed, and a fetch is sized compressed: 24 replays of
  // such records, none read, held 572 MB in a worker (64 of them 1.7 GB, until it was killed for not
  // answering pings, and other clients' publishes failed WORKER_LOST). A reader its subscribers hold
  // back now gives its partitions up until they take what it sent. Measured here: 848 MiB more in the
  // two workers before, 354 after (the rest is not librdkafka's read-ahead, which a release frees).
  const topic = freshTopic("bomb");
  await ensureTopic(file.brokers, topic, 3);
  const pub = await connect({ url: file.gw.wsUrl });
  const blob = "a".repeat(990_000);
  for (let sent = 0; sent < 200; sent += 4) {
    const acks = await pub.publishBatch(Array.from({ length: 4 }, (_, i) => ({ type: "bomb", key: `k${sent + i}`, data: blob })), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
  }
  pub.close();
  const workers: number[] = (await file.gw.health()).log.workers.map((w: { pid: number }) => w.pid);
  const together = () => workers.reduce((n, pid) => n + rssMiB(pid), 0);
  const before = await least(together, 15);
  const held = await underControl(file.gw, "24 replays of 990 KB records, never read", async () => {
    const readers = await Promise.all(["127.0.0.2", "127.0.0.3"].map((a) => RawWsClient.connect(file.gw.port, "/ws", "", a)));
    for (const r of readers) {
      r.send({ t: 1, v: 1 });
      for (let i = 0; i < 12; i++) r.send({ t: 12, cid: i + 1, sub: `r${i}`, topic, start: "earliest" });
      await r.waitFor((f) => f.cid === 12);
      r.pause();
    }
    await Bun.sleep(4000);
    // Settled: what the workers hold now, for replays nobody reads (the least of 2 s of samples).
    const held = await least(() => together() - before, 10);
    for (const r of readers) r.destroy();
    return held;
  });
  console.log(`24 replays of 990 KB records that compress 250:1, never read: the workers hold ${held.toFixed(0)} MiB more together than before them`);
  expect(held).toBeLessThan(600);
}, 180_000);

test("a record larger than a whole fetch reaches live and replaying subscribers", async () => {
  const topic = freshTopic("large");
  await ensureTopic(file.brokers, topic, 1);
  const client = await connect({ url: file.gw.wsUrl });
  const live = await client.subscribe(topic);
  // Random, so it does not compress below the 512 KB fetch.
  const big = Buffer.from(crypto.getRandomValues(new Uint8Array(600_000))).toString("base64");
  const ack = await client.publish({ type: "large", data: { big } }, { topic });
  const firstOf = async (s: typeof live) => {
    for await (const e of s) return e;
  };
  const [a, b] = await Promise.all([firstOf(live), client.subscribe(topic, { start: "earliest" }).then(firstOf)]);
  for (const e of [a, b]) {
    expect(e!.offset).toBe(ack.offset);
    expect((e!.event.data as { big: string }).big).toBe(big);
  }
  client.close();
}, 60_000);

test("replays that never read, of many small records, hold bounded memory in the workers: SSE streams and WebSocket alike", async () => {
  // librdkafka's read-ahead is bounded in payload bytes (queued.max.messages.kbytes) and in records
  // (queued.min.messages, 100,000 per partition by default); each small record costs it several
  // hundred bytes of its own besides. 64 SSE replays of ~520,000 small records that never read grew
  // each worker to 1.4 GB and held a control's p99 at 1-3.6 s (outside security tester).
  const topic = freshTopic("small-records");
  await ensureTopic(file.brokers, topic, 3);
  const pub = await connect({ url: file.gw.wsUrl });
  for (let sent = 0; sent < 300_000; sent += 1000) {
    const acks = await pub.publishBatch(Array.from({ length: 1000 }, (_, i) => ({ type: "s", key: `k${i % 64}`, data: { n: sent + i } })), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
  }
  pub.close();
  const workers: number[] = (await file.gw.health()).log.workers.map((w: { pid: number }) => w.pid);
  const together = () => workers.reduce((n, pid) => n + rssMiB(pid), 0);
  const before = await least(together, 10);
  const peak = await underControl(file.gw, "32 replays of 300,000 small records that never read", async () => {
    const sockets: net.Socket[] = [];
    for (const address of ["127.0.0.6", "127.0.0.7"]) {
      // An address's MAX_REPLAYS_PER_ADDRESS (16): half SSE streams, half WebSocket subscriptions.
      for (let i = 0; i < 8; i++) {
        const s = net.connect({ port: file.gw.port, host: "127.0.0.1", localAddress: address });
        s.on("error", () => {});
        s.on("connect", () => {
          s.write(`GET /api/v1/stream?topic=${topic}&start=earliest HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
          // Reads the status line, then nothing more.
          s.once("data", () => s.pause());
        });
        sockets.push(s);
      }
      const ws = await RawWsClient.connect(file.gw.port, "/ws", "", address);
      ws.send({ t: 1, v: 1 });
      for (let i = 0; i < 8; i++) ws.send({ t: 12, cid: i + 1, sub: `r${i}`, topic, start: "earliest" });
      await ws.waitFor((f) => f.cid === 8);
      ws.pause();
      sockets.push(ws as unknown as net.Socket);
    }
    let peak = 0;
    for (let i = 0; i < 40; i++) {
      await Bun.sleep(250);
      peak = Math.max(peak, together() - before);
    }
    for (const s of sockets) s.destroy();
    return peak;
  });
  console.log(`32 replays of 300,000 small records, never read: the workers grew ${peak.toFixed(0)} MiB together at most`);
  expect(peak).toBeLessThan(300);
}, 240_000);
