import { afterAll, beforeAll, expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";

/**
 * Each request is answered in the encoding it came in (docs/protocol.md): a client may send JSON text
 * and msgpack binary frames on one socket. `unsubscribed` came back in the subscription's encoding
 * instead of the unsubscribe's (second review).
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
});

test("an unsubscribe is answered in its own encoding, whatever its subscription's was", async () => {
  const packr = new Packr({ useRecords: false });
  const ws = new WebSocket(gw.wsUrl);
  ws.binaryType = "arraybuffer";
  const frames: Array<{ kind: "text" | "binary"; f: Record<string, unknown> }> = [];
  ws.onmessage = (m) => frames.push(typeof m.data === "string" ? { kind: "text", f: JSON.parse(m.data) } : { kind: "binary", f: packr.unpack(new Uint8Array(m.data as ArrayBuffer)) });
  await new Promise((resolve) => (ws.onopen = resolve));
  const reply = async (cid: number) => {
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const hit = frames.find((x) => x.f.cid === cid);
      if (hit) return hit;
      await Bun.sleep(10);
    }
    throw new Error(`no reply to ${cid}`);
  };
  ws.send(JSON.stringify({ t: 1, v: 1, cid: 1 }));
  await reply(1);
  ws.send(packr.pack({ t: 12, cid: 2, sub: "a", topic: "codec-t" }));
  expect(await reply(2)).toMatchObject({ kind: "binary", f: { t: 23 } });
  ws.send(JSON.stringify({ t: 13, cid: 3, sub: "a" }));
  expect(await reply(3)).toMatchObject({ kind: "text", f: { t: 28, sub: "a" } });
  ws.send(JSON.stringify({ t: 12, cid: 4, sub: "b", topic: "codec-t" }));
  expect(await reply(4)).toMatchObject({ kind: "text", f: { t: 23 } });
  ws.send(packr.pack({ t: 13, cid: 5, sub: "b" }));
  expect(await reply(5)).toMatchObject({ kind: "binary", f: { t: 28, sub: "b" } });
  ws.close();
}, 30_000);
