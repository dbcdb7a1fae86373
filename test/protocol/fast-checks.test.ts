import { describe, expect, test } from "bun:test";
import { isCertainlyValid, parseEnvelope } from "../../src/protocol/envelope";
import { EnvelopeSchema, FrameType, PublishBatchSchema, PublishSchema } from "../../src/protocol/frames";
import { parsePublishFrame } from "../../src/protocol/publish-frame";

// Values each field may take: some the schema accepts, some it refuses, some at its edges.
const variants: Record<string, unknown[]> = {
  specversion: ["1.0", "0.3", 1, null],
  id: ["a", "", "x".repeat(256), "x".repeat(257), 7, null],
  source: ["/s", "", "s".repeat(1024), "s".repeat(1025), ["x"]],
  type: ["t", "", "t".repeat(256), "t".repeat(257), 1, null, { a: 1 }],
  subject: ["sub", "", "s".repeat(1025)],
  time: ["2026-11-23T10:00:00Z", "2026-11-23T10:00:00.123+02:00", "2026-11-23", "yesterday", new Date(0), new Date(Number.NaN), 1700000000000],
  datacontenttype: ["application/json", "", "c".repeat(257)],
  data: [{ a: 1 }, [1, 2], "text", 0, null, new Uint8Array([1, 2, 3])],
  data_base64: ["aGVsbG8=", "not base64!", "", 3],
  key: ["k", "", "k".repeat(32768), "k".repeat(32769), new Uint8Array([1]), 5, null],
  headers: [{ a: "b" }, { a: new Uint8Array([1]) }, {}, { "": "x" }, { ce_id: "x" }, { "Content-Type": "x" }, { a: 1 }, { ["h".repeat(257)]: "x" }, ["a"], null, { a: "v".repeat(65537) }],
  extra: [1],
};

/** A deterministic pseudo-random generator, so a failure reproduces. */
function rng(seed: number) {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

function envelope(rand: () => number): Record<string, unknown> {
  const e: Record<string, unknown> = {};
  for (const [field, values] of Object.entries(variants)) {
    // type is usually present, extra fields rarely, everything else about half the time.
    const p = field === "type" ? 0.95 : field === "extra" ? 0.05 : 0.4;
    if (rand() < p) e[field] = values[Math.floor(rand() * values.length)];
  }
  return e;
}

describe("the fast envelope check against EnvelopeSchema", () => {
  test("never accepts what the schema refuses, and accepts most of what it accepts", () => {
    const rand = rng(42);
    let schemaAccepts = 0;
    let fastAccepts = 0;
    for (let i = 0; i < 30_000; i++) {
      const e = envelope(rand);
      const schema = EnvelopeSchema.safeParse(e).success;
      const fast = isCertainlyValid(e);
      if (fast && !schema) throw new Error(`fast path accepted what the schema refuses: ${Bun.inspect(e)}`);
      if (schema) schemaAccepts++;
      if (fast) fastAccepts++;
    }
    expect(schemaAccepts).toBeGreaterThan(500);
    // The fast path turns down only what it leaves to zod on purpose; here, nothing valid.
    expect(fastAccepts).toBe(schemaAccepts);
  });

  test("parseEnvelope reports exactly the schema's message, with the event's position", () => {
    const r = parseEnvelope({ type: "" }, 3);
    expect(r).toEqual({ ok: false, message: expect.stringContaining("events[3].type") });
    expect(parseEnvelope({ type: "a", bogus: 1 }, null)).toEqual({ ok: false, message: expect.stringContaining("bogus") });
    expect(parseEnvelope({ type: "a", data: 1, data_base64: "AA==" }, null)).toEqual({ ok: false, message: expect.stringContaining("not both") });
  });

  test("the common shape takes the fast path and comes back as it was sent", () => {
    const e = { type: "order.created", key: "user-42", data: new Uint8Array(115), headers: { tenant: "acme" } };
    expect(isCertainlyValid(e)).toBe(true);
    expect(parseEnvelope(e, 0)).toEqual({ ok: true, envelope: e });
  });
});

describe("the fast publish-frame check against the frame schemas", () => {
  test("accepts only frames the schema accepts", () => {
    const cids = [0, 1, 2 ** 53 - 1, 2 ** 53, -1, 1.5, "1", null, undefined];
    const topics = [undefined, "orders", "a.b_c-d", "", "bad topic", "x".repeat(250), 7];
    const bodies = [
      { events: [] }, { events: [{ type: "a" }] }, { events: "no" }, { events: { 0: 1 } }, { event: { type: "a" } }, {},
      // Fields of neither type, or of the other: the schema refuses them, so must the fast path.
      { event: { type: "a" }, events: [] }, { events: [], event: { type: "a" } }, { event: { type: "a" }, extra: 1 }, { events: [], topics: ["x"] },
    ];
    let accepted = 0;
    for (const t of [FrameType.PUBLISH, FrameType.PUBLISH_BATCH])
      for (const cid of cids)
        for (const topic of topics)
          for (const body of bodies) {
            const frame = { t, cid, ...(topic === undefined ? {} : { topic }), ...body };
            const fast = parsePublishFrame(frame);
            const schema = (t === FrameType.PUBLISH ? PublishSchema : PublishBatchSchema).safeParse(frame);
            expect({ frame, ok: fast.ok }).toEqual({ frame, ok: schema.success });
            if (fast.ok) accepted++;
          }
    expect(accepted).toBeGreaterThan(20);
  });
});
