import { expect, test } from "bun:test";
import { PublishError, SubscribeError, connect } from "../../src/client";
import { SECRET, hsToken, now } from "../auth/support";
import type { GatewayProcess } from "../support/gateway";
import { until } from "../support/until";
import { behindProxy } from "./behind-proxy.support";

/** Found by an outside probe of the SDK: a subscription's and a connection's ends, each over real sockets to a real gateway. */
const fast = { minMs: 10, maxMs: 20 };
/** Reconnects no sooner than 5 s: long enough for a test to look at the client while it is down. */
const slow = { minMs: 10_000, maxMs: 10_000 };
const grants = { kgw: { publish: ["*"], subscribe: ["*"] } };

/** How many frames `gw` refused with `code` over WebSocket. */
async function refusedWith(gw: GatewayProcess, code: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  return [...text.matchAll(/^gateway_frames_rejected_total\{([^}]*)\} (\d+)/gm)].filter((m) => m[1]!.includes(`code="${code}"`) && m[1]!.includes('transport="ws"')).reduce((n, m) => n + Number(m[2]), 0);
}

test("sub.close() on a subscription not yet resumed after a reconnect sends no unsubscribe (it was refused UNKNOWN_SUBSCRIPTION, counted toward the 4400 close); those resumed are unsubscribed", async () => {
  await behindProxy({ REPLAY_START_RATE_PER_ADDRESS: "1", MAX_REPLAYS_PER_ADDRESS: "3" }, async (gw, proxy) => {
    const writer = await connect({ url: gw.wsUrl });
    for (let i = 0; i < 3; i++) await writer.publish({ type: "x", data: i }, { topic: "close-pending" });
    const states: string[] = [];
    const c = await connect({ url: proxy.url, heartbeat: false, reconnect: fast, onState: (s) => void states.push(s) });
    // Subscribed at the end of the log, none is a replay; resumed from their tokens, each is.
    const subs = [];
    for (let i = 0; i < 8; i++) subs.push(await c.subscribe("close-pending"));
    proxy.dropAll();
    await until("reconnected", () => states.includes("reconnecting") && states.at(-1) === "open", 5_000);
    // Six resume at once (the address's bucket of replay starts); two are refused RATE_LIMITED, to be sent again.
    await until("six resumed", async () => (await gw.health()).subscriptions.subscriptions === 6, 5_000);
    for (const s of subs) await s.close();
    await Bun.sleep(2_500); // past the retries the closed ones would have had
    expect(await refusedWith(gw, "UNKNOWN_SUBSCRIPTION")).toBe(0);
    expect((await gw.health()).subscriptions.subscriptions).toBe(0);
    writer.close();
    c.close();
  });
}, 60_000);

test("sub.close() while its resubscribe is in flight unsubscribes it once confirmed: the gateway is left holding none, and refuses nothing", async () => {
  await behindProxy(
    {},
    async (gw, proxy) => {
      const states: string[] = [];
      const c = await connect({ url: proxy.url, heartbeat: false, reconnect: fast, onState: (s) => void states.push(s) });
      const sub = await c.subscribe("close-in-flight");
      proxy.dropAll();
      await until("reconnected", () => states.includes("reconnecting") && states.at(-1) === "open", 5_000);
      await Bun.sleep(100); // its resubscribe is sent; the answer is held 400 ms
      await sub.close();
      await Bun.sleep(1_000);
      expect((await gw.health()).subscriptions.subscriptions).toBe(0);
      expect(await refusedWith(gw, "UNKNOWN_SUBSCRIPTION")).toBe(0);
      c.close();
    },
    400,
  );
}, 30_000);

test("a connection's token-refresh timer ends with the connection: no refresh (no getToken call) while the client is down", async () => {
  await behindProxy({ AUTH_JWT_SECRET: SECRET }, async (_gw, proxy) => {
    let calls = 0;
    // Expires in 2-3 s: the refresh is due a second before.
    const getToken = () => (calls++, hsToken({ sub: "refresh", exp: now() + 3, ...grants }));
    const c = await connect({ url: proxy.url, getToken, reconnect: slow, heartbeat: false });
    proxy.dropAll();
    await Bun.sleep(3_500);
    expect(calls).toBe(1);
    c.close();
  });
}, 30_000);

test("a subscribe() cut by client.close() rejects with SubscribeError CLIENT_CLOSED, whether it waited for a welcome, for its answer, or came after", async () => {
  const closedBy = async (pending: Promise<unknown>): Promise<unknown> => pending.then(() => "resolved", (e: unknown) => e);
  const expectClosed = (e: unknown) => {
    expect(e).toBeInstanceOf(SubscribeError);
    expect((e as SubscribeError).code as string).toBe("CLIENT_CLOSED");
  };
  // Waiting for its answer: the gateway's replies are held 400 ms.
  await behindProxy(
    {},
    async (_gw, proxy) => {
      const c = await connect({ url: proxy.url, heartbeat: false });
      const answer = closedBy(c.subscribe("cut"));
      await Bun.sleep(100);
      c.close();
      expectClosed(await answer);
      expectClosed(await closedBy(c.subscribe("cut")));
    },
    400,
  );
  // Waiting for a welcome: the connection dropped, and the next one is seconds away.
  await behindProxy({}, async (_gw, proxy) => {
    const states: string[] = [];
    const c = await connect({ url: proxy.url, heartbeat: false, reconnect: slow, onState: (s) => void states.push(s) });
    proxy.dropAll();
    await until("reconnecting", () => states.at(-1) === "reconnecting", 5_000);
    const welcome = closedBy(c.subscribe("cut"));
    await Bun.sleep(50);
    c.close();
    expectClosed(await welcome);
  });
}, 30_000);

test("a publish() made after client.close() rejects PublishError CLIENT_CLOSED, not written, as those close() cut do", async () => {
  await behindProxy({}, async (gw) => {
    const c = await connect({ url: gw.wsUrl, heartbeat: false });
    await c.publish({ type: "before.close" }, { topic: "closed" });
    c.close();
    const e = await c.publish({ id: "after-close", type: "after.close" }, { topic: "closed" }).then(() => "resolved", (err: unknown) => err);
    expect(e).toBeInstanceOf(PublishError);
    expect({ code: (e as PublishError).code, mayBePersisted: (e as PublishError).mayBePersisted, id: (e as PublishError).id }).toEqual({ code: "CLIENT_CLOSED", mayBePersisted: false, id: "after-close" });
  });
}, 30_000);

test("a subscribe refused UNAUTHENTICATED while the client's own token refresh is under way waits for the refresh and is sent again: it resolves", async () => {
  await behindProxy({ AUTH_JWT_SECRET: SECRET, AUTH_CLOCK_TOLERANCE: "0" }, async (gw) => {
    let calls = 0;
    let exp = 0;
    // The first token expires in 2-3 s; the refresh's token takes 2.5 s to come, so the token expires meanwhile.
    const getToken = async () => {
      if (calls++ > 0) await Bun.sleep(2_500);
      exp = now() + (calls === 1 ? 3 : 600);
      return hsToken({ sub: "slow-refresh", exp, ...grants });
    };
    const c = await connect({ url: gw.wsUrl, getToken, heartbeat: false });
    const firstExp = exp;
    await until("the token to expire", () => Date.now() > firstExp * 1000 + 300, 5_000);
    expect(calls).toBe(2); // the refresh is under way
    const sub = await c.subscribe("auth-wait");
    expect(sub.topics).toEqual(["auth-wait"]);
    c.close();
  });
}, 30_000);

test("a token fetched for a connection since ended, settling while the next connection's refresh is fetched, does not end the subscribes waiting for that refresh", async () => {
  await behindProxy({ AUTH_JWT_SECRET: SECRET, AUTH_CLOCK_TOLERANCE: "0" }, async (gw, proxy) => {
    // getToken's calls: 1 and 3 are the two connections' hellos (tokens of 2-3 s); 2 and 4 are their
    // refreshes, each held until the test lets it go.
    const held: Array<(token: string) => void> = [];
    let calls = 0;
    let exp = 0;
    const getToken = () => {
      calls++;
      if (calls % 2 === 0) return new Promise<string>((resolve) => held.push(resolve));
      exp = now() + 3;
      return hsToken({ sub: "two-fetches", exp, ...grants });
    };
    const c = await connect({ url: proxy.url, getToken, heartbeat: false, reconnect: fast });
    await until("the first connection's refresh to be fetched", () => calls === 2, 5_000);
    proxy.dropAll();
    await until("the second connection's refresh to be fetched", () => calls === 4, 8_000);
    const secondExp = exp;
    await until("the second connection's token to expire", () => Date.now() > secondExp * 1000 + 300, 5_000);
    const refused = await refusedWith(gw, "UNAUTHENTICATED");
    const sub = c.subscribe("two-fetches").then(
      (s) => s.topics,
      (e: unknown) => e,
    );
    await until("the subscribe to be refused for the expired token", async () => (await refusedWith(gw, "UNAUTHENTICATED")) > refused, 5_000);
    held[0]!(await hsToken({ sub: "two-fetches", exp: now() + 600, ...grants })); // the first connection's, too late
    await Bun.sleep(500);
    held[1]!(await hsToken({ sub: "two-fetches", exp: now() + 600, ...grants }));
    expect(await sub).toEqual(["two-fetches"]);
    expect(calls).toBe(4);
    c.close();
  });
}, 30_000);

test("a subscribe() made while reconnecting, past MAX_SUBSCRIPTIONS_PER_CONNECTION, rejects TOO_MANY_SUBSCRIPTIONS with the new connection's first refusal (it waited a turn of its own and was refused again, or, its turns taken by the resubscribe's retries, never)", async () => {
  // At 2 subscribes a second, the two made spend the bucket: the third waits its turn across the reconnect.
  await behindProxy({ MAX_SUBSCRIPTIONS_PER_CONNECTION: "2", SUBSCRIBE_RATE_LIMIT: "2" }, async (gw, proxy) => {
    const states: string[] = [];
    const c = await connect({ url: proxy.url, heartbeat: false, reconnect: fast, onState: (s) => void states.push(s) });
    await c.subscribe("max-a");
    await c.subscribe("max-b");
    proxy.dropAll();
    const started = Date.now();
    const third = await Promise.race([Bun.sleep(20_000).then(() => "no answer in 20 s"), c.subscribe("max-c")]).then(
      () => "resolved",
      (e: unknown) => e,
    );
    console.log(`the third subscribe was answered after ${Date.now() - started} ms`);
    expect(states).toEqual(["open", "reconnecting", "open"]);
    expect(third).toBeInstanceOf(SubscribeError);
    expect((third as SubscribeError).code).toBe("TOO_MANY_SUBSCRIPTIONS");
    await Bun.sleep(1_500); // for any refusal after the one it was told
    expect(await refusedWith(gw, "TOO_MANY_SUBSCRIPTIONS")).toBe(1);
    c.close();
  });
}, 60_000);
