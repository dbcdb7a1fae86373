import { expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { decodeFrame, encodeFrame } from "../../src/protocol/codec";
import { peekFrameType } from "../../src/protocol/frame-peek";

const limits = { maxFrameBytes: 1 << 20, maxDepth: 32 };
const other = new Packr({ useRecords: false });

test("peekFrameType reads t from the shapes clients send, and never disagrees with the decoder", () => {
  const frames: object[] = [
    { t: 10, cid: 1, event: { type: "a" } },
    { t: 11, cid: 2, topic: "x", events: [{ type: "a" }] },
    { t: 1, v: 1 },
    { t: 127, cid: 3 },
    { cid: 1, t: 10 },
    { t: "10", cid: 1 },
    { t: 10.5 },
    { t: -1 },
    { t: 1000, cid: 1 },
    {},
  ];
  let peeked = 0;
  for (const f of frames) {
    for (const raw of [encodeFrame(f, "msgpack"), other.pack(f), encodeFrame(f, "json"), JSON.stringify(f, null, 1)]) {
      const t = peekFrameType(raw as Uint8Array | string);
      if (t === undefined) continue;
      peeked++;
      expect((decodeFrame(raw as Uint8Array | string, typeof raw === "string" ? "json" : "msgpack", limits) as { t: unknown }).t).toBe(t);
    }
  }
  expect(peeked).toBeGreaterThanOrEqual(12);
  for (const raw of ['{"t":01,"cid":1}', '{"t":10}', '{"t":1e1,"cid":1}', "[10]", "", new Uint8Array(), Uint8Array.from([0x81, 0xa1, 0x74]), Uint8Array.from([0x80])]) {
    expect(peekFrameType(raw)).toBeUndefined();
  }
});
