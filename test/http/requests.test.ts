import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "node:net";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";

/** HTTP edge cases: methods, empty and oversized bodies, per-event ids, topic codes. */
let gw: GatewayProcess;
const MAX = 4096;

beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", MAX_FRAME_BYTES: String(MAX) });
}, 60_000);
afterAll(async () => {
  expect(await gw.stop()).toBe(0);
}, 60_000);

const post = (path: string, body: string) => fetch(`${gw.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });

test("a known path with the wrong method → 405 METHOD_NOT_ALLOWED with Allow; an unknown path → 404", async () => {
  const cases: Array<[string, string, string]> = [
    ["GET", "/api/v1/events", "POST, OPTIONS"],
    ["PUT", "/api/v1/events", "POST, OPTIONS"],
    ["DELETE", "/api/v1/events/batch", "POST, OPTIONS"],
    ["GET", "/api/v1/events/validate", "POST, OPTIONS"],
    ["POST", "/health/live", "GET, HEAD, OPTIONS"],
    ["POST", "/health/ready", "GET, HEAD, OPTIONS"],
    ["DELETE", "/health", "GET, HEAD, OPTIONS"],
    ["POST", "/metrics", "GET, HEAD, OPTIONS"],
  ];
  for (const [method, path, allow] of cases) {
    const r = await fetch(`${gw.url}${path}`, { method });
    expect({ method, path, status: r.status, allow: r.headers.get("allow") }).toEqual({ method, path, status: 405, allow });
    expect(((await r.json()) as any).error).toMatchObject({ code: "METHOD_NOT_ALLOWED", num: 1018, retriable: false });
  }
  const missing = await fetch(`${gw.url}/api/v1/nothing`, { method: "PUT" });
  expect(missing.status).toBe(404);
  expect(((await missing.json()) as any).error.code).toBe("NOT_FOUND");
});

test("an empty batch is a no-op: 202 with nothing published", async () => {
  for (const body of ["[]", '{"events":[]}']) {
    const r = await post(`/api/v1/events/batch?topic=${freshTopic("http-empty")}`, body);
    expect({ body, status: r.status }).toEqual({ body, status: 202 });
    expect(await r.json()).toMatchObject({ published: 0, failed: 0, results: [] });
  }
});

test("a bad topic is INVALID_TOPIC however it is given", async () => {
  const cases = [
    await post("/api/v1/events?topic=bad%20topic", '{"type":"x"}'),
    await post("/api/v1/events/batch?topic=bad%20topic", '[{"type":"x"}]'),
    await post("/api/v1/events/batch", '{"topic":"bad topic","events":[{"type":"x"}]}'),
    await post("/api/v1/events?topic=.", '{"type":"x"}'),
    // Ambiguous: which topic was meant cannot be guessed.
    await post("/api/v1/events?topic=a&topic=b", '{"type":"x"}'),
    await post("/api/v1/events/batch?topic=a", '{"topic":"b","events":[{"type":"x"}]}'),
    await post("/api/v1/events?topic=..", '{"type":"x"}'),
  ];
  for (const r of cases) {
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error.code).toBe("INVALID_TOPIC");
  }
  // A long topic in the body beside the query's is named clipped, not repeated whole (second review).
  const long = await post("/api/v1/events/batch?topic=a", JSON.stringify({ topic: "t".repeat(3_000), events: [{ type: "x" }] }));
  const error = ((await long.json()) as any).error;
  expect({ status: long.status, code: error.code, short: error.message.length < 700 }).toEqual({ status: 400, code: "INVALID_TOPIC", short: true });
  expect(error.message).toContain("…(2744 more characters)");
});

test("an invalid event in a batch is named by its id when it has a readable one", async () => {
  const r = await post(`/api/v1/events/batch?topic=${freshTopic("http-ids")}`, '[{"type":"ok","id":"a"},{"type":"","id":"b"},{"type":""}]');
  expect(r.status).toBe(207);
  const body: any = await r.json();
  expect(body.results.map((x: { id: unknown }) => x.id)).toEqual(["a", "b", null]);
});

/**
 * Sends a request over a raw socket the way curl or Python do, the body in pieces, and returns the
 * response text and any socket error: answering before the body is read makes the client's writes
 * fail (EPIPE/ECONNRESET) and can lose the answer.
 */
function rawPost(path: string, body: Buffer, chunk: number): Promise<{ response: string; error?: string }> {
  return new Promise((resolve) => {
    const sock = connect(gw.port, "127.0.0.1");
    let response = "";
    let error: string | undefined;
    sock.on("data", (d) => (response += d.toString()));
    sock.on("error", (e) => (error = (e as NodeJS.ErrnoException).code ?? String(e)));
    sock.on("close", () => resolve({ response, error }));
    sock.on("connect", async () => {
      sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      for (let i = 0; i < body.length && !sock.destroyed; i += chunk) {
        sock.write(body.subarray(i, i + chunk));
        await Bun.sleep(5);
      }
      if (!sock.destroyed) sock.end();
    });
  });
}

test("a body over MAX_FRAME_BYTES gets its 413 FRAME_TOO_LARGE, with no broken pipe, sent slowly or at once", async () => {
  for (const [size, chunk] of [[MAX * 2, 1024], [MAX * 8, 1024], [2_000_000, 64 * 1024], [2_000_000, 2_000_000]] as const) {
    const body = Buffer.from(JSON.stringify({ type: "x", data: "y".repeat(size) }));
    const { response, error } = await rawPost("/api/v1/events/batch", body, chunk);
    expect({ size, chunk, error, status: response.slice(0, 12) }).toEqual({ size, chunk, error: undefined, status: "HTTP/1.1 413" });
    expect(response).toContain('"code":"FRAME_TOO_LARGE"');
  }
});

test("a chunked body (no Content-Length) is measured as it arrives", async () => {
  const big = new ReadableStream({
    start(c) {
      for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode(i === 0 ? '{"type":"x","data":"' : "y".repeat(1000)));
      c.enqueue(new TextEncoder().encode('"}'));
      c.close();
    },
  });
  const r = await fetch(`${gw.url}/api/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body: big });
  expect(r.status).toBe(413);
  expect(((await r.json()) as any).error.code).toBe("FRAME_TOO_LARGE");
  const small = new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode('{"type":'));
      c.enqueue(new TextEncoder().encode('"x"}'));
      c.close();
    },
  });
  const ok = await fetch(`${gw.url}/api/v1/events?topic=${freshTopic("http-chunked")}`, { method: "POST", headers: { "content-type": "application/json" }, body: small });
  expect(ok.status).toBe(202);
});

/** One request written as given (its head ends the request); the status line and body of the answer. */
function rawHead(head: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(gw.port, "127.0.0.1");
    let response = "";
    // The answer's end is not marked on a kept-alive connection: it is taken once 200 ms pass quiet.
    let quiet: Timer | null = null;
    sock.on("data", (d) => {
      response += d.toString();
      if (quiet) clearTimeout(quiet);
      quiet = setTimeout(() => sock.destroy(), 200);
    });
    sock.on("error", () => {});
    sock.on("close", () => resolve(response));
    sock.on("connect", () => sock.write(head));
    setTimeout(() => sock.destroy(), 5000);
  });
}

test("a Host that does not form a URL is a 400 BAD_FRAME on every path, not a 500 INTERNAL (outside tester)", async () => {
  const hosts = ["a b", "%zz", "[::1", "x:99999", "a/b", "a?b", "a#b", "@", ""];
  const requests = [
    ...hosts.flatMap((h) => [
      `POST /api/v1/events HTTP/1.1\r\nHost: ${h}\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{"type":"x"}`,
      `GET /api/v1/stream?topic=t HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`,
      `GET /ws HTTP/1.1\r\nHost: ${h}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      `GET /nowhere HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`,
    ]),
  ];
  for (const head of requests) {
    const response = await rawHead(head);
    const status = response.slice(0, response.indexOf("\r\n"));
    // Bun's own parser refuses some of these before any handler runs (400 too); the rest are ours.
    expect([head.split("\r\n").slice(0, 2).join(" | "), status]).toEqual([head.split("\r\n").slice(0, 2).join(" | "), "HTTP/1.1 400 Bad Request"]);
    if (response.includes("{")) expect(response).toContain('"code":"BAD_FRAME"');
  }
  // And the gateway is none the worse.
  expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
});

test("HTTP/1.0 needs no Host: probes (HAProxy's httpchk sends none), a publish and a stream are served as with one", async () => {
  const topic = freshTopic("http10");
  const answers = await Promise.all([
    rawHead("GET /health/live HTTP/1.0\r\n\r\n"),
    rawHead("GET /health/ready HTTP/1.0\r\n\r\n"),
    rawHead("GET /metrics HTTP/1.0\r\n\r\n"),
    rawHead(`POST /api/v1/events?topic=${topic} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"type":"x"}`),
    rawHead(`GET /api/v1/stream?topic=${topic}&start=earliest HTTP/1.0\r\n\r\n`),
  ]);
  const status = (r: string) => r.slice(0, r.indexOf("\r\n"));
  expect(answers.map(status)).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 202 Accepted", "HTTP/1.1 200 OK"]);
  expect(answers[0]).toContain('"status":"live"');
  expect(answers[2]).toContain("gateway_connections_open");
  expect(answers[4]).toContain("event: subscribed");
  // A path the gateway does not serve is still a 404, not a 400, and names the path as sent: "//x/…"
  // read against a base was a URL of host x, and its 404 named "/health/live" (outside tester).
  expect(status(await rawHead("GET /nowhere HTTP/1.0\r\n\r\n"))).toBe("HTTP/1.1 404 Not Found");
  const hostlike = await rawHead("GET //evil.example/health/live HTTP/1.0\r\n\r\n");
  expect(status(hostlike)).toBe("HTTP/1.1 404 Not Found");
  expect(hostlike).toContain("no route for GET //evil.example/health/live");
  // A WebSocket handshake needs HTTP/1.1 and a Host (RFC 6455): one without is refused, not upgraded.
  const ws10 = await rawHead("GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  expect(status(ws10)).toBe("HTTP/1.1 400 Bad Request");
});
