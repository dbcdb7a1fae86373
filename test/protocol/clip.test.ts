import { expect, test } from "bun:test";
import { clip } from "../../src/protocol/clip";

test("clip keeps short text whole, and never cuts a surrogate pair in half (second review: a clipped emoji name was not well-formed)", () => {
  expect(clip("abc", 3)).toBe("abc");
  expect(clip("abcd", 3)).toBe("abc…(1 more characters)");
  for (let max = 1; max < 12; max++) {
    const out = clip(`a${"😀".repeat(10)}`, max);
    expect([max, out.isWellFormed()]).toEqual([max, true]);
  }
  expect(clip("😀😀", 2)).toBe("😀…(2 more characters)");
  expect(clip("a😀", 2)).toBe("a…(2 more characters)");
});
