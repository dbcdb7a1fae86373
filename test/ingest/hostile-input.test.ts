import { describe, expect, test } from "bun:test";
import { Packr, Unpackr } from "msgpackr";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { freshTopic } from "../support/kafka";
import { underControl } from "./control";
import { concat, hostileGatewayForFile, manyKeys, pack, replyTo } from "./hostile.support";
import { RawSocket } from "./wire";

/**
 * Hostile and unusual input on the ingest side (docs/protocol.md, "Limits" and "Strict data"): no
 * event a client can send is acked when the gateway cannot carry it intact, every refusal is a
 * code, and refusing costs about what reading the frame does. Against the Kafka-backed gateway with
 * its default limits, a control connection publishing and /health/live polled throughout.
 */
const file = hostileGatewayForFile();

const json = (v: unknown) => JSON.stringify(v);
/** A publish frame with `cid` first, so even a frame refused whole is nacked with it. */
const publishMsgpack = (cid: number, topic: string, eventBytes: Uint8Array | number[]) => concat([0x84], pack("cid"), pack(cid), pack("t"), pack(10), pack("topic"), pack(topic), pack("event"), eventBytes);

// Frames are encoded before the control starts: the control runs in this process, and encoding a
// 65,536-key map here would otherwise show up as the gateway's latency.
const encode = (codec: "msgpack" | "json", frame: object) => (codec === "msgpack" ? pack(frame) : json(frame));

describe.each(["msgpack", "json"] as const)("%s", (codec) => {
  test("finding 1: an event with 65,536 headers, or more than MAX_HEADERS_PER_EVENT or MAX_HEADER_BYTES, is refused; the events around it arrive intact", async () => {
    const topic = freshTopic("hostile-headers");
    const innocent = (i: number) => ({ type: "innocent", key: "k", headers: { a: String(i) } });
    // About 490 KB in msgpack, 720 KB in JSON: within MAX_FRAME_BYTES.
    const huge = encode(codec, { cid: 1, t: 10, topic, event: { type: "huge", key: "k", headers: manyKeys(65_536) } });
    const mixed = encode(codec, { cid: 2, t: 11, topic, events: [innocent(100), { type: "65 headers", key: "k", headers: manyKeys(65) }, { type: "80 KB of headers", headers: { a: "x".repeat(40_000), b: "y".repeat(40_000) } }, innocent(101)] });
    await underControl(file.gw, `65,536 headers (${codec})`, async () => {
      const victim = await RawSocket.connect(file.gw.wsUrl, "json");
      const attacker = await RawSocket.connect(file.gw.wsUrl, codec);
      victim.send(json({ t: 11, cid: 1, topic, events: Array.from({ length: 10 }, (_, i) => innocent(i)) }));
      attacker.send(huge);
      victim.send(json({ t: 11, cid: 2, topic, events: Array.from({ length: 10 }, (_, i) => innocent(10 + i)) }));
      attacker.send(mixed);

      expect(await replyTo(attacker, 1)).toMatchObject({ t: 21, cid: 1, code: "EVENT_TOO_LARGE" });
      const batch = await replyTo(attacker, 2);
      expect(batch).toMatchObject({ t: 22, cid: 2 });
      expect(batch.errors.map((e: any) => [e.i, e.code])).toEqual([
        [1, "EVENT_TOO_LARGE"],
        [2, "EVENT_TOO_LARGE"],
      ]);
      expect(batch.offsets[0]).toBeGreaterThanOrEqual(0);
      expect(batch.offsets[3]).toBeGreaterThanOrEqual(0);
      for (const cid of [1, 2]) expect((await replyTo(victim, cid)).errors).toBeUndefined();

      const records = await consumeAll(file.brokers, topic, { expect: 22 });
      expect(records.length).toBe(22);
      expect(records.map((r) => Number(r.headers.a)).sort((x, y) => x - y)).toEqual([...Array.from({ length: 20 }, (_, i) => i), 100, 101]);
      victim.close();
      attacker.close();
    });
  }, 180_000);

  test("finding 2: a map of 65,536 keys, or an event of more than MAX_EVENT_VALUES values, is refused before it is acked", async () => {
    const topic = freshTopic("hostile-keys");
    const wide = encode(codec, { cid: 1, t: 10, topic, event: { type: "wide", data: manyKeys(65_536, 0) } });
    // Under MAX_MAP_KEYS per map, but 70,000 values in one event: that event only.
    const many = encode(codec, { cid: 2, t: 11, topic, events: [{ type: "ok" }, { type: "many values", data: new Array(70_000).fill(0) }, { type: "ok" }] });
    await underControl(file.gw, `65,536-key data (${codec})`, async () => {
      const s = await RawSocket.connect(file.gw.wsUrl, codec);
      s.send(wide);
      expect(await replyTo(s, 1)).toMatchObject({ t: 21, cid: 1, code: "EVENT_TOO_LARGE" });
      s.send(many);
      const batch = await replyTo(s, 2);
      if (codec === "msgpack") {
        // Found by the pre-scan before anything is decoded, so the request is refused whole.
        expect(batch).toMatchObject({ t: 21, cid: 2, code: "EVENT_TOO_LARGE" });
      } else {
        expect(batch.errors.map((e: any) => [e.i, e.code])).toEqual([[1, "EVENT_TOO_LARGE"]]);
        expect(batch.offsets.filter((o: number) => o >= 0).length).toBe(2);
      }
      s.close();
    });
  }, 120_000);
});

/** Header names of every record of `topic`, as kcat prints them (no parsing into an object). */
async function headerNames(topic: string, expect: number): Promise<string[][]> {
  await consumeAll(file.brokers, topic, { expect });
  const proc = Bun.spawn(["kcat", "-C", "-b", file.brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%h\n"], { stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(",").map((kv) => kv.slice(0, kv.indexOf("="))));
}

test("finding 3: header and data keys named __proto__, constructor, toString… are kept exactly, over JSON, msgpack and HTTP", async () => {
  const topic = freshTopic("hostile-proto");
  const names = ["__proto__", "constructor", "toString", "valueOf", "hasOwnProperty"];
  const text = `{"type":"proto","headers":{${names.map((n) => `"${n}":"v-${n}"`).join(",")}},"data":{"__proto__":{"x":1},"constructor":2}}`;
  await underControl(file.gw, "__proto__ keys", async () => {
    const j = await RawSocket.connect(file.gw.wsUrl, "json");
    j.send(`{"cid":1,"t":10,"topic":"${topic}","event":${text}}`);
    expect(await replyTo(j, 1)).toMatchObject({ t: 20, cid: 1 });
    // A __proto__ header is a header like any other: its value is checked too.
    j.send(`{"cid":2,"t":10,"topic":"${topic}","event":{"type":"x","headers":{"__proto__":5}}}`);
    expect(await replyTo(j, 2)).toMatchObject({ t: 21, cid: 2, code: "INVALID_EVENT" });
    j.close();

    const m = await RawSocket.connect(file.gw.wsUrl, "msgpack");
    m.send(publishMsgpack(3, topic, pack(JSON.parse(text))));
    expect(await replyTo(m, 3)).toMatchObject({ t: 20, cid: 3 });
    m.close();

    const res = await fetch(`${file.gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: text });
    expect(res.status).toBe(202);
  });
  const records = await headerNames(topic, 3);
  expect(records.length).toBe(3);
  for (const r of records) for (const n of names) expect(r).toContain(n);
  // The payload keeps its keys too, in the codec it came in.
  const values = await consumeAll(file.brokers, topic, { expect: 3 });
  const asMaps = new Unpackr({ useRecords: false, mapsAsObjects: false });
  const keysOf = (rec: (typeof values)[number]) =>
    rec.headers["content-type"] === "application/msgpack" ? [...(asMaps.unpack(rec.value!) as Map<string, unknown>).keys()] : Object.keys(JSON.parse(new TextDecoder().decode(rec.value!)));
  for (const rec of values) expect(keysOf(rec).sort()).toEqual(["__proto__", "constructor"]);
}, 120_000);

test("finding 4: an event more than TIME_SKEW_FUTURE ahead is refused TIME_SKEW, and every other client's event on its partition is acked", async () => {
  const topic = freshTopic("hostile-time");
  await ensureTopic(file.brokers, topic, 1);
  const future = (ms: number) => new Date(Date.now() + ms).toISOString();
  await underControl(file.gw, "future time", async () => {
    const victim = await RawSocket.connect(file.gw.wsUrl, "json");
    const attacker = await RawSocket.connect(file.gw.wsUrl, "json");
    const rounds = 10;
    for (let r = 1; r <= rounds; r++) {
      victim.send(json({ t: 11, cid: r, topic, events: Array.from({ length: 20 }, (_, i) => ({ type: "innocent", key: "same", data: { r, i } })) }));
      attacker.send(json({ t: 10, cid: r, topic, event: { type: "from the future", key: "same", time: future(2 * 3_600_000) } }));
    }
    for (let r = 1; r <= rounds; r++) {
      expect(await replyTo(attacker, r)).toMatchObject({ t: 21, cid: r, code: "TIME_SKEW", num: 1019, retriable: false });
      const b = await replyTo(victim, r);
      expect(b.errors).toBeUndefined();
      expect(b.offsets.every((o: number) => o >= 0)).toBe(true);
    }
    // Per event: in one batch only the bad one fails. Within the skew, and msgpack timestamps, too.
    attacker.send(json({ t: 11, cid: 100, topic, events: [{ type: "ok" }, { type: "late", time: future(10 * 60_000) }, { type: "soon", time: future(60_000) }, { type: "1969", time: "1969-12-31T23:59:59Z" }] }));
    const b = await replyTo(attacker, 100);
    expect(b.errors.map((e: any) => [e.i, e.code])).toEqual([
      [1, "TIME_SKEW"],
      [3, "TIME_SKEW"],
    ]);
    const m = await RawSocket.connect(file.gw.wsUrl, "msgpack");
    m.send(pack({ cid: 1, t: 10, topic, event: { type: "msgpack future", time: new Date(Date.now() + 86_400_000) } }));
    expect(await replyTo(m, 1)).toMatchObject({ t: 21, code: "TIME_SKEW" });
    for (const s of [victim, attacker, m]) s.close();
  });
  expect((await consumeAll(file.brokers, topic, { expect: 202 })).length).toBe(202);
}, 180_000);

describe("finding 8: only the data the protocol allows is forwarded", () => {
  const typeMap = (typeBytes: number[]) => concat([0x81], pack("type"), typeBytes);
  const withData = (dataBytes: number[]) => concat([0x82], pack("type"), pack("x"), pack("data"), dataBytes);
  const badUtf8 = [0xa3, 0x61, 0xff, 0x62]; // "a", 0xff, "b"
  const cases: Array<{ name: string; event: Uint8Array }> = [
    { name: "a malformed timestamp (d4 ff ff)", event: withData([0xd4, 0xff, 0xff]) },
    { name: "a timestamp past what a Date holds", event: withData([0xc7, 12, 0xff, 0, 0, 0, 0, 0, 0, 8, 1, 0, 0, 0, 0]) },
    ...[0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0x01].map((t) => ({ name: `ext type 0x${t.toString(16)}`, event: withData([0xd5, t, 0x91, 0xc0]) })),
    { name: "msgpackr records (0x72)", event: concat([0x82], pack("type"), pack("x"), pack("data"), new Packr().pack({ a: 1, b: [1, 2] })) },
    { name: "a Uint8Array as a typed-array ext (0x74)", event: withData([...new Packr({ moreTypes: true } as never).pack(new Float32Array([1, 2]))]) },
    { name: "invalid UTF-8 in type", event: typeMap(badUtf8) },
    ...["key", "id", "source", "subject"].map((f) => ({ name: `invalid UTF-8 in ${f}`, event: concat([0x82], pack("type"), pack("x"), pack(f), badUtf8) })),
    { name: "invalid UTF-8 in data", event: withData(badUtf8) },
    { name: "invalid UTF-8 in a data key", event: withData([0x81, ...badUtf8, 0x01]) },
    { name: "a surrogate encoded in UTF-8 (CESU)", event: typeMap([0xa3, 0xed, 0xa0, 0x80]) },
    { name: "a map key that is a map", event: withData([0x81, 0x80, 0x01]) },
  ];

  test("msgpack: every case is refused BAD_FRAME with its cid; the socket goes on publishing", async () => {
    const topic = freshTopic("hostile-data");
    await underControl(file.gw, "invalid msgpack data", async () => {
      const s = await RawSocket.connect(file.gw.wsUrl, "msgpack");
      cases.forEach((c, i) => s.send(publishMsgpack(i + 1, topic, c.event)));
      await s.waitFor((r) => typeof r.frame.cid === "number", cases.length);
      expect(cases.map((c, i) => [c.name, replyCode(s, i + 1)])).toEqual(cases.map((c) => [c.name, "BAD_FRAME"]));
      s.send(publishMsgpack(1000, topic, typeMap([...pack("still fine")])));
      expect(await replyTo(s, 1000)).toMatchObject({ t: 20 });
      s.close();
    });
    // Nothing but the last event reached Kafka.
    expect((await consumeAll(file.brokers, topic, { expect: 1 })).map((r) => r.headers.ce_type)).toEqual(["still fine"]);
  }, 120_000);

  test("JSON: an unpaired surrogate anywhere is refused BAD_FRAME, over the socket and HTTP", async () => {
    const topic = freshTopic("hostile-surrogate");
    const events = ['{"type":"\\ud800"}', '{"type":"x","key":"a\\udc00"}', '{"type":"x","subject":"\\ud83d"}', '{"type":"x","headers":{"h":"\\udfff"}}', '{"type":"x","data":{"\\ud800":1}}', '{"type":"x","data":["\\ud800"]}'];
    await underControl(file.gw, "lone surrogates", async () => {
      const s = await RawSocket.connect(file.gw.wsUrl, "json");
      events.forEach((e, i) => s.send(`{"cid":${i + 1},"t":10,"topic":"${topic}","event":${e}}`));
      await s.waitFor((r) => typeof r.frame.cid === "number", events.length);
      expect(events.map((e, i) => [e, replyCode(s, i + 1)])).toEqual(events.map((e) => [e, "BAD_FRAME"]));
      s.close();
      for (const e of events) {
        const res = await fetch(`${file.gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: e });
        expect([e, res.status, ((await res.json()) as any).error?.code]).toEqual([e, 400, "BAD_FRAME"]);
      }
    });
    // A paired surrogate (an emoji) is text like any other.
    const res = await fetch(`${file.gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"\\ud83d\\ude00"}' });
    expect(res.status).toBe(202);
    expect((await consumeAll(file.brokers, topic, { expect: 1 })).map((r) => r.headers.ce_type)).toEqual(["😀"]);
  }, 120_000);
});

function replyCode(s: RawSocket, cid: number): string | undefined {
  const replies = s.withCid(cid);
  return replies.length === 1 ? (replies[0]!.frame.code ?? "ack") : `${replies.length} replies`;
}
