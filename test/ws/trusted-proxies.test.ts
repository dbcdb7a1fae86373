// Raw sockets: the test chooses the peer address (127.0.0.x) and writes X-Forwarded-For itself.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { RawWsClient } from "../support/raw-ws";

/**
 * Behind a load balancer every client has the balancer's address: per-address bounds then make all
 * of them one client, and the first few hundred take what the gateway allows an address. With
 * TRUSTED_PROXIES, the address a trusted proxy forwards is the client; X-Forwarded-For from anyone
 * else is ignored, since any client can write it.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  // 127.0.0.1 is the load balancer, 10.0.0.0/8 the proxies behind it; 127.0.0.2 is a client that connects directly.
  gw = await startGateway({ MAX_CONNECTIONS_PER_IP: "3", CONNECTION_RATE_PER_IP: "0", TRUSTED_PROXIES: "127.0.0.1, 10.0.0.0/8" });
});
afterAll(() => gw?.stop());

const forwarded = (chain: string) => `X-Forwarded-For: ${chain}\r\n`;
async function opens(chain: string | null, from = "127.0.0.1"): Promise<RawWsClient | null> {
  try {
    return await RawWsClient.connect(gw.port, "/ws", chain === null ? "" : forwarded(chain), from);
  } catch (e) {
    expect(String(e)).toContain("TOO_MANY_CONNECTIONS");
    return null;
  }
}

test("through a trusted proxy, each forwarded client has its own connection cap", async () => {
  const held: RawWsClient[] = [];
  for (let i = 0; i < 3; i++) held.push((await opens("198.51.100.1"))!);
  expect(await opens("198.51.100.1")).toBeNull();
  // Another client behind the same balancer is not refused for the first one's connections.
  const other = await opens("198.51.100.2");
  expect(other).not.toBeNull();
  // A chain through trusted proxies names the client left of them.
  expect(await opens("198.51.100.1, 10.1.2.3")).toBeNull();
  // Entries left of the first untrusted one were written by the client: they name nothing.
  expect(await opens("198.51.100.2, 198.51.100.1")).toBeNull();
  const forged = await opens("198.51.100.1, 203.0.113.9");
  expect(forged).not.toBeNull();
  for (const c of [...held, other!, forged!]) c.destroy();
});

test("an IPv6 client is its /64, and one address is one client however it is written", async () => {
  const sameClient = [
    ["2001:db8:1:1::1", "2001:db8:1:1::2", "2001:DB8:1:1:ffff:0:0:9"],
    ["198.51.100.4", "::ffff:198.51.100.4", "::ffff:c633:6404"],
  ];
  for (const forms of sameClient) {
    const held: RawWsClient[] = [];
    for (const form of forms) held.push((await opens(form))!);
    expect(held.every((c) => c !== null)).toBe(true);
    // Three held of MAX_CONNECTIONS_PER_IP 3: a fourth in yet another form of the same client is refused.
    expect(await opens(forms[0]!.replace(/::1$/, "::7"))).toBeNull();
    for (const c of held) c.destroy();
  }
  // Another /64 is another client.
  const other = await opens("2001:db8:1:2::1");
  expect(other).not.toBeNull();
  other!.destroy();
});

test("X-Forwarded-For from a peer that is not a trusted proxy is ignored", async () => {
  const held: RawWsClient[] = [];
  for (let i = 0; i < 3; i++) held.push((await opens(`198.51.100.${10 + i}`, "127.0.0.2"))!);
  expect(await opens("198.51.100.99", "127.0.0.2")).toBeNull();
  // And the forged addresses were never charged: a trusted proxy forwarding one of them is admitted.
  const honest = await opens("198.51.100.10");
  expect(honest).not.toBeNull();
  for (const c of [...held, honest!]) c.destroy();
});

test("a forwarded entry that is not an address charges the proxy, not a bucket the garbage names", async () => {
  const held: RawWsClient[] = [];
  for (const chain of ["not-an-address", "nonsense-2", ""]) held.push((await opens(chain))!);
  expect(await opens("junk")).toBeNull();
  expect(await opens(null)).toBeNull();
  for (const c of held) c.destroy();
});

test("an SSE stream is charged to the forwarded client too", async () => {
  const held: RawWsClient[] = [];
  for (let i = 0; i < 3; i++) held.push((await opens("198.51.100.7"))!);
  const stream = (chain: string) => fetch(`${gw.url}/api/v1/stream?topic=events`, { headers: { "X-Forwarded-For": chain } });
  const refused = await stream("198.51.100.7");
  expect(refused.status).toBe(503);
  expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("TOO_MANY_CONNECTIONS");
  const admitted = await stream("198.51.100.8");
  expect(admitted.status).toBe(200);
  await admitted.body?.cancel();
  for (const c of held) c.destroy();
});

test("TRUSTED_PROXIES with a /0 block, however written, warns at start: every client could name its own address", async () => {
  for (const blocks of ["::/0", "10.0.0.1, 0.0.0.0/00"]) {
    const open = await startGateway({ TRUSTED_PROXIES: blocks });
    try {
      expect(open.lines.some((l) => l.includes("TRUSTED_PROXIES holds a /0 block"))).toBe(true);
    } finally {
      await open.stop();
    }
  }
  expect(gw.lines.some((l) => l.includes("TRUSTED_PROXIES holds a /0 block"))).toBe(false);
});
