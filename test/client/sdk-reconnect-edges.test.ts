import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { SECRET, hsToken } from "../auth/support";
import { gatewayForBlock } from "../support/gateway";
import { holdingProxy } from "../support/holding-proxy";
import { behindProxy } from "./behind-proxy.support";
import { until } from "../support/until";

/** Found by an outside probe of the SDK, each with a real gateway behind a proxy that cuts or slows the path. */
const file = gatewayForBlock({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET });
const fast = { minMs: 10, maxMs: 20 };
const token = () => hsToken({ sub: "edge", kgw: { publish: ["*"], subscribe: ["*"] } });

test("a subscribe made between a reconnect's open and its welcome is sent once, after the welcome: it resolves and gets events once (it was refused SUBSCRIPTION_EXISTS and left running on the gateway)", async () => {
  const proxy = await holdingProxy(file.gw.port, 400);
  try {
    const c = await connect({ url: proxy.url, getToken: token, reconnect: fast, heartbeat: false });
    const hello = proxy.helloSent();
    proxy.dropAll();
    await hello; // reconnected and said hello: its welcome is held 400 ms
    const sub = await c.subscribe("edges");
    const got: unknown[] = [];
    sub.onEvent((e) => void got.push(e.event.data));
    const writer = await connect({ url: file.gw.wsUrl, token: await token() });
    await writer.publish({ type: "x", data: 1 }, { topic: "edges" });
    await until("the event to arrive", () => got.length > 0, 5_000);
    await Bun.sleep(600);
    expect(got).toEqual([1]);
    expect((await file.gw.health()).subscriptions.subscriptions).toBe(1);
    writer.close();
    c.close();
  } finally {
    await proxy.close();
  }
}, 30_000);

test("a getToken that never settles costs an attempt of connectTimeoutMs, not the client: connect() rejects, and a reconnect goes on to the next try", async () => {
  const never = () => new Promise<string>(() => {});
  const failed = await connect({ url: file.gw.wsUrl, getToken: never, connectAttempts: 2, connectTimeoutMs: 200, reconnect: fast }).then(
    () => null,
    (e: Error) => e.message,
  );
  expect(failed).toBe(`no welcome after 2 attempts: ${file.gw.wsUrl}: getToken failed: it did not answer within 200 ms`);

  const proxy = await holdingProxy(file.gw.port, 0);
  try {
    let calls = 0;
    const states: string[] = [];
    const c = await connect({ url: proxy.url, getToken: () => (++calls === 2 ? never() : token()), connectTimeoutMs: 300, reconnect: fast, heartbeat: false, onState: (s) => void states.push(s) });
    proxy.dropAll();
    await until("open again, past the getToken that hangs", () => states.at(-1) === "open" && calls >= 3, 5_000);
    expect((await c.publish({ type: "after" }, { topic: "edges" })).offset).toBeGreaterThanOrEqual(0);
    c.close();
  } finally {
    await proxy.close();
  }
}, 30_000);

test("subscribe() on a closed client rejects at once, as publish() does", async () => {
  const c = await connect({ url: file.gw.wsUrl, token: await token() });
  c.close();
  await expect(c.subscribe("edges")).rejects.toThrow("the client is closed");
});

test("a subscribe() waiting its turn under the subscribe rate across a reconnect is sent once on the new connection: it resolves, and the gateway holds each subscription once (second review: sent again beside the welcome's resubscribe, it was refused SUBSCRIPTION_EXISTS)", async () => {
  await behindProxy({ SUBSCRIBE_RATE_LIMIT: "1", MAX_SUBSCRIPTIONS_PER_CONNECTION: "2" }, async (gw, proxy) => {
    const c = await connect({ url: proxy.url, reconnect: fast, heartbeat: false });
    await (await c.subscribe("rate-a")).close();
    await c.subscribe("rate-b");
    // The bucket of 2 is spent: this one waits about a second for its turn, and the connection drops meanwhile.
    const waiting = c.subscribe("rate-d");
    await Bun.sleep(50);
    proxy.dropAll();
    const sub = await waiting;
    const got: unknown[] = [];
    sub.onEvent((e) => void got.push(e.event.data));
    await until("both held on the new connection", async () => (await gw.health()).subscriptions.subscriptions === 2, 15_000);
    const writer = await connect({ url: gw.wsUrl });
    await writer.publish({ type: "x", data: 7 }, { topic: "rate-d" });
    await until("the event", () => got.length > 0, 5_000);
    await Bun.sleep(300);
    expect(got).toEqual([7]);
    expect((await gw.health()).subscriptions.subscriptions).toBe(2);
    writer.close();
    c.close();
  });
}, 60_000);

test("resubscribes refused RATE_LIMITED are sent again one retryAfterMs apart, not all together after the backoff: a reconnect's ten replays resume with few refusals (outside probe: 236 refusals for 100)", async () => {
  await behindProxy({ REPLAY_START_RATE_PER_ADDRESS: "1", MAX_REPLAYS_PER_ADDRESS: "3" }, async (gw, proxy) => {
    const refused = async () => [...(await (await fetch(`${gw.url}/metrics`)).text()).matchAll(/^gateway_rate_limited_total\{[^}]*transport="ws"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const writer = await connect({ url: gw.wsUrl });
    for (let i = 0; i < 5; i++) await writer.publish({ type: "x", data: i }, { topic: "resume-rate" });
    const c = await connect({ url: proxy.url, heartbeat: false });
    for (let i = 0; i < 10; i++) {
      await c.subscribe("resume-rate");
      await Bun.sleep(1050); // within the replay start rate
    }
    const before = await refused();
    proxy.dropAll(); // each resumes from its token: a replay start, one a second from this address
    await until("all 10 resumed", async () => (await gw.health()).subscriptions.subscriptions === 10, 30_000);
    const refusals = (await refused()) - before;
    console.log(`10 resubscribes at 1 replay start a second: ${refusals} RATE_LIMITED refusals`);
    // The first round refuses those past the burst; each retry after that goes when the gateway said, one after another.
    expect(refusals).toBeLessThan(10); // 5 here; 14 when each retried on its own backoff
    writer.close();
    c.close();
  });
}, 60_000);
