import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

/**
 * A subscribe to several topics, one of them missing, is refused UNKNOWN_TOPIC; the readers it had
 * opened for the others were left with no subscriber and no idle timer, reading their topics and
 * counting toward MAX_FEEDS for good (a second review: two refused subscribes, and a third client's
 * subscribe to a new topic was refused TOO_MANY_SUBSCRIPTIONS).
 */
const file = kafkaGatewayForFile({ FEED_IDLE_CLOSE_MS: "200", MAX_FEEDS: "3" });

test("a refused multi-topic subscribe leaves no feed open: the instance's feeds are there for the next client", async () => {
  const prefix = freshTopic("refused-feeds");
  const topics = [0, 1, 2, 3].map((i) => `${prefix}-${i}`);
  for (const t of topics) await ensureTopic(file.brokers, t, 1);
  const c = await GatewayClient.connect(file.gw.wsUrl);
  for (const i of [0, 1]) {
    const reply = await c.request({ t: 12, sub: `x${i}`, topics: [topics[i], `${prefix}-missing-${i}`] });
    expect(reply).toMatchObject({ t: 21, code: "UNKNOWN_TOPIC" });
  }
  await Bun.sleep(600); // past FEED_IDLE_CLOSE_MS: idle feeds count toward MAX_FEEDS until they close
  // An idle feed taken back by a refused subscribe is left to close too.
  expect(await c.subscribe({ sub: "held", topic: topics[2]! }, () => {})).toMatchObject({ t: 23 });
  expect(await c.request({ t: 13, sub: "held" })).toMatchObject({ t: 28 });
  expect(await c.request({ t: 12, sub: "x2", topics: [topics[2], `${prefix}-missing-2`] })).toMatchObject({ t: 21, code: "UNKNOWN_TOPIC" });
  await Bun.sleep(1_000);
  expect((await file.gw.health()).subscriptions).toMatchObject({ subscriptions: 0, liveFeeds: 0 });
  const other = await GatewayClient.connect(file.gw.wsUrl);
  for (const t of topics.slice(1)) expect(await other.subscribe({ sub: t, topic: t }, () => {})).toMatchObject({ t: 23 });
  c.close();
  other.close();
}, 60_000);
