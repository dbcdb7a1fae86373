import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { kafkaBrokers } from "../support/kafka";
import { ControlPublisher, RawSocket, bytes, pyPack } from "./wire";

/**
 * Every request with a readable cid gets exactly one reply carrying it, whatever is wrong with the
 * frame, so a client counting its window (docs/protocol.md, "Flow control") never leaks a slot.
 * Over real sockets against the Kafka-backed gateway, with a control connection publishing
 * throughout that must get every one of its acks.
 */
let gw: GatewayProcess;
const MAX_FRAME = 64 * 1024;
const MAX_DEPTH = 16;

beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", MAX_FRAME_BYTES: String(MAX_FRAME), MAX_DEPTH: String(MAX_DEPTH), MAX_BATCH_EVENTS: "100", PUBLISH_WINDOW: "60" });
}, 60_000);
afterAll(async () => {
  expect(await gw.stop()).toBe(0);
}, 60_000);

const packr = new Packr({ useRecords: false });
const pack = (v: unknown) => packr.pack(v);
/** A msgpack map of `n` pairs whose first pairs are given packed, the rest appended raw. */
const mapHead = (n: number) => [0x80 | n];
const nestedMsgpack = (depth: number) => {
  const b = new Uint8Array(depth + 1).fill(0x91);
  b[depth] = 0xc0;
  return b;
};

/** Frames that fail at each stage, all with a readable cid, and the code each must be nacked with. */
function badFrames(codec: "msgpack" | "json", cid: number): Array<{ name: string; raw: Uint8Array | string; code: string }> {
  const big = "x".repeat(MAX_FRAME + 10);
  if (codec === "msgpack") {
    const head = (n: number) => bytes(mapHead(n), pack("cid"), pack(cid), pack("t"), pack(10));
    return [
      { name: "too deep", raw: bytes(head(3), pack("event"), nestedMsgpack(40)), code: "NESTING_TOO_DEEP" },
      { name: "deep enough to overflow the decoder's stack", raw: bytes(head(3), pack("event"), nestedMsgpack(MAX_FRAME - 20)), code: "NESTING_TOO_DEEP" },
      { name: "too large", raw: pack({ cid, t: 10, event: { type: "x", data: big } }), code: "FRAME_TOO_LARGE" },
      { name: "too large, cid last", raw: pack({ t: 10, event: { type: "x", data: big }, cid }), code: "FRAME_TOO_LARGE" },
      { name: "bad msgpack after the cid", raw: bytes(head(3), pack("event"), [0xc1]), code: "BAD_FRAME" },
      { name: "truncated after the cid", raw: bytes(head(3), pack("event"), [0x82, 0xa4]), code: "BAD_FRAME" },
      { name: "non-finite number", raw: pack({ cid, t: 10, event: { type: "x", data: Number.NaN } }), code: "BAD_FRAME" },
      { name: "ext type", raw: new Packr({ moreTypes: true, useRecords: false } as never).pack({ cid, t: 10, event: { type: "x", data: new Set([1]) } }), code: "BAD_FRAME" },
      { name: "bad envelope", raw: pack({ cid, t: 10, event: { type: 5 } }), code: "INVALID_EVENT" },
      { name: "bad topic", raw: pack({ cid, t: 10, topic: "no spaces", event: { type: "x" } }), code: "INVALID_TOPIC" },
      { name: "bad topic in a subscribe", raw: pack({ cid, t: 12, sub: `s${cid}`, topic: "no spaces" }), code: "INVALID_TOPIC" },
      { name: "topic '.', which Kafka refuses", raw: pack({ cid, t: 10, topic: ".", event: { type: "x" } }), code: "INVALID_TOPIC" },
      { name: "topic '..', which Kafka refuses", raw: pack({ cid, t: 12, sub: `s${cid}`, topic: ".." }), code: "INVALID_TOPIC" },
      { name: "unknown frame type", raw: pack({ cid, t: 77 }), code: "UNKNOWN_FRAME_TYPE" },
      { name: "frame type not a number", raw: pack({ cid, t: "publish" }), code: "INVALID_FRAME" },
      { name: "cid as uint64, frame too deep", raw: bytes(mapHead(3), pack("cid"), [0xcf, 0, 0, 0, 0, 0, 0, cid >> 8, cid & 0xff], pack("t"), pack(10), pack("event"), nestedMsgpack(40)), code: "NESTING_TOO_DEEP" },
    ];
  }
  const head = `{"cid":${cid},"t":10,"event":`;
  return [
    { name: "too deep", raw: `${head}${"[".repeat(40)}${"]".repeat(40)}}`, code: "NESTING_TOO_DEEP" },
    { name: "deep enough to overflow the decoder's stack", raw: `${head}${"[".repeat(MAX_FRAME / 2 - 20)}${"]".repeat(MAX_FRAME / 2 - 20)}}`, code: "NESTING_TOO_DEEP" },
    { name: "too large", raw: JSON.stringify({ cid, t: 10, event: { type: "x", data: big } }), code: "FRAME_TOO_LARGE" },
    { name: "too large, cid last", raw: JSON.stringify({ t: 10, event: { type: "x", data: big, cid: 1 }, cid }), code: "FRAME_TOO_LARGE" },
    { name: "bad JSON after the cid", raw: `${head}{oops}}`, code: "BAD_FRAME" },
    { name: "truncated after the cid", raw: `${head}{"type":"x`, code: "BAD_FRAME" },
    { name: "bad envelope", raw: JSON.stringify({ cid, t: 10, event: { type: 5 } }), code: "INVALID_EVENT" },
    { name: "bad topic", raw: JSON.stringify({ cid, t: 10, topic: "no spaces", event: { type: "x" } }), code: "INVALID_TOPIC" },
    { name: "bad topic in a subscribe", raw: JSON.stringify({ cid, t: 12, sub: `s${cid}`, topic: "no spaces" }), code: "INVALID_TOPIC" },
    { name: "topic '..', which Kafka refuses", raw: JSON.stringify({ cid, t: 10, topic: "..", event: { type: "x" } }), code: "INVALID_TOPIC" },
    { name: "unknown frame type", raw: JSON.stringify({ cid, t: 77 }), code: "UNKNOWN_FRAME_TYPE" },
    { name: "frame type not a number", raw: JSON.stringify({ cid, t: "publish" }), code: "INVALID_FRAME" },
    { name: "cid key spelled with an escape, frame too deep", raw: `{"\\u0063id":${cid},"t":10,"event":${"[".repeat(40)}${"]".repeat(40)}}`, code: "NESTING_TOO_DEEP" },
  ];
}

describe.each(["msgpack", "json"] as const)("%s", (codec) => {
  test("each bad frame with a readable cid gets exactly one nack with that cid, and nothing else", async () => {
    const control = new ControlPublisher(await RawSocket.connect(gw.wsUrl, "json"), "replies-control");
    control.start();
    const s = await RawSocket.connect(gw.wsUrl, codec);
    const cases = badFrames(codec, 0).map((c, i) => ({ ...c, cid: 1000 + i }));
    for (const c of cases) for (const f of badFrames(codec, c.cid)) if (f.name === c.name) s.send(f.raw);
    await s.waitFor((r) => r.frame.cid >= 1000, cases.length);
    await Bun.sleep(500); // nothing more may come
    for (const c of cases) {
      const replies = s.withCid(c.cid).map((r) => r.frame);
      expect({ name: c.name, replies }).toEqual({ name: c.name, replies: [expect.objectContaining({ t: 21, cid: c.cid, code: c.code })] });
    }
    expect(s.received.filter((r) => r.frame.cid === undefined).map((r) => r.frame)).toEqual([]);
    // The socket still publishes.
    s.send(codec === "json" ? JSON.stringify({ t: 10, cid: 1, topic: "replies", event: { type: "ok" } }) : pyPack({ t: 10, cid: 1, topic: "replies", event: { type: "ok" } }));
    expect((await s.waitFor((r) => r.frame.cid === 1))[0]!.frame).toMatchObject({ t: 20 });
    const acks = await control.stop();
    expect(acks.length).toBe(control.sent);
    expect(acks.every((a) => a.t === 20)).toBe(true);
    s.close();
  }, 60_000);

  test("frames without a readable cid get exactly one error frame", async () => {
    const s = await RawSocket.connect(gw.wsUrl, codec);
    // A ping's cid is optional, but one given that cannot be read is as unreadable as any (a pong
    // without it answered it, hostile tester).
    const frames =
      codec === "json"
        ? ["[1,2,3]", "{oops", `{"cid":-1,"t":77}`, `{"cid":"7","t":10,"event":${"[".repeat(40)}${"]".repeat(40)}}`, `{"t":15,"cid":-1}`, `{"t":15,"cid":9007199254740992}`]
        : [pack([1, 2, 3]), new Uint8Array([0xc1]), pack({ cid: -1, t: 77 }), pack({ cid: 1.5, t: 10 }), pack({ t: 15, cid: -1 }), pyPack({ t: 15, cid: 2n ** 64n - 1n })];
    for (const f of frames) s.send(f);
    await s.waitFor(() => true, frames.length);
    await Bun.sleep(300);
    expect(s.received.map((r) => r.frame)).toEqual(frames.map(() => expect.objectContaining({ t: 30 })));
    s.close();
  });

  test("a second hello gets a welcome again, with the same session; a hello's cid is echoed", async () => {
    const s = await RawSocket.connect(gw.wsUrl);
    const enc = (f: object) => (codec === "json" ? JSON.stringify(f) : pyPack(f));
    s.send(enc({ t: 1, v: 1 }));
    const [first] = await s.waitFor((r) => r.frame.t === 2);
    s.send(enc({ t: 1, v: 1, cid: 9 }));
    const [, second] = await s.waitFor((r) => r.frame.t === 2, 2);
    expect(second!.frame).toMatchObject({ t: 2, cid: 9, session: first!.frame.session });
    expect(s.received.length).toBe(2);
    // Every limit a client can plan for is announced, with this gateway's values.
    expect(first!.frame.limits).toEqual({
      maxFrameBytes: MAX_FRAME, maxBatchEvents: 100, maxDepth: MAX_DEPTH, window: 60, maxMapKeys: 4096, maxEventValues: 65_536, maxFrameValues: 262_144, maxHeadersPerEvent: 64,
      maxHeaderBytes: 65_536, timeSkewFutureMs: 300_000, timeSkewPastMs: 0, maxSubscriptions: 100, subscribesPerSec: 50, eventsPerSec: 5000, bytesPerSec: 4 * 1024 * 1024,
      principalEventsPerSec: 0, principalBytesPerSec: 0, burstSeconds: 0.5, resendWindowMs: 30_000,
    });
    s.close();
  });

  test("a refused hello with a cid is nacked with it", async () => {
    const s = await RawSocket.connect(gw.wsUrl);
    s.send(codec === "json" ? JSON.stringify({ t: 1, v: 99, cid: 3 }) : pyPack({ t: 1, v: 99, cid: 3 }));
    const [r] = await s.waitFor((x) => x.frame.cid === 3);
    expect(r!.frame).toMatchObject({ t: 21, code: "UNSUPPORTED_VERSION", supported: [1] });
    expect((await s.closed).code).toBe(4000);
  });

  test("a nack for an event without an id carries no id field at all; with a readable id, it carries it", async () => {
    const s = await RawSocket.connect(gw.wsUrl, codec);
    const enc = (f: object) => (codec === "json" ? JSON.stringify(f) : pyPack(f));
    s.send(enc({ t: 10, cid: 1, event: { type: "" } }));
    s.send(enc({ t: 10, cid: 2, event: { type: "", id: "mine" } }));
    const [a] = await s.waitFor((r) => r.frame.cid === 1);
    const [b] = await s.waitFor((r) => r.frame.cid === 2);
    expect(a!.frame).toMatchObject({ t: 21, code: "INVALID_EVENT" });
    expect(Object.keys(a!.frame)).not.toContain("id");
    // msgpack: no ext type anywhere in the reply (undefined is written as fixext 1, type 0).
    if (codec === "msgpack") expect([...(a!.raw as Uint8Array)].includes(0xd4)).toBe(false);
    expect(b!.frame).toMatchObject({ t: 21, code: "INVALID_EVENT", id: "mine" });
    s.close();
  });

  test("batch_ack names an invalid event by its id when the id was readable", async () => {
    const s = await RawSocket.connect(gw.wsUrl, codec);
    const enc = (f: object) => (codec === "json" ? JSON.stringify(f) : pyPack(f));
    s.send(enc({ t: 11, cid: 3, topic: "replies", events: [{ type: "ok", id: "a" }, { type: "", id: "b" }, { type: 7 }, { type: "x", id: 5 }] }));
    const [r] = await s.waitFor((x) => x.frame.cid === 3);
    expect(r!.frame).toMatchObject({ t: 22, ids: ["a", "b", null, null], partitions: [expect.any(Number), -1, -1, -1] });
    expect(r!.frame.errors.map((e: { i: number }) => e.i)).toEqual([1, 2, 3]);
    s.close();
  });

  test("a batch larger than the whole window is refused for good (BATCH_TOO_LARGE), not as retriable WINDOW_EXCEEDED", async () => {
    const s = await RawSocket.connect(gw.wsUrl, codec);
    const enc = (f: object) => (codec === "json" ? JSON.stringify(f) : pyPack(f));
    s.send(enc({ t: 11, cid: 4, topic: "replies", events: Array.from({ length: 61 }, () => ({ type: "x" })) }));
    const [r] = await s.waitFor((x) => x.frame.cid === 4);
    expect(r!.frame).toMatchObject({ t: 21, code: "BATCH_TOO_LARGE", retriable: false, message: expect.stringContaining("window") });
    // Within the window but over what is free: still the retriable WINDOW_EXCEEDED.
    s.send(enc({ t: 11, cid: 5, topic: "replies", events: Array.from({ length: 60 }, () => ({ type: "x" })) }));
    s.send(enc({ t: 11, cid: 6, topic: "replies", events: Array.from({ length: 60 }, () => ({ type: "x" })) }));
    const [r6] = await s.waitFor((x) => x.frame.cid === 6);
    const [r5] = await s.waitFor((x) => x.frame.cid === 5);
    expect(r5!.frame).toMatchObject({ t: 22 });
    expect(r6!.frame).toMatchObject({ t: 21, code: "WINDOW_EXCEEDED", retriable: true });
    s.close();
  });
});

test("a JSON cid is read only from a whole number token under a cid key: `12abc` or a string value before a colon names no request, not another's cid (outside probe U)", async () => {
  const s = await RawSocket.connect(gw.wsUrl, "json");
  // A publish with cid 12 in flight, then frames whose damage the scan read as cid 12: its nack
  // came first, settling publish 12 as refused, and its ack 500 ms later.
  s.send(JSON.stringify({ t: 10, cid: 12, topic: "cid-scan", event: { type: "x" } }));
  const damaged = ['{"cid":12abc,"t":15}', '{"cid":12 12,"t":15}', '{"t":15,"note":"cid":12}', '{"cid":"cid":12}'];
  for (const f of damaged) s.send(f);
  await s.waitFor((r) => r.frame.t === 30, damaged.length);
  await s.waitFor((r) => r.frame.cid === 12);
  await Bun.sleep(300);
  expect(s.received.filter((r) => r.frame.cid === 12).map((r) => r.frame.t)).toEqual([20]);
  s.close();
});
