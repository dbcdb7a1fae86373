import { createHmac } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { SECRET, helloWith, hsToken, now, postEvent } from "./support";

/**
 * Tokens the key holder signed that still must not pass as they are (outside security probe): a
 * subject that is the gateway's own name for "no authentication", times no clock can reach, grants
 * the claim does not define, and a token offered twice in the subprotocols.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET });
}, 60_000);
afterAll(() => gw?.stop(), 60_000);

const grants = { kgw: { publish: ["edge.*"], subscribe: ["edge.*"] } };

/** An HS256 token whose payload is `json` as written: JSON.stringify cannot write 1e999. */
function rawToken(json: string): string {
  const part = (s: string) => Buffer.from(s).toString("base64url");
  const signed = `${part('{"alg":"HS256","typ":"JWT"}')}.${part(json)}`;
  return `${signed}.${createHmac("sha256", SECRET).update(signed).digest("base64url")}`;
}

/** How the gateway answers `token` in a hello, and on an HTTP publish. */
async function answers(token: string): Promise<{ hello: unknown; http: number; message: string }> {
  const { c, reply } = await helloWith(gw.wsUrl, token, "json");
  c.close();
  const res = await postEvent(gw, "edge.one", token);
  return { hello: reply.t === 21 ? reply.code : reply.t, http: res.status, message: String(reply.message ?? "") };
}

test('a token whose sub is "anonymous", the principal of clients without authentication, is refused', async () => {
  // Accepted, it was counted as no principal: the per-principal share-group bound skipped it, and
  // its audit lines read as those of clients that brought no valid token.
  const token = await hsToken({ sub: "anonymous", exp: now() + 600, ...grants });
  const a = await answers(token);
  expect(a).toMatchObject({ hello: "UNAUTHENTICATED", http: 401 });
  expect(a.message).toContain("reserved");
  // Another subject of the same shape is served.
  expect(await answers(await hsToken({ sub: "anonymous2", exp: now() + 600, ...grants }))).toMatchObject({ hello: 2, http: 202 });
});

test("exp, nbf and iat are times a clock can reach: 1e999 (Infinity), 1e300 and NaN-like values are refused, the largest date is not", async () => {
  const sub = '"sub":"edge","kgw":{"publish":["edge.*"]}';
  for (const claims of ['"exp":1e999', '"exp":1e300', '"exp":8640000000001', `"exp":${now() + 600},"nbf":-1e999`, `"exp":${now() + 600},"nbf":1e999`, `"exp":${now() + 600},"iat":-1e999`]) {
    const a = await answers(rawToken(`{${sub},${claims}}`));
    expect({ claims, ...a, message: undefined }).toEqual({ claims, hello: "UNAUTHENTICATED", http: 401, message: undefined });
  }
  // The last second a Date can hold is a time, however far.
  expect(await answers(rawToken(`{${sub},"exp":8640000000000}`))).toMatchObject({ hello: 2, http: 202 });
});

test("grants the claim does not define (a misspelt subscribe, an unknown action, an unknown key of a grant) refuse the token, naming them", async () => {
  for (const kgw of [{ publish: ["edge.*"], subscibe: ["edge.*"] }, { publish: ["edge.*"], produce: ["*"] }, { publish: [{ topic: "edge.*", typse: ["a.*"] }] }]) {
    const a = await answers(await hsToken({ sub: "edge", exp: now() + 600, kgw }));
    expect(a).toMatchObject({ hello: "UNAUTHENTICATED", http: 401 });
    expect(a.message).toMatch(/subscibe|produce|typse/);
  }
});

test("two kgw.bearer. subprotocols, perhaps of two principals, are refused 400 (give the token once), not the first served", async () => {
  const alice = await hsToken({ sub: "alice", exp: now() + 600, ...grants });
  const bob = await hsToken({ sub: "bob", exp: now() + 600, ...grants });
  const upgrade = (protocols: string[]) =>
    fetch(`${gw.url}/ws`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-protocol": protocols.join(", ") } });
  for (const offered of [[`kgw.bearer.${alice}`, `kgw.bearer.${bob}`, "kgw"], [`kgw.bearer.${alice}`, "kgw.bearer.garbage", "kgw"], [`kgw.bearer.${alice}`, "kgw", `KGW.BEARER.${alice}`]]) {
    const res = await upgrade(offered);
    expect(res.status).toBe(400);
    expect(res.headers.get("www-authenticate")).toBe('Bearer error="invalid_request"');
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "INVALID_FRAME", message: expect.stringContaining("give the token once") });
  }
  expect((await upgrade([`kgw.bearer.${alice}`, "kgw"])).status).toBe(101);
});
