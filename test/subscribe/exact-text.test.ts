import { describe, expect, test } from "bun:test";
import { type DeliveredEvent, connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { until } from "../support/until";

/**
 * A key, a type, an id and header values are delivered exactly as written, a leading U+FEFF
 * included: a default TextDecoder drops it, so `type: "\uFEFFa"` came back as "a", a filter for
 * "\uFEFFa" never matched its own event and one for "a" did (hostile tester).
 */
describe("Kafka", () => {
  const file = kafkaGatewayForFile();
  test("a leading U+FEFF stays in the key, type, id and header values delivered, and filters see it", async () => {
    const topic = freshTopic("bom");
    await ensureTopic(file.brokers, topic, 1);
    const client = await connect({ url: file.gw.wsUrl });
    const withBom = await client.subscribe(topic, { filter: { types: ["\uFEFFa"] } });
    const without = await client.subscribe(topic, { filter: { types: ["a"] } });
    const got: DeliveredEvent[] = [];
    const wrong: DeliveredEvent[] = [];
    withBom.onEvent((e) => got.push(e));
    without.onEvent((e) => wrong.push(e));
    await client.publish({ type: "\uFEFFa", key: "\uFEFFk", id: "\uFEFFi", headers: { h: "\uFEFFv" }, data: { s: "\uFEFFd" } }, { topic });
    await client.publish({ type: "a", data: { last: true } }, { topic });
    await until("both events", () => got.length + wrong.length === 2, 15_000);
    expect(got.length).toBe(1);
    expect(wrong.length).toBe(1);
    const e = got[0]!;
    expect([e.event.type, e.event.key, e.event.id, e.event.headers?.h, (e.event.data as { s: string }).s]).toEqual(["\uFEFFa", "\uFEFFk", "\uFEFFi", "\uFEFFv", "\uFEFFd"]);
    client.close();
  }, 60_000);
});
