import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { connect } from "../../src/client";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";

/**
 * A connection that subscribes and closes before its subscriptions have started holds nothing of
 * its address's MAX_FEEDS_PER_ADDRESS once it is gone. Before, each subscription's charge was given
 * back only when its start finished (on Kafka, a metadata question each), so an honest client of the
 * same address reconnecting at once was refused feeds the closed socket no longer had: the hostile
 * tester's got 186 of 250, and 250 a second later.
 */
const file = kafkaGatewayForFile({ MAX_FEEDS: "1000", MAX_FEEDS_PER_ADDRESS: "100", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0" });

test("subscriptions still starting when their socket closes give their address's feeds back at the close", async () => {
  const topics = Array.from({ length: 100 }, (_, i) => freshTopic(`cws${i}`));
  // Created by the broker on a first publish: one JVM per topic would take minutes.
  const pub = await connect({ url: file.gw.wsUrl });
  await Promise.all(topics.map((topic) => pub.publish({ type: "created" }, { topic })));
  pub.close();
  await underControl(file.gw, "subscribes closed while they start", async () => {
    for (let round = 0; round < 3; round++) {
      const leaving = await RawWsClient.connect(file.gw.port, "/ws", "", "127.0.0.5");
      leaving.send({ t: 1, v: 1 });
      await leaving.waitFor((f) => f.t === 2);
      topics.forEach((topic, i) => leaving.send({ t: 12, cid: i + 1, sub: `s${i}`, topic: `${topic}-other` }));
      await Bun.sleep(5);
      leaving.destroy();
      // The same address at once: its 100 subscribes to other topics all go through.
      const back = await RawWsClient.connect(file.gw.port, "/ws", "", "127.0.0.5");
      back.send({ t: 1, v: 1 });
      topics.forEach((topic, i) => back.send({ t: 12, cid: i + 1, sub: `s${i}`, topic }));
      await back.waitFor(() => new Set(back.frames.filter((f) => typeof f.cid === "number").map((f) => f.cid)).size === 100, 60_000);
      const refused = back.frames.filter((f) => typeof f.cid === "number" && f.t !== 23);
      expect(refused.map((f) => f.code)).toEqual([]);
      back.destroy();
      await Bun.sleep(500);
    }
  });
}, 180_000);
