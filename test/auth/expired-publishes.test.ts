import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { SECRET, hsToken, now } from "./support";

/**
 * Between a token's expiry and the refresh that replaces it, the gateway refuses publishes
 * UNAUTHENTICATED (not retriable), and the SDK failed them: an application whose token source was
 * slow to answer lost every publish of that gap (outside tester). With `getToken`, the SDK now asks
 * for the refresh at once, sends nothing more meanwhile, and sends those events again once it is taken.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, AUTH_CLOCK_TOLERANCE: "0s", AUTH_REFRESH_GRACE: "6s" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
});

test("publishes refused UNAUTHENTICATED after the token expired are sent again once the refresh is taken, in order", async () => {
  let calls = 0;
  const grants = { kgw: { publish: ["*"], subscribe: ["*"] } };
  const getToken = async () => {
    // The refresh's token comes 2.5 s late: 1.5 s past the first token's expiry.
    if (calls++ > 0) await Bun.sleep(2_500);
    return hsToken({ sub: "svc", exp: now() + 3, ...grants });
  };
  const states: string[] = [];
  const client = await connect({ url: gw.wsUrl, getToken, onState: (s, d) => states.push(`${s} ${d?.code ?? ""}`.trim()) });
  const outcomes: Array<Promise<{ offset: number } | { code: string }>> = [];
  const started = performance.now();
  while (performance.now() - started < 6_000) {
    const i = outcomes.length;
    outcomes.push(client.publish({ type: "t.expiry", key: "k", data: { i } }, { topic: "expired-publishes" }).catch((e: { code: string }) => ({ code: e.code })));
    await Bun.sleep(20);
  }
  const results = await Promise.all(outcomes);
  const refused = results.filter((r) => "code" in r).map((r) => (r as { code: string }).code);
  const offsets = results.filter((r) => "offset" in r).map((r) => (r as { offset: number }).offset);
  console.log(`${results.length} published across the expiry, ${refused.length} refused ${JSON.stringify([...new Set(refused)])}, getToken called ${calls} times`);
  expect(calls).toBeGreaterThanOrEqual(2);
  expect(refused).toEqual([]);
  // One key: publish order is offset order.
  expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
  expect(states.filter((s) => s !== "open")).toEqual([]);
  client.close();
}, 60_000);

/**
 * Second review: a token fetch for a refresh that never settled kept every later refresh from being
 * sent, on every later connection, so each token ran out into a 4401 close.
 */
test("a token source that never answered one refresh does not keep the next connection from refreshing", async () => {
  let calls = 0;
  const grants = { kgw: { publish: ["*"], subscribe: ["*"] } };
  const getToken = async () => {
    // The first refresh's token never comes; every other one at once.
    if (++calls === 2) await new Promise(() => {});
    return hsToken({ sub: "svc", exp: now() + 3, ...grants });
  };
  const states: string[] = [];
  const gwShort = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, AUTH_CLOCK_TOLERANCE: "0s", AUTH_REFRESH_GRACE: "1s" });
  try {
    const client = await connect({ url: gwShort.wsUrl, getToken, onState: (s, d) => states.push(`${s} ${d?.code ?? ""}`.trim()) });
    // The first token runs out unrefreshed (4401), the next connection's is refreshed, and the next.
    await Bun.sleep(11_000);
    const acked = await client.publish({ type: "t.after" }, { topic: "expired-publishes" });
    console.log(`states ${JSON.stringify(states)}, getToken called ${calls} times`);
    expect(acked.offset).toBeGreaterThanOrEqual(0);
    expect(states.filter((s) => s.startsWith("reconnecting"))).toEqual(["reconnecting 4401"]);
    client.close();
  } finally {
    await gwShort.stop();
  }
}, 60_000);
