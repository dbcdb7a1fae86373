import { afterAll, beforeAll, expect, test } from "bun:test";
import * as net from "node:net";
import { underControl } from "../ingest/control";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { rssMiB } from "../support/proc";

/**
 * The HTTP edge against slow and oversized clients, over raw TCP: request heads over
 * HTTP_MAX_HEADER_BYTES get 431 and a close; a head or body trickled a byte at a time is cut by the
 * idle timeout (a publish that waits on Kafka longer than it: idle-publish.test.ts).
 */
let gw: GatewayProcess;
const IDLE_S = 4;
const HEADER_LIMIT = 8192;

beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", HTTP_IDLE_TIMEOUT: `${IDLE_S}s`, HTTP_MAX_HEADER_BYTES: String(HEADER_LIMIT) });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

interface Outcome {
  /** The first line the gateway answered, "" for none. */
  status: string;
  closedAfterMs: number;
  sent: number;
}

/**
 * Writes `head` at once, then `trickle` one byte per `everyMs`, until the gateway closes the
 * connection (or `giveUpMs` passes: then `closedAfterMs` is Infinity).
 */
function slowClient(port: number, head: string, trickle: string, everyMs = 1000, giveUpMs = 40_000): Promise<Outcome> {
  return new Promise((resolve) => {
    // Monotonic: once here the wall clock moved 25 s during a 20.8 s test, and "closed after" read 45.6 s.
    const started = performance.now();
    let sent = 0;
    let got = "";
    const s = net.connect(port, "127.0.0.1", () => {
      if (head) s.write(head);
    });
    const timer = setInterval(() => {
      if (sent < trickle.length && !s.destroyed) s.write(trickle[sent++]!);
    }, everyMs);
    const giveUp = setTimeout(() => s.destroy(), giveUpMs);
    s.on("data", (d) => (got += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      const elapsed = performance.now() - started;
      resolve({ status: got.split("\r\n")[0] ?? "", closedAfterMs: elapsed >= giveUpMs ? Number.POSITIVE_INFINITY : elapsed, sent });
    });
  });
}

/** One whole request on a fresh connection; resolves with its status line once the gateway closes or answers. */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const s = net.connect(port, "127.0.0.1", () => s.write(bytes));
    s.on("data", (d) => {
      got += d.toString("latin1");
      if (got.includes("\r\n\r\n")) s.end();
    });
    s.on("error", () => {});
    s.on("close", () => resolve(got.split("\r\n")[0] ?? ""));
  });
}

const head = (path: string, extra: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
const upgradeHeaders = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

test("a request head over HTTP_MAX_HEADER_BYTES gets 431 and a close, on HTTP routes and WebSocket upgrades alike; one under it is served", async () => {
  const over = `X-Big: ${"a".repeat(HEADER_LIMIT + 1000)}\r\n`;
  const manySmall = Array.from({ length: 400 }, (_, i) => `X-H${i}: ${"b".repeat(30)}\r\n`).join("");
  expect(await rawRequest(gw.port, head("/health/live", over))).toBe("HTTP/1.1 431 Request Header Fields Too Large");
  expect(await rawRequest(gw.port, head("/health/live", manySmall))).toBe("HTTP/1.1 431 Request Header Fields Too Large");
  expect(await rawRequest(gw.port, head("/ws", upgradeHeaders + over))).toBe("HTTP/1.1 431 Request Header Fields Too Large");
  expect(await rawRequest(gw.port, head("/health/live", `X-Ok: ${"a".repeat(HEADER_LIMIT - 1000)}\r\n`))).toBe("HTTP/1.1 200 OK");
});

test("a head sent without end (megabytes of header) is cut at the limit (431, or a reset while it still sends), and the gateway's memory does not follow", async () => {
  const before = rssMiB(gw.proc.pid);
  let chunks = 0;
  const status = await new Promise<string>((resolve) => {
    let got = "";
    const s = net.connect(gw.port, "127.0.0.1", () => {
      s.write("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ");
      const chunk = "z".repeat(64 * 1024);
      const pump = () => {
        while (chunks < 256 && !s.destroyed && s.write(chunk)) chunks++;
        if (chunks < 256 && !s.destroyed) s.once("drain", pump);
      };
      pump();
    });
    s.on("data", (d) => (got += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => resolve(got.split("\r\n")[0] ?? ""));
  });
  // The 431 may be lost to the reset that closing on unread bytes causes: either way the gateway cut
  // the connection long before the 16 MiB were sent.
  expect(["HTTP/1.1 431 Request Header Fields Too Large", ""]).toContain(status);
  expect(chunks).toBeLessThan(256);
  expect(rssMiB(gw.proc.pid) - before).toBeLessThan(64);
  expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
});

test("slowloris: heads and bodies trickled a byte a second are cut by the idle timeout and never answered, while a control connection keeps publishing", async () => {
  const port = gw.port;
  const outcomes = await underControl(gw, "slowloris", () =>
    Promise.all([
      // The first request's head: Bun allows it 10 s from the connection's start, whatever it trickles.
      ...Array.from({ length: 40 }, () => slowClient(port, "", `GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${"a".repeat(200)}`)),
      ...Array.from({ length: 20 }, () => slowClient(port, "", `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n${upgradeHeaders}X-Slow: ${"a".repeat(200)}`)),
      // A connection that sends nothing at all.
      ...Array.from({ length: 20 }, () => slowClient(port, "", "")),
      // A body promised and trickled.
      ...Array.from({ length: 20 }, () => slowClient(port, `POST /api/v1/events?topic=${freshTopic("slow")} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n`, `{"type":"slow","data":"${"a".repeat(280)}"}`)),
      // A kept-alive connection: one whole request, then the next one's head trickled (HTTP_IDLE_TIMEOUT applies).
      ...Array.from({ length: 20 }, () => slowClient(port, "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", `GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${"a".repeat(200)}`)),
    ]),
  );
  const byKind = (from: number, n: number) => outcomes.slice(from, from + n);
  for (const o of outcomes) {
    // Cut by the gateway (not our give-up), within its limits plus Bun's 4 s timer granularity and a busy machine.
    expect(o.closedAfterMs).toBeLessThan(25_000);
  }
  for (const o of [...byKind(0, 40), ...byKind(40, 20), ...byKind(60, 20), ...byKind(80, 20)]) expect(o.status).toBe("");
  for (const o of byKind(100, 20)) expect(o.status).toBe("HTTP/1.1 200 OK"); // the first, whole request only
  for (const o of byKind(0, 40)) expect(o.sent).toBeLessThan(30);
  for (const o of byKind(80, 20)) expect(o.sent).toBeLessThan(40); // cut long before its 300 bytes
  const closed = outcomes.map((o) => o.closedAfterMs).sort((a, b) => a - b);
  console.log(`slowloris: ${outcomes.length} slow connections, closed after ${(closed[0]! / 1000).toFixed(1)}–${(closed.at(-1)! / 1000).toFixed(1)} s`);
}, 120_000);

test("HTTP_IDLE_TIMEOUT is what an idle kept-alive connection gets: not closed before it, closed after it", async () => {
  const long = await startGateway({ KAFKA_BROKERS: "", HTTP_IDLE_TIMEOUT: "20s" });
  try {
    // One whole request, then silence: Bun's default (10 s) would close it near 12 s.
    const o = await slowClient(long.port, "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "", 1000, 60_000);
    expect(o.status).toBe("HTTP/1.1 200 OK");
    expect(o.closedAfterMs).toBeGreaterThanOrEqual(19_000);
    expect(o.closedAfterMs).toBeLessThan(45_000);
  } finally {
    await long.stop();
  }
}, 90_000);
