import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { collect } from "../support/sdk-collector";
import { until } from "../support/until";

/**
 * A share group outlives its members: what is written while it has none reaches its next member, on
 * either log. On the embedded log a group kept no position, so its next reader started at the log's
 * end (outside probe: 0 of 100 events written between the last member leaving and the next joining).
 */
for (const log of ["kafka", "embedded"] as const) {
  describe(`a share group with no members (${log})`, () => {
    let gw: GatewayProcess;
    let brokers = "";
    beforeAll(async () => {
      if (log === "kafka") brokers = await kafkaBrokers();
      gw = await startGateway(brokers ? { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" } : { KAFKA_BROKERS: "" });
    }, 60_000);
    afterAll(() => gw.stop(), 60_000);

    test("events written while it has no member reach its next one, and what its last member was handed is not read again", async () => {
      const topic = freshTopic("share-rejoin");
      if (brokers) await ensureTopic(brokers, topic, 3);
      const group = `rejoin-${Date.now()}`;
      const writer = await connect({ url: gw.wsUrl });
      const first = await connect({ url: gw.wsUrl });
      const firstSub = await first.subscribe(topic, { share: group });
      const handed = collect(firstSub);
      // On Kafka the group's reader joins and is assigned after `subscribed`: written until it reads.
      let n = 0;
      await until("the first member to get events", async () => {
        await writer.publish({ type: "before", data: n++ }, { topic });
        return handed.events.length > 0;
      }, 30_000);
      await handed.waitFor(n, 10_000);
      expect(handed.events.length).toBe(n);
      // Counted as handed once the client has answered a ping sent behind them (asked every 200 ms):
      // leaving sooner, they would be read again, as at-least-once allows.
      await Bun.sleep(1500);
      await firstSub.close();
      first.close();
      await until("the group's reader to close", async () => (await gw.health()).subscriptions.sharedFeeds === 0, 10_000);

      for (let i = 0; i < 100; i++) await writer.publish({ type: "meanwhile", key: `k${i % 7}`, data: i }, { topic });

      const next = await connect({ url: gw.wsUrl });
      const got = collect(await next.subscribe(topic, { share: group }));
      await until("the 100 written meanwhile", () => got.events.filter((e) => e.event.type === "meanwhile").length >= 100, 30_000);
      await Bun.sleep(300);
      const meanwhile = got.events.filter((e) => e.event.type === "meanwhile").map((e) => e.event.data as number);
      expect(meanwhile.toSorted((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
      // The first member's events were handed and committed when its reader left: not dealt again.
      expect(got.events.filter((e) => e.event.type === "before")).toEqual([]);
      expect(got.inOrderPerPartition()).toBe(true);
      next.close();
      writer.close();
    }, 90_000);
  });
}
