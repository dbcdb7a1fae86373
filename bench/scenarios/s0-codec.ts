import { type CodecName, decodeFrame, encodeFrame, msgpackNativeAcceleration } from "../../src/protocol/codec";
import { parseBenchArgs } from "../harness/options";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";

/**
 * S0: the gateway's own codec (hardened msgpackr decode + plain-data check, and JSON) on a
 * publish_batch of realistic envelopes, decode and encode, on one core. Both directions matter: a
 * frame is decoded on ingest and event frames are encoded on fan-out.
 */
export const s0: Scenario = {
  name: "s0",
  title: "codec: msgpack vs JSON, encode and decode of our envelope, one core",
  async run(argv) {
    const { common: o } = parseBenchArgs(argv, "bun run bench -- s0 [options]", {}, { duration: "2" });
    const startedAt = new Date().toISOString();
    const events = Array.from({ length: o.batch }, (_, i) => ({
      type: "order.created",
      source: "/shop/checkout",
      id: `ord-${i}-3f9a2c`,
      key: `user-${i % o.keys}`,
      subject: `orders/${i}`,
      data: { orderId: 100000 + i, total: 12.5 + i, currency: "EUR", items: [{ sku: "A-1", qty: 2 }, { sku: "B-7", qty: 1 }], express: i % 2 === 0 },
    }));
    const frame = { t: 11, cid: 42, topic: "orders", events };
    const limits = { maxFrameBytes: 64 << 20, maxDepth: 32 };
    const runs: RunReport[] = [];
    const rate: Record<string, number> = {};
    for (const codec of ["msgpack", "json"] as CodecName[]) {
      const encoded = encodeFrame(frame, codec);
      const bytes = typeof encoded === "string" ? Buffer.byteLength(encoded) : encoded.byteLength;
      const decodeRate = perSecond(o.duration / 2, () => decodeFrame(encoded, codec, limits)) * o.batch;
      const encodeRate = perSecond(o.duration / 2, () => encodeFrame(frame, codec)) * o.batch;
      rate[`${codec} decode`] = decodeRate;
      rate[`${codec} encode`] = encodeRate;
      runs.push({ label: codec, figures: { "decode events/s": Math.round(decodeRate), "encode events/s": Math.round(encodeRate), "bytes per event": Math.round(bytes / o.batch) } });
    }
    const figures = {
      "decode msgpack / JSON": Number((rate["msgpack decode"]! / rate["json decode"]!).toFixed(2)),
      "encode msgpack / JSON": Number((rate["msgpack encode"]! / rate["json encode"]!).toFixed(2)),
      "msgpackr native acceleration": String(msgpackNativeAcceleration),
    };
    return { scenario: "s0", title: s0.title, machine: machine(), startedAt, figures, runs, notes: [`${o.batch} events per frame; each envelope has type, source, id, key, subject and a small structured data map.`] };
  },
};

/** Calls of `fn` per second over `seconds`, after a warm-up. */
function perSecond(seconds: number, fn: () => unknown): number {
  for (let i = 0; i < 500; i++) fn();
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
  }
  return (n * 1000) / (performance.now() - start);
}
