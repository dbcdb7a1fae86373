import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { GatewayClient } from "../support/ws-client";

/**
 * Subscribes that read history each open a reader of their own, ask the log for offsets and close it
 * again; within every subscribe rate, ten addresses starting and ending replays 126 times a second
 * held another client's p99 at 314-394 ms on Kafka (hostile tester). They have rates of their own:
 * REPLAY_START_RATE_PER_ADDRESS from a bucket of twice MAX_REPLAYS_PER_ADDRESS, REPLAY_START_RATE over the
 * instance from a bucket of MAX_REPLAY_SUBSCRIPTIONS.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "", REPLAY_START_RATE_PER_ADDRESS: "2", MAX_REPLAYS_PER_ADDRESS: "4", REPLAY_START_RATE: "1000", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0" });
});
afterAll(async () => {
  await gw.stop();
});

test("replays started and ended in a loop from one address: past the bucket, RATE_LIMITED with scope address; live subscribes are not charged; SSE replays share the rate", async () => {
  const c = await GatewayClient.connect(gw.wsUrl, "json");
  const outcomes: string[] = [];
  const started = performance.now();
  for (let i = 0; i < 14; i++) {
    const r = await c.subscribe({ sub: `r${i}`, topic: "replayed", start: "earliest" }, () => {});
    outcomes.push(r.t === 23 ? "subscribed" : String(r.code));
    if (r.t === 23) await c.request({ t: 13, sub: `r${i}` });
    else expect(r).toMatchObject({ scope: "address", retryAfterMs: expect.any(Number) });
  }
  expect(outcomes.slice(0, 8)).toEqual(Array(8).fill("subscribed"));
  // A refusal holds the socket's reading for its retryAfterMs, in which the bucket refills: the bound
  // is the rate's, eight and two a second since.
  const seconds = (performance.now() - started) / 1000;
  expect(outcomes.filter((o) => o === "RATE_LIMITED").length).toBeGreaterThanOrEqual(1);
  expect(outcomes.filter((o) => o === "subscribed").length).toBeLessThanOrEqual(8 + Math.ceil(2 * seconds));
  // From latest: not a replay, not charged.
  for (let i = 0; i < 6; i++) expect(await c.subscribe({ sub: `l${i}`, topic: "replayed" }, () => {})).toMatchObject({ t: 23 });
  const sse = await fetch(`${gw.url}/api/v1/stream?topic=replayed&start=earliest`);
  expect(sse.status).toBe(429);
  await sse.body?.cancel();
  // The rate refills: a replay passes again a moment later.
  await Bun.sleep(1200);
  expect(await c.subscribe({ sub: "later", topic: "replayed", start: "earliest" }, () => {})).toMatchObject({ t: 23 });
  c.close();
}, 30_000);
