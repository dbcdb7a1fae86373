import { connect as tcp, type Socket } from "node:net";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { pack } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { rssMiB } from "../support/proc";
import { underControl } from "../ingest/control";
import { GatewayClient } from "../support/ws-client";
import { until } from "../support/until";

/**
 * Thousands of msgpack subscriptions on connections that never read, sent large events: each
 * subscription built its own frame (a copy of the event) per event, kept its newest and dropped the
 * one before, so what was queued stayed within SUBSCRIBER_TOTAL_BUFFER_BYTES (255 MiB) while the
 * copies and their garbage took the gateway to 0.7-1.6 GB (outside tester; 1.36-1.62 GB peak here
 * with 6,000). A queued event frame is now the entries it shares with every other subscriber, built
 * when its socket takes it.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({
    RATE_LIMIT_BYTES: "0",
    RATE_LIMIT_EVENTS: "0",
    MAX_SUBSCRIPTIONS_PER_ADDRESS: "10000",
    SUBSCRIBE_RATE_LIMIT: "0",
    SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0",
    MAX_FILTER_TERMS_PER_ADDRESS: "1000000",
  });
}, 60_000);
afterAll(() => gw?.stop(), 60_000);

/** A masked binary (msgpack) client frame, written by hand: this client never reads what comes back. */
function frame(value: unknown): Buffer {
  const p = Buffer.from(pack(value));
  const head = p.length < 126 ? Buffer.from([0x82, 0x80 | p.length]) : Buffer.from([0x82, 0x80 | 126, p.length >> 8, p.length & 255]);
  return Buffer.concat([head, Buffer.from([0, 0, 0, 0]), p]); // a zero mask leaves the bytes as they are
}

test("6,000 msgpack subscriptions that never read, sent 60 KB events: the gateway's memory stays near its bound on what they hold queued", async () => {
  const topic = `lazy-frames-${Date.now()}`;
  const sockets: Socket[] = [];
  for (let c = 0; c < 60; c++) {
    const s = tcp({ port: gw.port, host: "127.0.0.1" });
    s.write(`GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    s.write(frame({ t: 1, v: 1 }));
    // Each its own filter (all match), so no two subscriptions share a group.
    for (let i = 0; i < 100; i++) s.write(frame({ t: 12, cid: i + 1, sub: `s${i}`, topic, filter: { where: `data.n >= ${-(c * 100 + i) - 1}` } }));
    sockets.push(s);
    await Bun.sleep(20);
  }
  // Within a minute, not a second: a fresh-clone CI's shards had the gateway at 2,659 after one.
  await until("6,000 subscriptions", async () => (await gw.health()).subscriptions.subscriptions === 6000, 60_000);
  for (const s of sockets) s.pause();
  const before = rssMiB(gw.proc.pid);
  let peak = before;
  let published = 0;
  await underControl(gw, "6,000 non-reading subscriptions sent 60 KB events", async () => {
    const p = await GatewayClient.connect(gw.wsUrl);
    const pad = "z".repeat(60_000);
    for (const until = Date.now() + 15_000; Date.now() < until; ) {
      expect((await p.publish({ type: "big", data: { n: published++, pad } }, topic)).t).toBe(20);
      peak = Math.max(peak, rssMiB(gw.proc.pid));
      await Bun.sleep(10);
    }
    p.close();
  });
  console.log(`6,000 non-reading subscriptions, ${published} events of 60 KB: RSS ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB`);
  // 255 MiB counted as queued at most (here shared entries, far less), the heap and its slack.
  expect(peak - before).toBeLessThan(700);
  for (const s of sockets) s.destroy();
}, 180_000);
