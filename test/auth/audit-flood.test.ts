import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { SECRET, hsToken, postEvent } from "./support";

/**
 * A flood of bad tokens from one client: each answered 401 at once, and each wrote a warn-level audit
 * line. The hostile tester's four loops made 272,000 lines (66 MB) in 15 s, some 365 GB a day. Now a
 * kind of refusal (principal, action, code, transport) is written up to a few lines per window and
 * the rest as one line saying how many more there were: nothing is lost from the trail but its bulk.
 */
test("a flood of refused tokens writes a bounded number of audit lines, and one line counts the rest", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, BAD_TOKEN_RATE_PER_ADDRESS: "0" });
  const N = 500;
  try {
    for (let i = 0; i < N; i += 50) {
      const replies = await Promise.all(
        Array.from({ length: 50 }, () => fetch(`${gw.url}/api/v1/events?topic=t`, { method: "POST", headers: { authorization: "Bearer x.y.z", "content-type": "application/json" }, body: '{"type":"x"}' })),
      );
      expect(replies.every((r) => r.status === 401)).toBe(true);
    }
  } finally {
    await gw.stop(); // the window's count is written at shutdown, if not before
  }
  const audit = gw.lines.filter((l) => l.includes('"msg":"audit"')).map((l) => JSON.parse(l) as { action: string; outcome: string; repeated?: number });
  const denied = audit.filter((a) => a.action === "authenticate" && a.outcome === "deny");
  const single = denied.filter((a) => a.repeated === undefined).length;
  const repeated = denied.reduce((n, a) => n + (a.repeated ?? 0), 0);
  expect(single).toBeLessThanOrEqual(2 * 20); // 20 lines a window (AUDIT_DENY_LINES_PER_WINDOW), at most two windows in this time
  expect(single + repeated).toBe(N);
}, 60_000);

/**
 * The line that counts a kind's refusals past its lines said one reason, the last one's, for all of
 * them: 95 refusals for expiry, issuer and alg read as 95 bad signatures (outside security probe).
 */
test("the line counting a kind's refusals past its lines counts each reason they had", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, BAD_TOKEN_RATE_PER_ADDRESS: "0" });
  const expired = await hsToken({ sub: "late", exp: Math.floor(Date.now() / 1000) - 600, kgw: { publish: ["t"] } });
  try {
    // 20 lines are written (AUDIT_DENY_LINES_PER_WINDOW), all for expiry; 10 more expired and 30 malformed are counted.
    for (const [token, n] of [[expired, 30], ["x.y.z", 30]] as const) {
      const replies = await Promise.all(Array.from({ length: n }, () => postEvent(gw, "t", token)));
      expect(replies.every((r) => r.status === 401)).toBe(true);
    }
  } finally {
    await gw.stop();
  }
  const counted = gw.lines.filter((l) => l.includes('"msg":"audit"')).map((l) => JSON.parse(l)).filter((a) => a.action === "authenticate" && a.repeated !== undefined);
  expect(counted).toHaveLength(1);
  expect(counted[0].repeated).toBe(40);
  expect(counted[0].reason).toBeUndefined();
  expect(Object.values(counted[0].reasons as Record<string, number>).sort()).toEqual([10, 30]);
  expect(Object.keys(counted[0].reasons).join(" ")).toContain("expired");
}, 60_000);

/**
 * What the outside security tester found the throttle hid: 30 refused publishes to one topic left no
 * line for the refusal of another that followed (kinds had no topic), one address's bad tokens hid
 * every other's (all "anonymous"), no line named the client's address, the upgrade's line had no
 * session, and a U+2028 in `sub` split a line for readers that take it for a line end (U+0085 too, later).
 */
test("the audit throttle keeps each topic's and each address's refusals apart; lines name the address, and stay one line", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET, TRUSTED_PROXIES: "127.0.0.1" });
  try {
    const mallory = await hsToken({ sub: "mallory\u2028x\u0085y\u009bz\u202ew", kgw: { publish: ["orders.m.*"] } });
    for (let i = 0; i < 30; i++) expect((await postEvent(gw, "orders.noise", mallory)).status).toBe(403);
    expect((await postEvent(gw, "orders.payroll", mallory)).status).toBe(403);
    const badToken = (address: string) => fetch(`${gw.url}/api/v1/events?topic=t`, { method: "POST", headers: { authorization: "Bearer x.y.z", "content-type": "application/json", "x-forwarded-for": address }, body: '{"type":"x"}' });
    for (let i = 0; i < 30; i++) expect((await badToken("10.0.0.66")).status).toBe(401);
    expect((await badToken("10.0.0.7")).status).toBe(401);
    const ws = await fetch(`${gw.url}/ws`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", authorization: "Bearer x.y.z" } });
    expect(ws.status).toBe(401);
  } finally {
    await gw.stop();
  }
  const lines = gw.lines.filter((l) => l.includes('"msg":"audit"'));
  // One line each, whatever the principal holds.
  // Nor anything a reader may take for a line end or that turns text round on a terminal: U+2028,
  // U+2029, C1 controls (U+0085 is a line end to Python's splitlines; outside security tester) and bidi controls.
  expect(lines.filter((l) => /[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(l))).toEqual([]);
  const audit = lines.map((l) => JSON.parse(l) as Record<string, any>);
  expect(audit.filter((a) => a.topic === "orders.payroll" && a.outcome === "deny" && a.repeated === undefined)).toHaveLength(1);
  expect(audit.find((a) => a.topic === "orders.payroll")!.principal).toBe("mallory\u2028x\u0085y\u009bz\u202ew");
  expect(audit.filter((a) => a.action === "authenticate" && a.address === "10.0.0.7" && a.repeated === undefined)).toHaveLength(1);
  const upgrade = audit.find((a) => a.action === "authenticate" && a.transport === "ws");
  expect(upgrade).toMatchObject({ outcome: "deny", address: "127.0.0.1" });
  expect(upgrade!.session).toBeString();
}, 60_000);

test("allowed decisions are bounded too: one principal publishing to 200 new topics, over WebSocket and HTTP, writes a few lines and one that counts the rest", async () => {
  // Each new topic name wrote an `allow` line, also for an empty batch (no event, no refusal, so
  // nothing ever closed the connection): 3,705 lines a second from one principal, 3.3 GiB of log an
  // hour (outside security tester).
  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET });
  const token = await hsToken({ sub: "chatty", kgw: { publish: ["chatty.*"] } });
  try {
    const ws = new WebSocket(gw.wsUrl, [`kgw.bearer.${token}`, "kgw"]);
    await new Promise((r) => (ws.onopen = r));
    const replies: Array<Record<string, unknown>> = [];
    const last = new Promise<void>((resolve) => {
      ws.onmessage = (m) => {
        const f = JSON.parse(String(m.data));
        replies.push(f);
        if (f.cid === 100) resolve();
      };
    });
    ws.send(JSON.stringify({ t: 1, v: 1 }));
    for (let i = 0; i < 100; i++) ws.send(JSON.stringify({ t: 11, cid: i + 1, topic: `chatty.ws-${i}`, events: [] }));
    await last;
    expect(replies.filter((f) => f.t === 22)).toHaveLength(100);
    ws.close();
    for (let i = 0; i < 100; i++) expect((await postEvent(gw, `chatty.http-${i}`, token)).status).toBeLessThan(300);
  } finally {
    await gw.stop();
  }
  const allowed = gw.lines.filter((l) => l.includes('"msg":"audit"')).map((l) => JSON.parse(l) as { action: string; outcome: string; principal: string; repeated?: number }).filter((a) => a.action === "publish" && a.outcome === "allow" && a.principal === "chatty");
  const single = allowed.filter((a) => a.repeated === undefined).length;
  const counted = allowed.reduce((n, a) => n + (a.repeated ?? 0), 0);
  console.log(`200 new topics from one principal: ${single} allow lines, ${counted} more counted in ${allowed.length - single} lines`);
  expect(single).toBeLessThanOrEqual(2 * 50);
  expect(single + counted).toBe(200);
}, 60_000);
