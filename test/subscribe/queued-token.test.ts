import { afterAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { RawWsClient } from "../support/raw-ws";
import { connect } from "../../src/client";

/**
 * Tokens handed out while a subscription still has frames queued for a client that is not reading
 * (`unsubscribed`, `lagged`) must name what the client was really handed: resuming from them leaves
 * no gap.
 */
const gateways: GatewayProcess[] = [];
afterAll(async () => {
  for (const g of gateways) await g.stop();
}, 60_000);

const COUNT = 20_000;
const pad = "x".repeat(1000);
const eventsOf = (f: Record<string, any>): Array<{ partition: number; offset: number; event: any }> => (f.t === 24 ? [f as any] : f.t === 25 ? f.events : []);

async function publishHistory(url: string, topic: string, prefix = "q"): Promise<void> {
  const pub = await connect({ url });
  for (let i = 0; i < COUNT; i += 500) {
    const settled = await pub.publishBatch(Array.from({ length: 500 }, (_, j) => ({ id: `${prefix}-${i + j}`, type: "q", key: `k${(i + j) % 13}`, data: { pad } })), { topic });
    for (const r of settled) expect(r.status).toBe("fulfilled");
  }
  pub.close();
}

/**
 * Resumes from `token` with a reading client and returns the ids it gets until `live`. If that client
 * falls behind too (a loaded machine), it does what a client should: keeps what came before the
 * `lagged` notice and resumes again from the notice's token.
 */
async function resume(url: string, topic: string, token: string, depth = 0): Promise<string[]> {
  expect(depth).toBeLessThan(50);
  const c = await connect({ url });
  const sub = await c.subscribe(topic, { start: { token } });
  // Ids in arrival order, and the first notice with the subscription's token when it came.
  const ids: string[] = [];
  let notice: { kind: string; at: number; token: string } | undefined;
  sub.onEvent((e) => ids.push(e.event.id));
  sub.onNotice((n) => (notice ??= { kind: n.kind, at: ids.length, token: sub.token! }));
  const deadline = Date.now() + 60_000;
  while (notice === undefined && Date.now() < deadline) await Bun.sleep(20);
  c.close();
  expect(notice?.kind).toMatch(/^(live|lagged)$/);
  if (notice!.kind === "live") return ids;
  return [...ids.slice(0, notice!.at), ...(await resume(url, topic, notice!.token, depth + 1))];
}

test("unsubscribe while events are queued for a client that is not reading: resuming from its token leaves no gap", async () => {
  const gw = await startGateway({ SUBSCRIBER_BUFFER_BYTES: String(128 * 1024 * 1024) });
  gateways.push(gw);
  const topic = freshTopic("unsub-queued");
  await publishHistory(gw.wsUrl, topic);

  const raw = await RawWsClient.connect(gw.port);
  raw.send({ t: 1, v: 1 });
  raw.send({ t: 12, cid: 1, sub: "s", topic, start: "earliest" });
  await raw.waitFor((f) => f.t === 23);
  raw.pause();
  await Bun.sleep(2000); // the whole history is read and queued behind the stalled socket
  raw.send({ t: 13, cid: 2, sub: "s" });
  await Bun.sleep(200);
  raw.resume();
  const unsubscribed = await raw.waitFor((f) => f.t === 28);
  const at = raw.frames.indexOf(unsubscribed);
  const first = raw.frames.slice(0, at).flatMap(eventsOf).map((e) => e.event.id);
  expect(first.length).toBeLessThan(COUNT); // the point of the test: some were still queued
  await Bun.sleep(300);
  expect(raw.frames.slice(at + 1).flatMap(eventsOf)).toEqual([]); // nothing after unsubscribed
  raw.destroy();

  const second = await resume(gw.wsUrl, topic, unsubscribed.token);
  const all = [...first, ...second];
  expect(new Set(all).size).toBe(all.length); // no duplicate
  expect(all.length).toBe(COUNT); // no gap
}, 120_000);

test("lagged while the client is not reading: resuming from its token fills the gap", async () => {
  // Live events are what a slow reader loses (history waits for it): the client stalls while they arrive.
  const gw = await startGateway({ SUBSCRIBER_BUFFER_BYTES: String(64 * 1024) });
  gateways.push(gw);
  const topic = freshTopic("lagged-queued");
  await publishHistory(gw.wsUrl, topic, "old"); // creates the topic; the subscription starts after it

  const raw = await RawWsClient.connect(gw.port);
  raw.send({ t: 1, v: 1 });
  raw.send({ t: 12, cid: 1, sub: "s", topic, policy: "drop-oldest" });
  await raw.waitFor((f) => f.t === 26);
  raw.pause();
  await publishHistory(gw.wsUrl, topic);
  await Bun.sleep(500);
  raw.resume();
  const firstNotice = await raw.waitFor((f) => f.t === 27);
  // Everything before the first notice was handed in order; resuming from its token must yield the rest.
  const at = raw.frames.indexOf(firstNotice);
  const before = raw.frames.slice(0, at).flatMap(eventsOf).map((e) => e.event.id);
  raw.destroy();
  const rest = await resume(gw.wsUrl, topic, firstNotice.token);
  const all = new Set([...before, ...rest]);
  expect(rest.length).toBeGreaterThan(0);
  expect(all.size).toBe(COUNT);
  expect(before.length + rest.length).toBe(COUNT); // the token is exactly the handed position
}, 120_000);
