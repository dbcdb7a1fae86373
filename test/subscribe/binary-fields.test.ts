import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile, writeRawRecords } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { type Codec, type Frame, GatewayClient, replayedEntries } from "../support/ws-client";

/**
 * Keys and header values that are not UTF-8 text reach subscribers as the bytes they are: as
 * msgpack bytes, or base64 in `key_base64` / `headers_base64` for JSON subscribers. A header published
 * as bytes, and a binary key any other producer wrote (a Java LongSerializer key, an Avro key with
 * its schema-registry prefix), were delivered decoded as UTF-8 with U+FFFD in place of each bad byte,
 * which no subscriber could undo. Raw frames: the test checks the exact fields of the delivered envelope.
 */
const file = kafkaGatewayForFile();

const BINARY = new Uint8Array([0x00, 0x00, 0x00, 0x01, 0xff, 0xfe, 0x80, 0x41]); // an Avro-style prefix, then bytes no UTF-8 decoder keeps
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** The events a replay of `topic` delivers in `codec`. */
async function delivered(codec: Codec, topic: string, count: number): Promise<Frame[]> {
  return (await replayedEntries(file.gw.wsUrl, codec, topic, count)).map((e) => e.event);
}

test("a header published as bytes, and a binary key and header written by another producer, are delivered as those bytes, in msgpack and in JSON", async () => {
  const topic = freshTopic("binary-fields");
  await ensureTopic(file.brokers, topic, 1);
  const publisher = await GatewayClient.connect(file.gw.wsUrl, "msgpack");
  const ack = await publisher.publish({ type: "own", key: "text-key", headers: { bin: BINARY, text: "plain" } }, topic);
  expect(ack.t).toBe(20);
  publisher.close();
  const spec = [{ keyBase64: b64(BINARY), value: b64(new Uint8Array([1, 2, 3])), headers: [["ce_type", "foreign"], ["bin", b64(BINARY), "base64"], ["text", "plain"]] }];
  await writeRawRecords(file.brokers, topic, spec);

  const [own, foreign] = await delivered("msgpack", topic, 2);
  expect(own!.key).toBe("text-key");
  expect(new Uint8Array(own!.headers.bin)).toEqual(BINARY);
  expect(own!.headers.text).toBe("plain");
  expect(foreign!.type).toBe("foreign");
  expect(new Uint8Array(foreign!.key)).toEqual(BINARY);
  expect(new Uint8Array(foreign!.headers.bin)).toEqual(BINARY);
  expect(foreign!.headers.text).toBe("plain");

  const [ownJson, foreignJson] = await delivered("json", topic, 2);
  expect(ownJson!.key).toBe("text-key");
  expect(ownJson!.headers).toEqual({ text: "plain" });
  expect(ownJson!.headers_base64).toEqual({ bin: b64(BINARY) });
  expect(foreignJson!.key).toBeUndefined();
  expect(foreignJson!.key_base64).toBe(b64(BINARY));
  expect(foreignJson!.headers).toEqual({ text: "plain" });
  expect(foreignJson!.headers_base64).toEqual({ bin: b64(BINARY) });
}, 60_000);
