import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { connect } from "../../src/client";

/** What filters see of an event is what subscribers are delivered: time, key, datacontenttype. */
let brokers: string;
let gw: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" });
}, 60_000);
afterAll(async () => {
  expect(await gw.stop()).toBe(0);
}, 60_000);

test("time is filled from the record timestamp when the producer gave none, for filters and in the envelope; a keyless event has no key", async () => {
  const topic = freshTopic("envelope");
  await ensureTopic(brokers, topic, 1);
  const sub = await connect({ url: gw.wsUrl, codec: "json" });
  const got: any[] = [];
  const filters: Record<string, string> = {
    keyless: "exists(time) and not exists(key) and time > '2000'",
    keyed: "exists(key) and datacontenttype == 'application/json'",
    given: "time == '2020-01-02T03:04:05Z'",
  };
  for (const [name, where] of Object.entries(filters)) (await sub.subscribe(topic, { filter: { where } })).onEvent((e) => got.push({ sub: name, event: e.event }));

  const pub = await connect({ url: gw.wsUrl, codec: "json" });
  const before = Date.now();
  await pub.publish({ type: "a", id: "no-key" }, { topic });
  await pub.publish({ type: "b", id: "with-key", key: "k", data: { x: 1 } }, { topic });
  await pub.publish({ type: "c", id: "with-time", key: "k2", time: "2020-01-02T03:04:05Z" }, { topic });
  const deadline = Date.now() + 30_000;
  while (got.length < 3 && Date.now() < deadline) await Bun.sleep(50);
  await Bun.sleep(300);

  const by = (s: string) => got.filter((g) => g.sub === s).map((g) => g.event.id);
  expect(by("keyless")).toEqual(["no-key"]);
  expect(by("keyed")).toEqual(["with-key"]);
  expect(by("given")).toEqual(["with-time"]);
  const noKey = got.find((g) => g.event.id === "no-key")!.event;
  expect(noKey.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  expect(Math.abs(Date.parse(noKey.time) - before)).toBeLessThan(60_000);
  expect("key" in noKey).toBe(false);
  expect(got.find((g) => g.event.id === "with-key")!.event).toMatchObject({ datacontenttype: "application/json", key: "k", data: { x: 1 } });
  sub.close();
  pub.close();
}, 60_000);
