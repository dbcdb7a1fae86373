import { expect, test } from "bun:test";
import { Audit } from "../../src/auth/audit";
import { Authenticator } from "../../src/auth/authenticator";
import { ConnectionAuth } from "../../src/auth/session";
import { ConfigSchema } from "../../src/config/schema";
import type { Logger } from "../../src/observability/logger";
import { loadKeySources } from "../../src/auth/keys";
import { SECRET, hsToken, now } from "./support";

/**
 * Found by the hostile tester: one connection naming 200,000 distinct topics (each subscribe refused
 * later, for the connection's subscription limit) grew the gateway by 90–220 MB, in the set of
 * decisions it had already audited, which nothing bounded. It now starts over past 1,024 entries, as
 * the set of granted topics beside it does.
 */
test("a connection's memory of audited decisions is bounded however many topics it names", () => {
  const config = ConfigSchema.parse({});
  let lines = 0;
  const logger = { info: () => void lines++, warn: () => void lines++, error: () => {}, debug: () => {} } as unknown as Logger;
  const audit = new Audit(logger);
  const auth = new ConnectionAuth({ authenticator: new Authenticator([], config), audit, config }, "s", { expiring() {}, close() {} });
  for (let i = 0; i < 5000; i++) expect(auth.authorize("subscribe", `topic-${i}`)).toBeUndefined();
  // The first 50 of the window (AUDIT_TOPICS_PER_WINDOW) are written, the rest counted.
  expect(lines).toBe(50);
  expect((auth as unknown as { seen: Set<string> }).seen.size).toBeLessThanOrEqual(1024);
  // No line for a decision it remembers, and not counted either.
  auth.authorize("subscribe", "topic-4999");
  audit.flush();
  expect(lines).toBe(51);
});

test("a token whose check ends after its connection closed arms nothing: the closed connection is not kept until the token's exp", async () => {
  // Found by a second review: each connect, hello with a token, close at once left a timer holding
  // the closed connection (and its socket's data) until exp plus the refresh grace.
  const config = ConfigSchema.parse({ AUTH_JWT_SECRET: SECRET, AUTH_REFRESH_GRACE: "0s", AUTH_CLOCK_TOLERANCE: "0s" });
  const logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} } as unknown as Logger;
  const authenticator = new Authenticator(await loadKeySources(config), config);
  const fired: string[] = [];
  const auth = new ConnectionAuth({ authenticator, audit: new Audit(logger), config }, "s", { expiring: () => fired.push("expiring"), close: () => fired.push("close") });
  const verifying = auth.authenticate(await hsToken({ sub: "gone", exp: now() + 1 }));
  auth.dispose(); // the socket closed while the token was being checked
  await verifying;
  expect(auth.identity).toBeUndefined();
  await Bun.sleep(2_100);
  expect(fired).toEqual([]);
});
