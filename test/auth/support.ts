// Stays on the raw test client: helloWith sends the hello itself, for tests of what the handshake answers.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type JWTPayload, SignJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";
import type { GatewayProcess } from "../support/gateway";
import { type Frame, GatewayClient } from "../support/ws-client";

export const SECRET = "test-secret-that-is-at-least-32-bytes-long!";
export const secretKey = new TextEncoder().encode(SECRET);
export const now = () => Math.floor(Date.now() / 1000);

/** An HS256 token with our secret; `claims` override, `header` adds header parameters. */
export function hsToken(claims: JWTPayload = {}, header: Record<string, unknown> = {}, key: Uint8Array = secretKey, alg = "HS256"): Promise<string> {
  return new SignJWT({ sub: "alice", exp: now() + 600, ...claims }).setProtectedHeader({ alg, ...header }).sign(key);
}

export async function signWith(key: CryptoKey, alg: string, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: "alice", exp: now() + 600, ...claims }).setProtectedHeader({ alg, ...header }).sign(key);
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
/** An unsigned token, as an attacker would write one. */
export function unsignedToken(alg: string, claims: JWTPayload = {}): string {
  return `${b64({ alg, typ: "JWT" })}.${b64({ sub: "mallory", exp: now() + 600, kgw: { publish: ["*"], subscribe: ["*"] }, ...claims })}.`;
}

export async function rsaKeyFiles(): Promise<{ dir: string; pemFile: string; pem: string; privateKey: CryptoKey; jwkFile: string }> {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const dir = mkdtempSync(join(tmpdir(), "kgw-auth-"));
  const pem = await exportSPKI(publicKey);
  const pemFile = join(dir, "public.pem");
  writeFileSync(pemFile, pem);
  const jwkFile = join(dir, "public.jwk.json");
  writeFileSync(jwkFile, JSON.stringify({ ...(await exportJWK(publicKey)), alg: "RS256" }));
  return { dir, pemFile, pem, privateKey, jwkFile };
}

/** Connects, sends hello with `token`, and returns the client and the hello's reply. */
export async function helloWith(url: string, token: string | undefined, codec: "msgpack" | "json" = "msgpack"): Promise<{ c: GatewayClient; reply: Frame }> {
  const c = await GatewayClient.connect(url, codec, false);
  const reply = await c.request({ t: 1, v: 1, ...(token === undefined ? {} : { token }) });
  return { c, reply };
}

/** The audit lines the gateway has written so far. */
export function auditLines(gw: GatewayProcess): Array<Record<string, any>> {
  return gw.lines.filter((l) => l.includes('"msg":"audit"')).map((l) => JSON.parse(l));
}

/** Waits until an audit line matching `match` is there (log lines arrive a moment after the reply). */
export async function waitForAudit(gw: GatewayProcess, match: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = auditLines(gw).find((l) => Object.entries(match).every(([k, v]) => l[k] === v));
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no audit line like ${JSON.stringify(match)} in:\n${auditLines(gw).map((l) => JSON.stringify(l)).join("\n")}`);
    await Bun.sleep(25);
  }
}

export const postEvent = (gw: GatewayProcess, topic: string, token: string | undefined, event: Record<string, unknown> = { type: "t.one" }) =>
  fetch(`${gw.url}/api/v1/events?topic=${topic}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(event),
  });
