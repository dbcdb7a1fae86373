import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile, writeRawRecords } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { type GatewayClient, connect } from "../../src/client";
import { underControl } from "../ingest/control";

/**
 * Another producer's record with a ce_source of 900 KB (outside tester): the gateway's own events
 * hold at most 1,024 characters there, but a record from Kafka may hold anything, and every source
 * pattern of every filter was matched against all of it, in one piece of work no delivery turn can
 * cut (a record's matching). 835 filters of 64 long patterns cost 5-6 s a record, and every client's
 * acks waited. Filters now see an envelope field longer than a client's event may hold (type 256,
 * source and subject 1,024 characters) as absent; the record is delivered with it as written.
 */
// The 6,400 patterns of ~1,000 characters count 16 terms each now (a term per 64 characters,
// src/subscribe/filter.ts): the topic's bound is raised, so that what this measures is the field's
// length, not MAX_FILTER_TERMS_PER_TOPIC (test/subscribe/long-globs.test.ts).
const file = kafkaGatewayForFile({ RATE_LIMIT_BYTES: "0", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0", MAX_FILTER_TERMS_PER_TOPIC: "1000000", MAX_FILTER_TERMS_PER_ADDRESS: "1000000" });


const b64 = (text: string) => Buffer.from(text).toString("base64");
const record = (fields: Record<string, string>) => ({ value: b64('{"x":1}'), headers: [...Object.entries(fields).map(([k, v]) => [`ce_${k}`, v]), ["content-type", "application/json"]] });

test("records with a 900 KB ce_source, against 6,400 long source patterns: other clients keep their latency, and the records are delivered", async () => {
  const topic = freshTopic("long-source");
  await ensureTopic(file.brokers, topic, 1);
  const holders: GatewayClient[] = [];
  for (let c = 0; c < 2; c++) {
    const client = await connect({ url: file.gw.wsUrl });
    holders.push(client);
    for (let s = 0; s < 50; s++) {
      // Distinct, never matching: "*" + 1,000 characters + "*", each its own.
      const source = Array.from({ length: 64 }, (_, j) => `*${"\u0101b".repeat(500)}${String.fromCharCode(0x4e00 + c * 100 + s)}${String.fromCharCode(0x3000 + j)}*`);
      await client.subscribe(topic, { filter: { source } });
    }
  }
  const plain = await connect({ url: file.gw.wsUrl });
  const got: Array<Record<string, unknown>> = [];
  (await plain.subscribe(topic)).onEvent((e) => void got.push(e.event as unknown as Record<string, unknown>));
  const long = "\u0101b".repeat(300_000);
  await underControl(file.gw, "3 records of a 900 KB ce_source against 100 filters of 64 long source patterns", async () => {
    await writeRawRecords(file.brokers, topic, Array.from({ length: 3 }, (_, i) => record({ type: `big.${i}`, source: long, id: `r${i}` })));
    const deadline = Date.now() + 30_000;
    while (got.length < 3 && Date.now() < deadline) await Bun.sleep(50);
  }, { p99UnderMs: 400 });
  expect(got.map((e) => e.type)).toEqual(["big.0", "big.1", "big.2"]);
  expect(got.every((e) => e.source === long)).toBe(true);
  for (const c of [...holders, plain]) c.close();
}, 180_000);

test("filters see an envelope field longer than a client's event may hold as absent; subscribers without such a filter get it as written", async () => {
  const topic = freshTopic("long-fields");
  await ensureTopic(file.brokers, topic, 1);
  const c = await connect({ url: file.gw.wsUrl });
  const seen: Record<string, string[]> = {};
  const sub = async (name: string, filter?: Record<string, unknown>) => {
    seen[name] = [];
    (await c.subscribe(topic, filter ? { filter } : {})).onEvent((e) => void seen[name]!.push(e.event.id));
  };
  await sub("all");
  await sub("anySource", { source: ["*"] });
  await sub("anySubject", { subject: "*" });
  await sub("typeGlob", { types: ["t.*"] });
  await sub("whereSource", { where: "exists(source)" });
  await writeRawRecords(file.brokers, topic, [
    record({ type: "t.short", source: "s".repeat(1024), subject: "j".repeat(1024), id: "at-limit" }),
    record({ type: "t.long-source", source: "s".repeat(1025), id: "long-source" }),
    record({ type: "t.long-subject", subject: "j".repeat(1025), id: "long-subject" }),
    record({ type: `t.${"y".repeat(255)}`, id: "long-type" }),
  ]);
  const deadline = Date.now() + 20_000;
  while (seen.all!.length < 4 && Date.now() < deadline) await Bun.sleep(50);
  await Bun.sleep(500);
  expect(seen).toEqual({
    all: ["at-limit", "long-source", "long-subject", "long-type"],
    anySource: ["at-limit"],
    anySubject: ["at-limit"],
    typeGlob: ["at-limit", "long-source", "long-subject"],
    whereSource: ["at-limit"],
  });
  c.close();
}, 60_000);
