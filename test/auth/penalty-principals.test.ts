import { expect, test } from "bun:test";
import { kafkaGatewayForFile } from "../support/kafka";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";
import { SECRET, hsToken } from "./support";

/**
 * The close penalty (RATE_LIMIT_CLOSE_PENALTY_SECONDS) refuses an address new connections after one of
 * its connections was closed 4400/4429. Behind a NAT that was every client of the address: a tokenless
 * client sending frames before its hello kept the others, with valid tokens, out for the whole
 * penalty (outside security tester). With authentication on, an upgrade whose token (subprotocol or
 * Authorization header) names a principal other than the one closed now gets in; the closed principal,
 * and upgrades without a token, are still refused.
 */
const file = kafkaGatewayForFile({ AUTH_JWT_SECRET: SECRET, INVALID_FRAMES_CLOSE_AFTER: "20", RATE_LIMIT_CLOSE_PENALTY_SECONDS: "60", CONNECTION_RATE_PER_IP: "0" });
const grants = { kgw: { publish: ["*"], subscribe: ["*"] } };

const upgrade = (address: string, headers = "") => RawWsClient.attempt(file.gw.port, headers, address);
const bearer = (token: string) => `Authorization: Bearer ${token}\r\n`;
const protocol = (token: string) => `Sec-WebSocket-Protocol: kgw.bearer.${token}, kgw\r\n`;

/** Sends invalid requests until the gateway closes the connection 4400. */
async function flood(c: RawWsClient): Promise<number | null> {
  for (let i = 0; i < 40; i++) c.send({ t: 10, cid: 100 + i, event: { type: 42 } });
  await Promise.race([c.ended, Bun.sleep(10_000)]);
  return c.closeCode;
}

async function helloed(c: RawWsClient | Error, token?: string): Promise<RawWsClient> {
  if (c instanceof Error) throw c;
  c.send(token ? { t: 1, v: 1, token } : { t: 1, v: 1 });
  expect((await c.waitFor((f) => f.t === 2 || f.t === 21)).t).toBe(2);
  return c;
}

test("after a tokenless client's abuse close, the address's clients with a valid token still connect; tokenless upgrades wait out the penalty", async () => {
  const bob = await hsToken({ sub: "bob", ...grants });
  const address = "127.0.0.21";
  await underControl(file.gw, "a tokenless client closed 4400, and its address's other clients", async () => {
    const tokenless = await upgrade(address);
    if (tokenless instanceof Error) throw tokenless;
    expect(await flood(tokenless)).toBe(4400);

    for (const headers of [protocol(bob), bearer(bob)]) {
      const c = await helloed(await upgrade(address, headers));
      c.send({ t: 10, cid: 1, topic: `penalty-${Date.now()}`, event: { type: "t.after" } });
      expect((await c.waitFor((f) => f.cid === 1, 30_000)).t).toBe(20);
      c.destroy();
    }
    // Without a token at the upgrade (it would come in hello) the address is still refused.
    const bare = await upgrade(address);
    expect(bare).toBeInstanceOf(Error);
    expect((bare as Error).message).toContain("429");
    // A bad token buys nothing either.
    const bad = await upgrade(address, bearer("not-a-token"));
    expect(bad).toBeInstanceOf(Error);
  }, { token: bob });
}, 120_000);

test("after an authenticated client's abuse close, that principal is refused at its address for the penalty; another principal there is not", async () => {
  const mallory = await hsToken({ sub: "mallory", ...grants });
  const carol = await hsToken({ sub: "carol", ...grants });
  const address = "127.0.0.22";
  await underControl(file.gw, "a principal closed 4400, and its address's other principals", async () => {
    const m = await helloed(await upgrade(address, bearer(mallory)));
    expect(await flood(m)).toBe(4400);
    const again = await upgrade(address, protocol(mallory));
    expect(again).toBeInstanceOf(Error);
    expect((again as Error).message).toContain("429");
    const c = await helloed(await upgrade(address, protocol(carol)));
    c.destroy();
    // Elsewhere the closed principal is not refused: the penalty is its address's.
    const elsewhere = await helloed(await upgrade("127.0.0.23", bearer(mallory)));
    elsewhere.destroy();
  }, { token: carol });
}, 120_000);
