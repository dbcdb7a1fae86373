import { describe, expect, test } from "bun:test";
import { type DeliveredEvent, connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { rawProduce } from "../support/raw-producer";
import { until } from "../support/until";
import { replayedEntries } from "../support/ws-client";

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

  test("another producer's header names holding a NUL byte are delivered whole: `ce_type\\0x` is not the event's type", async () => {
    const topic = freshTopic("nul-names");
    await ensureTopic(file.brokers, topic, 1);
    const client = await connect({ url: file.gw.wsUrl });
    const spoofed = await client.subscribe(topic, { start: "earliest", filter: { types: ["spoofed.*"] } });
    const all = await client.subscribe(topic, { start: "earliest" });
    const got: DeliveredEvent[] = [];
    let spoofedGot = 0;
    spoofed.onEvent(() => spoofedGot++);
    all.onEvent((e) => got.push(e));
    await rawProduce(file.brokers, topic, [
      { partition: 0, key: "k", value: '{"amount":1}', headers: [["ce_specversion", "1.0"], ["ce_type", "invoice.created"], ["ce_id", "real-id"], ["ce_source", "/java"], ["content-type", "application/json"], ["ce_type\0x", "spoofed.type"], ["x\0a", "A"], ["x\0b", "B"], ["n\0", null]] },
      { partition: 0, value: "{}", headers: [["ce_type", "spoofed.last"]] },
    ]);
    await until("both records", () => got.length === 2, 15_000);
    expect(got[0]!.event.type).toBe("invoice.created");
    expect(got[0]!.event.headers).toEqual({ "ce_type\u0000x": "spoofed.type", "x\u0000a": "A", "x\u0000b": "B", "n\u0000": "" });
    expect(got[0]!.event.data).toEqual({ amount: 1 });
    await Bun.sleep(200);
    expect(spoofedGot).toBe(1); // the second record only
    client.close();
  }, 60_000);
});

describe("Kafka, record timestamps", () => {
  const file = kafkaGatewayForFile();
  test("a record timestamp RFC 3339 cannot write (past the year 9999) leaves `time` out, in both codecs; one it can is RFC 3339", async () => {
    const topic = freshTopic("far-time");
    // The broker refuses timestamps more than an hour ahead unless the topic says otherwise.
    await ensureTopic(file.brokers, topic, 1, { "message.timestamp.after.max.ms": "9223372036854775807" });
    const at = [9e15, 300_000_000_000_000, 253_402_300_799_999, 1_700_000_000_000];
    await rawProduce(file.brokers, topic, at.map((timestamp) => ({ partition: 0, timestamp, value: "{}", headers: [["ce_type", "t"], ["content-type", "application/json"]] })));
    for (const codec of ["msgpack", "json"] as const) {
      const entries = await replayedEntries(file.gw.wsUrl, codec, topic, at.length);
      expect(entries.map((e) => e.event.time ?? null)).toEqual([null, null, "9999-12-31T23:59:59.999Z", "2023-11-14T22:13:20.000Z"]);
    }
  }, 60_000);
});
