import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll } from "../support/kafka-broker";

let brokers: string;
let gw: GatewayProcess;
const topic = freshTopic("http");

beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", MAX_FRAME_BYTES: "4096" });
}, 60_000);
afterAll(async () => {
  expect(await gw.stop()).toBe(0);
}, 60_000);

const post = (path: string, body: unknown, headers: Record<string, string> = { "content-type": "application/json" }) =>
  fetch(`${gw.url}${path}`, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });

test("POST /api/v1/events → 202 with id, partition and offset, and the event is in Kafka there", async () => {
  const r = await post(`/api/v1/events?topic=${topic}`, { id: "http-1", type: "http.one", key: "user-1", data: { n: 1 } });
  expect(r.status).toBe(202);
  const body: any = await r.json();
  expect(body).toMatchObject({ id: "http-1", topic, partition: expect.any(Number), offset: expect.any(Number) });
  const recs = await consumeAll(brokers, topic, { expect: 1 });
  const rec = recs.find((x) => x.headers.ce_id === "http-1")!;
  expect({ partition: rec.partition, offset: rec.offset }).toEqual({ partition: body.partition, offset: body.offset });
  expect(JSON.parse(Buffer.from(rec.value!).toString())).toEqual({ n: 1 });
});

test("POST /api/v1/events/batch → 202 when all land, 207 with per-event results when some are invalid, 400 when none are", async () => {
  const all = await post("/api/v1/events/batch", { topic, events: [{ type: "b.1" }, { type: "b.2", data_base64: "AAEC" }] });
  expect(all.status).toBe(202);
  expect(await all.json()).toMatchObject({ topic, published: 2, failed: 0 });

  const mixed = await post("/api/v1/events/batch", { topic, events: [{ type: "b.3" }, { typo: "b.4" }] });
  expect(mixed.status).toBe(207);
  const body: any = await mixed.json();
  expect(body.results[0]).toMatchObject({ index: 0, partition: expect.any(Number) });
  expect(body.results[1]).toMatchObject({ index: 1, error: { code: "INVALID_EVENT", num: 1005 } });

  const none = await post("/api/v1/events/batch", [{ nope: 1 }]);
  // With its body: a refusal of another kind (CI once: 429) then says which and why.
  expect({ status: none.status, body: await none.json() }).toMatchObject({ status: 400, body: { published: 0, failed: 1 } });
});

test("POST /api/v1/events/validate is a dry run: nothing is written", async () => {
  const dry = freshTopic("dry");
  const ok = await post(`/api/v1/events/validate?topic=${dry}`, { type: "v.ok" });
  expect(ok.status).toBe(200);
  expect(await ok.json()).toMatchObject({ valid: true, count: 1, errors: [] });
  const bad = await post(`/api/v1/events/validate?topic=${dry}`, { events: [{ type: "v.ok" }, { type: 5 }] });
  expect(bad.status).toBe(400);
  expect(await bad.json()).toMatchObject({ valid: false, count: 2, errors: [{ index: 1, error: { code: "INVALID_EVENT" } }] });
  expect(await consumeAll(brokers, dry, { timeoutMs: 3000 })).toHaveLength(0);
});

test("bad requests get their documented code and status", async () => {
  const cases: Array<[Response, number, string]> = [
    [await post("/api/v1/events", "{oops"), 400, "BAD_FRAME"],
    [await post("/api/v1/events", { type: "x" }, { "content-type": "text/plain" }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    // Types that only begin like JSON's are other formats (json-seq's records start with 0x1e).
    ...(await Promise.all(
      ["application/json-seq", "application/json-patch", "application/json.v2", "application/json~x", "application/jsonx", "application/+json", "application/x+json+zip", "text/json"].map(async (t) => [await post("/api/v1/events", { type: "x" }, { "content-type": t }), 415, "UNSUPPORTED_MEDIA_TYPE"] as [Response, number, string]),
    )),
    // The body is read as UTF-8, as JSON requires: another charset would be read as something else.
    [await post("/api/v1/events", { type: "x" }, { "content-type": "application/json; charset=latin1" }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    // Two charsets that disagree say no one charset: a reader taking the last would read latin1.
    [await post("/api/v1/events", { type: "x" }, { "content-type": "application/json; charset=utf-8; charset=latin1" }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    // Bodies are never decompressed: a compressed one was read as JSON (BAD_FRAME), a declared one
    // that was plain was accepted (202).
    [await post("/api/v1/events", { type: "x" }, { "content-type": "application/json", "content-encoding": "br" }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    [await post("/api/v1/events/batch", { events: [{ type: "x" }] }, { "content-type": "application/json", "content-encoding": "gzip" }), 415, "UNSUPPORTED_MEDIA_TYPE"],
    [await post("/api/v1/events", { type: "x", data: "y".repeat(5000) }), 413, "FRAME_TOO_LARGE"],
    [await post("/api/v1/events?topic=bad%20topic", { type: "x" }), 400, "INVALID_TOPIC"],
    [await post("/api/v1/events", { type: "x", time: "not-a-time" }), 400, "INVALID_EVENT"],
    [await post("/api/v1/events/batch", { events: "no" }), 400, "INVALID_FRAME"],
    [await fetch(`${gw.url}/api/v1/nothing`), 404, "NOT_FOUND"],
  ];
  for (const [res, status, code] of cases) {
    expect(res.status).toBe(status);
    expect(((await res.json()) as any).error.code).toBe(code);
  }
});

test("a query parameter or batch field the route does not take is refused 400 INVALID_FRAME naming it, and nothing is written", async () => {
  // Ignored, a misspelt `topc` published to the default topic, and a batch's `topc` the same.
  const typo = freshTopic("http-typo");
  const cases: Array<[Response, string]> = [
    [await post(`/api/v1/events?topc=${typo}`, { type: "x" }), "topc"],
    [await post(`/api/v1/events?topic=${typo}&key=k`, { type: "x" }), "key"],
    [await post(`/api/v1/events/batch?topc=${typo}`, { events: [{ type: "x" }] }), "topc"],
    [await post("/api/v1/events/batch", { topc: typo, events: [{ type: "x" }] }), "topc"],
    [await post(`/api/v1/events/validate?topic=${typo}&dry=1`, { type: "x" }), "dry"],
    [await fetch(`${gw.url}/api/v1/admin/delivery?limit=5&sort=worst`), "sort"],
  ];
  for (const [res, name] of cases) {
    const body = (await res.json()) as any;
    expect({ name, status: res.status, code: body.error?.code }).toEqual({ name, status: 400, code: "INVALID_FRAME" });
    expect(body.error.message).toContain(name);
  }
  // The one that named its topic rightly (with a `key` beside it) wrote nothing there either.
  expect(await consumeAll(brokers, typo, { timeoutMs: 1000 })).toEqual([]);
});

test("a body's one leading byte order mark is let go, as a text frame's is; a second is BAD_FRAME, on both transports alike", async () => {
  const body = JSON.stringify({ type: "bom" });
  expect((await post(`/api/v1/events?topic=${topic}`, `\uFEFF${body}`)).status).toBe(202);
  const twice = await post(`/api/v1/events?topic=${topic}`, `\uFEFF\uFEFF${body}`);
  expect({ status: twice.status, code: ((await twice.json()) as any).error.code }).toEqual({ status: 400, code: "BAD_FRAME" });
});

test("JSON bodies are taken under application/json and any +json type, in any case, with parameters", async () => {
  for (const t of ["application/json", "APPLICATION/JSON; charset=UTF-8", "application/cloudevents+json", "application/vnd.api+json ; charset=\"utf-8\"", "application/json;foo=bar"]) {
    const res = await post("/api/v1/events", { type: "x" }, { "content-type": t });
    expect({ t, status: res.status }).toEqual({ t, status: 202 });
  }
});

test("health and metrics", async () => {
  expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
  expect((await fetch(`${gw.url}/health/ready`)).status).toBe(200);
  const detail = await gw.health();
  expect(detail).toMatchObject({ status: "ok", msgpackNativeAcceleration: true, log: { kind: "kafka", ready: true } });
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  for (const name of [
    "gateway_events_received_total",
    "gateway_events_published_total",
    "gateway_events_failed_total",
    "gateway_publish_latency_seconds_bucket",
    "gateway_connections_open",
    "gateway_events_inflight",
    "gateway_kafka_worker_restarts_total",
    "gateway_kafka_workers_ready 1",
    "gateway_msgpack_native_acceleration 1",
  ]) {
    expect(metrics).toContain(name);
  }
  // Counted as plain numbers and folded in when read (src/observability/metrics.ts Tally, Level).
  expect(Number(/gateway_events_published_total\{transport="http"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
  expect(Number(/gateway_events_received_total\{transport="http"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
  expect(metrics).toMatch(/\ngateway_events_inflight 0\n/);
});
