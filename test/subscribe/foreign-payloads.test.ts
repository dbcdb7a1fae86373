import { expect, test } from "bun:test";
import { withControl } from "../kafka/harm";
import { freshTopic, kafkaGatewayForFile, writeRawRecords } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { rawProduce } from "../support/raw-producer";
import { GatewayClient, replayedEntries } from "../support/ws-client";

/**
 * Payloads another producer wrote that are valid as their content type says, but that the gateway
 * cannot carry to subscribers as written, or only at a cost that holds up every other client. Each
 * goes as its stored bytes, `degraded: "data"` with the reason (docs/protocol.md, "Events that cannot
 * be encoded"), and the records around it whole (hostile tester):
 * - JSON `{"s":"\ud800"}`: an unpaired surrogate went into msgpack frames as the bytes ED A0 80,
 *   which is not UTF-8: a strict decoder refuses the whole event_batch.
 * - JSON `1e400` in text with a line break: written out again, it became `null`.
 * - 70,000 headers: every header was decoded, and the envelope built and encoded with all of them,
 *   three times over, before the degraded form kept 1,000 (1.3 s).
 * - 900,000 zeros as one msgpack array (900 KB, under Kafka's 1 MB), and 200,000 as a JSON array:
 *   decoding and encoding each was one piece of 0.3-1.4 s that no delivery turn can cut, and every
 *   other client of the gateway waited it out.
 */
const file = kafkaGatewayForFile({ KAFKA_WORKERS: "1" });

const b64 = (b: Uint8Array | string) => Buffer.from(b).toString("base64");
const zerosMsgpack = (() => {
  const b = new Uint8Array(5 + 900_000);
  b[0] = 0xdd; // array 32
  new DataView(b.buffer).setUint32(1, 900_000);
  return b;
})();
const zerosJson = `[${new Array(200_000).fill(0).join(",")}]`;
const json = (text: string) => ({ value: b64(text), headers: [["ce_type", "foreign"], ["content-type", "application/json"]] });
const SPEC = [
  json('{"s":"\\ud800"}'),
  json('{"f":\n1e400}'),
  { value: b64(zerosMsgpack), headers: [["ce_type", "foreign"], ["content-type", "application/msgpack"]] },
  json(zerosJson),
  json('{"ok":\n1}'),
  { ...json("{}"), manyHeaders: 70_000 },
];

test("payloads no codec carries as written, or too large to decode, go as their bytes, degraded with the reason; other clients are not held up", async () => {
  const topic = freshTopic("foreign-payloads");
  await ensureTopic(file.brokers, topic, 1);
  // One event at a time, one in flight: the control's every ack waits out whatever holds the gateway.
  await withControl(
    file.gw,
    `${topic}-control`,
    async () => {
      await writeRawRecords(file.brokers, topic, SPEC);
      for (const codec of ["msgpack", "json", "msgpack", "json"] as const) {
        const entries = await replayedEntries(file.gw.wsUrl, codec, topic, SPEC.length);
        expect(entries.map((e) => e.offset)).toEqual([0, 1, 2, 3, 4, 5]);
        const stored = SPEC.map((s) => Buffer.from(s.value, "base64"));
        for (let i = 0; i < 4; i++) {
          const e = entries[i]!;
          expect(e.degraded).toBe("data");
          expect(typeof e.reason).toBe("string");
          const bytes = codec === "msgpack" ? new Uint8Array(e.event.data) : Buffer.from(e.event.data_base64, "base64");
          expect(Buffer.from(bytes).equals(stored[i]!)).toBe(true);
        }
        expect(entries[0]!.reason).toContain("surrogate");
        expect(entries[1]!.reason).toContain("double");
        expect(entries[2]!.reason).toContain("MAX_EVENT_VALUES");
        expect(entries[3]!.reason).toContain("MAX_EVENT_VALUES");
        expect(entries[4]!.degraded).toBeUndefined();
        expect(entries[4]!.event.data).toEqual({ ok: 1 });
        // 70,000 headers: the first 1,000 (MAX_HEADER_NAMES) are kept and nothing more is built.
        expect(entries[5]!.degraded).toBe("headers");
        expect(Object.keys(entries[5]!.event.headers)).toHaveLength(1000);
      }
    },
    { batch: 1, maxInflight: 1, pauseMs: 10 },
  );
}, 120_000);

test("msgpack payloads holding NaN or ±Infinity go as their bytes, degraded with the reason, in both codecs (JSON would write null)", async () => {
  const topic = freshTopic("foreign-nonfinite");
  await ensureTopic(file.brokers, topic, 1);
  const f64 = (v: number) => {
    const b = new Uint8Array(9);
    b[0] = 0xcb;
    new DataView(b.buffer).setFloat64(1, v);
    return b;
  };
  const f32 = (v: number) => {
    const b = new Uint8Array(5);
    b[0] = 0xca;
    new DataView(b.buffer).setFloat32(1, v);
    return b;
  };
  // {"f": <float>} as a one-entry fixmap.
  const payload = (float: Uint8Array) => Buffer.concat([Buffer.from([0x81, 0xa1, 0x66]), float]);
  const values = [payload(f64(Number.NaN)), payload(f32(Number.POSITIVE_INFINITY)), payload(f64(Number.NEGATIVE_INFINITY)), payload(f64(1.5))];
  await rawProduce(file.brokers, topic, values.map((value) => ({ partition: 0, value, headers: [["ce_type", "foreign"], ["content-type", "application/msgpack"]] })));
  for (const codec of ["msgpack", "json"] as const) {
    const entries = await replayedEntries(file.gw.wsUrl, codec, topic, values.length);
    for (let i = 0; i < 3; i++) {
      const e = entries[i]!;
      expect([e.degraded, String(e.reason).includes("NaN")]).toEqual(["data", true]);
      const bytes = codec === "msgpack" ? new Uint8Array(e.event.data) : Buffer.from(e.event.data_base64, "base64");
      expect(Buffer.from(bytes).equals(values[i]!)).toBe(true);
    }
    expect(entries[3]!.degraded).toBeUndefined();
    expect(entries[3]!.event.data).toEqual({ f: 1.5 });
  }
}, 60_000);

test("JSON and msgpack are read by media type, however another producer spells it: parameters, case, +json, x-msgpack; JSON in another charset goes as bytes", async () => {
  const topic = freshTopic("foreign-media-types");
  await ensureTopic(file.brokers, topic, 1);
  const jsonBytes = Buffer.from('{"n":1}');
  const msgpackBytes = Buffer.from([0x81, 0xa1, 0x6e, 0x01]); // {"n": 1}
  const types = ["application/json; charset=utf-8", "Application/JSON", "application/vnd.orders+json", "application/json;charset=\"UTF-8\"", "application/x-msgpack", "application/json; charset=latin1", "application/json-seq", "application/json; charset=utf-8; charset=latin1"];
  await rawProduce(file.brokers, topic, types.map((t) => ({ partition: 0, value: t.includes("msgpack") ? msgpackBytes : jsonBytes, headers: [["ce_type", "foreign"], ["content-type", t]] })));
  for (const codec of ["msgpack", "json"] as const) {
    const entries = await replayedEntries(file.gw.wsUrl, codec, topic, types.length);
    expect(entries.map((e) => e.event.data ?? null).slice(0, 5)).toEqual(Array(5).fill({ n: 1 }));
    expect(entries.map((e) => e.event.datacontenttype)).toEqual(types);
    // Not JSON as the gateway reads it: the bytes, as stored.
    for (const e of entries.slice(5)) {
      const bytes = codec === "msgpack" ? new Uint8Array(e.event.data) : Buffer.from(e.event.data_base64, "base64");
      expect(Buffer.from(bytes).equals(jsonBytes)).toBe(true);
    }
  }
  // And `where` sees the decoded data of each of the first five.
  const client = await GatewayClient.connect(file.gw.wsUrl, "json");
  const got: number[] = [];
  const reply = await client.subscribe({ sub: "w", topic, start: "earliest", filter: { where: "data.n == 1" } }, (f) => {
    if (f.t === 24) got.push(f.offset as number);
    else if (f.t === 25) got.push(...(f.events as Array<{ offset: number }>).map((e) => e.offset));
  });
  expect(reply.t).toBe(23);
  const deadline = Date.now() + 20_000;
  while (got.length < 5 && Date.now() < deadline) await Bun.sleep(50);
  await Bun.sleep(300);
  client.close();
  expect(got).toEqual([0, 1, 2, 3, 4]);
}, 60_000);

test("a JSON payload holding an integer of more digits than the gateway reads goes as its bytes, degraded with the reason, without holding up other clients", async () => {
  const topic = freshTopic("foreign-long-integer");
  await ensureTopic(file.brokers, topic, 1);
  // 900,000 digits: making a BigInt of it and writing it out again took 0.15-0.4 s, each time.
  const long = Buffer.from(`{"n":${"9".repeat(900_000)}}`);
  const edge = `{"n":${"9".repeat(1000)}}`;
  const values = [long, long, long, Buffer.from(edge)];
  await withControl(
    file.gw,
    `${topic}-control`,
    async () => {
      await rawProduce(file.brokers, topic, values.map((value) => ({ partition: 0, value, headers: [["ce_type", "foreign"], ["content-type", "application/json"]] })));
      for (const codec of ["msgpack", "json", "msgpack"] as const) {
        const entries = await replayedEntries(file.gw.wsUrl, codec, topic, values.length, 60_000);
        expect(entries.map((e) => e.offset)).toEqual([0, 1, 2, 3]);
        for (const e of entries.slice(0, 3)) {
          expect([e.degraded, String(e.reason)]).toEqual(["data", "an integer of 900000 digits; at most 1000"]);
          const bytes = codec === "msgpack" ? new Uint8Array(e.event.data) : Buffer.from(e.event.data_base64, "base64");
          expect(Buffer.from(bytes).equals(long)).toBe(true);
        }
        // At the bound: read, and exact (a msgpack subscriber gets its digits as a string; this
        // test's JSON client reads numbers as doubles).
        expect(entries[3]!.degraded).toBeUndefined();
        if (codec === "msgpack") expect(entries[3]!.event.data.n).toBe("9".repeat(1000));
      }
    },
    { batch: 1, maxInflight: 1, pauseMs: 10 },
  );
}, 180_000);
