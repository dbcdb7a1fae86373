import { describe, expect, test } from "bun:test";
import { type DeliveredEvent, connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { type RawStep, rawProduce } from "../support/raw-producer";
import { until } from "../support/until";

/**
 * Records another producer wrote in transactions. A commit or abort marker takes an offset that no
 * consumer is handed, and aborted records are skipped (the gateway reads read_committed), so a
 * partition's end can lie past the last record a reader gets. A replay compared the position after
 * that record with the end, and never went live (hostile tester: every record, then nothing; each
 * such replay kept its slot, and sixteen of them refused the address any other replay).
 */
describe("Kafka", () => {
  const file = kafkaGatewayForFile();
  const send = (i: number): RawStep => ({ partition: 0, key: `k${i}`, value: JSON.stringify({ i }), headers: [["ce_specversion", "1.0"], ["ce_type", "txn"], ["ce_id", `e${i}`], ["ce_source", "/java"], ["content-type", "application/json"]] });

  async function replay(topic: string, start: "earliest" | { time: number } = "earliest") {
    const client = await connect({ url: file.gw.wsUrl });
    const sub = await client.subscribe(topic, { start });
    const got: DeliveredEvent[] = [];
    let live = sub.live;
    sub.onEvent((e) => got.push(e)).onNotice((n) => {
      if (n.kind === "live") live = true;
    });
    return { client, got, isLive: () => live };
  }

  test("a replay of a partition that ends in a commit marker goes live after its records", async () => {
    const topic = freshTopic("txn-commit");
    await ensureTopic(file.brokers, topic, 1);
    await rawProduce(file.brokers, topic, ["begin", send(0), send(1), send(2), "commit"], `${topic}-tx`);
    const r = await replay(topic);
    await until("live", r.isLive, 15_000);
    expect(r.got.map((e) => e.offset)).toEqual([0, 1, 2]);
    r.client.close();
  }, 60_000);

  test("a replay of a partition that ends in aborted records and their marker goes live with the committed ones only", async () => {
    const topic = freshTopic("txn-abort");
    await ensureTopic(file.brokers, topic, 1);
    await rawProduce(file.brokers, topic, ["begin", send(0), "commit", "begin", send(1), send(2), "abort"], `${topic}-tx`);
    const r = await replay(topic);
    await until("live", r.isLive, 15_000);
    expect(r.got.map((e) => (e.event.data as { i: number }).i)).toEqual([0]);
    r.client.close();
  }, 60_000);

  test("a replay from a time past every committed record goes live, and events written later arrive", async () => {
    const topic = freshTopic("txn-time");
    await ensureTopic(file.brokers, topic, 1);
    await rawProduce(file.brokers, topic, ["begin", send(0), "abort"], `${topic}-tx`);
    const r = await replay(topic, { time: Date.now() - 60_000 });
    await until("live", r.isLive, 15_000);
    const pub = await connect({ url: file.gw.wsUrl });
    await pub.publish({ type: "after", data: { i: 9 } }, { topic });
    await until("the event written after", () => r.got.length === 1, 15_000);
    expect(r.got[0]!.event.type).toBe("after");
    pub.close();
    r.client.close();
  }, 60_000);
});
