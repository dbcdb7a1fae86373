// The __proto__ headers are written as raw JSON text on the test client: the SDK serialises objects, and JSON.stringify gives no own "__proto__" key.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Codec, type DeliveredEvent, type GatewayClient as Client, connect } from "../../src/client";
import { health, withControl, within } from "../kafka/harm";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

/**
 * Events a client may publish that a subscriber's encoder cannot take as they are, through the
 * gateway, on the embedded log and on Kafka: a `data` map of 70,000 keys (msgpack writes at most
 * 65,535 with the gateway's settings) and headers named like Object.prototype members.
 * The publisher gets its answer, every subscriber gets the event (whole, or degraded as
 * docs/protocol.md says), the gateway and its workers stay up, and a control publisher is answered.
 */
let brokers: string;
let embedded: GatewayProcess;
let kafka: GatewayProcess;

beforeAll(async () => {
  brokers = await kafkaBrokers();
  [embedded, kafka] = await Promise.all([startGateway({}), startGateway({ KAFKA_WORKERS: "1", KAFKA_BROKERS: brokers })]);
}, 60_000);
afterAll(async () => {
  await Promise.all([embedded?.stop(), kafka?.stop()]);
}, 60_000);

// Short keys and values: the JSON text (about 630 KB) stays under the broker's 1 MB record limit.
const bigData = Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [i.toString(36), 0]));

async function subscribe(gw: GatewayProcess, codec: Codec, topic: string): Promise<{ client: Client; got: DeliveredEvent[] }> {
  const client = await connect({ url: gw.wsUrl, codec });
  const got: DeliveredEvent[] = [];
  (await client.subscribe(topic)).onEvent((e) => got.push(e));
  return { client, got };
}

for (const which of ["embedded", "kafka"] as const) {
  test(`${which}: a JSON event whose data has 70,000 keys is refused at ingest (EVENT_TOO_LARGE), or else reaches msgpack subscribers degraded and JSON ones whole; the gateway lives on`, async () => {
    const gw = which === "embedded" ? embedded : kafka;
    const topic = freshTopic("bigmap");
    const controlTopic = freshTopic("bigmap-control");
    if (which === "kafka") await Promise.all([ensureTopic(brokers, topic, 1), ensureTopic(brokers, controlTopic, 1)]);
    await withControl(gw, controlTopic, async () => {
      const subs = await Promise.all([subscribe(gw, "msgpack", topic), subscribe(gw, "json", topic)]);
      const publisher = await connect({ url: gw.wsUrl, codec: "json" });
      const acked = await publisher.publish({ id: "big", type: "big.map", data: bigData }, { topic }).then(
        (r) => (expect(r).toMatchObject({ id: "big", topic }), true),
        // The ingest limit (MAX_MAP_KEYS, at most 65,535) refuses it; then there is nothing to deliver
        // here (test/kafka/hostile-records.test.ts writes the same payload straight into Kafka).
        (e) => (expect(e).toMatchObject({ name: "PublishError", code: "EVENT_TOO_LARGE" }), false),
      );
      expect(await publisher.publish({ id: "after", type: "after", data: { n: 1 } }, { topic })).toMatchObject({ id: "after", topic });
      const want = acked ? 2 : 1;
      expect(await within(30_000, () => subs.every((s) => s.got.length >= want))).toBeGreaterThanOrEqual(0);
      for (const [i, s] of subs.entries()) {
        expect(s.got.map((e) => e.event.id)).toEqual(acked ? ["big", "after"] : ["after"]);
        if (!acked) continue;
        const big = s.got[0]!;
        if (big.degraded === undefined) expect(Object.keys(big.event.data as object).length).toBe(70_000);
        else {
          expect(i).toBe(0); // JSON has no map size limit
          expect(big.degraded).toBe("data");
          expect(big.event.datacontenttype).toBe("application/json");
          expect(Object.keys(JSON.parse(Buffer.from(big.event.data as Uint8Array).toString())).length).toBe(70_000);
        }
      }
      for (const s of [...subs.map((x) => x.client), publisher]) s.close();
    });
    expect(gw.proc.exitCode).toBeNull();
    expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
  }, 120_000);
}

const protoNames = ["__proto__", "constructor", "toString", "valueOf", "hasOwnProperty"];

for (const which of ["embedded", "kafka"] as const) {
  test(`${which}: headers named __proto__, constructor, toString, valueOf, hasOwnProperty reach subscribers with their values, and no worker restarts`, async () => {
    const gw = which === "embedded" ? embedded : kafka;
    const topic = freshTopic("proto");
    const controlTopic = freshTopic("proto-control");
    if (which === "kafka") await Promise.all([ensureTopic(brokers, topic, 1), ensureTopic(brokers, controlTopic, 1)]);
    const restartsBefore = which === "kafka" ? (await health(gw.url)).log.workers.map((w: { restarts: number }) => w.restarts) : [];
    await withControl(gw, controlTopic, async () => {
      const subs = await Promise.all([subscribe(gw, "json", topic), subscribe(gw, "msgpack", topic)]);
      const publisher = await GatewayClient.connect(gw.wsUrl, "json");
      // JSON text, so "__proto__" is an own key of the parsed object, as any JSON client can send it.
      const headers = `{${protoNames.map((n) => `"${n}":"${n}-value"`).join(",")}}`;
      publisher.sendRaw(`{"t":10,"cid":900,"topic":"${topic}","event":{"id":"ws","type":"proto","headers":${headers}}}`);
      const http = await fetch(`${gw.url}/api/v1/events?topic=${topic}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: `{"id":"http","type":"proto","headers":${headers}}`,
      });
      expect(http.status).toBe(202);
      expect(await within(30_000, () => subs.every((s) => s.got.length >= 2))).toBeGreaterThanOrEqual(0);
      for (const s of subs) {
        expect(s.got.map((e) => e.event.id).sort()).toEqual(["http", "ws"]);
        for (const e of s.got) {
          const h = e.event.headers as Record<string, unknown>;
          for (const n of protoNames) {
            expect({ n, v: Object.hasOwn(h, n) ? Object.getOwnPropertyDescriptor(h, n)!.value : undefined }).toEqual({ n, v: `${n}-value` });
          }
        }
      }
      for (const s of [...subs.map((x) => x.client), publisher]) s.close();
    });
    if (which === "kafka") {
      await Bun.sleep(2000); // a worker that dies on the record would be seen restarting by now
      expect((await health(gw.url)).log.workers.map((w: { restarts: number }) => w.restarts)).toEqual(restartsBefore);
    }
  }, 120_000);
}

// msgpack cannot write an own "__proto__" key from a JS literal: the frame is assembled from bytes.
function msgpackEventWithProtoKey(topic: string): Uint8Array {
  const str = (s: string) => Buffer.concat([Buffer.from([0xa0 | Buffer.byteLength(s)]), Buffer.from(s)]);
  const map = (entries: Array<[Buffer, Buffer]>) => Buffer.concat([Buffer.from([0x80 | entries.length]), ...entries.flat()]);
  const data = map([[str("__proto__"), map([[str("x"), Buffer.from([0x01])]])], [str("a"), Buffer.from([0x02])]]);
  return map([[str("t"), Buffer.from([10])], [str("cid"), Buffer.from([7])], [str("topic"), str(topic)], [str("event"), map([[str("type"), str("proto.key")], [str("data"), data]])]]);
}

for (const which of ["embedded", "kafka"] as const) {
  test(`${which}: a "__proto__" key in msgpack data reaches subscribers of both codecs, and the SDK's application, as it was written`, async () => {
    const gw = which === "embedded" ? embedded : kafka;
    const topic = freshTopic("proto-key");
    if (which === "kafka") await ensureTopic(brokers, topic, 1);
    const subs = await Promise.all((["msgpack", "json"] as const).map((codec) => subscribe(gw, codec, topic)));
    const raw = await GatewayClient.connect(gw.wsUrl);
    const rawSeen: Uint8Array[] = [];
    raw.ws.addEventListener("message", (m) => void (typeof m.data !== "string" && rawSeen.push(new Uint8Array(m.data as ArrayBuffer))));
    await raw.subscribe({ sub: "raw", topic }, () => {});
    const publisher = await GatewayClient.connect(gw.wsUrl);
    const acked = new Promise<void>((resolve) => publisher.ws.addEventListener("message", () => resolve(), { once: true }));
    publisher.sendRaw(msgpackEventWithProtoKey(topic));
    await acked;
    expect(await within(20_000, () => subs.every((s) => s.got.length > 0) && rawSeen.some((b) => Buffer.from(b).includes("proto.key")))).toBeGreaterThanOrEqual(0);
    for (const { got } of subs) {
      const data = got[0]!.event.data as Record<string, unknown>;
      expect(Object.hasOwn(data, "__proto__")).toBe(true);
      expect(Object.getOwnPropertyDescriptor(data, "__proto__")!.value).toEqual({ x: 1 });
      expect(Object.hasOwn(data, "__proto_")).toBe(false);
      expect(data.a).toBe(2);
    }
    // On the wire, the key's own bytes: fixstr 9, "__proto__".
    expect(rawSeen.some((b) => Buffer.from(b).includes(Buffer.from([0xa9, ...Buffer.from("__proto__")])))).toBe(true);
    for (const { client } of subs) client.close();
    raw.close();
    publisher.close();
  }, 60_000);
}
