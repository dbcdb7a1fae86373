// Stays on the raw test client: it counts connection slots and checks the refusal of a raw upgrade; the SDK would reconnect by itself around a refusal.
import { afterAll, expect, test } from "bun:test";
import { resolve } from "node:path";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { GatewayClient } from "../support/ws-client";
import { cpuSeconds } from "../support/proc";

const gateways: GatewayProcess[] = [];
afterAll(async () => {
  for (const g of gateways) await g.stop();
}, 60_000);


/** The refusal a WebSocket upgrade gets, read as HTTP so its body can be checked. */
async function upgradeRefusal(url: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url.replace("ws://", "http://"), { headers: { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13" } });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function openUpTo(url: string, n: number): Promise<GatewayClient[]> {
  const out: GatewayClient[] = [];
  for (let i = 0; i < n; i++) out.push(await GatewayClient.connect(url));
  return out;
}

test("at MAX_CONNECTIONS a new client gets a clear refusal, health answers, and a control connection keeps publishing", async () => {
  const gw = await startGateway({ MAX_CONNECTIONS: "40" });
  gateways.push(gw);
  const control = await GatewayClient.connect(gw.wsUrl);
  const held = await openUpTo(gw.wsUrl, 39);
  const refusal = await upgradeRefusal(gw.wsUrl);
  expect(refusal).toMatchObject({ status: 503, body: { error: { code: "TOO_MANY_CONNECTIONS", retriable: true } } });
  await expect(GatewayClient.connect(gw.wsUrl)).rejects.toThrow();
  expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
  expect((await control.publish({ type: "control" })).t).toBe(20);
  // A slot freed is a slot to take again.
  held.pop()!.close();
  await Bun.sleep(200);
  (await GatewayClient.connect(gw.wsUrl)).close();
  expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/gateway_connections_refused_total [1-9]/);
  for (const c of held) c.close();
  control.close();
}, 60_000);

test("MAX_CONNECTIONS_PER_IP caps one address", async () => {
  const gw = await startGateway({ MAX_CONNECTIONS_PER_IP: "10" });
  gateways.push(gw);
  const held = await openUpTo(gw.wsUrl, 10);
  expect(await upgradeRefusal(gw.wsUrl)).toMatchObject({ status: 503, body: { error: { code: "TOO_MANY_CONNECTIONS" } } });
  for (const c of held) c.close();
}, 60_000);

test("under a low open-files limit the cap stays below it: refusals, not a spinning accept loop; live answers and idle CPU stays near zero", async () => {
  const root = resolve(import.meta.dir, "../..");
  // The gateway as users run it, under `ulimit -n 256`; no MAX_CONNECTIONS, so the default applies.
  const gw = await startGateway({}, { command: ["bash", "-c", `ulimit -n 256 && exec "${process.execPath}" src/main.ts`], cwd: root });
  gateways.push(gw);
  const clients: GatewayClient[] = [];
  let refused = 0;
  for (let i = 0; i < 300; i++) {
    try {
      clients.push(await GatewayClient.connect(gw.wsUrl));
    } catch {
      refused++;
    }
  }
  expect(refused).toBeGreaterThan(0);
  expect(clients.length).toBeGreaterThan(100);
  const live = await fetch(`${gw.url}/health/live`, { signal: AbortSignal.timeout(2000) });
  expect(live.status).toBe(200);
  const before = cpuSeconds(gw.proc.pid);
  await Bun.sleep(2000);
  const idle = (cpuSeconds(gw.proc.pid) - before) / 2;
  console.log(`fd limit 256: ${clients.length} connected, ${refused} refused, idle CPU ${(idle * 100).toFixed(1)}%`);
  expect(idle).toBeLessThan(0.1);
  expect((await clients[0]!.publish({ type: "still.works" })).t).toBe(20);
  for (const c of clients) c.close();
}, 120_000);
