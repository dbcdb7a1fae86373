import { expect, test } from "bun:test";
import fc from "fast-check";
import { ackFrameMsgpack } from "../../src/protocol/ack-frame";
import { encodeFrame } from "../../src/protocol/codec";
import { FrameType } from "../../src/protocol/frame-types";

// The ack's own writer stands in front of encodeFrame: it must write exactly its bytes, for every
// cid, id, topic, partition and offset (numbers of every width and sign, strings of every length and script).
const numbers = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 32 }), fc.maxSafeInteger(), fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, -32, -33, -128, -129, -32768, -32769, 2 ** 53 - 1, -0, 1.5));
const text = fc.oneof(fc.uuid(), fc.integer({ min: 0, max: 300 }).map((n) => "k".repeat(n)), fc.string({ maxLength: 300 }), fc.string({ unit: "grapheme", maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 }).filter((s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()));

test("the ack writer writes byte for byte what encodeFrame writes", () => {
  fc.assert(
    fc.property(fc.maxSafeInteger().map(Math.abs), text, text, numbers, numbers, (cid, id, topic, partition, offset) => {
      const ours = ackFrameMsgpack(cid, id, topic, partition, offset);
      const theirs = encodeFrame({ t: FrameType.ACK, cid, id, topic, partition, offset }, "msgpack") as Uint8Array;
      expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
    }),
    { numRuns: 20_000 },
  );
});
