import { afterAll, beforeAll, expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers, writeRawRecords } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { type Codec, type DeliveredEvent, type GatewayClient, connect } from "../../src/client";
import { LivenessWatch, Pump, health, oneAttemptClient, within } from "./harm";

/**
 * Records written into Kafka by other producers, in shapes this gateway never writes: header names
 * that are Object.prototype members, 70,000 headers, a 100,000-character header name, payloads that
 * decode to 70,000-key maps or nest 100,000 deep, payloads that are not what their content type
 * says. Every subscriber, live or replaying, in either codec, gets every one of them (whole, or in
 * the documented degraded form), the replay goes live, no worker restarts, and a control publisher
 * on the same gateway gets all its answers throughout.
 */
let brokers: string;
let gw: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  // The Kafka binding turns a 70,000-header record into 70,000 objects on the worker's thread, once
  // per reader: a few hundred ms, but seconds on a loaded test machine, where the default 3 s ping
  // deadline would call the worker hung. A worker that dies still shows as a restart.
  // Several of these records are over a megabyte as JSON: with the default 1 MiB subscriber buffer, a
  // live subscriber slowed by a loaded machine has one dropped by drop-oldest (offset 1 went missing
  // in a full run), which is the slow-consumer policy (slow.test.ts), not what this file checks.
  gw = await startGateway({ KAFKA_WORKERS: "1", KAFKA_BROKERS: brokers, KAFKA_WORKER_PING_TIMEOUT_MS: "20000", SUBSCRIBER_BUFFER_BYTES: String(256 * 1024 * 1024) });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

const json = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64");
const bigMap = Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i]));
const deepJson = "[".repeat(100_000) + "]".repeat(100_000);
// 100,000 nested one-element msgpack arrays (0x91) around an empty one (0x90).
const deepMsgpack = Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0x90])]);
const mp = new Packr({ useRecords: false, variableMapSize: true });

const ce = (type: string, contentType: string) => [
  ["ce_type", type],
  ["ce_id", `${type}-id`],
  ["content-type", contentType],
];
const protoNames = ["__proto__", "constructor", "toString", "valueOf", "hasOwnProperty"];
const spec = [
  { key: "p", value: json({ a: 1 }), headers: [...ce("hostile.proto", "application/json"), ...protoNames.map((n) => [n, `${n}-value`])] },
  { key: "h", value: json({ a: 2 }), headers: ce("hostile.headers", "application/json"), manyHeaders: 70_000 },
  { key: "n", value: json({ a: 3 }), headers: [...ce("hostile.longname", "application/json"), ["x".repeat(100_000), "long"]] },
  { key: "m", value: json(bigMap), headers: ce("hostile.map", "application/json") },
  { key: "mm", value: Buffer.from(mp.pack(bigMap)).toString("base64"), headers: ce("hostile.msgpackmap", "application/msgpack") },
  { key: "d", value: Buffer.from(deepJson).toString("base64"), headers: ce("hostile.deep", "application/json") },
  { key: "dm", value: deepMsgpack.toString("base64"), headers: ce("hostile.deepmsgpack", "application/msgpack") },
  { key: "b", value: Buffer.from([0xc1, 0xff, 0x00]).toString("base64"), headers: ce("hostile.badmsgpack", "application/msgpack") },
  { key: "j", value: Buffer.from("{not json").toString("base64"), headers: ce("hostile.badjson", "application/json") },
  { key: "after", value: json({ ok: true }), headers: ce("hostile.after", "application/json") },
];


/** A delivered event, read field by field as the checks below do. */
type Frame = Omit<DeliveredEvent, "event"> & { event: Record<string, any> };

interface Seen {
  entries: Map<number, Frame>;
  live: boolean;
  /** Notices other than live (lagged, ended): none is expected, and one explains a missing record. */
  notices: string[];
}

async function subscriber(codec: Codec, topic: string, start: "latest" | "earliest", name: string): Promise<{ client: GatewayClient; seen: Seen }> {
  const client = await connect({ url: gw.wsUrl, codec });
  const seen: Seen = { entries: new Map(), live: false, notices: [] };
  // A refusal rejects with its code and message.
  const sub = await client.subscribe(topic, { start }).catch((e) => {
    throw new Error(`${name}: ${(e as Error).message}`);
  });
  sub.onEvent((e) => seen.entries.set(e.offset, e as unknown as Frame));
  sub.onNotice((n) => (n.kind === "live" ? (seen.live = true) : seen.notices.push(JSON.stringify(n))));
  if (sub.live) seen.live = true;
  return { client, seen };
}

const ownHeader = (h: Record<string, unknown>, name: string) => (Object.hasOwn(h, name) ? Object.getOwnPropertyDescriptor(h, name)!.value : undefined);

/** What each hostile record must look like for a subscriber of `codec`. */
function check(codec: Codec, byType: Map<string, Frame>): void {
  const proto = byType.get("hostile.proto")!;
  expect(proto.degraded).toBeUndefined();
  for (const n of protoNames) {
    const got = ownHeader(proto.event.headers, n);
    expect(got).toBe(`${n}-value`);
  }
  const many = byType.get("hostile.headers")!;
  const manyCount = Object.keys(many.event.headers).length;
  if (many.degraded === undefined) expect(manyCount).toBe(70_000);
  else {
    expect(many.degraded).toBe("headers");
    expect(manyCount).toBe(1000);
  }
  expect(many.event.headers.h0).toBe("v0");
  expect(ownHeader(byType.get("hostile.longname")!.event.headers, "x".repeat(100_000))).toBe("long");
  for (const type of ["hostile.map", "hostile.msgpackmap"]) {
    const e = byType.get(type)!;
    if (e.degraded === undefined) expect(Object.keys(e.event.data).length).toBe(70_000);
    else {
      expect(e.degraded).toBe("data");
      expect(typeof e.reason).toBe("string");
      const bytes = codec === "json" ? Buffer.from(e.event.data_base64, "base64") : Buffer.from(e.event.data);
      expect(bytes.equals(Buffer.from(spec.find((s) => s.headers[0]![1] === type)!.value, "base64"))).toBe(true);
    }
  }
  // Deep and broken payloads: whatever form, they are there, with their content type.
  for (const type of ["hostile.deep", "hostile.deepmsgpack", "hostile.badmsgpack", "hostile.badjson"]) {
    const e = byType.get(type)!;
    expect(e.event.type).toBe(type);
    expect(e.event.datacontenttype).toBeString();
  }
  expect(byType.get("hostile.after")!.event.data).toEqual({ ok: true });
}

test("records of any shape from other producers reach live and replaying subscribers of both codecs, whole or degraded, and nothing stalls or restarts", async () => {
  const topic = freshTopic("hostile");
  const control = freshTopic("hostile-control");
  await ensureTopic(brokers, topic, 1);
  await ensureTopic(brokers, control, 2);
  const restartsBefore = (await health(gw.url)).log.workers.map((w: { restarts: number }) => w.restarts);
  // Answers, however slowly the loaded test machine lets them come: a gateway that died or wedged gives none.
  const watch = new LivenessWatch(gw.url, 150, 15_000);
  const controlClient = await oneAttemptClient(gw.wsUrl);
  const pump = new Pump(controlClient, [control], { batch: 20, maxInflight: 4, pauseMs: 20 }).start();

  const live = await Promise.all((["msgpack", "json"] as const).map((c) => subscriber(c, topic, "latest", `live-${c}`)));
  const offsets = await writeRawRecords(brokers, topic, spec);
  // Replays start once everything is written, so they have all of it to catch up on.
  const replays = await Promise.all((["msgpack", "json"] as const).map((c) => subscriber(c, topic, "earliest", `replay-${c}`)));

  const all = [...live, ...replays];
  const waited = await within(60_000, () => all.every((s) => s.seen.live && offsets.every((o) => s.seen.entries.has(o))));
  await pump.stop(30_000);
  await watch.stop();
  for (const s of all) {
    expect({ live: s.seen.live, got: offsets.filter((o) => s.seen.entries.has(o)), notices: s.seen.notices }).toEqual({ live: true, got: offsets, notices: [] });
  }
  expect(waited).toBeGreaterThanOrEqual(0);
  for (const [i, s] of all.entries()) {
    const byType = new Map([...s.seen.entries.values()].map((e) => [e.event.type as string, e]));
    check(i % 2 === 0 ? "msgpack" : "json", byType);
  }
  expect(pump.answered).toBe(pump.sent);
  expect(pump.nacked).toEqual([]);
  expect(watch.failures).toEqual([]);
  const after = await health(gw.url);
  expect(after.log.workers.map((w: { restarts: number }) => w.restarts)).toEqual(restartsBefore);
  for (const s of [...all.map((x) => x.client), controlClient]) s.close();
}, 180_000);
