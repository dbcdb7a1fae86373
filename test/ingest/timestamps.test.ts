import { describe, expect, test } from "bun:test";
import { consumeAll } from "../support/kafka-broker";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { RawMsgpack, RawSocket, pyPack } from "./wire";

/**
 * msgpack timestamps carry nanoseconds (Go's time.Time, Python's Timestamp and datetime): they are
 * data, and the gateway must not round them to a JavaScript Date's milliseconds, neither in `time`
 * (ce_time) nor anywhere in `data`, on the way to Kafka or to subscribers.
 */
// A minute ago, in whole seconds: within REPLAY_MAX_DURATION, so `earliest` delivers it.
const SECONDS = Math.floor(Date.now() / 1000) - 60;
const AT = new Date(SECONDS * 1000).toISOString().slice(0, 19); // "YYYY-MM-DDTHH:MM:SS"
const be = (n: bigint, bytes: number) => Array.from({ length: bytes }, (_, i) => Number((n >> BigInt(8 * (bytes - 1 - i))) & 0xffn));
/** Timestamp 96: nanoseconds (u32) then seconds (i64). */
const ts96 = (sec: number, ns: number) => new Uint8Array([0xc7, 12, 0xff, ...be(BigInt(ns), 4), ...be(BigInt(sec), 8)]);
/** Timestamp 64: 30 bits of nanoseconds, 34 of seconds. */
const ts64 = (sec: number, ns: number) => new Uint8Array([0xd7, 0xff, ...be((BigInt(ns) << 34n) | BigInt(sec), 8)]);
const data = () => ({ precise: new RawMsgpack(ts64(SECONDS, 987_654_321)), wide: new RawMsgpack(ts96(SECONDS, 123_456_789)), whole: new RawMsgpack(ts64(SECONDS, 5_000_000)), list: [new RawMsgpack(ts96(-1, 999_999_999))] });
const TIMESTAMPS = [ts64(SECONDS, 987_654_321), ts96(SECONDS, 123_456_789), ts64(SECONDS, 5_000_000), ts96(-1, 999_999_999)];
const indexOf = (hay: Uint8Array, needle: Uint8Array) => Buffer.from(hay).indexOf(Buffer.from(needle));

const file = kafkaGatewayForFile();

describe("msgpack timestamps keep their nanoseconds", () => {
  test("in ce_time and, byte for byte, in the record's value", async () => {
    const topic = freshTopic("timestamps");
    const s = await RawSocket.connect(file.gw.wsUrl, "msgpack");
    s.send(pyPack({ t: 10, cid: 1, topic, event: { type: "ts", key: "k", time: new RawMsgpack(ts96(SECONDS, 123_456_789)), data: data() } }));
    expect((await s.waitFor((r) => r.frame.cid === 1))[0]!.frame.t).toBe(20);
    s.close();
    const [rec] = await consumeAll(file.brokers, topic, { expect: 1 });
    expect(rec!.headers.ce_time).toBe(`${AT}.123456789Z`);
    // Each timestamp as it was sent (the maps around them may be written in another width).
    for (const bytes of TIMESTAMPS) expect(indexOf(rec!.value!, bytes)).toBeGreaterThan(0);
  }, 60_000);

  test("to subscribers: the same bytes over msgpack, RFC 3339 with nanoseconds over JSON", async () => {
    const topic = freshTopic("timestamps-sub");
    const p = await RawSocket.connect(file.gw.wsUrl, "msgpack");
    p.send(pyPack({ t: 10, cid: 1, topic, event: { type: "ts", time: new RawMsgpack(ts64(SECONDS, 987_654_321)), data: data() } }));
    expect((await p.waitFor((r) => r.frame.cid === 1))[0]!.frame.t).toBe(20);
    const mp = await RawSocket.connect(file.gw.wsUrl, "msgpack");
    const js = await RawSocket.connect(file.gw.wsUrl, "json");
    mp.send(pyPack({ t: 12, cid: 1, sub: "m", topic, start: "earliest" }));
    js.send(JSON.stringify({ t: 12, cid: 1, sub: "j", topic, start: "earliest" }));
    const [m] = await mp.waitFor((r) => r.frame.t === 24);
    for (const bytes of TIMESTAMPS) expect(indexOf(m!.raw as Uint8Array, bytes)).toBeGreaterThan(0);
    const [j] = await js.waitFor((r) => r.frame.t === 24);
    const ev = j!.frame.event;
    expect(ev.time).toBe(`${AT}.987654321Z`);
    expect(ev.data).toEqual({ precise: `${AT}.987654321Z`, wide: `${AT}.123456789Z`, whole: `${AT}.005Z`, list: ["1969-12-31T23:59:59.999999999Z"] });
    for (const s of [mp, js, p]) s.close();
  }, 60_000);
});

describe("RFC 3339 `time` strings are bounded", () => {
  test("a nanosecond time with an offset is taken; one with thousands of fraction digits is INVALID_EVENT, over JSON and in a subscription's start (outside tester)", async () => {
    const topic = freshTopic("timestamps-long");
    const js = await RawSocket.connect(file.gw.wsUrl, "json");
    const long = `${AT}.${"1".repeat(5000)}Z`;
    js.send(JSON.stringify({ t: 10, cid: 1, topic, event: { type: "ts", time: `${AT}.123456789+05:30` } }));
    js.send(JSON.stringify({ t: 10, cid: 2, topic, event: { type: "ts", time: long } }));
    js.send(JSON.stringify({ t: 12, cid: 3, sub: "s", topic, start: { time: long } }));
    const replies = await js.waitFor((r) => [1, 2, 3].includes(r.frame.cid), 3);
    const byCid = new Map(replies.map((r) => [r.frame.cid, r.frame]));
    expect(byCid.get(1)!.t).toBe(20);
    expect([byCid.get(2)!.t, byCid.get(2)!.code]).toEqual([21, "INVALID_EVENT"]);
    expect(byCid.get(3)!.code).toBe("INVALID_FRAME");
    js.close();
  }, 60_000);
});
