// Stays on the raw test client: it holds sockets that never say hello or send before it, and checks their close codes (4002, 4401), which the SDK never does.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { loadConfig } from "../../src/config/load";
import { SECRET, hsToken } from "../auth/support";
import { underControl } from "../ingest/control";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { kafkaBrokers } from "../support/kafka";
import { GatewayClient } from "../support/ws-client";

// test-plan: shards: its one time bound (15 s for a HELLO_TIMEOUT of 1 s) tells "closed" from
// "never closed".

/**
 * HELLO_TIMEOUT, authentication on or off: a WebSocket that completes no hello can do nothing (every
 * request is refused HANDSHAKE_REQUIRED) yet holds a connection slot, so it is closed 4002 (4401 when
 * authentication is on and it has no valid token either).
 */
let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", HELLO_TIMEOUT: "1s", MAX_CONNECTIONS_PER_IP: "20" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

interface Watched {
  ws: WebSocket;
  frames: any[];
  closed: Promise<{ code: number; afterMs: number }>;
}

function open(url: string, headers: Record<string, string> = {}): Promise<Watched> {
  const ws = new WebSocket(url, { headers } as any);
  const frames: any[] = [];
  const at = Date.now();
  ws.onmessage = (m) => frames.push(JSON.parse(String(m.data)));
  const closed = new Promise<{ code: number; afterMs: number }>((resolve) => (ws.onclose = (e) => resolve({ code: e.code, afterMs: Date.now() - at })));
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve({ ws, frames, closed });
    ws.onerror = () => reject(new Error("could not connect"));
  });
}

test("a socket that never says hello is closed 4002 after HELLO_TIMEOUT; one that publishes without hello is nacked HANDSHAKE_REQUIRED, then closed too", async () => {
  const silent = await open(gw.wsUrl);
  const rude = await open(gw.wsUrl);
  rude.ws.send(JSON.stringify({ t: 10, cid: 7, event: { type: "no.hello" } }));
  const [a, b] = await Promise.all([silent.closed, rude.closed]);
  expect(a.code).toBe(4002);
  expect(b.code).toBe(4002);
  // 1 s, give or take a busy machine; never early.
  expect(a.afterMs).toBeGreaterThanOrEqual(900);
  expect(a.afterMs).toBeLessThan(15_000);
  expect(rude.frames).toEqual([expect.objectContaining({ t: 21, cid: 7, code: "HANDSHAKE_REQUIRED" })]);
  expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/gateway_hello_timeouts_total [2-9]/);
}, 30_000);

test("a socket that said hello stays past HELLO_TIMEOUT and keeps publishing", async () => {
  const c = await GatewayClient.connect(gw.wsUrl, "json");
  await Bun.sleep(2500);
  expect(await c.publish({ type: "after.timeout" })).toMatchObject({ t: 20 });
  c.close();
}, 30_000);

test("sockets that never say hello give their slots back: past MAX_CONNECTIONS_PER_IP of them, new clients get in once they are closed", async () => {
  await underControl(gw, "idle sockets holding slots", async () => {
    // The control holds one slot of the 20.
    const idle = await Promise.all(Array.from({ length: 19 }, () => open(gw.wsUrl)));
    await expect(GatewayClient.connect(gw.wsUrl)).rejects.toThrow();
    const codes = await Promise.all(idle.map((s) => s.closed.then((c) => c.code)));
    expect(new Set(codes)).toEqual(new Set([4002]));
    await Bun.sleep(200);
    const fresh = await GatewayClient.connect(gw.wsUrl);
    expect((await fresh.publish({ type: "got.in" })).t).toBe(20);
    fresh.close();
  });
}, 60_000);

test("with authentication on: no token and no hello closes 4401; a token at the upgrade but no hello closes 4002; AUTH_HELLO_TIMEOUT, the old name, still sets it", async () => {
  const authGw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, AUTH_HELLO_TIMEOUT: "1s" });
  try {
    const token = await hsToken({ kgw: { publish: ["*"] } });
    const [none, tokenOnly] = await Promise.all([open(authGw.wsUrl), open(authGw.wsUrl, { Authorization: `Bearer ${token}` })]);
    expect((await none.closed).code).toBe(4401);
    expect((await tokenOnly.closed).code).toBe(4002);
  } finally {
    await authGw.stop();
  }
}, 60_000);

test("HELLO_TIMEOUT defaults to 10 s, wins over AUTH_HELLO_TIMEOUT, and is bounded", () => {
  expect(loadConfig({}).HELLO_TIMEOUT).toBe(10_000);
  expect(loadConfig({ AUTH_HELLO_TIMEOUT: "3s" }).HELLO_TIMEOUT).toBe(3000);
  expect(loadConfig({ AUTH_HELLO_TIMEOUT: "3s", HELLO_TIMEOUT: "5s" }).HELLO_TIMEOUT).toBe(5000);
  expect(() => loadConfig({ HELLO_TIMEOUT: "0" })).toThrow(/^config: HELLO_TIMEOUT/);
  expect(() => loadConfig({ HELLO_TIMEOUT: "1h" })).toThrow(/^config: HELLO_TIMEOUT/);
});
