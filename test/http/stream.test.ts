import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect as netConnect } from "node:net";
import { SECRET, hsToken } from "../auth/support";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { type GatewayClient, connect } from "../../src/client";

/**
 * SSE (GET /api/v1/stream) read as a client reads it: the text/event-stream over a real HTTP
 * connection, parsed into messages; resumed with Last-Event-ID after the connection is dropped.
 */
interface SseMessage {
  id?: string;
  event: string;
  data: any;
}

/** Opens a stream and parses its messages as they come; `stop()` drops the connection. */
function openStream(url: string, headers: Record<string, string> = {}) {
  const messages: SseMessage[] = [];
  const abort = new AbortController();
  let status = 0;
  let body: any;
  const done = (async () => {
    const res = await fetch(url, { headers, signal: abort.signal });
    status = res.status;
    if (res.status !== 200) {
      body = await res.json();
      return;
    }
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of res.body as ReadableStream<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          if (block.startsWith(":") || block.startsWith("retry:")) continue; // heartbeat; reconnect hint
          const m: SseMessage = { event: "message", data: undefined };
          for (const line of block.split("\n")) {
            const [k, ...v] = line.split(": ");
            if (k === "id") m.id = v.join(": ");
            else if (k === "event") m.event = v.join(": ");
            else if (k === "data") m.data = JSON.parse(v.join(": "));
          }
          messages.push(m);
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    messages,
    get status() {
      return status;
    },
    get body() {
      return body;
    },
    done,
    stop: () => abort.abort(),
    async until(pred: (ms: SseMessage[]) => boolean, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred(messages)) {
        if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(messages.map((m) => m.event))}`);
        await Bun.sleep(20);
      }
    },
  };
}

const eventsIn = (ms: SseMessage[]) => ms.flatMap((m) => (m.event === "event" ? [m.data] : m.event === "event_batch" ? m.data.events : []));

let gw: GatewayProcess;
let publisher: GatewayClient;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
  publisher = await connect({ url: gw.wsUrl });
}, 60_000);
afterAll(async () => {
  publisher.close();
  await gw.stop();
});

test("a stream gets subscribed, then the filtered events live, each frame with its resume token as the id", async () => {
  const s = openStream(`${gw.url}/api/v1/stream?topic=sse-live&filter=${encodeURIComponent(JSON.stringify({ types: ["keep.*"] }))}`);
  await s.until((ms) => ms.some((m) => m.event === "subscribed"));
  expect(s.messages[0]).toMatchObject({ event: "subscribed", data: { t: 23, sub: "sse" } });
  for (let i = 0; i < 20; i++) await publisher.publish({ type: i % 2 ? "keep.odd" : "drop.even", data: { i } }, { topic: "sse-live" });
  await s.until((ms) => eventsIn(ms).length >= 10);
  expect(eventsIn(s.messages).map((e) => e.event.data.i)).toEqual([1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  for (const m of s.messages.filter((m) => m.event.startsWith("event"))) expect(m.id).toBe(m.data.token);
  // `subscribed` carries one too (as do live, lagged, gap and unsubscribed): a stream dropped before
  // its first event resumes from it.
  expect(s.messages[0]!.id).toBe(s.messages[0]!.data.token);
  s.stop();
  await s.done;
  await Bun.sleep(100);
  expect((await gw.health()).subscriptions.subscriptions).toBe(0);
}, 60_000);

test("Last-Event-ID resumes exactly after the last frame the client got: no gap, no repeat", async () => {
  const topic = "sse-resume";
  const s = openStream(`${gw.url}/api/v1/stream?topic=${topic}&start=earliest`);
  for (let i = 0; i < 50; i++) await publisher.publish({ type: "n", key: `k${i % 4}`, data: { i } }, { topic });
  await s.until((ms) => eventsIn(ms).length >= 20);
  s.stop();
  await s.done;
  const got = eventsIn(s.messages).map((e) => e.event.data.i);
  const lastId = s.messages.filter((m) => m.id).at(-1)!.id!;
  for (let i = 50; i < 80; i++) await publisher.publish({ type: "n", key: `k${i % 4}`, data: { i } }, { topic });
  const again = openStream(`${gw.url}/api/v1/stream?topic=${topic}&start=earliest`, { "last-event-id": lastId });
  await again.until((ms) => got.length + eventsIn(ms).length >= 80);
  await Bun.sleep(200);
  again.stop();
  const all = [...got, ...eventsIn(again.messages).map((e) => e.event.data.i)];
  expect(all.toSorted((a, b) => a - b)).toEqual(Array.from({ length: 80 }, (_, i) => i));
}, 60_000);

test("a bad query is refused before any stream: 400 with the code a subscribe frame would get", async () => {
  const bad = openStream(`${gw.url}/api/v1/stream?topic=x&filter=${encodeURIComponent('{"types": 5}')}`);
  await bad.done;
  expect(bad.status).toBe(400);
  expect(bad.body.error.code).toBe("INVALID_FILTER");
  const none = openStream(`${gw.url}/api/v1/stream`);
  await none.done;
  expect(none.status).toBe(400);
  // Named as the stream takes it (a query parameter `topic`), not as a subscribe frame's fields
  // ("give topic or topics"), which a stream has no `topics` for (chaos tester).
  expect(none.body.error.message).toMatch(/`topic` parameter/);
  const plural = openStream(`${gw.url}/api/v1/stream?topics=x,y`);
  await plural.done;
  expect({ status: plural.status, code: plural.body.error.code }).toEqual({ status: 400, code: "INVALID_FRAME" });
  expect(plural.body.error.message).toMatch(/`topic` parameter/);
  expect(plural.body.error.message).toContain('unknown query parameter "topics"');
  // A misspelt topic is named too: "missing" alone sent its writer looking for the wrong mistake (outside probe Y).
  const misspelt = openStream(`${gw.url}/api/v1/stream?Topic=x`);
  await misspelt.done;
  expect({ status: misspelt.status, code: misspelt.body.error.code }).toEqual({ status: 400, code: "INVALID_FRAME" });
  expect(misspelt.body.error.message).toContain('unknown query parameter "Topic"');
  const forged = openStream(`${gw.url}/api/v1/stream?topic=x`, { "last-event-id": "not-a-token" });
  await forged.done;
  expect(forged.body.error.code).toBe("INVALID_POSITION");
  // A lone surrogate is refused as the WebSocket refuses it: UTF-8 cannot hold it.
  const lone = openStream(`${gw.url}/api/v1/stream?topic=x&filter=${encodeURIComponent('{"types": ["\\ud800"]}')}`);
  await lone.done;
  expect(lone.status).toBe(400);
  expect(lone.body.error.code).toBe("BAD_FRAME");
  // A parameter given twice is refused, not read as its first (start=earliest&start=latest was
  // served from earliest; hostile tester), as a frame with a key twice would be ambiguous.
  for (const q of ["start=earliest&start=latest", "policy=drop-oldest&policy=disconnect", "filter=%7B%7D&filter=%7B%7D", "share=a&share=b"]) {
    const twice = openStream(`${gw.url}/api/v1/stream?topic=x&${q}`);
    await twice.done;
    expect({ q, status: twice.status, code: twice.body.error.code }).toEqual({ q, status: 400, code: "INVALID_FRAME" });
  }
  // Last-Event-ID twice is refused as a parameter twice is (it was INVALID_POSITION: Bun joins the
  // two with a comma, which no token has; HTTP probe), from a raw client, as fetch sends one.
  const headTwice = await new Promise<string>((resolve) => {
    let got = "";
    const s = netConnect(gw.port, "127.0.0.1", () => s.write(`GET /api/v1/stream?topic=x HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: a.b\r\nLast-Event-ID: a.b\r\nConnection: close\r\n\r\n`));
    s.on("data", (d) => (got += d.toString()));
    s.on("close", () => resolve(got));
    s.on("error", () => resolve(got));
  });
  expect(headTwice.split("\r\n")[0]).toBe("HTTP/1.1 400 Bad Request");
  expect(headTwice).toContain('"code":"INVALID_FRAME"');
  expect(headTwice).toContain("Last-Event-ID is given more than once");
  // A parameter the stream does not take is refused naming it: a misspelt `filtr`, ignored, streamed
  // every event of the topic.
  for (const [q, name] of [[`filtr=${encodeURIComponent('{"types":["a"]}')}`, "filtr"], ["topics=y", "topics"], ["cursor=5", "cursor"]]) {
    const unknown = openStream(`${gw.url}/api/v1/stream?topic=x&${q}`);
    await unknown.done;
    expect({ q, status: unknown.status, code: unknown.body.error.code }).toEqual({ q, status: 400, code: "INVALID_FRAME" });
    expect(unknown.body.error.message).toContain(name);
  }
});

test("with authentication on, a stream needs a token (Authorization or access_token) that grants the topic", async () => {
  const authed = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET });
  try {
    const token = await hsToken({ sub: "reader", kgw: { subscribe: ["open.*"] } });
    const anonymous = openStream(`${authed.url}/api/v1/stream?topic=open.a`);
    await anonymous.done;
    expect(anonymous.status).toBe(401);
    const denied = openStream(`${authed.url}/api/v1/stream?topic=secret&access_token=${token}`);
    await denied.done;
    expect(denied.status).toBe(403);
    const ok = openStream(`${authed.url}/api/v1/stream?topic=open.a&access_token=${token}`);
    await ok.until((ms) => ms.some((m) => m.event === "subscribed"));
    ok.stop();
    const viaHeader = openStream(`${authed.url}/api/v1/stream?topic=open.a`, { authorization: `Bearer ${token}` });
    await viaHeader.until((ms) => ms.some((m) => m.event === "subscribed"));
    viaHeader.stop();
    // Both ways at once, perhaps for two principals: refused, not one of them picked in silence (outside probe Y).
    const both = openStream(`${authed.url}/api/v1/stream?topic=open.a&access_token=${token}`, { authorization: `Bearer ${token}` });
    await both.done;
    expect({ status: both.status, code: both.body.error.code }).toEqual({ status: 400, code: "INVALID_FRAME" });
    expect(both.body.error.message).toContain("give the token once");
    // An empty one beside the other is no second token.
    const emptyQuery = openStream(`${authed.url}/api/v1/stream?topic=open.a&access_token=`, { authorization: `Bearer ${token}` });
    await emptyQuery.until((ms) => ms.some((m) => m.event === "subscribed"));
    emptyQuery.stop();
  } finally {
    await authed.stop();
  }
}, 60_000);

/**
 * A stream cannot be handed a new token, so it ends when its token does (exp plus AUTH_CLOCK_TOLERANCE)
 * with an `error` event UNAUTHENTICATED. Before, a stream opened with a token of a few seconds
 * (EventSource's access_token) kept delivering for good (outside tester: events at 10-24 s of a 2 s token).
 */
test("with authentication on, a stream ends with an error event when its token expires, and delivered until then", async () => {
  const authed = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, AUTH_CLOCK_TOLERANCE: "1s" });
  try {
    const exp = Math.floor(Date.now() / 1000) + 3;
    const token = await hsToken({ sub: "reader", exp, kgw: { subscribe: ["open.*"] } });
    const writer = await connect({ url: authed.wsUrl, token: await hsToken({ sub: "writer", kgw: { publish: ["open.*"] } }) });
    const s = openStream(`${authed.url}/api/v1/stream?topic=open.x&access_token=${token}`);
    await s.until((ms) => ms.some((m) => m.event === "subscribed"));
    await writer.publish({ type: "before" }, { topic: "open.x" });
    await s.until((ms) => eventsIn(ms).length === 1);
    await s.done; // the gateway ends the stream
    const ended = Date.now();
    expect(ended).toBeGreaterThanOrEqual(exp * 1000 + 1000 - 50);
    expect(ended).toBeLessThan(exp * 1000 + 1000 + 3000);
    expect(s.messages.at(-1)).toMatchObject({ event: "error", data: { code: "UNAUTHENTICATED" } });
    await writer.publish({ type: "after" }, { topic: "open.x" });
    expect(eventsIn(s.messages).map((e) => e.event.type)).toEqual(["before"]);
    writer.close();
  } finally {
    await authed.stop();
  }
}, 60_000);

test("cross-origin: a page of an allowed origin gets the stream with CORS headers; another origin gets 403 before any stream", async () => {
  const gw2 = await startGateway({ KAFKA_BROKERS: "", ALLOWED_ORIGINS: "https://app.example.com" });
  try {
    const allowed = await fetch(`${gw2.url}/api/v1/stream?topic=cors`, { headers: { origin: "https://app.example.com" }, signal: AbortSignal.timeout(5000) });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(allowed.headers.get("content-type")).toContain("text/event-stream");
    await allowed.body?.cancel();
    const refused = await fetch(`${gw2.url}/api/v1/stream?topic=cors`, { headers: { origin: "https://evil.example.com" } });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("ORIGIN_NOT_ALLOWED");
    const preflight = await fetch(`${gw2.url}/api/v1/stream`, { method: "OPTIONS", headers: { origin: "https://app.example.com", "access-control-request-method": "GET" } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("GET");
  } finally {
    await gw2.stop();
  }
}, 60_000);

test("a `lagged` notice on a stream carries its token as the message id too, and resuming from it gets the events after it", async () => {
  // Read raw, over HTTP/1.0 (no chunked framing to undo), so the stream can stop being read.
  const topic = `sse-lagged-${Date.now()}`;
  await publisher.publish({ type: "warm" }, { topic });
  const sock = netConnect(gw.port, "127.0.0.1");
  let text = "";
  sock.on("data", (d) => (text += d.toString()));
  sock.write(`GET /api/v1/stream?topic=${topic} HTTP/1.0\r\n\r\n`);
  const deadline = Date.now() + 10_000;
  while (!text.includes("event: subscribed") && Date.now() < deadline) await Bun.sleep(10);
  sock.pause();
  // 8 MB against a subscription's 1 MiB, the stream's 256 KiB and the socket's buffers.
  const pad = "p".repeat(1000);
  for (let b = 0; b < 16; b++) await publisher.publishBatch(Array.from({ length: 500 }, (_, i) => ({ type: "big", data: { n: b * 500 + i, pad } })), { topic });
  await Bun.sleep(500);
  sock.resume();
  const until = Date.now() + 15_000;
  while (!text.includes("event: lagged") && Date.now() < until) await Bun.sleep(20);
  await Bun.sleep(300);
  sock.destroy();
  const lagged = text.split("\n\n").find((b) => b.includes("event: lagged"));
  expect(lagged).toBeDefined();
  const data = JSON.parse(lagged!.split("\n").find((l) => l.startsWith("data: "))!.slice(6));
  expect(lagged!.split("\n")).toContain(`id: ${data.token}`);
  // Resuming from it: the events the notice says come after it, from the first one not dropped.
  const s = openStream(`${gw.url}/api/v1/stream?topic=${topic}`, { "Last-Event-ID": data.token });
  await s.until((ms) => eventsIn(ms).length > 0);
  s.stop();
  await s.done;
}, 60_000);
