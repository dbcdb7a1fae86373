import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { SECRET } from "./support";

/**
 * A flood of bad tokens from one client: each answered 401 at once, and each wrote a warn-level audit
 * line. The hostile tester's four loops made 272,000 lines (66 MB) in 15 s, some 365 GB a day. Now a
 * kind of refusal (principal, action, code, transport) is written up to a few lines per window and
 * the rest as one line saying how many more there were: nothing is lost from the trail but its bulk.
 */
test("a flood of refused tokens writes a bounded number of audit lines, and one line counts the rest", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET });
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
