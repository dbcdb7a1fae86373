import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import * as zlib from "node:zlib";
import { underControl } from "../ingest/control";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { RawWsClient } from "../support/raw-ws";

/**
 * permessage-deflate (WS_PERMESSAGE_DEFLATE): off unless set; when on, the frame limits hold for the
 * inflated size, and a deflate bomb (a small frame that inflates to hundreds of MiB) is stopped while
 * it inflates: close 1009, without the gateway's memory following.
 */
let off: GatewayProcess;
let on: GatewayProcess;
const MAX = 256 * 1024;
const OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

beforeAll(async () => {
  const brokers = await kafkaBrokers();
  [off, on] = await Promise.all([
    startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", MAX_FRAME_BYTES: String(MAX) }),
    startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", MAX_FRAME_BYTES: String(MAX), WS_PERMESSAGE_DEFLATE: "true" }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([off, on].map((g) => g?.stop()));
}, 60_000);

/** A permessage-deflate payload (RFC 7692): raw deflate, sync-flushed, without the final 00 00 ff ff. */
function deflate(data: Buffer): Buffer {
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

/** `mib` MiB of JSON text, deflated a MiB at a time so the test never holds it whole. */
async function bomb(mib: number): Promise<Buffer> {
  const z = zlib.createDeflateRaw({ level: 9 });
  const parts: Buffer[] = [];
  z.on("data", (d: Buffer) => parts.push(d));
  const spaces = Buffer.alloc(1024 * 1024, 0x20);
  z.write('{"t":10,"cid":1,"event":{"type":"bomb"},"x":"');
  for (let i = 0; i < mib; i++) if (!z.write(spaces)) await new Promise((r) => z.once("drain", r));
  await new Promise<void>((r) => z.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
  const out = Buffer.concat(parts);
  return out.subarray(0, out.length - 4);
}

function peakRssMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}

test("off by default: an offer of permessage-deflate is not taken, and a compressed frame is a protocol error", async () => {
  const c = await RawWsClient.connect(off.port, "/ws", OFFER);
  expect(c.responseHead.toLowerCase()).not.toContain("permessage-deflate");
  c.sendFrame(deflate(Buffer.from('{"t":1,"v":1}')), { rsv1: true });
  await c.ended;
  expect(c.frames.some((f) => f.t === 2)).toBe(false);
}, 30_000);

test("on: negotiated; compressed frames are published and acked like any other", async () => {
  const c = await RawWsClient.connect(on.port, "/ws", OFFER);
  expect(c.responseHead.toLowerCase()).toContain("permessage-deflate");
  c.sendFrame(deflate(Buffer.from('{"t":1,"v":1}')), { rsv1: true });
  await c.waitFor((f) => f.t === 2);
  const topic = freshTopic("deflate");
  c.sendFrame(deflate(Buffer.from(JSON.stringify({ t: 10, cid: 5, topic, event: { type: "compressed", data: "x".repeat(50_000) } }))), { rsv1: true });
  expect(await c.waitFor((f) => f.cid === 5)).toMatchObject({ t: 20, topic });
  c.destroy();
}, 30_000);

test("on: MAX_FRAME_BYTES holds for the inflated size: a 3 KiB frame inflating past it is nacked FRAME_TOO_LARGE with its cid, and the socket lives on", async () => {
  const c = await RawWsClient.connect(on.port, "/ws", OFFER);
  c.send({ t: 1, v: 1 });
  await c.waitFor((f) => f.t === 2);
  const big = Buffer.from(`{"cid":9,"t":10,"event":{"type":"big","data":"${" ".repeat(MAX + 1000)}"}}`);
  const small = deflate(big);
  expect(small.length).toBeLessThan(4096);
  c.sendFrame(small, { rsv1: true });
  expect(await c.waitFor((f) => f.cid === 9)).toMatchObject({ t: 21, code: "FRAME_TOO_LARGE" });
  c.send({ t: 10, cid: 10, topic: freshTopic("deflate-after"), event: { type: "after" } });
  expect(await c.waitFor((f) => f.cid === 10)).toMatchObject({ t: 20 });
  c.destroy();
}, 30_000);

test("on: a deflate bomb (under 1 MiB, inflating to 512 MiB) closes 1009 while it inflates; the gateway's peak memory stays put and a control connection is unharmed", async () => {
  const payload = await bomb(512);
  expect(payload.length).toBeLessThan(4 * MAX); // small enough to pass the transport's size check as sent
  const before = peakRssMiB(on.proc.pid);
  await underControl(on, "deflate bomb", async () => {
    for (let i = 0; i < 3; i++) {
      const c = await RawWsClient.connect(on.port, "/ws", OFFER);
      c.send({ t: 1, v: 1 });
      await c.waitFor((f) => f.t === 2);
      c.sendFrame(payload, { rsv1: true });
      await c.ended;
      expect(c.closeCode).toBe(1009);
    }
  });
  const grew = peakRssMiB(on.proc.pid) - before;
  console.log(`deflate bomb: peak RSS grew ${grew.toFixed(0)} MiB for 3 × 512 MiB inflated`);
  expect(grew).toBeLessThan(100);
}, 120_000);
