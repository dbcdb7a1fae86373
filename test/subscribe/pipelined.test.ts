// Stays on the raw test client: it pipelines subscribe and unsubscribe frames without waiting for their
// replies, and closes sockets with subscribes unanswered, which the SDK never does.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { type Frame, GatewayClient } from "../support/ws-client";
import { underControl } from "../ingest/control";

/**
 * A subscribe takes a while to complete (watermarks, a time index, a reader to open), and a client
 * does not have to wait for it: what it sends meanwhile, and a socket closed meanwhile, must be
 * answered as if the subscribe had completed at once. Each limit counts subscriptions still starting.
 */
for (const log of ["kafka", "embedded"] as const) {
  describe(`subscribes still starting (${log})`, () => {
    let gw: GatewayProcess;
    let brokers = "";
    beforeAll(async () => {
      if (log === "kafka") brokers = await kafkaBrokers();
      gw = await startGateway({ ...(brokers ? { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" } : {}), MAX_REPLAY_SUBSCRIPTIONS: "6", MAX_FEEDS: "12", FEED_IDLE_CLOSE_MS: "200", RATE_LIMIT_EVENTS: "0", REPLAY_RATE_LIMIT: "100" });
    }, 60_000);
    afterAll(() => gw.stop(), 60_000);

    /** A topic holding `events`; `created`: made beforehand with 3 partitions, else by the first publish. */
    async function topicWith(events: number, created = true): Promise<string> {
      const topic = freshTopic("pipelined");
      if (brokers && created) await ensureTopic(brokers, topic, 3);
      const p = await GatewayClient.connect(gw.wsUrl);
      for (let from = 0; from < events; from += 500) {
        const n = Math.min(500, events - from);
        expect((await p.publishBatch(Array.from({ length: n }, (_, i) => ({ type: "seed", key: `k${from + i}`, data: from + i })), topic)).t).toBe(22);
      }
      p.close();
      return topic;
    }

    async function settled(): Promise<{ subscriptions: number; liveFeeds: number; replayFeeds: number }> {
      // Idle live feeds close after FEED_IDLE_CLOSE_MS; give starting subscribes time to finish.
      await Bun.sleep(1500);
      return (await gw.health()).subscriptions;
    }

    test("a socket closed with subscribes unanswered leaves no subscription and no reader behind", async () => {
      const topic = await topicWith(300);
      const before = await settled();
      await underControl(gw, `subscribes abandoned (${log})`, async () => {
        for (const start of ["earliest", "latest"]) {
          const c = await GatewayClient.connect(gw.wsUrl);
          for (let i = 0; i < 5; i++) c.send({ t: 12, cid: i + 1, sub: `s${i}`, topic, start });
          c.close();
        }
        expect(await settled()).toEqual(before);
      });
    }, 60_000);

    test("an unsubscribe sent right behind its subscribe ends it: both answered, in order, and no event after", async () => {
      const topic = await topicWith(10);
      for (const start of ["latest", "earliest"]) {
        const c = await GatewayClient.connect(gw.wsUrl);
        const seen: Frame[] = [];
        const order: number[] = [];
        const subscribed = c.subscribe({ sub: "x", topic, start }, (f) => seen.push(f)).then((f) => (order.push(f.t), f));
        const unsubscribed = c.request({ t: 13, sub: "x" }).then((f) => (order.push(f.t), f));
        expect((await subscribed).t).toBe(23);
        expect(await unsubscribed).toMatchObject({ t: 28, sub: "x" });
        expect(order).toEqual([23, 28]);
        const after = seen.length;
        expect((await c.publish({ type: "after.unsubscribe" }, topic)).t).toBe(20);
        await Bun.sleep(500);
        expect(seen.length).toBe(after);
        c.close();
      }
      expect((await settled()).subscriptions).toBe(0);
    }, 60_000);

    test("subscribes and unsubscribes of one id sent back to back are answered as if each had completed before the next", async () => {
      for (const start of ["latest", "earliest"]) {
        const topic = await topicWith(10);
        const c = await GatewayClient.connect(gw.wsUrl);
        // A client changing its filter: unsubscribe, then subscribe the same id, before the first is answered.
        const seq = ["sub", "unsub", "sub", "unsub", "unsub", "sub", "sub"] as const;
        const order: string[] = [];
        const seen: Frame[] = [];
        const replies = await Promise.all(
          seq.map((op, i) =>
            (op === "sub" ? c.subscribe({ sub: "d", topic, start, filter: { types: [`v${i}`] } }, (f) => seen.push(f)) : c.request({ t: 13, sub: "d" })).then((f) => {
              const said = f.t === 23 ? "subscribed" : f.t === 28 ? "unsubscribed" : String(f.code);
              order.push(`${i}:${said}`);
              return said;
            }),
          ),
        );
        expect(replies).toEqual(["subscribed", "unsubscribed", "subscribed", "unsubscribed", "UNKNOWN_SUBSCRIPTION", "subscribed", "SUBSCRIPTION_EXISTS"]);
        expect(order).toEqual(replies.map((r, i) => `${i}:${r}`));
        // The one left is the sixth's: it gets its own type only.
        seen.length = 0;
        const probe = await GatewayClient.connect(gw.wsUrl);
        for (const type of ["v0", "v2", "v5", "v6"]) expect((await probe.publish({ type }, topic)).t).toBe(20);
        await Bun.sleep(500);
        const types = seen.flatMap((f) => (f.t === 24 ? [f.event] : f.t === 25 ? (f.events as Frame[]).map((e) => e.event) : [])).map((e) => (e as { type: string }).type);
        expect(types.filter((t) => t !== "seed")).toEqual(["v5"]);
        c.close();
        probe.close();
      }
      expect((await settled()).subscriptions).toBe(0);
    }, 60_000);

    // Kafka only: the embedded log has every topic, so nothing refuses a subscribe once it has started.
    test.skipIf(log !== "kafka")("a subscribe refused once it has started is answered before the requests for its id queued behind it (outside probe X: the unsubscribe's UNKNOWN_SUBSCRIPTION came first)", async () => {
      for (const start of ["latest", "earliest"]) {
        const missing = freshTopic("pipelined-missing"); // never made: refused UNKNOWN_TOPIC after a look at the log
        const c = await GatewayClient.connect(gw.wsUrl);
        const seq = ["sub", "unsub", "sub", "unsub"] as const;
        const order: string[] = [];
        const replies = await Promise.all(
          seq.map((op, i) =>
            (op === "sub" ? c.subscribe({ sub: "m", topic: missing, start }, () => {}) : c.request({ t: 13, sub: "m" })).then((f) => {
              const said = f.t === 23 ? "subscribed" : f.t === 28 ? "unsubscribed" : String(f.code);
              order.push(`${i}:${said}`);
              return said;
            }),
          ),
        );
        expect(replies).toEqual(["UNKNOWN_TOPIC", "UNKNOWN_SUBSCRIPTION", "UNKNOWN_TOPIC", "UNKNOWN_SUBSCRIPTION"]);
        expect([start, order]).toEqual([start, replies.map((r, i) => `${i}:${r}`)]);
        c.close();
      }
    }, 60_000);

    test("requests queued behind a starting subscribe are bounded per connection: past the bound, RATE_LIMITED, each answered once", async () => {
      const topic = await topicWith(2_000);
      const c = await GatewayClient.connect(gw.wsUrl);
      // A replay from earliest starts slower than a frame arrives; everything behind it for the same id
      // waits in the gateway, one closure each, unless bounded.
      const n = 1_000;
      const [first, replies] = await underControl(gw, `requests queued behind a starting subscribe (${log})`, async () => {
        const first = c.subscribe({ sub: "q", topic, start: "earliest" }, () => {});
        const replies = Promise.all(Array.from({ length: n }, () => c.request({ t: 13, sub: "q" })));
        return [await first, await replies] as const;
      });
      expect(first.t).toBe(23);
      const codes = replies.map((f) => (f.t === 28 ? "unsubscribed" : String(f.code)));
      expect(codes[0]).toBe("unsubscribed");
      const limited = codes.filter((c) => c === "RATE_LIMITED").length;
      // On Kafka the replay's start (watermarks from the broker) outlasts the first few hundred frames
      // (900 of 1,000 refused on a quiet box, 380 on a busy one); the embedded log starts it before
      // the next frame is read, and nothing queues there.
      if (log === "kafka") expect(limited).toBeGreaterThan(0);
      expect(codes.filter((c) => c !== "RATE_LIMITED" && c !== "UNKNOWN_SUBSCRIPTION" && c !== "unsubscribed")).toEqual([]);
      for (const f of replies) if (f.code === "RATE_LIMITED") expect(f.retryAfterMs).toBeGreaterThan(0);
      // The connection lives on and is answered.
      expect((await c.publish({ type: "after" }, topic)).t).toBe(20);
      c.close();
    }, 60_000);

    test("pipelined subscribes cannot pass the limits: per connection, replays at once, feeds per instance", async () => {
      const topic = await topicWith(50);
      await underControl(gw, `pipelined subscribes past the limits (${log})`, async () => {
        const c = await GatewayClient.connect(gw.wsUrl);
        // MAX_SUBSCRIPTIONS_PER_CONNECTION (100), all to one live feed.
        const live = await Promise.all(Array.from({ length: 110 }, (_, i) => c.subscribe({ sub: `l${i}`, topic }, () => {})));
        expect(live.filter((f) => f.t === 23).length).toBe(100);
        expect(live.filter((f) => f.t === 30).every((f) => f.code === "TOO_MANY_SUBSCRIPTIONS")).toBe(true);
        c.close();
        await settled();
        // MAX_REPLAY_SUBSCRIPTIONS (6) from two connections at once: at 100 events/s none of the replays
        // of 2,000 events catches up (which would free its place) while the 20 subscribes are answered.
        const [d, e] = await Promise.all([GatewayClient.connect(gw.wsUrl), GatewayClient.connect(gw.wsUrl)]);
        const long = await topicWith(2000);
        const replays = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? d : e).subscribe({ sub: `r${i}`, topic: long, start: "earliest", policy: "disconnect" }, () => {})));
        const health = (await gw.health()).subscriptions;
        expect(replays.filter((f) => f.t === 23).length).toBeLessThanOrEqual(6);
        expect(health.replayFeeds).toBeLessThanOrEqual(6);
        expect(replays.filter((f) => f.t === 30).every((f) => f.code === "TOO_MANY_SUBSCRIPTIONS")).toBe(true);
        d.close();
        e.close();
        await settled();
        // MAX_FEEDS (12): one live feed per fresh topic.
        const topics = await Promise.all(Array.from({ length: 15 }, () => topicWith(1, false)));
        await settled();
        const f = await GatewayClient.connect(gw.wsUrl);
        const feeds = await Promise.all(topics.map((t, i) => f.subscribe({ sub: `f${i}`, topic: t }, () => {})));
        const h = (await gw.health()).subscriptions;
        expect(h.liveFeeds + h.replayFeeds).toBeLessThanOrEqual(12);
        expect(feeds.filter((r) => r.t === 23).length).toBeLessThanOrEqual(12);
        f.close();
      });
    }, 120_000);
  });
}
