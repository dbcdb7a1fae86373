import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { cpuSeconds } from "../support/proc";
import { SECRET, hsToken } from "./support";

/**
 * Every refused token costs a signature check, and HTTP refusals were answered at once with no bound
 * per address: 8,000 bad tokens a second from one address put a control connection's p99 from 3.8 to
 * 64 ms (outside security tester). Past BAD_TOKEN_RATE_PER_ADDRESS refusals a second (from a bucket
 * of 5 s of it), an address's requests are refused 429 before their token is verified; other
 * addresses, and valid tokens, are not charged.
 */
test("an address sending bad tokens is refused 429 before verification past BAD_TOKEN_RATE_PER_ADDRESS; other addresses are not", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, TRUSTED_PROXIES: "127.0.0.1", BAD_TOKEN_RATE_PER_ADDRESS: "20", CONNECTION_REFUSAL_DELAY_MS: "0" });
  try {
    const wrongKey = await hsToken({ sub: "mallory", kgw: { publish: ["*"] } }, {}, new TextEncoder().encode("another-secret-that-is-at-least-32-bytes"));
    const post = (token: string, address: string) =>
      fetch(`${gw.url}/api/v1/events?topic=t`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "x-forwarded-for": address }, body: '{"type":"x"}' });
    const statuses = new Map<number, number>();
    const cpuBefore = cpuSeconds(gw.proc.pid);
    for (let i = 0; i < 2000; i += 100) {
      for (const r of await Promise.all(Array.from({ length: 100 }, () => post(wrongKey, "10.0.0.66")))) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
    const cpuMs = (cpuSeconds(gw.proc.pid) - cpuBefore) * 1000;
    console.log(`2,000 bad tokens from one address: ${JSON.stringify(Object.fromEntries(statuses))}; gateway CPU ${cpuMs.toFixed(0)} ms`);
    // The bucket's 100 and what refilled meanwhile are verified and refused 401; the rest 429 unverified.
    expect(statuses.get(401)!).toBeGreaterThanOrEqual(100);
    expect(statuses.get(401)!).toBeLessThan(400);
    expect(statuses.get(429)!).toBeGreaterThan(1600);
    const refused = await post(wrongKey, "10.0.0.66");
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Another address's bad token is still verified and refused 401; a valid token is served.
    expect((await post(wrongKey, "10.0.0.7")).status).toBe(401);
    expect((await post(await hsToken({ sub: "alice", kgw: { publish: ["*"] } }), "10.0.0.8")).status).toBe(202);
  } finally {
    await gw.stop();
  }
}, 60_000);
