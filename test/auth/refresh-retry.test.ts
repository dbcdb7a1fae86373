import { afterAll, beforeAll, expect, test } from "bun:test";
import { exportJWK, generateKeyPair } from "jose";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { signWith } from "./support";

/**
 * A refresh refused for a passing reason is sent again. The gateway refuses a token UNAVAILABLE
 * (retriable) while its key set is past AUTH_JWKS_CACHE_MAX_AGE and cannot be fetched; the SDK sent
 * its refresh once, and from the token's expiry every publish was refused UNAUTHENTICATED until the
 * connection was closed 4401 (outside tester: 264-544 events a run). Here the key server is down
 * when the refresh is due, and back before the token's grace ends.
 */
let up = true;
let keys: unknown[] = [];
const idp = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (up ? Response.json({ keys }) : new Response("down", { status: 503 })) });
let gw: GatewayProcess;
let privateKey: CryptoKey;

beforeAll(async () => {
  const pair = await generateKeyPair("ES256", { extractable: true });
  privateKey = pair.privateKey;
  keys = [{ ...(await exportJWK(pair.publicKey)), kid: "k", alg: "ES256", use: "sig" }];
  gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWKS_URL: `http://127.0.0.1:${idp.port}/jwks.json`, AUTH_JWKS_ALGORITHMS: "ES256", AUTH_JWKS_CACHE_MAX_AGE: "2s", AUTH_JWKS_COOLDOWN: "500ms", AUTH_CLOCK_TOLERANCE: "0s", AUTH_REFRESH_GRACE: "4s" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
  idp.stop(true);
});

test("a refresh refused UNAVAILABLE while the key set cannot be fetched is sent again, and the connection lives on once it is taken", async () => {
  const tokenFor = () => signWith(privateKey, "ES256", { sub: "svc", exp: Math.floor(Date.now() / 1000) + 4, kgw: { publish: ["*"], subscribe: ["*"] } }, { kid: "k" });
  const states: string[] = [];
  const client = await connect({ url: gw.wsUrl, getToken: tokenFor, onState: (s, d) => states.push(`${s} ${d?.code ?? ""}`.trim()) });
  await client.publish({ type: "t.before" }, { topic: "refresh-retry" });
  // Down from before the refresh is due (a second before the token's expiry) until after the expiry.
  up = false;
  await Bun.sleep(4_500);
  up = true;
  await Bun.sleep(3_000); // within the grace: a refresh sent again is taken
  const after = await client.publish({ type: "t.after" }, { topic: "refresh-retry" });
  expect(after.offset).toBeGreaterThanOrEqual(0);
  expect(states.filter((s) => s !== "open")).toEqual([]);
  client.close();
}, 60_000);

/**
 * A client whose second getToken call (its first refresh's) never settles, on tokens of `lifetimeS`
 * seconds: after `waitMs` it still publishes, on the same connection (no 4401 close), with a token
 * from a later call.
 */
async function outlivesHangingRefresh(lifetimeS: number, connectTimeoutMs: number, waitMs: number): Promise<void> {
  let calls = 0;
  const tokenFor = () => signWith(privateKey, "ES256", { sub: "svc", exp: Math.floor(Date.now() / 1000) + lifetimeS, kgw: { publish: ["*"], subscribe: ["*"] } }, { kid: "k" });
  const states: string[] = [];
  const client = await connect({ url: gw.wsUrl, connectTimeoutMs, getToken: () => (++calls === 2 ? new Promise<string>(() => {}) : tokenFor()), onState: (s, d) => states.push(`${s} ${d?.code ?? ""}`.trim()) });
  await client.publish({ type: "t.before" }, { topic: "refresh-retry" });
  await Bun.sleep(waitMs);
  const after = await client.publish({ type: "t.after" }, { topic: "refresh-retry" });
  expect(after.offset).toBeGreaterThanOrEqual(0);
  expect(calls).toBeGreaterThanOrEqual(3);
  expect(states.filter((s) => s !== "open")).toEqual([]);
  client.close();
}

test("a getToken that never settles for a refresh gives up at connectTimeoutMs: the next refresh is asked and taken within the grace, no 4401 close (second review: it held every later refresh back)", async () => {
  // The first refresh's fetch hangs 500 ms; the one asked when the token expires (3 s) answers, within the grace (4 s).
  await outlivesHangingRefresh(3, 500, 5_000);
}, 60_000);

test("a refresh whose getToken timed out after the token expired is asked again, and taken within the grace: no 4401 close (outside probe: nothing followed it)", async () => {
  // The refresh is due a second before the expiry (4 s); its fetch hangs past it, to connectTimeoutMs
  // (2 s); 9 s is past what the grace (4 s) would have left.
  await outlivesHangingRefresh(4, 2000, 9_000);
}, 60_000);
