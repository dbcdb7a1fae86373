import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { cpuSeconds } from "../support/proc";
import { connect } from "../../src/client";
import { underControl } from "../ingest/control";

/**
 * Records another producer wrote with tens of thousands of headers (outside tester): each was read
 * header by header in the Kafka worker and every header copied to the gateway, whose event loop
 * turned each into a string and a byte array before the delivery kept only its first 1,000
 * (MAX_DEGRADED_HEADERS). Five of them held a control's publish up to 823 ms. Workers now carry at most
 * the first MAX_CARRIED_HEADERS of a record and say how many they left out; the record still goes,
 * degraded "headers".
 */
const file = kafkaGatewayForFile();

async function writeRaw(topic: string, spec: object[]): Promise<void> {
  const proc = Bun.spawn(["node", resolve(import.meta.dir, "../kafka/raw-records.cjs"), file.brokers, topic], { stdin: new Blob([JSON.stringify(spec)]), stdout: "pipe", stderr: "inherit" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(code).toBe(0);
  expect((JSON.parse(out) as Array<{ error?: string }>).filter((r) => r.error)).toEqual([]);
}

const b64 = (text: string) => Buffer.from(text).toString("base64");
const ce = (type: string) => [["ce_type", type], ["content-type", "application/json"]];

/** Gateway CPU seconds spent delivering `spec`'s records to a JSON and a msgpack subscriber. */
async function deliveryCost(spec: object[]): Promise<{ cpu: number; degraded: Array<string | undefined> }> {
  const topic = freshTopic("foreign-headers");
  await ensureTopic(file.brokers, topic, 1);
  const clients = await Promise.all((["json", "msgpack"] as const).map((codec) => connect({ url: file.gw.wsUrl, codec })));
  const got: Array<Array<string | undefined>> = [[], []];
  await Promise.all(clients.map(async (c, i) => (await c.subscribe(topic, { start: "latest" })).onEvent((e) => got[i]!.push(e.degraded))));
  const before = cpuSeconds(file.gw.proc.pid);
  await writeRaw(topic, spec);
  const deadline = Date.now() + 60_000;
  while (got.some((g) => g.length < spec.length) && Date.now() < deadline) await Bun.sleep(20);
  const cpu = cpuSeconds(file.gw.proc.pid) - before;
  for (const c of clients) c.close();
  expect(got.map((g) => g.length)).toEqual([spec.length, spec.length]);
  return { cpu, degraded: got[0]! };
}

test("records of 70,000 headers from another producer cost the gateway little more than records of as many bytes without them", async () => {
  const n = 20;
  // About 900 KB each: 70,000 headers of ~12 bytes, against a payload of that size.
  const many = await underControl(file.gw, "twenty records of 70,000 headers to two subscribers", () => deliveryCost(Array.from({ length: n }, (_, i) => ({ value: b64(`{"i":${i}}`), headers: ce("many"), manyHeaders: 70_000 }))));
  // Under a control too, so that both figures hold its publishes' cost.
  const plain = await underControl(file.gw, "twenty records of 900 KB payloads to two subscribers", () => deliveryCost(Array.from({ length: n }, (_, i) => ({ value: b64(JSON.stringify({ i, pad: "x".repeat(900_000) })), headers: ce("plain") }))));
  console.log(`gateway CPU delivering ${n} records to 2 subscribers: 70,000 headers each ${(many.cpu * 1000).toFixed(0)} ms, 900 KB payloads ${(plain.cpu * 1000).toFixed(0)} ms`);
  expect(many.degraded.every((d) => d === "headers")).toBe(true);
  expect(many.cpu).toBeLessThan(Math.max(2 * plain.cpu, 0.2));
}, 180_000);
