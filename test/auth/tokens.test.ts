// Stays on the raw test client: it checks handshake refusals of bad tokens, requests before hello and the 4401 close of raw sockets, which the SDK turns into a failed connect().
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { GatewayClient } from "../support/ws-client";
import { cpuSeconds } from "../support/proc";
import { createHmac } from "node:crypto";
import { SECRET, auditLines, helloWith, hsToken, now, postEvent, rsaKeyFiles, signWith, unsignedToken } from "./support";

// test-plan: alone (it bounds a time from above; scripts/test-plan.ts).

/** An HS256 token put together by hand, for headers jose will not sign. */
function rawHs(header: object, payload: object): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
  return `${input}.${createHmac("sha256", SECRET).update(input).digest("base64url")}`;
}

const GRANTS = { kgw: { publish: ["*"], subscribe: ["*"] } };

describe("HS256 shared secret, with iss, aud, typ and a 5 s clock tolerance", () => {
  let gw: GatewayProcess;
  const claims = { iss: "https://idp.test", aud: "kgw", ...GRANTS };
  const typ = { typ: "JWT" };
  beforeAll(async () => {
    gw = await startGateway({
      KAFKA_BROKERS: "",
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWT_ISSUER: "https://idp.test",
      AUTH_JWT_AUDIENCE: "kgw",
      AUTH_JWT_TYPE: "JWT",
      AUTH_CLOCK_TOLERANCE: "5s",
    });
  }, 60_000);
  afterAll(async () => {
    await gw.stop();
  });

  test("a valid token is accepted over WebSocket (hello) and HTTP (Bearer); /health says auth jwt", async () => {
    const token = await hsToken(claims, typ);
    const { c, reply } = await helloWith(gw.wsUrl, token);
    expect(reply).toMatchObject({ t: 2, principal: "alice", expiresAt: expect.any(Number) });
    expect(await c.publish({ type: "ok" }, "tok-a")).toMatchObject({ t: 20 });
    c.close();
    expect((await postEvent(gw, "tok-a", token)).status).toBe(202);
    expect((await gw.health()).auth).toBe("jwt");
  });

  test("no token: HTTP 401 UNAUTHENTICATED with a Bearer challenge; WebSocket hello refused and closed 4401; publish before hello refused", async () => {
    const r = await postEvent(gw, "tok-a", undefined);
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toContain("Bearer");
    expect(((await r.json()) as any).error).toMatchObject({ code: "UNAUTHENTICATED", num: 1020 });
    const garbage = await postEvent(gw, "tok-a", "not.a.jwt");
    expect(garbage.status).toBe(401);

    const early = await GatewayClient.connect(gw.wsUrl, "msgpack", false);
    expect(await early.publish({ type: "x" }, "tok-a")).toMatchObject({ t: 21, code: "HANDSHAKE_REQUIRED" });
    expect(await early.request({ t: 12, sub: "s", topic: "tok-a" })).toMatchObject({ t: 21, code: "HANDSHAKE_REQUIRED" });
    const reply = await early.request({ t: 1, v: 1 });
    expect(reply).toMatchObject({ t: 21, code: "UNAUTHENTICATED" });
    expect((await early.closed).code).toBe(4401);
    // Health and metrics stay open.
    expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(200);
  });

  // Each case must be refused on both transports, with UNAUTHENTICATED.
  const refusedCases: Array<[string, () => Promise<string>]> = [
    ["expired beyond the 5 s tolerance (exp = now − 10 s)", () => hsToken({ ...claims, exp: now() - 10 }, typ)],
    ["not yet valid beyond the 5 s tolerance (nbf = now + 10 s)", () => hsToken({ ...claims, nbf: now() + 10 }, typ)],
    ["issued beyond the 5 s tolerance in the future (iat = now + 10 s)", () => hsToken({ ...claims, iat: now() + 10 }, typ)],
    ["wrong audience", () => hsToken({ ...claims, aud: "someone-else" }, typ)],
    ["wrong issuer", () => hsToken({ ...claims, iss: "https://evil.test" }, typ)],
    ["wrong typ", () => hsToken(claims, { typ: "at+jwt" })],
    ["no exp at all", () => hsToken({ ...claims, exp: undefined }, typ)],
    ["signed with another secret", () => hsToken(claims, typ, new TextEncoder().encode("another-secret-of-at-least-32-bytes!!"))],
    ["alg HS512 where HS256 is pinned", () => hsToken(claims, typ, new TextEncoder().encode(SECRET), "HS512")],
    ["an unknown crit header", async () => rawHs({ alg: "HS256", typ: "JWT", crit: ["kgw-magic"], "kgw-magic": true }, { sub: "alice", exp: now() + 600, ...claims })],
    ["a jwk header naming its own key", () => hsToken(claims, { ...typ, jwk: { kty: "oct", k: "AAAA" } })],
    ...(["none", "None", "NONE", "nOnE"] as const).map((alg): [string, () => Promise<string>] => [`alg ${alg}`, async () => unsignedToken(alg, claims)]),
  ];
  for (const [name, make] of refusedCases) {
    test(`refused: ${name}`, async () => {
      const token = await make();
      const r = await postEvent(gw, "tok-a", token);
      expect(r.status).toBe(401);
      expect(((await r.json()) as any).error.code).toBe("UNAUTHENTICATED");
      const { c, reply } = await helloWith(gw.wsUrl, token);
      expect(reply).toMatchObject({ t: 21, code: "UNAUTHENTICATED" });
      expect((await c.closed).code).toBe(4401);
    });
  }

  test("inside the tolerance: exp 2 s ago, nbf and iat 2 s ahead are still accepted", async () => {
    for (const token of [await hsToken({ ...claims, exp: now() - 2 }, typ), await hsToken({ ...claims, nbf: now() + 2 }, typ), await hsToken({ ...claims, iat: now() + 2 }, typ)]) {
      expect((await postEvent(gw, "tok-a", token)).status).toBe(202);
    }
  });

  test("every refusal is in the audit log with its reason", async () => {
    const denials = auditLines(gw).filter((l) => l.action === "authenticate" && l.outcome === "deny");
    expect(denials.length).toBeGreaterThanOrEqual(refusedCases.length * 2);
    expect(denials.every((l) => l.code === "UNAUTHENTICATED" && typeof l.reason === "string" && (l.transport === "ws" || l.transport === "http"))).toBe(true);
  });
});

describe("RS256 public key from a PEM file", () => {
  let gw: GatewayProcess;
  let keys: Awaited<ReturnType<typeof rsaKeyFiles>>;
  let jkuFetches = 0;
  const jku = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (jkuFetches++, Response.json({ keys: [] })) });
  beforeAll(async () => {
    keys = await rsaKeyFiles();
    gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_PUBLIC_KEY_FILE: keys.pemFile, AUTH_JWT_PUBLIC_KEY_ALG: "RS256" });
  }, 60_000);
  afterAll(async () => {
    await gw.stop();
    jku.stop(true);
  });

  test("a token signed with the private key is accepted", async () => {
    const token = await signWith(keys.privateKey, "RS256", GRANTS);
    expect((await postEvent(gw, "tok-rs", token)).status).toBe(202);
  });

  test("key confusion: HS256 signed with the RS256 public key (PEM bytes as the HMAC secret) is refused", async () => {
    for (const secret of [keys.pem, keys.pem.trim(), Buffer.from(keys.pem).toString("base64")]) {
      const token = await hsToken(GRANTS, {}, new TextEncoder().encode(secret));
      const r = await postEvent(gw, "tok-rs", token);
      expect(r.status).toBe(401);
      const { reply } = await helloWith(gw.wsUrl, token);
      expect(reply).toMatchObject({ t: 21, code: "UNAUTHENTICATED" });
    }
  });

  test("alg none in every spelling is refused", async () => {
    for (const alg of ["none", "None", "NONE", "nOnE"]) expect((await postEvent(gw, "tok-rs", unsignedToken(alg, GRANTS))).status).toBe(401);
  });

  test("a jku header pointing elsewhere is refused, and never fetched", async () => {
    const forged = await signWith(keys.privateKey, "RS256", GRANTS, { jku: `http://127.0.0.1:${jku.port}/jwks.json`, kid: "k1" });
    expect((await postEvent(gw, "tok-rs", forged)).status).toBe(401);
    const { reply } = await helloWith(gw.wsUrl, forged);
    expect(reply).toMatchObject({ t: 21, code: "UNAUTHENTICATED" });
    await Bun.sleep(500);
    expect(jkuFetches).toBe(0);
  });

  test("a JWK file works the same way", async () => {
    const g2 = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_PUBLIC_KEY_FILE: keys.jwkFile });
    try {
      expect((await postEvent(g2, "tok-rs", await signWith(keys.privateKey, "RS256", GRANTS))).status).toBe(202);
      expect((await postEvent(g2, "tok-rs", await hsToken(GRANTS, {}, new TextEncoder().encode(keys.pem)))).status).toBe(401);
    } finally {
      await g2.stop();
    }
  }, 60_000);
});

describe("start-up refusals and the no-auth default", () => {
  test("a shared secret under 32 bytes refuses to start (exit 2, a readable line)", async () => {
    const proc = Bun.spawn([process.execPath, "src/main.ts"], { env: { ...process.env, KAFKA_BROKERS: "", PORT: "0", AUTH_JWT_SECRET: "short-secret" }, stdout: "pipe", stderr: "pipe" });
    expect(await proc.exited).toBe(2);
    const err = await new Response(proc.stderr).text();
    expect(err).toContain("AUTH_JWT_SECRET must be at least 32 bytes");
    expect(err).not.toContain("short-secret"); // a secret is never echoed, not even a wrong one
  });

  test("a PEM key without its algorithm refuses to start", async () => {
    const keys = await rsaKeyFiles();
    const proc = Bun.spawn([process.execPath, "src/main.ts"], { env: { ...process.env, KAFKA_BROKERS: "", PORT: "0", AUTH_JWT_PUBLIC_KEY_FILE: keys.pemFile }, stdout: "pipe", stderr: "pipe" });
    expect(await proc.exited).toBe(2);
    expect(await new Response(proc.stderr).text()).toContain("AUTH_JWT_PUBLIC_KEY_ALG");
  });

  test("without keys: a warning at start, /health says auth none, and everything is allowed", async () => {
    const gw = await startGateway({ KAFKA_BROKERS: "" });
    try {
      expect(gw.lines.some((l) => l.includes('"level":"warn"') && l.includes("authentication is off"))).toBe(true);
      expect((await gw.health()).auth).toBe("none");
      expect((await postEvent(gw, "open-t", undefined)).status).toBe(202);
    } finally {
      await gw.stop();
    }
  }, 60_000);
});

test("AUTH_CLOCK_TOLERANCE keeps its milliseconds, for exp and nbf alike", async () => {
  // It was cut to whole seconds, and then jose's whole-second clock still rounded it (outside
  // tester: at 1,500 ms a token 1.95 s past exp was accepted and one 1.2 s before nbf refused; at
  // 1 ms, one 735 ms past exp was accepted).
  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, AUTH_CLOCK_TOLERANCE: "1500" });
  try {
    const at = (offsetMs: number) => (Date.now() + offsetMs) / 1000; // fractional seconds: NumericDate allows them
    expect((await postEvent(gw, "tol-t", await hsToken({ exp: at(-1000), ...GRANTS }))).status).toBe(202);
    expect((await postEvent(gw, "tol-t", await hsToken({ exp: at(-1900), ...GRANTS }))).status).toBe(401);
    expect((await postEvent(gw, "tol-t", await hsToken({ nbf: at(1000), ...GRANTS }))).status).toBe(202);
    expect((await postEvent(gw, "tol-t", await hsToken({ nbf: at(1900), ...GRANTS }))).status).toBe(401);
  } finally {
    await gw.stop();
  }
  const strict = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, AUTH_CLOCK_TOLERANCE: "1" });
  try {
    expect((await postEvent(strict, "tol-t", await hsToken({ exp: (Date.now() - 400) / 1000, ...GRANTS }))).status).toBe(401);
    expect((await postEvent(strict, "tol-t", await hsToken({ exp: (Date.now() + 5000) / 1000, ...GRANTS }))).status).toBe(202);
  } finally {
    await strict.stop();
  }
}, 60_000);

test("a token whose header is bloated (13 KiB of nested arrays) is refused before its header is parsed: it costs what any bad token costs", async () => {
  // Outside tester: such a token, under the 16 KiB bound, cost ~700 us of the gateway's CPU a request
  // (its header parsed twice, by the kid lookup and by jwtVerify), ten times a plain bad token; 64
  // lanes of them put a control's p99 at 61-115 ms.
  // Refused tokens are what this measures: their per-address rate (bad-token-rate.test.ts) is off.
  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0", BAD_TOKEN_RATE_PER_ADDRESS: "0" });
  try {
    const b64 = (v: string) => Buffer.from(v).toString("base64url");
    const payload = b64(JSON.stringify({ sub: "x", exp: now() + 600 }));
    const bloated = `${b64(`{"alg":"HS256","x":${"[".repeat(4800)}${"]".repeat(4800)}}`)}.${payload}.${b64("sig")}`;
    const plain = `${b64('{"alg":"HS256"}')}.${payload}.${b64("sig")}`;
    expect(bloated.length).toBeLessThan(16 * 1024);
    const cost = async (token: string) => {
      const before = cpuSeconds(gw.proc.pid);
      for (let round = 0; round < 40; round++) {
        const statuses = await Promise.all(Array.from({ length: 50 }, () => postEvent(gw, "bloat-t", token).then((r) => r.status)));
        expect(statuses.every((s) => s === 401)).toBe(true);
      }
      return cpuSeconds(gw.proc.pid) - before;
    };
    await cost(plain); // warm
    const [a, b] = [await cost(plain), await cost(bloated)];
    console.log(`gateway CPU for 2,000 requests: plain bad token ${(a * 1000).toFixed(0)} ms, bloated header ${(b * 1000).toFixed(0)} ms`);
    expect(b).toBeLessThan(Math.max(2 * a, 0.15));
  } finally {
    await gw.stop();
  }
}, 60_000);
