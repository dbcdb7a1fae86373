import { expect, test } from "bun:test";
import fc from "fast-check";
import { RepeatedNames } from "../../src/bytes/repeated-names";

// Bytes that look alike: ASCII names and their near misses, multi-byte UTF-8, and bytes that are not UTF-8.
const piece = fc.constantFrom(
  [0x63, 0x65, 0x5f],
  [0x69, 0x64],
  [0x74, 0x79, 0x70, 0x65],
  [0x54],
  [0xc3, 0xa9],
  [0xff],
  [0xc3],
  [0xef, 0xbf, 0xbd],
  [0x00],
  [0x7f],
  [0x80],
);
const bytes = fc.array(piece, { maxLength: 6 }).map((ps) => Buffer.from(ps.flat()));

test("a repeated name reads exactly as decoding its bytes would, whatever was read at its slot before", () => {
  const names = new RepeatedNames(4);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 6 }), bytes, fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 40 }), (reads) => {
      for (const [slot, b, pad] of reads) {
        // The name sits inside a larger buffer, as in a record, with other bytes around it.
        const buf = Buffer.concat([Buffer.alloc(pad, 0x61), b, Buffer.from([0x63, 0x65])]);
        expect(names.read(slot, buf, pad, b.length)).toBe(b.toString("utf8"));
      }
    }),
    { numRuns: 5000 },
  );
});
