// Stays on the raw test client: it sends broken, oversized and out-of-protocol bytes on purpose and reads the exact error frames and close codes they get.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { kafkaBrokers } from "../support/kafka";
import { GatewayClient } from "../support/ws-client";
import { stopHealthy } from "./hostile.support";

/**
 * Every bad input from the protocol doc, over a real socket against the Kafka-backed gateway. After
 * each one the same socket must still publish, and at the end the process must still be healthy.
 */
let gw: GatewayProcess;
const MAX_FRAME = 64 * 1024;

beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1", MAX_FRAME_BYTES: String(MAX_FRAME), MAX_BATCH_EVENTS: "50", PUBLISH_WINDOW: "60", MAX_DEPTH: "16" });
}, 60_000);
afterAll(() => stopHealthy(gw), 60_000);

async function stillWorks(c: GatewayClient) {
  const ack = await c.publish({ type: "still.ok" }, "bad-input");
  expect(ack).toMatchObject({ t: 20, topic: "bad-input" });
}

const nested = (depth: number) => {
  const b = new Uint8Array(depth + 1).fill(0x91);
  b[depth] = 0xc0;
  return b;
};

describe.each(["msgpack", "json"] as const)("%s frames", (codec) => {
  const raw = (c: GatewayClient, msgpack: Uint8Array, json: string) => c.sendRaw(codec === "msgpack" ? msgpack : json);

  test("undecodable frame → error BAD_FRAME", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    raw(c, new Uint8Array([0xc1]), "{not json");
    expect(await c.next()).toMatchObject({ t: 30, code: "BAD_FRAME", num: 1000, retriable: false });
    await stillWorks(c);
    c.close();
  });

  test("frame that is not a map, or has no numeric type → error INVALID_FRAME", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    c.send([1, 2, 3]);
    expect(await c.next()).toMatchObject({ t: 30, code: "INVALID_FRAME" });
    c.send({ t: "publish" });
    expect(await c.next()).toMatchObject({ t: 30, code: "INVALID_FRAME" });
    // With a readable cid it is a request: nacked with it (test/ingest/replies.test.ts has every kind).
    c.send({ t: "publish", cid: 1 });
    expect(await c.next()).toMatchObject({ t: 21, cid: 1, code: "INVALID_FRAME" });
    await stillWorks(c);
    c.close();
  });

  test("text limits count UTF-16 code units, as documented: 128 emoji make a 256-unit type, 129 are too long", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    const emoji = (n: number) => "😀".repeat(n); // two code units each
    for (const [event, ok] of [
      [{ type: emoji(128) }, true],
      [{ type: emoji(129) }, false],
      [{ type: "x", id: emoji(129) }, false],
      [{ type: "x", subject: emoji(513) }, false],
      [{ type: "x", subject: emoji(512) }, true],
    ] as const) {
      const reply = await c.publish(event, "bad-input");
      expect([Object.keys(event).join(), reply.t, reply.code]).toEqual([Object.keys(event).join(), ok ? 20 : 21, ok ? undefined : "INVALID_EVENT"]);
    }
    await stillWorks(c);
    c.close();
  });

  test("a header name holding U+0000 is refused INVALID_EVENT, naming it: Kafka's C clients end a name there", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    for (const name of ["content-type\u0000", "a\u0000b", "\u0000"]) {
      const reply = await c.publish({ type: "x", headers: { [name]: "v" } }, "bad-input");
      expect([reply.t, reply.code, String(reply.message).includes("U+0000")]).toEqual([21, "INVALID_EVENT", true]);
    }
    expect((await c.publish({ type: "x", headers: { "a\u0001b": "v" } }, "bad-input")).t).toBe(20);
    await stillWorks(c);
    c.close();
  });

  test("unknown frame type → nack UNKNOWN_FRAME_TYPE with the correlation id", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    expect(await c.request({ t: 77 })).toMatchObject({ t: 21, code: "UNKNOWN_FRAME_TYPE", num: 1003 });
    // A cid that is not a valid correlation id is not echoed: the reply is a plain error frame.
    c.send({ t: 77, cid: -1 });
    expect(await c.next()).toMatchObject({ t: 30, code: "UNKNOWN_FRAME_TYPE" });
    await stillWorks(c);
    c.close();
  });

  test("wrong field types and missing fields → INVALID_FRAME / INVALID_EVENT naming the field", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    expect(await c.request({ t: 10 })).toMatchObject({ t: 21, code: "INVALID_FRAME" });
    expect(await c.request({ t: 11, events: "nope" })).toMatchObject({ t: 21, code: "INVALID_FRAME", message: expect.stringContaining("events") });
    expect(await c.publish({ data: 1 })).toMatchObject({ t: 21, code: "INVALID_EVENT", message: expect.stringContaining("event.type") });
    expect(await c.publish({ type: 42 })).toMatchObject({ t: 21, code: "INVALID_EVENT", message: expect.stringContaining("event.type") });
    expect(await c.publish({ type: "x", time: "yesterday" })).toMatchObject({ t: 21, code: "INVALID_EVENT", message: expect.stringContaining("event.time") });
    expect(await c.publish({ type: "x", tpye: "typo" })).toMatchObject({ t: 21, code: "INVALID_EVENT", message: expect.stringContaining("tpye") });
    expect(await c.publish({ type: "x", headers: { ce_type: "spoof" } })).toMatchObject({ t: 21, code: "INVALID_EVENT", message: expect.stringContaining("reserved") });
    expect(await c.publish({ type: "x", data: { a: 1 }, datacontenttype: "text/csv" })).toMatchObject({ t: 21, code: "INVALID_EVENT" });
    await stillWorks(c);
    c.close();
  });

  test("a field no frame of its type has is refused INVALID_FRAME naming it, in every request type: a typo is an error, not a field ignored", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    const topic = `strict-${codec}-${Date.now().toString(36)}`;
    // Ignored, `events` beside `event` was dropped (one event published and acked, the rest never
    // written), and a misspelt `filtr` subscribed to everything.
    const refused: Array<[Record<string, unknown>, string]> = [
      [{ t: 10, topic, event: { type: "x" }, events: [{ type: "y" }] }, "events"],
      [{ t: 11, topic, events: [{ type: "x" }], event: { type: "y" } }, "event"],
      [{ t: 12, sub: "s", topic, filtr: { types: ["a"] } }, "filtr"],
      [{ t: 13, sub: "s", subscription: "s" }, "subscription"],
      [{ t: 14, token: "t", expires: 1 }, "expires"],
      [{ t: 15, echo: 1 }, "echo"],
      [{ t: 1, v: 1, clinet: "typo" }, "clinet"],
    ];
    for (const [frame, field] of refused) {
      expect([frame, await c.request(frame)]).toEqual([frame, expect.objectContaining({ t: 21, code: "INVALID_FRAME", message: expect.stringContaining(field) })]);
    }
    // A hello whose cid cannot be read is refused too, not welcomed as if it had none.
    c.send({ t: 1, v: 1, cid: "one" });
    expect(await c.next()).toMatchObject({ t: 30, code: "INVALID_FRAME", message: expect.stringContaining("cid") });
    // Nothing of the refused publishes reached the topic: the next event there is its first.
    expect(await c.publish({ type: "after" }, topic)).toMatchObject({ t: 20, offset: 0 });
    await stillWorks(c);
    c.close();
  });

  test("a batch with some bad events: the good ones are published, each bad one gets its own error", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    const r = await c.publishBatch([{ type: "a" }, { type: "" }, { type: "c", key: "k" }], "bad-input");
    expect(r.t).toBe(22);
    expect(r.partitions[0]).toBeGreaterThanOrEqual(0);
    expect(r.partitions[1]).toBe(-1);
    expect(r.offsets[2]).toBeGreaterThanOrEqual(0);
    expect(r.errors).toEqual([expect.objectContaining({ i: 1, code: "INVALID_EVENT" })]);
    c.close();
  });

  test("oversized frame → FRAME_TOO_LARGE nacked with its cid, socket stays open", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    const big = "x".repeat(MAX_FRAME + 10);
    raw(c, new Packr({ useRecords: false }).pack({ t: 10, cid: 1, event: { type: "x", data: big } }), JSON.stringify({ t: 10, cid: 1, event: { type: "x", data: big } }));
    expect(await c.next()).toMatchObject({ t: 21, cid: 1, code: "FRAME_TOO_LARGE", num: 1001 });
    await stillWorks(c);
    c.close();
  });

  test("over-deep nesting → NESTING_TOO_DEEP", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    raw(c, nested(40), "[".repeat(40) + "]".repeat(40));
    expect(await c.next()).toMatchObject({ t: 30, code: "NESTING_TOO_DEEP" });
    // Deep enough to overflow the decoder's stack, still only a frame error.
    raw(c, nested(MAX_FRAME - 1), "[".repeat(MAX_FRAME / 2) + "]".repeat(MAX_FRAME / 2 - 1));
    expect(await c.next()).toMatchObject({ t: 30, code: expect.stringMatching(/NESTING_TOO_DEEP|BAD_FRAME/) });
    await stillWorks(c);
    c.close();
  });

  test("too many events in a batch → BATCH_TOO_LARGE; past the window → WINDOW_EXCEEDED (retriable)", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    expect(await c.publishBatch(Array.from({ length: 51 }, () => ({ type: "x" })))).toMatchObject({ t: 21, code: "BATCH_TOO_LARGE", retriable: false });
    const inWindow = c.publishBatch(Array.from({ length: 50 }, () => ({ type: "x" })), "bad-input");
    const overWindow = c.publishBatch(Array.from({ length: 11 }, () => ({ type: "x" })), "bad-input");
    expect(await overWindow).toMatchObject({ t: 21, code: "WINDOW_EXCEEDED", num: 2000, retriable: true });
    expect((await inWindow).errors).toBeUndefined();
    await stillWorks(c);
    c.close();
  });

  test("invalid or disallowed topic → INVALID_TOPIC", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    expect(await c.publish({ type: "x" }, "no spaces")).toMatchObject({ t: 21, code: "INVALID_TOPIC" });
    expect(await c.publish({ type: "x" }, "x".repeat(250))).toMatchObject({ t: 21, code: "INVALID_TOPIC" });
    await stillWorks(c);
    c.close();
  });

  test("publish before hello → HANDSHAKE_REQUIRED; a hello of another version → UNSUPPORTED_VERSION and close 4000", async () => {
    const c = await GatewayClient.connect(gw.wsUrl, codec, false);
    expect(await c.publish({ type: "x" })).toMatchObject({ t: 21, code: "HANDSHAKE_REQUIRED" });
    c.send({ t: 1, v: 99 });
    expect(await c.next()).toMatchObject({ t: 30, code: "UNSUPPORTED_VERSION", supported: [1] });
    expect((await c.closed).code).toBe(4000);
  });
});

test("a text frame that starts with a byte order mark is read as JSON without it, as the HTTP endpoints read bodies", async () => {
  const c = await GatewayClient.connect(gw.wsUrl, "json");
  c.sendRaw(`\uFEFF${JSON.stringify({ t: 10, cid: 41, topic: "bad-input", event: { type: "bom" } })}`);
  c.sendRaw(`\uFEFF${JSON.stringify({ t: 15, cid: 42 })}`);
  const replies = [await c.next(), await c.next()].sort((a, b) => a.cid - b.cid);
  expect(replies).toEqual([expect.objectContaining({ t: 20, cid: 41, topic: "bad-input" }), { t: 31, cid: 42 }]);
  // Only one: the text after it must be JSON, and a second mark is not.
  c.sendRaw(`\uFEFF\uFEFF${JSON.stringify({ t: 15, cid: 43 })}`);
  expect(await c.next()).toMatchObject({ t: 30, code: "BAD_FRAME" });
  await stillWorks(c);
  c.close();
});

test("msgpack values plain data cannot hold are refused: ext types (64-bit integers are accepted)", async () => {
  const c = await GatewayClient.connect(gw.wsUrl);
  const frame = new Packr({ useRecords: false }).pack({ t: 10, cid: 5, topic: "bad-input", event: { type: "x", data: 1 } });
  // Replace the 1 (0x01) at the end with a uint64 beyond 2^53.
  const big = new Uint8Array([...frame.subarray(0, frame.length - 1), 0xcf, 0xff, 0, 0, 0, 0, 0, 0, 1]);
  c.sendRaw(big);
  expect(await c.next()).toMatchObject({ t: 20, cid: 5 });
  c.sendRaw(new Packr({ moreTypes: true } as never).pack({ t: 10, cid: 6, event: { type: "x", data: new Set([1]) } }));
  expect(await c.next()).toMatchObject({ t: 30, code: "BAD_FRAME" });
  await stillWorks(c);
  c.close();
});

test("a frame past the transport's hard cap closes only that socket, with 1009", async () => {
  const c = await GatewayClient.connect(gw.wsUrl);
  c.sendRaw(new Uint8Array(MAX_FRAME * 4 + 1));
  expect((await c.closed).code).toBe(1009);
  const other = await GatewayClient.connect(gw.wsUrl);
  await stillWorks(other);
  other.close();
});

test("a refusal repeats a client's long names clipped, not whole: a header name or unknown key of 30,000 characters (outside probe Y: a 60,000-character name came back in a 60 KB nack)", async () => {
  const long = "h".repeat(30_000);
  for (const codec of ["msgpack", "json"] as const) {
    const c = await GatewayClient.connect(gw.wsUrl, codec);
    const refusals = [
      await c.publish({ type: "x", headers: { [long]: "v" } }, "bad-input"),
      await c.publish({ type: "x", [long]: 1 }, "bad-input"),
      await c.request({ t: 10, topic: "bad-input", event: { type: "x" }, [long]: 1 }),
      await c.request({ t: 12, sub: "s", topic: "bad-input", filter: { [long]: 1 } }),
    ];
    for (const r of refusals) {
      expect([codec, r.t, typeof r.code]).toEqual([codec, 21, "string"]);
      expect([codec, r.code, r.message.length < 1_000]).toEqual([codec, r.code, true]);
      expect(r.message).toContain("hhhh…(");
    }
    await stillWorks(c);
    c.close();
  }
});
