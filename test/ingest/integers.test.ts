import { afterAll, beforeAll, expect, test } from "bun:test";
import { Unpackr } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { RawSocket, pyPack } from "./wire";

/**
 * Integers arrive as non-JS clients write them (msgpack int64/uint64 for anything past 32 bits, as
 * Python's msgpack does; JSON digits of any length) and must come out exactly: in the Kafka record
 * (read back with kcat), to subscribers in both codecs, and in `where` comparisons.
 */
let brokers: string;
let gw: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" });
}, 60_000);
afterAll(async () => {
  expect(await gw.stop()).toBe(0);
}, 60_000);

const EPOCH_MS = 1_764_400_000_123n;
const positive = [0n, 2n ** 31n, 2n ** 32n, EPOCH_MS, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 64n - 1n];
const negative = [-(2n ** 31n), -(2n ** 31n) - 1n, -(2n ** 32n), -EPOCH_MS, -(2n ** 53n - 1n), -(2n ** 53n), -(2n ** 53n + 1n), -(2n ** 63n - 1n), -(2n ** 63n)];
const table = [...positive, ...negative];

// 64-bit integers as BigInt, so the test sees whether the record holds an integer or a float.
const exact = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" });
const asBig = (v: unknown) => (typeof v === "bigint" ? v : typeof v === "number" && Number.isInteger(v) ? BigInt(v) : v);
/** The digits of `"n":…` in a JSON text, as sent: JSON.parse would round them. */
const jsonDigits = (text: string) => /"n":(-?[0-9]+)[,}]/.exec(text)?.[1];

test("every integer msgpack can carry, and any JSON integer, is stored, delivered and filtered exactly", async () => {
  const topic = freshTopic("ints");
  await ensureTopic(brokers, topic, 1);

  // One subscription per value, in each codec, from "latest": each must get exactly its two events.
  const subs: Record<"msgpack" | "json", RawSocket> = { msgpack: await RawSocket.connect(gw.wsUrl, "msgpack"), json: await RawSocket.connect(gw.wsUrl, "json") };
  for (const [codec, s] of Object.entries(subs)) {
    table.forEach((n, i) => {
      const frame = { t: 12, cid: i + 1, sub: `n${i}`, topic, filter: { where: `data.n == ${n}` } };
      s.send(codec === "json" ? JSON.stringify(frame) : pyPack(frame));
    });
    await s.waitFor((r) => r.frame.t === 23, table.length);
    expect(s.received.filter((r) => r.frame.t === 21).map((r) => r.frame)).toEqual([]);
  }

  const m = await RawSocket.connect(gw.wsUrl, "msgpack");
  const j = await RawSocket.connect(gw.wsUrl, "json");
  table.forEach((n, i) => {
    m.send(pyPack({ t: 10, cid: i + 1, topic, event: { type: "int", id: `m${i}`, data: { n } } }));
    j.send(`{"t":10,"cid":${i + 1},"topic":"${topic}","event":{"type":"int","id":"j${i}","data":{"n":${n}}}}`);
  });
  const acks = [...(await m.waitFor((r) => r.frame.cid > 0, table.length)), ...(await j.waitFor((r) => r.frame.cid > 0, table.length))];
  expect(acks.filter((a) => a.frame.t !== 20).map((a) => a.frame)).toEqual([]);

  // In Kafka: msgpack values hold the integer as an integer (int64/uint64 past 32 bits), JSON values its digits.
  const records = await consumeAll(brokers, topic, { expect: 2 * table.length });
  const stored = new Map(records.map((r) => [r.headers.ce_id!, r]));
  table.forEach((n, i) => {
    const mv = exact.unpack(stored.get(`m${i}`)!.value!) as { n: unknown };
    expect({ i, n: asBig(mv.n) }).toEqual({ i, n });
    if (n >= 2n ** 32n || n < -(2n ** 31n)) expect({ i, type: typeof mv.n }).toEqual({ i, type: "bigint" });
    expect({ i, n: jsonDigits(Buffer.from(stored.get(`j${i}`)!.value!).toString()) }).toEqual({ i, n: String(n) });
  });

  // Delivered: each subscription exactly its two events, the integer exact in the subscriber's codec.
  for (const [codec, s] of Object.entries(subs)) {
    const events = await s.waitFor((r) => r.frame.t === 24 || r.frame.t === 25, 1, 30_000).then(async () => {
      const deadline = Date.now() + 30_000;
      const count = () => s.received.reduce((k, r) => k + (r.frame.t === 24 ? 1 : r.frame.t === 25 ? r.frame.events.length : 0), 0);
      while (count() < 2 * table.length && Date.now() < deadline) await Bun.sleep(50);
      await Bun.sleep(500); // and no more
      return s.received.filter((r) => r.frame.t === 24 || r.frame.t === 25);
    });
    const bySub = new Map<string, unknown[]>();
    for (const r of events) {
      const list = r.frame.t === 24 ? [r.frame.event] : r.frame.events.map((e: { event: unknown }) => e.event);
      // JSON: the digits as sent in the frame text, which has one event per data.n here.
      const digits = typeof r.raw === "string" ? [...r.raw.matchAll(/"n":(-?[0-9]+)[,}]/g)].map((x) => BigInt(x[1]!)) : null;
      list.forEach((e: { data: { n: unknown } }, k: number) => {
        const got = bySub.get(r.frame.sub) ?? [];
        got.push(digits ? digits[k] : asBig(e.data.n));
        // msgpack: past 32 bits an integer is delivered as int64/uint64, never as a float.
        const v = e.data.n;
        if (!digits && typeof v === "number") expect({ v, int32: Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 32 }).toEqual({ v, int32: true });
        bySub.set(r.frame.sub, got);
      });
    }
    table.forEach((n, i) => expect({ codec, i, got: bySub.get(`n${i}`) }).toEqual({ codec, i, got: [n, n] }));
  }
  for (const s of [m, j, subs.msgpack, subs.json]) s.close();
}, 120_000);

test("start: {time: epoch ms} works when the client encodes the time as a uint64", async () => {
  const topic = freshTopic("ints-start");
  await ensureTopic(brokers, topic, 1);
  const p = await RawSocket.connect(gw.wsUrl, "json");
  const before = BigInt(Date.now() - 60_000);
  p.send(JSON.stringify({ t: 10, cid: 1, topic, event: { type: "x" } }));
  await p.waitFor((r) => r.frame.cid === 1);
  const s = await RawSocket.connect(gw.wsUrl, "msgpack");
  const frame = pyPack({ t: 12, cid: 2, sub: "s", topic, start: { time: before } });
  expect(frame.includes(0xcf)).toBe(true); // the time really is a uint64
  s.send(frame);
  const [reply] = await s.waitFor((r) => r.frame.cid === 2);
  expect(reply!.frame).toMatchObject({ t: 23, sub: "s" });
  await s.waitFor((r) => r.frame.t === 24 || r.frame.t === 25);
  p.close();
  s.close();
});

test("JSON over HTTP keeps integers past 2^53 exact", async () => {
  const topic = freshTopic("ints-http");
  const body = '{"type":"int","id":"h1","data":{"n":12345678901234567890,"m":-9223372036854775808,"f":1.5}}';
  const r = await fetch(`${gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body });
  expect(r.status).toBe(202);
  const [rec] = await consumeAll(brokers, topic, { expect: 1 });
  expect(Buffer.from(rec!.value!).toString()).toBe('{"n":12345678901234567890,"m":-9223372036854775808,"f":1.5}');
});
