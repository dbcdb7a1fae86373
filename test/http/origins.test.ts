import { afterAll, expect, test } from "bun:test";
import * as net from "node:net";
import { ConfigError, loadConfig } from "../../src/config/load";
import { SECRET, hsToken } from "../auth/support";
import { underControl } from "../ingest/control";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { kafkaBrokers } from "../support/kafka";

/**
 * ALLOWED_ORIGINS over real sockets: browsers' WebSocket upgrades and CORS requests from origins not
 * allowed are refused 403 ORIGIN_NOT_ALLOWED before any work (cross-site WebSocket hijacking: browsers
 * apply no same-origin policy to WebSockets); allowed ones get their Origin echoed; clients without
 * Origin (services, curl) are unaffected.
 */
const APP = "https://app.example.com";
const started: GatewayProcess[] = [];
const made = new Map<string, Promise<GatewayProcess>>();
/** Each gateway is started on first use, so a test run alone (-t) starts only its own. */
function gateway(name: "byDefault" | "listed" | "authOn"): Promise<GatewayProcess> {
  if (!made.has(name)) {
    made.set(
      name,
      (async () => {
        const env: Record<string, string> = {
          byDefault: { KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1" },
          listed: { KAFKA_BROKERS: "", ALLOWED_ORIGINS: ` ${APP}, http://localhost:3000/ ` },
          authOn: { KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, ALLOWED_ORIGINS: APP },
        }[name];
        const g = await startGateway(env);
        started.push(g);
        return g;
      })(),
    );
  }
  return made.get(name)!;
}
let byDefault: GatewayProcess;
let listed: GatewayProcess;
let authOn: GatewayProcess;
afterAll(async () => {
  await Promise.all(started.map((g) => g.stop()));
}, 60_000);

const UPGRADE = { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13" };

/** A WebSocket upgrade sent as plain HTTP, so a refusal's status and body can be read. */
async function upgrade(gw: GatewayProcess, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const r = await fetch(`${gw.url}/ws`, { headers: { ...UPGRADE, ...headers } });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** Opens a real WebSocket with these headers and says hello: "welcome", or the close code. */
async function helloFrom(gw: GatewayProcess, headers: Record<string, string>): Promise<string | number> {
  const ws = new WebSocket(gw.wsUrl, { headers } as any);
  return new Promise((resolve) => {
    ws.onopen = () => ws.send(JSON.stringify({ t: 1, v: 1 }));
    ws.onmessage = (m) => {
      resolve(JSON.parse(String(m.data)).t === 2 ? "welcome" : String(m.data));
      ws.close();
    };
    ws.onclose = (e) => resolve(e.code);
  });
}

const post = (gw: GatewayProcess, path: string, headers: Record<string, string>, body = '{"type":"cors.test"}') =>
  fetch(`${gw.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

test("by default (ALLOWED_ORIGINS empty) a cross-site page's WebSocket is refused 403 before the upgrade; the gateway's own host and clients without Origin are let in", async () => {
  byDefault = await gateway("byDefault");
  // The same host under a scheme a web page is not served by (an extension's, a file's) is not the gateway's own.
  for (const origin of ["https://evil.example", "null", `http://127.0.0.1:${byDefault.port}.evil.example`, `https://127.0.0.1:${byDefault.port + 1}`, `chrome-extension://127.0.0.1:${byDefault.port}`, `ws://127.0.0.1:${byDefault.port}`]) {
    const r = await upgrade(byDefault, { Origin: origin });
    expect({ origin, status: r.status }).toEqual({ origin, status: 403 });
    expect(r.body.error).toMatchObject({ code: "ORIGIN_NOT_ALLOWED", num: 1023, retriable: false });
  }
  expect(await helloFrom(byDefault, { Origin: "https://evil.example" })).not.toBe("welcome");
  expect(await helloFrom(byDefault, {})).toBe("welcome");
  expect(await helloFrom(byDefault, { Origin: `http://127.0.0.1:${byDefault.port}` })).toBe("welcome");
  expect(await (await fetch(`${byDefault.url}/metrics`)).text()).toMatch(/gateway_origins_refused_total\{transport="ws"\} [1-9]/);
});

test("by default a cross-site HTTP request is refused 403 (a simple POST would reach the handler before CORS could hide the answer); no Origin, or the gateway's own, is served", async () => {
  byDefault = await gateway("byDefault");
  const evil = await post(byDefault, "/api/v1/events", { Origin: "https://evil.example" });
  expect(evil.status).toBe(403);
  expect(evil.headers.get("access-control-allow-origin")).toBeNull();
  expect(((await evil.json()) as any).error.code).toBe("ORIGIN_NOT_ALLOWED");
  const simple = await fetch(`${byDefault.url}/api/v1/events`, { method: "POST", headers: { Origin: "https://evil.example", "content-type": "text/plain" }, body: "{}" });
  expect(simple.status).toBe(403);
  const preflight = await fetch(`${byDefault.url}/api/v1/events`, { method: "OPTIONS", headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" } });
  expect(preflight.status).toBe(403);
  expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
  expect((await post(byDefault, "/api/v1/events", {})).status).toBe(202);
  const own = await post(byDefault, "/api/v1/events", { Origin: `http://127.0.0.1:${byDefault.port}` });
  expect(own.status).toBe(202);
  expect(own.headers.get("access-control-allow-origin")).toBe(`http://127.0.0.1:${byDefault.port}`);
});

test("a listed origin gets its preflight answered (methods, Authorization and Content-Type, Max-Age) and every response echoes it with Vary: Origin", async () => {
  listed = await gateway("listed");
  const pre = await fetch(`${listed.url}/api/v1/events/batch`, {
    method: "OPTIONS",
    headers: { Origin: APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type" },
  });
  expect(pre.status).toBe(204);
  expect(Object.fromEntries(pre.headers)).toMatchObject({
    "access-control-allow-origin": APP,
    "access-control-allow-methods": "POST, OPTIONS",
    "access-control-allow-headers": "Authorization, Content-Type",
    "access-control-max-age": "600",
    allow: "POST, OPTIONS",
  });
  expect(pre.headers.get("vary")).toMatch(/Origin/);
  expect(pre.headers.get("access-control-allow-credentials")).toBeNull(); // bearer tokens, never cookies

  const cases: Array<[string, Promise<Response>, number]> = [
    ["publish", post(listed, "/api/v1/events", { Origin: APP }), 202],
    ["invalid event", post(listed, "/api/v1/events", { Origin: APP }, '{"type":""}'), 400],
    ["health", fetch(`${listed.url}/health/live`, { headers: { Origin: APP } }), 200],
    ["405", fetch(`${listed.url}/api/v1/events`, { method: "PUT", headers: { Origin: APP } }), 405],
    ["404", fetch(`${listed.url}/nothing`, { headers: { Origin: APP } }), 404],
    ["second origin, normalised from the setting", post(listed, "/api/v1/events", { Origin: "http://localhost:3000" }), 202],
  ];
  for (const [label, pending, status] of cases) {
    const r = await pending;
    const origin = label.startsWith("second") ? "http://localhost:3000" : APP;
    expect({ label, status: r.status, acao: r.headers.get("access-control-allow-origin"), vary: /Origin/.test(r.headers.get("vary") ?? "") }).toEqual({ label, status, acao: origin, vary: true });
    expect(r.headers.get("access-control-expose-headers")).toMatch(/Retry-After/);
  }
  expect(await helloFrom(listed, { Origin: APP })).toBe("welcome");
  for (const origin of ["http://app.example.com", "https://app.example.com.evil.example", "https://evil.example", "null"]) {
    expect({ origin, status: (await upgrade(listed, { Origin: origin })).status }).toEqual({ origin, status: 403 });
    expect({ origin, status: (await post(listed, "/api/v1/events", { Origin: origin })).status }).toEqual({ origin, status: 403 });
  }
});

test("with authentication on, a valid token does not make a disallowed origin acceptable, and the origin is checked before the token", async () => {
  authOn = await gateway("authOn");
  const token = await hsToken({ kgw: { publish: ["*"], subscribe: ["*"] } });
  const refused = await upgrade(authOn, { Origin: "https://evil.example", Authorization: `Bearer ${token}` });
  expect(refused).toMatchObject({ status: 403, body: { error: { code: "ORIGIN_NOT_ALLOWED" } } });
  const noToken = await upgrade(authOn, { Origin: "https://evil.example", Authorization: "Bearer garbage" });
  expect(noToken.status).toBe(403);
  expect(await helloFrom(authOn, { Origin: APP, Authorization: `Bearer ${token}` })).toBe("welcome");
  const http = await post(authOn, "/api/v1/events", { Origin: APP, Authorization: `Bearer ${token}` });
  expect(http.status).toBe(202);
  expect(http.headers.get("access-control-allow-origin")).toBe(APP);
  const unauth = await post(authOn, "/api/v1/events", { Origin: APP });
  expect(unauth.status).toBe(401);
  expect(unauth.headers.get("access-control-allow-origin")).toBe(APP); // the page can read why
});

test("every route answers a wrong method 405 with Allow, the WebSocket paths included, and a plain OPTIONS with Allow", async () => {
  const gw = await gateway("byDefault");
  const cases: Array<[string, string, string]> = [
    ["GET", "/api/v1/events", "POST, OPTIONS"],
    ["DELETE", "/api/v1/events/batch", "POST, OPTIONS"],
    ["PATCH", "/api/v1/events/validate", "POST, OPTIONS"],
    ["POST", "/health/live", "GET, HEAD, OPTIONS"],
    ["PUT", "/health/ready", "GET, HEAD, OPTIONS"],
    ["POST", "/health", "GET, HEAD, OPTIONS"],
    ["DELETE", "/metrics", "GET, HEAD, OPTIONS"],
    ["POST", "/ws", "GET, OPTIONS"],
    ["PUT", "/api/v1/ws", "GET, OPTIONS"],
  ];
  for (const [method, path, allow] of cases) {
    const r = await fetch(`${gw.url}${path}`, { method });
    expect({ method, path, status: r.status, allow: r.headers.get("allow") }).toEqual({ method, path, status: 405, allow });
    expect(((await r.json()) as any).error.code).toBe("METHOD_NOT_ALLOWED");
    const options = await fetch(`${gw.url}${path}`, { method: "OPTIONS" });
    expect({ path, status: options.status, allow: options.headers.get("allow") }).toEqual({ path, status: 204, allow });
    if (allow.includes("HEAD")) expect({ path, head: (await fetch(`${gw.url}${path}`, { method: "HEAD" })).status }).toEqual({ path, head: 200 });
  }
});

test("a path with . or .. segments is not a route: 404 saying so, never a 405 that contradicts itself", async () => {
  // Before: the router matched the path as sent, the fallback the resolved one, and answered
  // "405 GET is not allowed on /health/live; use GET, HEAD, OPTIONS" (hostile tester).
  const gw = await gateway("listed");
  const raw = (line: string) =>
    new Promise<string>((resolve) => {
      let got = "";
      const s = net.connect(gw.port, "127.0.0.1", () => s.write(`${line} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
      s.on("data", (d) => (got += d.toString()));
      s.on("close", () => resolve(got));
      s.on("error", () => resolve(got));
    });
  // Nor for a method the resolved path does not take: GET /api/v1/events/../events was 405 "use
  // POST", and the POST then 404 (HTTP probe).
  for (const line of ["GET /api/v1/../../health/live", "GET /health/./live", "GET /./health", "POST /api/v1/x/../events?topic=h1", "GET /api/v1/events/../events", "DELETE /health/../health", "PUT /api/v1/./stream", "HEAD /api/v1/events/../events"]) {
    const answer = await raw(line);
    expect({ line, status: answer.split("\r\n")[0] }).toEqual({ line, status: "HTTP/1.1 404 Not Found" });
    if (!line.startsWith("HEAD")) expect(answer).toContain("paths with . or .. segments are not resolved");
  }
  expect((await raw("GET /health/live")).split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
});

test("a flood of refused upgrades and requests from a bad origin costs a control connection nothing", async () => {
  byDefault = await gateway("byDefault");
  await underControl(byDefault, "bad-origin flood", async () => {
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => (i % 2 ? upgrade(byDefault, { Origin: `https://evil${i}.example` }) : post(byDefault, "/api/v1/events", { Origin: `https://evil${i}.example` }).then((r) => ({ status: r.status })))),
    );
    expect(results.every((r) => r.status === 403)).toBe(true);
  });
}, 60_000);

test("ALLOWED_ORIGINS takes exact origins or *, and says what is wrong with anything else", () => {
  const bad = ["https://app.example.com/path", "https://*.example.com", "null", "app.example.com", "https://app.example.com?x=1"];
  for (const value of bad) {
    let message = "";
    try {
      loadConfig({ ALLOWED_ORIGINS: value });
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      message = (e as Error).message;
    }
    expect({ value, message }).toEqual({ value, message: expect.stringMatching(/^config: ALLOWED_ORIGINS .*is not an origin/) });
  }
  expect(loadConfig({ ALLOWED_ORIGINS: "HTTPS://App.Example.com:443/, http://localhost:3000" }).ALLOWED_ORIGINS).toBe("https://app.example.com,http://localhost:3000");
  expect(loadConfig({ ALLOWED_ORIGINS: "*" }).ALLOWED_ORIGINS).toBe("*");
  expect(loadConfig({}).ALLOWED_ORIGINS).toBe("");
  expect(loadConfig({ ALLOWED_ORIGINS: "*, https://app.example.com" }).ALLOWED_ORIGINS).toBe("*,https://app.example.com");
  expect(() => loadConfig({ CORS_ORIGINS: "*" })).toThrow(/CORS_ORIGINS is not a setting of this gateway: use ALLOWED_ORIGINS/);
});

test("ALLOWED_ORIGINS=* lets any page in, with its origin echoed; with authentication off, the start-up says what that means", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: "", ALLOWED_ORIGINS: "*" });
  try {
    const warnings = gw.lines.map((l) => JSON.parse(l)).filter((l) => l.level === "warn");
    expect(warnings.some((l) => /ALLOWED_ORIGINS is \* and authentication is off/.test(l.msg))).toBe(true);
    expect(await helloFrom(gw, { Origin: "https://anyone.example" })).toBe("welcome");
    const r = await post(gw, "/api/v1/events", { Origin: "https://anyone.example" });
    expect(r.status).toBe(202);
    expect(r.headers.get("access-control-allow-origin")).toBe("https://anyone.example");
  } finally {
    await gw.stop();
  }
}, 60_000);

test("DNS rebinding: with authentication off, a browser page on a host name the gateway does not know is refused 403, by Origin or by Sec-Fetch-Site; listed in ALLOWED_HOSTS, or with authentication on, it is not", async () => {
  // A page on http://attacker.example:PORT whose name now points at the gateway: the browser sends
  // that Host, and that Origin (or, for a same-origin GET, no Origin but Sec-Fetch-Site). Before,
  // Origin equal to Host passed as the gateway's own page: a publish got 202, the upgrade 101, SSE 200.
  const gw = await gateway("listed");
  const named = await startGateway({ KAFKA_BROKERS: "", ALLOWED_HOSTS: "attacker.example, gw.internal" });
  started.push(named);
  const rebound = (g: GatewayProcess) => ({ Host: `attacker.example:${g.port}`, Origin: `http://attacker.example:${g.port}` });
  const sameOriginGet = (g: GatewayProcess) => ({ Host: `attacker.example:${g.port}`, "Sec-Fetch-Site": "same-origin" });
  const r1 = await post(gw, "/api/v1/events?topic=rebind", rebound(gw));
  expect(r1.status).toBe(403);
  expect(((await r1.json()) as { error: { message: string } }).error.message).toContain("ALLOWED_HOSTS");
  expect((await upgrade(gw, rebound(gw))).status).toBe(403);
  expect((await fetch(`${gw.url}/api/v1/stream?topic=rebind`, { headers: rebound(gw) })).status).toBe(403);
  expect((await fetch(`${gw.url}/api/v1/admin/delivery`, { headers: sameOriginGet(gw) })).status).toBe(403);
  // The same page on an address or localhost, a typed URL (Sec-Fetch-Site: none), and no browser at all: served.
  expect((await post(gw, "/api/v1/events?topic=rebind", { Origin: `http://127.0.0.1:${gw.port}` })).status).toBe(202);
  expect((await post(gw, "/api/v1/events?topic=rebind", { Host: `localhost:${gw.port}`, Origin: `http://localhost:${gw.port}` })).status).toBe(202);
  expect((await fetch(`${gw.url}/dashboard`, { headers: { Host: `attacker.example:${gw.port}`, "Sec-Fetch-Site": "none" } })).status).toBe(200);
  expect((await fetch(`${gw.url}/api/v1/admin/delivery`, { headers: { Host: `attacker.example:${gw.port}` } })).status).toBe(200);
  // A name the operator listed is the gateway's own.
  expect((await post(named, "/api/v1/events?topic=rebind", rebound(named))).status).toBe(202);
  expect((await fetch(`${named.url}/api/v1/admin/delivery`, { headers: sameOriginGet(named) })).status).toBe(200);
  // With authentication on, the page has no token: the request is refused for that, not for its host.
  const a = await gateway("authOn");
  expect((await post(a, "/api/v1/events?topic=rebind", rebound(a))).status).toBe(401);
}, 60_000);
