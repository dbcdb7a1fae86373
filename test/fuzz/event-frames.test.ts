import { expect, test } from "bun:test";
import fc from "fast-check";
import { type CodecName, encodeFrame, packedStringSize, packPart, packString } from "../../src/protocol/codec";
import { type EncodedEntry, encodeEntry, eventFrame, eventFrameSize } from "../../src/protocol/event-frames";
import { frameBytes } from "../../src/protocol/frame-bytes";
import { FrameType } from "../../src/protocol/frame-types";
import { plainValue, text } from "./arbitraries";

/**
 * Event frames are spliced from entries encoded once per record (src/protocol/event-frames.ts).
 * The shortcut must be exactly the schema it stands for: the same bytes encodeFrame writes for the
 * frame as an object, in both codecs, for any entries, any subscription id and any token.
 */
const entry = (json: boolean) =>
  fc.record(
    {
      topic: fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/),
      partition: fc.nat(1000),
      offset: fc.oneof(fc.nat(), fc.constant(2 ** 53 - 1)),
      event: fc.dictionary(text, plainValue({ bytes: !json, dates: false, maxDepth: 3 }), { maxKeys: 6 }),
      degraded: fc.constantFrom("data", "headers", "event"),
      reason: text,
    },
    { requiredKeys: ["topic", "partition", "offset", "event"] },
  );

function asObject(sub: string, entries: Array<Record<string, unknown>>, token: string | undefined): object {
  return entries.length === 1
    ? { t: FrameType.EVENT, sub, ...entries[0], ...(token ? { token } : {}) }
    : { t: FrameType.EVENT_BATCH, sub, events: entries, ...(token ? { token } : {}) };
}

for (const codec of ["msgpack", "json"] as CodecName[]) {
  test(`${codec}: a spliced event frame is byte for byte the frame encodeFrame writes`, () => {
    fc.assert(
      // Subscribers of one feed share the token after a batch: each is framed for several subs in a row.
      fc.property(fc.array(entry(codec === "json"), { minLength: 1, maxLength: 20 }), fc.array(fc.oneof(text, fc.string({ maxLength: 40 })), { minLength: 1, maxLength: 3 }), fc.option(text, { nil: undefined }), (entries, subs, token) => {
        const encoded: EncodedEntry[] = entries.map((e) => encodeEntry(e, codec));
        for (const sub of subs) {
          const size = eventFrameSize(codec, sub, encoded, token);
          const spliced = eventFrame(codec, sub, encoded, token);
          // What a subscription counts as queued before the frame is built (QueuedFrame) is its size in
          // bytes as the socket sends it (UTF-8 for JSON).
          expect(size).toBe(frameBytes(spliced));
          const whole = encodeFrame(asObject(sub, entries, token), codec);
          if (typeof whole === "string") expect(spliced).toBe(whole);
          else expect(Buffer.from(spliced as Uint8Array).equals(Buffer.from(whole))).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test(`${codec}: subscription ids of every length around the short-string forms are framed as encodeFrame frames them`, () => {
    const entries = [{ topic: "t", partition: 0, offset: 1, event: { type: "x" } }];
    const encoded = entries.map((e) => encodeEntry(e, codec));
    for (let n = 0; n <= 300; n++) {
      for (const sub of ["s".repeat(n), `${"s".repeat(n)}é`, `é${"s".repeat(n)}`, "\u{1F600}".repeat(n % 20)]) {
        const spliced = eventFrame(codec, sub, encoded, "tok");
        expect(eventFrameSize(codec, sub, encoded, "tok")).toBe(frameBytes(spliced));
        const whole = encodeFrame(asObject(sub, entries, "tok"), codec);
        if (typeof whole === "string") expect(spliced).toBe(whole);
        else expect(Buffer.from(spliced as Uint8Array).equals(Buffer.from(whole))).toBe(true);
      }
    }
  });

  test(`${codec}: a batch of 70,000 entries (array header of 32 bits) is the frame encodeFrame writes`, () => {
    const entries = Array.from({ length: 70_000 }, (_, i) => ({ topic: "t", partition: i % 3, offset: i, event: { type: "x", id: `${i}` } }));
    const encoded = entries.map((e) => encodeEntry(e, codec));
    const spliced = eventFrame(codec, "s", encoded, "tok");
    expect(eventFrameSize(codec, "s", encoded, "tok")).toBe(frameBytes(spliced));
    const whole = encodeFrame(asObject("s", entries, "tok"), codec);
    if (typeof whole === "string") expect(spliced).toBe(whole);
    else expect(Buffer.from(spliced as Uint8Array).equals(Buffer.from(whole))).toBe(true);
  });
}

test("packedStringSize is packString's length for any string: ASCII of every header size, and any other text", () => {
  const ascii = (max: number) => fc.stringMatching(/^[\x00-\x7f]*$/, { maxLength: max });
  const sized = fc.oneof(ascii(40), ascii(300), fc.nat(70_000).map((n) => "t".repeat(n)), fc.constantFrom(31, 32, 255, 256, 65_535, 65_536).map((n) => "x".repeat(n)), text, fc.string({ unit: "binary", maxLength: 300 }));
  fc.assert(
    fc.property(sized, (s) => {
      expect(packedStringSize(s)).toBe(packString(s).length);
      expect(packString(s)).toEqual(packPart(s));
    }),
    { numRuns: 2000 },
  );
});
