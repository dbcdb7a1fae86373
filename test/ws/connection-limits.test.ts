// Stays on the raw test client: it counts connection slots and checks the refusal of a raw upgrade; the SDK would reconnect by itself around a refusal.
import { afterAll, expect, test } from "bun:test";
import { resolve } from "node:path";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { GatewayClient } from "../support/ws-client";
import { cpuSeconds } from "../support/proc";
import { Control } from "../ingest/control";

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

/**
 * One GET on a connection of its own (fetch would reuse a pooled one, which a closed port does not
 * stop): the status, or "refused" or "timeout".
 */
async function freshRequest(port: number, path: string, timeoutMs: number): Promise<number | string> {
  const { promise, resolve } = Promise.withResolvers<number | string>();
  let head = "";
  const timer = setTimeout(() => resolve("timeout"), timeoutMs);
  try {
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data(_s, d) {
          head += d.toString();
          const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
          if (m) resolve(Number(m[1]));
        },
        close() {
          resolve("closed");
        },
        error() {
          resolve("error");
        },
      },
    });
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    const result = await promise;
    socket.end();
    return result;
  } catch {
    return "refused";
  } finally {
    clearTimeout(timer);
  }
}

/** Opens `n` TCP connections that never send a byte; some may be refused, which is the point. */
async function holdSilentSockets(port: number, n: number): Promise<{ sockets: { end(): void }[]; refused: number }> {
  const sockets: { end(): void }[] = [];
  let refused = 0;
  for (let i = 0; i < n; i++) {
    try {
      sockets.push(await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } }));
    } catch {
      refused++;
    }
  }
  return { sockets, refused };
}

test("silent TCP connections cannot exhaust the open files: new ones are refused at once, the process does not spin, a client keeps publishing, health answers on INTERNAL_PORT, and it accepts again once they close", async () => {
  const root = resolve(import.meta.dir, "../..");
  // No WebSocket upgrade, no request: what MAX_CONNECTIONS never sees. Bun's accept loop spins at
  // EMFILE (oven-sh/bun#32705) and answers no one, so the gateway must stop accepting before that.
  const gw = await startGateway({ HTTP_IDLE_TIMEOUT: "2000", INTERNAL_PORT: "0" }, { command: ["bash", "-c", `ulimit -n 256 && exec "${process.execPath}" src/main.ts`], cwd: root });
  gateways.push(gw);
  const listening = JSON.parse(gw.lines.find((l) => l.includes('"msg":"listening"'))!);
  expect(listening.internalPort).toBeGreaterThan(0);
  const internal = `http://127.0.0.1:${listening.internalPort}`;
  const control = await Control.start(gw, "open-files-control", `${internal}/health/live`);
  try {
    const cpuBefore = cpuSeconds(gw.proc.pid);
    await Bun.sleep(2000);
    const quietCpu = (cpuSeconds(gw.proc.pid) - cpuBefore) / 2;
    const { sockets, refused } = await holdSilentSockets(gw.port, 400);
    // The guard's next count sees the files short and closes the port.
    const deadline = Date.now() + 10_000;
    const accepting = async (url: string) => ((await (await fetch(`${url}/health`)).json()) as { accepting: boolean }).accepting;
    while ((await accepting(internal)) !== false && Date.now() < deadline) await Bun.sleep(100);
    expect(await accepting(internal)).toBe(false);
    // A newcomer is turned away at once, not left hanging in the backlog.
    const t0 = performance.now();
    const newcomer = await freshRequest(gw.port, "/health/live", 5000);
    const newcomerMs = performance.now() - t0;
    const before = cpuSeconds(gw.proc.pid);
    await Bun.sleep(2000);
    const busy = (cpuSeconds(gw.proc.pid) - before) / 2;
    const metrics = await (await fetch(`${internal}/metrics`)).text();
    console.log(`fd limit 256, ${sockets.length} silent sockets held (${refused} refused): CPU ${(quietCpu * 100).toFixed(1)}% with the control alone, ${(busy * 100).toFixed(1)}% while held; a newcomer got ${newcomer} in ${newcomerMs.toFixed(0)} ms`);
    // Bun's accept loop spinning on EMFILE would add most of a core.
    expect(busy - quietCpu).toBeLessThan(0.1);
    expect(newcomer).toBe("refused");
    expect(newcomerMs).toBeLessThan(1000);
    expect(metrics).toMatch(/gateway_listener_paused_total [1-9]/);
    for (const s of sockets) s.end();
    // Accepting again once the silent ones are gone.
    let status: number | string = 0;
    const reopen = Date.now() + 15_000;
    while (Date.now() < reopen && status !== 200) {
      status = await freshRequest(gw.port, "/health/live", 1000);
      if (status !== 200) await Bun.sleep(200);
    }
    expect(status).toBe(200);
    expect(await accepting(gw.url)).toBe(true);
    const late = await GatewayClient.connect(gw.wsUrl);
    expect((await late.publish({ type: "after.the.flood" })).t).toBe(20);
    late.close();
  } finally {
    await control.stop("silent TCP connections at the open-files limit");
  }
}, 120_000);
