import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { type Frame, GatewayClient } from "../support/ws-client";

/**
 * A start `time` in the future is a time like any other: each partition from its first record
 * stamped at or after it. The docs said such a subscribe started as `latest`; an outside probe
 * found it replaying an event a producer had stamped 4 minutes ahead (within TIME_SKEW_FUTURE).
 */
const file = kafkaGatewayForFile();

test("a future start time replays records stamped after it, and none before; with none, it is live at once", async () => {
  const topic = freshTopic("future-start");
  await ensureTopic(file.brokers, topic, 1);
  const c = await GatewayClient.connect(file.gw.wsUrl, "json");
  const now = Date.now();
  expect((await c.publish({ type: "now", time: new Date(now).toISOString() }, topic)).t).toBe(20);
  expect((await c.publish({ type: "ahead", time: new Date(now + 240_000).toISOString() }, topic)).t).toBe(20);

  const types: string[] = [];
  let live!: () => void;
  const wentLive = new Promise<void>((r) => (live = r));
  const replayed = await c.subscribe({ sub: "ahead", topic, start: { time: now + 60_000 } }, (f) => {
    if (f.t === 24) types.push(f.event.type);
    else if (f.t === 25) types.push(...f.events.map((e: Frame) => e.event.type));
    else if (f.t === 26) live();
  });
  expect(replayed).toMatchObject({ t: 23, live: false });
  await wentLive;
  expect(types).toEqual(["ahead"]);

  const none = await c.request({ t: 12, sub: "later", topic, start: { time: now + 300_000 } });
  expect(none).toMatchObject({ t: 23, live: true });
  c.close();
}, 60_000);
