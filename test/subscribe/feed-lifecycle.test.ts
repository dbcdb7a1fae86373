// The subscribe/unsubscribe cycles stay on the raw test client: they check each unsubscribe's own reply, which the SDK does not wait for.
import { afterAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { GatewayClient } from "../support/ws-client";

const gateways: GatewayProcess[] = [];
afterAll(async () => {
  for (const g of gateways) await g.stop();
}, 60_000);

const lagSeries = async (gw: GatewayProcess, prefix: string) =>
  (await (await fetch(`${gw.url}/metrics`)).text()).split("\n").filter((l) => l.startsWith("gateway_feed_lag_records{") && l.includes(prefix)).length;

test("1,000 subscribe/unsubscribe cycles over 100 topics leave 0 open feeds and 0 stale lag series", async () => {
  // 1,000 in a row from one connection: past the subscribe rate, which is not what this is about.
  const gw = await startGateway({ FEED_IDLE_CLOSE_MS: "200", SUBSCRIBE_RATE_LIMIT: "0" });
  gateways.push(gw);
  const prefix = freshTopic("life");
  const topics = Array.from({ length: 100 }, (_, i) => `${prefix}-${i}`);
  const c = await GatewayClient.connect(gw.wsUrl);

  // Hold one subscription on every topic past a lag sample (every 5 s), so the series exist.
  for (const topic of topics) expect(await c.subscribe({ sub: `hold-${topic}`, topic }, () => {})).toMatchObject({ t: 23 });
  expect((await gw.health()).subscriptions).toMatchObject({ liveFeeds: 100 });
  await Bun.sleep(5500);
  expect(await lagSeries(gw, prefix)).toBeGreaterThan(0);
  for (const topic of topics) expect(await c.request({ t: 13, sub: `hold-${topic}` })).toMatchObject({ t: 28 });

  for (let i = 0; i < 1000; i++) {
    const topic = topics[i % topics.length]!;
    expect(await c.subscribe({ sub: `s${i}`, topic }, () => {})).toMatchObject({ t: 23 });
    expect(await c.request({ t: 13, sub: `s${i}` })).toMatchObject({ t: 28 });
  }
  await Bun.sleep(1000);
  expect((await gw.health()).subscriptions).toEqual({ subscriptions: 0, liveFeeds: 0, replayFeeds: 0, sharedFeeds: 0 });
  expect(await lagSeries(gw, prefix)).toBe(0);
  c.close();
}, 60_000);

test("feeds per instance are capped: past MAX_FEEDS a subscribe is refused with a code, and the socket lives on", async () => {
  const gw = await startGateway({ MAX_FEEDS: "3" });
  gateways.push(gw);
  const prefix = freshTopic("cap");
  const c = await connect({ url: gw.wsUrl });
  for (let i = 0; i < 3; i++) await c.subscribe(`${prefix}-${i}`);
  expect(await c.subscribe(`${prefix}-3`).catch((e) => e)).toMatchObject({ name: "SubscribeError", code: "TOO_MANY_SUBSCRIPTIONS", retriable: true });
  // A topic already read costs no new feed.
  await c.subscribe(`${prefix}-0`);
  expect(await c.publish({ type: "still.alive" }, { topic: `${prefix}-0` })).toMatchObject({ topic: `${prefix}-0`, offset: 0 });
  c.close();
}, 60_000);
