import { expect, test } from "bun:test";
import fc from "fast-check";
import "./arbitraries";
import { jsonNestedTooDeep, MAX_DATA_DEPTH } from "../../src/subscribe/decoded-record";

/** The byte loop the fast scan replaced: every byte looked at, a backslash in a string skipping the next. */
function reference(v: Uint8Array): boolean {
  if (v.length <= MAX_DATA_DEPTH) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DATA_DEPTH) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

// Bytes drawn mostly from the ones the scan cares about, so that strings, escapes and nesting
// interleave in every way, around the depth bound.
const piece = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("[", "{", "]", "}", '"', "\\", '\\"', "\\\\", "a", ",") },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 300 }).map((n) => "[".repeat(n)) },
);
const bytes = fc.array(piece, { minLength: 1, maxLength: 400 }).map((ps) => new TextEncoder().encode(ps.join("")));

test("the string-skipping depth scan answers as the byte loop on any bytes", () => {
  fc.assert(
    fc.property(bytes, (v) => {
      expect(jsonNestedTooDeep(v)).toBe(reference(v));
    }),
    { numRuns: 5000 },
  );
});

test("nesting inside a string does not count, and a quote ends it only after an even run of backslashes", () => {
  const deep = "[".repeat(MAX_DATA_DEPTH + 1);
  const scan = (text: string) => jsonNestedTooDeep(new TextEncoder().encode(text));
  expect(scan(`"${deep}"`)).toBe(false);
  expect(scan(`"\\\\"${deep}`)).toBe(true); // "\\" then the brackets: the string ended
  expect(scan(`"\\"${deep}`)).toBe(false); // "\" escapes the quote: the brackets are inside
  expect(scan(`"\\\\\\"${deep}`)).toBe(false); // three backslashes: still escaped
});
