import { afterEach, expect, test } from "bun:test";
import { type GatewayClient, type SubscribeOptions, type Subscription, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { collect } from "../support/sdk-collector";
import { LivenessWatch, Pump, health, oneAttemptClient, within } from "./harm";

let gw: GatewayProcess | null = null;

afterEach(async () => {
  // A wedged gateway never gets to its SIGTERM handler.
  const stopped = gw?.stop();
  if (gw && !(await Promise.race([stopped!.then(() => true), Bun.sleep(20_000).then(() => false)]))) gw.proc.kill("SIGKILL");
  gw = null;
}, 60_000);

// One worker: every reader is on the victim, and its readers can only come back on its replacement.
// Two: the readers are spread, and the survivor keeps serving while the victim is replaced.
test.each([1, 2])("%d worker(s), one killed under load with 10 live feeds and a share group open: the gateway stays live, every request is answered, the feeds go on without a gap", async (workers) => {
  gw = await startGateway({ KAFKA_WORKERS: String(workers), KAFKA_BROKERS: await kafkaBrokers() });
  const g = gw;
  const topics = Array.from({ length: 10 }, (_, i) => freshTopic(`failover${i}`));
  const shareTopic = freshTopic("failover-share");
  const publisher = await oneAttemptClient(g.wsUrl);
  // Publishing creates the topics (broker auto-create) with their partitions led before anyone subscribes.
  for (const [i, r] of (await Promise.all([...topics, shareTopic].map((topic) => publisher.publish({ type: "warm" }, { topic })))).entries()) {
    expect(r).toMatchObject({ topic: [...topics, shareTopic][i] });
  }
  const subscriber = await connect({ url: g.wsUrl });
  const feeds: Array<ReturnType<typeof collect>> = [];
  for (const topic of topics) feeds.push(collect(await subscribeRetrying(subscriber, topic)));
  const shared = collect(await subscribeRetrying(subscriber, shareTopic, { share: "failover" }));

  const pump = new Pump(publisher, [...topics, shareTopic], { batch: 10, maxInflight: 8, pauseMs: 20 }).start();
  const watch = new LivenessWatch(g.url);

  // Every feed (and the group, once Kafka has assigned it its partitions) is delivering before the kill.
  expect(await within(45_000, () => feeds.every((f) => f.events.length > 0) && shared.events.length > 0)).toBeGreaterThanOrEqual(0);
  const victim = (await health(g.url)).log.workers[0];
  const linesBefore = g.lines.length;
  process.kill(victim.pid, "SIGKILL");

  const replaced = await within(30_000, async () => {
    const w = (await health(g.url)).log.workers[0];
    return w.pid !== victim.pid && w.state === "ready";
  });
  expect(replaced).toBeGreaterThanOrEqual(0);
  const publishedBeforeBack = pump.events;
  const isAfter = (id: unknown) => Number(String(id).slice(2)) >= publishedBeforeBack;
  // The share group is read again after the restart: it gets events published once the worker was
  // back (Kafka hands the dead member's partitions over once its 10 s session times out; 45 s, the
  // default, would miss this).
  const shareBack = await within(30_000, () => shared.events.some((e) => isAfter(e.event.id)));
  await Bun.sleep(2000);
  await pump.stop(45_000);
  await watch.stop();

  // The gateway answered /health/live throughout, and every publish request got its reply.
  expect(watch.failures).toEqual([]);
  // It really watched: a poll at least every half second (each waits 150 ms, plus the answer), however
  // quickly this run went (a fast one is over in 3 s).
  expect(watch.polls).toBeGreaterThanOrEqual(Math.floor(watch.watchedMs / 500));
  expect(watch.polls).toBeGreaterThan(5);
  expect(pump.answered).toBe(pump.sent);
  expect(pump.acked.length + pump.nacked.length).toBe(pump.events);
  for (const n of pump.nacked) expect(["WORKER_LOST", "UNAVAILABLE"]).toContain(n.code!);
  expect(pump.acked.some((a) => isAfter(a.id))).toBe(true);

  // Each feed gets every acked event of its topic: nothing between the old reader and the new one is lost.
  for (let i = 0; i < topics.length; i++) {
    const want = pump.acked.filter((a) => a.topic === topics[i]);
    const got = feeds[i]!;
    await within(30_000, () => {
      const ids = new Set(got.events.map((e) => e.event.id));
      return want.every((a) => ids.has(a.id));
    });
    const ids = new Set(got.events.map((e) => e.event.id));
    expect({ topic: topics[i], missing: want.filter((a) => !ids.has(a.id)).length }).toEqual({ topic: topics[i], missing: 0 });
    expect(got.inOrderPerPartition()).toBe(true);
  }
  expect(shareBack).toBeGreaterThanOrEqual(0);

  // The loss is a handful of log lines, not a loop.
  expect(g.lines.length - linesBefore).toBeLessThan(100);
  expect(g.lines.length).toBeLessThan(100);
  subscriber.close();
  publisher.close();
}, 240_000);

/** A topic created a moment ago may briefly answer metadata without a leader: that refusal is retriable. */
async function subscribeRetrying(c: GatewayClient, topic: string, options: SubscribeOptions = {}): Promise<Subscription> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await c.subscribe(topic, options);
    } catch (e) {
      if (!(e as { retriable?: boolean }).retriable || attempt >= 20) throw e;
    }
    await Bun.sleep(250);
  }
}
