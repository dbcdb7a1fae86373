import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";

/**
 * `start: earliest` is clamped to REPLAY_MAX_DURATION: each partition starts at the first offset at or
 * after that time, or, with none, at its end. The two were asked of Kafka at once, so an event written
 * between the two answers fell in neither: "no record yet" from the first, an end already past it from
 * the second. The subscription started after it and never saw it (a browser test saw 12 of 60 events).
 * Here subscriptions start while events are being written, many times over, and must see them all.
 */
const file = kafkaGatewayForFile();

test("subscriptions from earliest opened while a topic is being written miss nothing", async () => {
  const pub = await connect({ url: file.gw.wsUrl });
  const sub = await connect({ url: file.gw.wsUrl });
  const missed: string[] = [];
  for (let round = 0; round < 12; round++) {
    const topic = freshTopic("earliest-race");
    await ensureTopic(file.brokers, topic, 3);
    // The writes start first, so the subscription's start positions are asked while they land.
    const publishing = Promise.all(Array.from({ length: 30 }, (_, i) => pub.publish({ type: "race", key: `k${i % 7}`, data: { i } }, { topic })));
    const s = await sub.subscribe(topic, { start: "earliest" });
    const acks = await publishing;
    const got = new Set<number>();
    const reading = (async () => {
      for await (const e of s) {
        got.add((e.event.data as { i: number }).i);
        if (got.size >= acks.length) break;
      }
    })();
    await Promise.race([reading, Bun.sleep(10_000)]);
    if (got.size < acks.length) missed.push(`round ${round}: ${got.size} of ${acks.length}`);
    await s.close();
  }
  pub.close();
  sub.close();
  expect(missed).toEqual([]);
}, 240_000);
