import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";
import { SECRET, hsToken } from "./support";

/**
 * With authentication on, an upgrade without a token holds a connection slot until HELLO_TIMEOUT:
 * clients from a few addresses that upgrade and never say hello could hold every MAX_CONNECTIONS slot,
 * and every client with a valid token was then refused TOO_MANY_CONNECTIONS (outside security tester;
 * MAX_CONNECTIONS_PER_IP bounds one address, not many). Upgrades still waiting for a token now share
 * MAX_TOKENLESS_CONNECTIONS (a quarter of the instance's maximum by default).
 */
const file = kafkaGatewayForFile({ AUTH_JWT_SECRET: SECRET, MAX_CONNECTIONS: "48", CONNECTION_RATE_PER_IP: "0", HELLO_TIMEOUT: "60000" });
const grants = { kgw: { publish: ["*"], subscribe: ["*"] } };

const upgrade = (address: string, headers = "") => RawWsClient.attempt(file.gw.port, headers, address);

test("tokenless upgrades from many addresses take at most MAX_TOKENLESS_CONNECTIONS slots; clients with a token, at the upgrade or in hello, still connect", async () => {
  const token = await hsToken({ sub: "user", ...grants });
  const idle: RawWsClient[] = [];
  const refusals: string[] = [];
  await underControl(
    file.gw,
    "48 tokenless upgrades that never say hello, from four addresses",
    async () => {
      for (let a = 2; a <= 5; a++) {
        for (let i = 0; i < 12; i++) {
          const c = await upgrade(`127.0.0.${a}`);
          if (c instanceof Error) refusals.push(c.message);
          else idle.push(c);
        }
      }
    },
    { token },
  );
  // A quarter of 48 (the control holds one slot, with its token).
  expect(idle.length).toBe(12);
  expect(refusals.length).toBe(36);
  for (const r of refusals) expect(r).toContain("TOO_MANY_CONNECTIONS");
  expect(refusals[0]).toContain("MAX_TOKENLESS_CONNECTIONS");

  // A token at the upgrade (the subprotocol browsers use, or a header) is not a tokenless slot.
  const viaProtocol = await upgrade("127.0.0.6", `Sec-WebSocket-Protocol: kgw.bearer.${token}, kgw\r\n`);
  expect(viaProtocol).toBeInstanceOf(RawWsClient);
  const viaHeader = await upgrade("127.0.0.6", `Authorization: Bearer ${token}\r\n`);
  expect(viaHeader).toBeInstanceOf(RawWsClient);

  // A token in hello: tokenless at the upgrade, so it waits for room; once its hello is welcomed its
  // slot is an ordinary one, and the next one gets the tokenless room it held.
  for (const c of idle.splice(0, 2)) c.destroy();
  await Bun.sleep(200);
  const topic = freshTopic("tokenless");
  const helloed: RawWsClient[] = [];
  for (let i = 0; i < 6; i++) {
    const c = await upgrade("127.0.0.7");
    if (c instanceof Error) throw c;
    c.send({ t: 1, v: 1, token });
    expect((await c.waitFor((f) => f.t === 2 || f.t === 21)).t).toBe(2);
    c.send({ t: 10, cid: 1, topic, event: { type: "t.tokenless" } });
    expect((await c.waitFor((f) => f.cid === 1, 30_000)).t).toBe(20);
    helloed.push(c);
  }
  // The six hold ordinary slots now: the tokenless room is the two freed places, and no more.
  const after = [await upgrade("127.0.0.8"), await upgrade("127.0.0.8"), await upgrade("127.0.0.8")];
  expect(after.map((c) => c instanceof RawWsClient)).toEqual([true, true, false]);
  for (const c of [...idle, ...helloed, ...after, viaProtocol, viaHeader]) if (c instanceof RawWsClient) c.destroy();
}, 120_000);
