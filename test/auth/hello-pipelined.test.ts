import { afterAll, beforeAll, expect, test } from "bun:test";
import { type JWK, exportJWK, generateKeyPair } from "jose";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { RawWsClient } from "../support/raw-ws";
import { auditLines, signWith } from "./support";

/**
 * Frames a client pipelines behind a hello wait for its token to be verified, then run in order; a
 * key set being fetched makes that wait long. Past 1,024 held frames they ran at once, refused
 * HANDSHAKE_REQUIRED before the welcome, and a second hello among them threw away the 1,024 held
 * before it: no reply at all, and publishes never written (outside tester, a JWKS server answering in
 * 400 ms). Now every frame waits its turn, the socket unread past the bound; a refused hello answers
 * every frame behind it; a key set that cannot be fetched closes with 1013 (try again later), not
 * with 4401 (a new token), since the token may be good.
 */
const GRANTS = { kgw: { publish: ["*"], subscribe: ["*"] } };
const DELAY_MS = 700;
let served: JWK[] = [];
let up = true;
const idp = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: async () => {
    await Bun.sleep(DELAY_MS);
    return up ? Response.json({ keys: served }) : new Response("down", { status: 503 });
  },
});
let gw: GatewayProcess;
let key: CryptoKey;

beforeAll(async () => {
  const k = await generateKeyPair("ES256", { extractable: true });
  key = k.privateKey;
  served = [{ ...(await exportJWK(k.publicKey)), kid: "k1", alg: "ES256", use: "sig" }];
  // Every hello fetches the set again: the cache is kept 1 ms.
  gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWKS_URL: `http://127.0.0.1:${idp.port}/jwks.json`, AUTH_JWKS_CACHE_MAX_AGE: "1", AUTH_JWKS_COOLDOWN: "1", AUTH_JWKS_ALGORITHMS: "ES256", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
  idp.stop(true);
});

/** The close code, once the gateway has closed. */
async function closeCode(c: RawWsClient): Promise<number | null> {
  const deadline = Date.now() + 20_000;
  while (c.closeCode === null && Date.now() < deadline) await Bun.sleep(20);
  return c.closeCode;
}

/** Replies per cid (cids 1..n expected), and the cids in the order their replies came. */
function repliesOf(c: RawWsClient): { counts: Map<number, number>; order: number[] } {
  const counts = new Map<number, number>();
  const order: number[] = [];
  for (const f of c.frames) {
    if (typeof f.cid !== "number" || f.cid >= 1_000_000) continue;
    counts.set(f.cid, (counts.get(f.cid) ?? 0) + 1);
    order.push(f.cid);
  }
  return { counts, order };
}

test("2,000 frames and a second hello pipelined behind a hello whose key set takes a while: each answered once, in order, after the welcome", async () => {
  const token = await signWith(key, "ES256", GRANTS, { kid: "k1" });
  const c = await RawWsClient.connect(gw.port);
  c.send({ t: 1, v: 1, cid: 1_000_000, token });
  let cid = 0;
  for (let i = 0; i < 1100; i++) c.send(i % 2 === 0 ? { t: 15, cid: ++cid } : { t: 10, cid: ++cid, topic: "held", event: { type: "held", data: { i } } });
  c.send({ t: 1, v: 1, cid: 1_000_001, token });
  for (let i = 0; i < 900; i++) c.send(i % 2 === 0 ? { t: 15, cid: ++cid } : { t: 10, cid: ++cid, topic: "held", event: { type: "held", data: { i } } });
  await c.waitFor(() => repliesOf(c).counts.size === cid, 30_000).catch(() => {});
  const { counts, order } = repliesOf(c);
  const missing = Array.from({ length: cid }, (_, i) => i + 1).filter((n) => !counts.has(n));
  const twice = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
  expect({ missing: missing.length, twice }).toEqual({ missing: 0, twice: [] });
  // Pings are answered in order behind everything before them (acks come as the log answers).
  const pings = order.filter((n) => n % 2 === 1);
  expect(pings).toEqual(Array.from({ length: cid / 2 }, (_, i) => 2 * i + 1));
  const firstWelcome = c.frames.findIndex((f) => f.t === 2);
  const firstReply = c.frames.findIndex((f) => typeof f.cid === "number" && f.cid < 1_000_000);
  expect(firstWelcome).toBeLessThan(firstReply);
  expect(c.frames.filter((f) => f.code !== undefined).map((f) => f.code)).toEqual([]);
  c.destroy();
}, 60_000);

test("a refused hello answers every frame sent behind it, then closes 4401", async () => {
  const c = await RawWsClient.connect(gw.port);
  const bad = await signWith(key, "ES256", GRANTS, { kid: "unknown-kid" });
  c.send({ t: 1, v: 1, cid: 1_000_000, token: bad });
  for (let i = 1; i <= 50; i++) c.send({ t: 10, cid: i, topic: "held", event: { type: "held" } });
  const code = await closeCode(c);
  const { counts } = repliesOf(c);
  expect([...counts.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  expect(c.frames.filter((f) => typeof f.cid === "number" && f.cid < 1_000_000).every((f) => f.code === "UNAUTHENTICATED")).toBe(true);
  expect(code).toBe(4401);
}, 30_000);

test("3,000 frames behind a refused hello: each answered UNAUTHENTICATED, none counted as the client's invalid requests, then 4401", async () => {
  const c = await RawWsClient.connect(gw.port, "/ws", "", "127.0.0.81");
  c.send({ t: 1, v: 1, cid: 1_000_000, token: await signWith(key, "ES256", GRANTS, { kid: "unknown-kid" }) });
  for (let i = 1; i <= 3000; i++) c.send(i % 3 === 0 ? { t: 15, cid: i } : { t: 10, cid: i, topic: "held", event: { type: "held" } });
  const code = await closeCode(c);
  const { counts } = repliesOf(c);
  expect({ answered: counts.size, code }).toEqual({ answered: 3000, code: 4401 });
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  expect(c.frames.filter((f) => typeof f.cid === "number" && f.cid < 1_000_000).every((f) => f.code === "UNAUTHENTICATED")).toBe(true);
}, 60_000);

test("a hello whose key set cannot be reached at all (refused at once, before the frames behind it are read): those frames are answered too, then 1013", async () => {
  const down = await startGateway({ KAFKA_BROKERS: "", AUTH_JWKS_URL: "http://127.0.0.1:1/jwks.json", AUTH_JWKS_ALGORITHMS: "ES256", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });
  try {
    for (let round = 0; round < 5; round++) {
      const c = await RawWsClient.connect(down.port);
      c.send({ t: 1, v: 1, cid: 1_000_000, token: await signWith(key, "ES256", GRANTS, { kid: "k1" }) });
      for (let i = 1; i <= 50; i++) {
        c.send({ t: 10, cid: i, topic: "held", event: { type: "held" } });
        if (i % 10 === 0) await Bun.sleep(5); // some frames arrive after the refusal
      }
      const code = await closeCode(c);
      const { counts } = repliesOf(c);
      expect({ round, answered: counts.size, code }).toEqual({ round, answered: 50, code: 1013 });
      expect(c.frames.find((f) => f.cid === 1_000_000)).toMatchObject({ code: "UNAVAILABLE" });
    }
  } finally {
    await down.stop();
  }
}, 60_000);

test("a hello whose key set cannot be fetched is nacked UNAVAILABLE and closed 1013, try again later", async () => {
  up = false;
  try {
    const c = await RawWsClient.connect(gw.port);
    c.send({ t: 1, v: 1, cid: 7, token: await signWith(key, "ES256", GRANTS, { kid: "k1" }) });
    const code = await closeCode(c);
    expect(c.frames.find((f) => f.cid === 7)).toMatchObject({ code: "UNAVAILABLE", retriable: true });
    expect(code).toBe(1013);
  } finally {
    up = true;
  }
}, 30_000);

test("a hello without a token is refused and audited", async () => {
  const c = await RawWsClient.connect(gw.port);
  c.send({ t: 1, v: 1, cid: 3 });
  const code = await closeCode(c);
  expect(c.frames.find((f) => f.cid === 3)).toMatchObject({ code: "UNAUTHENTICATED" });
  expect(code).toBe(4401);
  const deadline = Date.now() + 5000;
  while (!auditLines(gw).some((l) => l.action === "authenticate" && l.outcome === "deny" && /requires a token/.test(l.reason)) && Date.now() < deadline) await Bun.sleep(25);
  expect(auditLines(gw).some((l) => l.action === "authenticate" && l.outcome === "deny" && /requires a token/.test(l.reason))).toBe(true);
}, 30_000);

test("frames pipelined behind a refresh wait for its token too: a refresh that narrows the grants applies to every frame sent after it", async () => {
  const c = await RawWsClient.connect(gw.port);
  c.send({ t: 1, v: 1, cid: 1_000_000, token: await signWith(key, "ES256", { kgw: { publish: ["ta", "tb"], subscribe: [] } }, { kid: "k1" }) });
  await c.waitFor(() => c.frames.some((f) => f.t === 2), 10_000);
  c.send({ t: 14, cid: 1_000_001, token: await signWith(key, "ES256", { kgw: { publish: ["ta"], subscribe: [] } }, { kid: "k1" }) });
  for (let i = 1; i <= 50; i++) c.send({ t: 10, cid: i, topic: i % 2 ? "tb" : "ta", event: { type: "after-refresh" } });
  await c.waitFor(() => repliesOf(c).counts.size === 50 && c.frames.some((f) => f.cid === 1_000_001), 20_000);
  const refreshed = c.frames.findIndex((f) => f.cid === 1_000_001);
  expect(c.frames[refreshed]).toMatchObject({ t: 29 });
  const replies = c.frames.filter((f) => typeof f.cid === "number" && f.cid < 1_000_000);
  // Every one answered after the refresh, under the new token: tb refused, ta written.
  expect(c.frames.findIndex((f) => typeof f.cid === "number" && f.cid < 1_000_000)).toBeGreaterThan(refreshed);
  expect(replies.filter((f) => f.cid % 2 === 1).map((f) => f.code)).toEqual(Array(25).fill("FORBIDDEN"));
  expect(replies.filter((f) => f.cid % 2 === 0).map((f) => f.t)).toEqual(Array(25).fill(20));

  // A refresh refused keeps the token the connection had: the frames behind it run under that one.
  c.frames.length = 0;
  c.send({ t: 14, cid: 1_000_002, token: await signWith(key, "ES256", { kgw: { publish: [], subscribe: [] } }, { kid: "unknown-kid" }) });
  for (let i = 1; i <= 20; i++) c.send({ t: 10, cid: i, topic: "ta", event: { type: "after-refused-refresh" } });
  await c.waitFor(() => repliesOf(c).counts.size === 20 && c.frames.some((f) => f.cid === 1_000_002), 20_000);
  expect(c.frames.findIndex((f) => f.cid === 1_000_002)).toBeLessThan(c.frames.findIndex((f) => f.cid === 1));
  expect(c.frames.find((f) => f.cid === 1_000_002)).toMatchObject({ t: 21, code: "UNAUTHENTICATED" });
  expect(c.frames.filter((f) => typeof f.cid === "number" && f.cid < 1_000_000).map((f) => f.t)).toEqual(Array(20).fill(20));
  expect(c.closeCode).toBeNull();
  c.destroy();
}, 60_000);

test("frames held behind a hello's token are charged to the connection's handling budget when they run: the connection rests after them", async () => {
  // Before, they ran outside the ingress, uncharged: a refresh a second could bring 4 MiB of frames
  // dense with integers (45 ms each) past RATE_LIMIT_HANDLING_MS and the total (second review).
  const token = await signWith(key, "ES256", GRANTS, { kid: "k1" });
  const dense = `[${Array.from({ length: 45_000 }, (_, i) => `1234567890123456${1000 + (i % 9000)}`).join(",")}]`;
  // A handling budget of 40 ms a second (a burst of 20): whatever the frames cost on this machine
  // (20-45 ms each), four leave seconds of debt.
  const tight = await startGateway({ KAFKA_BROKERS: "", AUTH_JWKS_URL: `http://127.0.0.1:${idp.port}/jwks.json`, AUTH_JWKS_ALGORITHMS: "ES256", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0", RATE_LIMIT_HANDLING_MS: "40" });
  try {
    const c = await RawWsClient.connect(tight.port);
    c.send({ t: 1, v: 1, cid: 1_000_000, token });
    for (let cid = 1; cid <= 4; cid++) c.sendFrame(Buffer.from(`{"t":10,"cid":${cid},"topic":"held-dense","event":{"type":"dense","data":${dense}}}`));
    await c.waitFor(() => repliesOf(c).counts.size === 4, 30_000);
    expect(c.frames.filter((f) => typeof f.cid === "number" && f.cid <= 4).map((f) => f.t)).toEqual([20, 20, 20, 20]);
    // The next frame, a ping, waits until that is paid back; uncharged, it was answered at once.
    const t0 = performance.now();
    c.send({ t: 15, cid: 5 });
    await c.waitFor(() => repliesOf(c).counts.has(5), 30_000);
    const waited = performance.now() - t0;
    console.log(`ping after four dense frames held behind a hello: answered in ${waited.toFixed(0)} ms`);
    expect(waited).toBeGreaterThan(1000);
    c.destroy();
  } finally {
    await tight.stop();
  }
}, 60_000);
