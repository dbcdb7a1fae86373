import { afterAll, beforeAll, expect, test } from "bun:test";
import { unpack } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { type GatewayClient, connect } from "../../src/client";

let brokers: string;
let gw: GatewayProcess;
const clients: GatewayClient[] = [];
const client = async (codec?: "json" | "msgpack") => {
  const c = await connect({ url: gw.wsUrl, codec });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2" });
}, 60_000);
afterAll(async () => {
  for (const c of clients) c.close();
  expect(await gw.stop()).toBe(0);
}, 60_000);

test("10,000 events in batches: every one acked with an offset, and an independent consumer reads exactly those back", async () => {
  const topic = freshTopic("ingest");
  await ensureTopic(brokers, topic, 3);
  const c = await client();
  const N = 10_000;
  const keys = 40;
  const sent = new Map<string, { key: string; seq: number }>();
  const acked = new Map<string, { partition: number; offset: number }>();
  const replies = [];
  for (let b = 0; b < N / 100; b++) {
    const events = Array.from({ length: 100 }, (_, j) => {
      const seq = b * 100 + j;
      const key = `key-${seq % keys}`;
      const id = `evt-${seq}`;
      sent.set(id, { key, seq });
      return { id, type: "test.ingest", source: "/test", key, data: { seq, key, note: "ü€" } };
    });
    replies.push(c.publishBatch(events, { topic }));
  }
  for (const settled of await Promise.all(replies)) {
    for (const r of settled) {
      expect(r.status).toBe("fulfilled");
      if (r.status !== "fulfilled") continue;
      expect(r.value.partition).toBeGreaterThanOrEqual(0);
      expect(r.value.offset).toBeGreaterThanOrEqual(0);
      acked.set(r.value.id, { partition: r.value.partition, offset: r.value.offset });
    }
  }
  expect(acked.size).toBe(N);
  c.close();

  const records = await consumeAll(brokers, topic, { expect: N });
  expect(records).toHaveLength(N);
  const seen = new Set<string>();
  for (const rec of records) {
    const id = rec.headers.ce_id!;
    expect(seen.has(id)).toBe(false);
    seen.add(id);
    const want = sent.get(id)!;
    expect(want).toBeDefined();
    // Landed exactly where the ack said, with the same key and payload.
    expect(acked.get(id)).toEqual({ partition: rec.partition, offset: rec.offset });
    expect(Buffer.from(rec.key!).toString()).toBe(want.key);
    expect(unpack(rec.value!)).toEqual({ seq: want.seq, key: want.key, note: "ü€" });
    expect(rec.headers).toMatchObject({ ce_specversion: "1.0", ce_type: "test.ingest", ce_source: "/test", "content-type": "application/msgpack" });
  }
});

test("per-key order holds inside a partition, across many concurrent frames and connections", async () => {
  const topic = freshTopic("order");
  await ensureTopic(brokers, topic, 3);
  const pair = await Promise.all([1, 2].map(() => client()));
  const replies: Array<Promise<unknown>> = [];
  // Each connection owns its keys; publishes go out back to back without waiting for acks (the
  // SDK packs them into frames as they come).
  for (let round = 0; round < 200; round++) {
    for (const [c, cl] of pair.entries()) {
      const events = Array.from({ length: 10 }, (_, k) => ({ type: "test.order", key: `c${c}-k${k}`, data: { round } }));
      for (const e of events) replies.push(cl.publish(e, { topic }));
    }
    // A single publish behind the batch of its round keeps its place too.
    replies.push(pair[0]!.publish({ type: "test.order", key: "c0-k0", data: { round, single: true } }, { topic }));
  }
  await Promise.all(replies); // any refusal rejects
  pair.forEach((c) => c.close());

  const records = await consumeAll(brokers, topic, { expect: 200 * 21 });
  const byKey = new Map<string, Array<{ partition: number; offset: number; round: number; single: boolean }>>();
  for (const rec of records) {
    const key = Buffer.from(rec.key!).toString();
    const data = unpack(rec.value!) as { round: number; single?: boolean };
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key)!.push({ partition: rec.partition, offset: rec.offset, round: data.round, single: data.single ?? false });
  }
  expect(byKey.size).toBe(20);
  for (const [key, recs] of byKey) {
    expect(new Set(recs.map((r) => r.partition)).size).toBe(1);
    recs.sort((a, b) => a.offset - b.offset);
    // Sent order per key: round by round, and for c0-k0 the batch event before the single one.
    const order = recs.map((r) => r.round * 2 + (r.single ? 1 : 0));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(recs).toHaveLength(key === "c0-k0" ? 400 : 200);
  }
});

test("JSON text frames and byte payloads land as-is, with CloudEvents headers", async () => {
  const topic = freshTopic("json");
  const json = await client("json");
  const ack = await json.publish({ type: "test.json", subject: "s-1", key: "k", data: { a: [1, 2] }, headers: { trace: "abc" } }, { topic });
  expect(ack).toMatchObject({ topic });
  const bin = await client();
  const raw = new Uint8Array([0, 1, 2, 255, 10, 13]);
  const ack2 = await bin.publish({ type: "test.bytes", data: raw, datacontenttype: "application/x-raw" }, { topic });
  expect(ack2).toMatchObject({ topic });
  json.close();
  bin.close();
  const recs = await consumeAll(brokers, topic, { expect: 2 });
  const byType = Object.fromEntries(recs.map((r) => [r.headers.ce_type, r]));
  expect(JSON.parse(Buffer.from(byType["test.json"]!.value!).toString())).toEqual({ a: [1, 2] });
  expect(byType["test.json"]!.headers).toMatchObject({ ce_subject: "s-1", trace: "abc", "content-type": "application/json", ce_id: ack.id });
  expect([...byType["test.bytes"]!.value!]).toEqual([...raw]);
  expect(byType["test.bytes"]!.headers["content-type"]).toBe("application/x-raw");
});
