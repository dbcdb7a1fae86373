import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";

/**
 * A replay ended (its socket closed, or unsubscribed) after `subscribed` but before its Kafka reader
 * said it was ready gives its replay slot back. Before, closing such a reader left its `ready` promise
 * unsettled: the feed's open waited forever, so the replay was counted as starting for good, against
 * MAX_REPLAY_SUBSCRIPTIONS and MAX_REPLAYS_PER_ADDRESS. The hostile tester's 1,920 replays closed at
 * once left every replay and every resume on the instance refused TOO_MANY_SUBSCRIPTIONS.
 */
const file = kafkaGatewayForFile({ KAFKA_WORKERS: "2", MAX_REPLAY_SUBSCRIPTIONS: "8", MAX_REPLAYS_PER_ADDRESS: "8", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0" });

test("replays closed or unsubscribed before their reader is ready give their slots back", async () => {
  const topics = Array.from({ length: 8 }, (_, i) => freshTopic(`slots${i}`));
  const pub = await connect({ url: file.gw.wsUrl });
  for (const topic of topics) await pub.publishBatch(Array.from({ length: 50 }, (_, i) => ({ type: "seed", key: `k${i}`, data: { i } })), { topic });
  pub.close();
  const topic = topics[0]!;

  await underControl(file.gw, "replays closed before their readers are ready", async () => {
    for (let round = 0; round < 12; round++) {
      const c = await RawWsClient.connect(file.gw.port, "/ws", "", `127.0.0.${30 + (round % 3)}`);
      c.send({ t: 1, v: 1 });
      for (let i = 0; i < 8; i++) c.send({ t: 12, cid: i + 1, sub: `r${i}`, topic: topics[i], start: "earliest", filter: { types: ["none"] } });
      await c.waitFor((f) => f.cid === 8);
      if (round % 2 === 0) c.destroy();
      else {
        for (let i = 0; i < 8; i++) c.send({ t: 13, cid: 100 + i, sub: `r${i}` });
        await c.waitFor((f) => f.cid === 107);
        c.destroy();
      }
    }
  });
  // Once the readers the rounds asked for are settled, every slot is free again: an address gets all of its own.
  await Bun.sleep(3000);
  const c = await RawWsClient.connect(file.gw.port, "/ws", "", "127.0.0.40");
  c.send({ t: 1, v: 1 });
  for (let i = 0; i < 8; i++) c.send({ t: 12, cid: i + 1, sub: `v${i}`, topic, start: "earliest" });
  await c.waitFor((f) => f.cid === 8);
  const refused = c.frames.filter((f) => typeof f.cid === "number" && f.t !== 23).map((f) => `${f.code}: ${f.message}`);
  expect(refused).toEqual([]);
  c.destroy();
}, 120_000);

/**
 * A replay is answered `subscribed` before its reader is open, and from then its feed is counted: a
 * replay counted as starting as well until the reader opened took two slots of MAX_REPLAY_SUBSCRIPTIONS
 * (and of MAX_FEEDS), so the eighth replay of eight allowed was refused while the first seven opened.
 */
test("a replay answered but not yet reading takes one replay slot, not two", async () => {
  const topics = Array.from({ length: 8 }, (_, i) => freshTopic(`once${i}`));
  const pub = await connect({ url: file.gw.wsUrl });
  for (const topic of topics) await pub.publishBatch(Array.from({ length: 50 }, (_, i) => ({ type: "seed", key: `k${i}`, data: { i } })), { topic });
  pub.close();
  for (let round = 0; round < 3; round++) {
    const c = await RawWsClient.connect(file.gw.port, "/ws", "", `127.0.0.${50 + round}`);
    c.send({ t: 1, v: 1 });
    for (let i = 0; i < 7; i++) c.send({ t: 12, cid: i + 1, sub: `o${i}`, topic: topics[i], start: "earliest", filter: { types: ["none"] } });
    await c.waitFor((f) => f.cid === 7);
    c.send({ t: 12, cid: 8, sub: "o7", topic: topics[7], start: "earliest", filter: { types: ["none"] } });
    await c.waitFor((f) => f.cid === 8);
    const refused = c.frames.filter((f) => typeof f.cid === "number" && f.t !== 23).map((f) => `${f.cid} ${f.code}: ${f.message}`);
    expect(refused).toEqual([]);
    c.destroy();
    await Bun.sleep(2000);
  }
}, 120_000);
