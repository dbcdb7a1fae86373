import { describe, expect, test } from "bun:test";
import { GatewayError } from "../../src/protocol/errors";
import { type FilterableEvent, compileFilter } from "../../src/subscribe/filter";
import { glob } from "../../src/protocol/glob";

const event = (data: unknown, over: Partial<FilterableEvent> = {}): FilterableEvent => ({ type: "t", key: "k", headers: {}, data, ...over });
const where = (expr: string, data: unknown) => compileFilter({ where: expr }).matches(event(data));

describe("where: integers of any width compare by exact value", () => {
  const cases: Array<[string, bigint]> = [
    ["2^53-1", 2n ** 53n - 1n],
    ["2^53", 2n ** 53n],
    ["2^53+1", 2n ** 53n + 1n],
    ["2^63-1", 2n ** 63n - 1n],
    ["2^64-1", 2n ** 64n - 1n],
    ["-2^63", -(2n ** 63n)],
    ["-(2^53+1)", -(2n ** 53n + 1n)],
  ];
  // Decoders give a number when a double holds the integer, a BigInt otherwise; both must work.
  const asData = (n: bigint) => (BigInt(Number(n)) === n ? [Number(n), n] : [n]);

  test.each(cases)("%s: ==, !=, ordering, in", (_name, n) => {
    for (const v of asData(n)) {
      expect(where(`data.n == ${n}`, { n: v })).toBe(true);
      expect(where(`data.n != ${n}`, { n: v })).toBe(false);
      expect(where(`data.n == ${n + 1n}`, { n: v })).toBe(false);
      expect(where(`data.n == ${n - 1n}`, { n: v })).toBe(false);
      expect(where(`data.n < ${n + 1n} and data.n > ${n - 1n}`, { n: v })).toBe(true);
      expect(where(`data.n <= ${n} and data.n >= ${n}`, { n: v })).toBe(true);
      expect(where(`data.n in [1, ${n}]`, { n: v })).toBe(true);
      expect(where(`data.n in [1, ${n + 1n}]`, { n: v })).toBe(false);
      // Against a small literal and another path.
      expect(where(`data.n > 5 or data.n < -5`, { n: v })).toBe(true);
      expect(where(`data.n == data.m`, { n: v, m: n })).toBe(true);
    }
  });

  test("2^53 and 2^53+1 are different values, as data and as literals", () => {
    expect(where("data.n == 9007199254740993", { n: 2 ** 53 })).toBe(false);
    expect(where("data.n == 9007199254740992", { n: 9007199254740993n })).toBe(false);
    expect(where("data.n < 9007199254740993", { n: 2 ** 53 })).toBe(true);
  });

  test("a float equals an integer of the same value; a string never equals a number", () => {
    expect(where("data.n == 4294967296", { n: 4294967296.0 })).toBe(true);
    expect(where("data.n == 1e20", { n: 100000000000000000000n })).toBe(true);
    expect(where("data.n == 12345678901234567890", { n: "12345678901234567890" })).toBe(false);
    expect(where("data.n < 12345678901234567890", { n: "1" })).toBe(false);
  });

  test("big literals have one canonical spelling", () => {
    const id = (w: string) => compileFilter({ where: w }).identity;
    expect(id("data.n == 9007199254740992")).toBe(id("data.n == 9007199254740992.0"));
    expect(id("data.n in [18446744073709551615, 1]")).toBe(id("data.n in [1, 18446744073709551615, 1]"));
    expect(id("data.n == 9007199254740993")).not.toBe(id("data.n == 9007199254740992"));
  });

  test("integer literals are bounded in length", () => {
    expect(() => compileFilter({ where: `data.n == ${"9".repeat(41)}` })).toThrow(GatewayError);
    expect(where(`data.n == ${"9".repeat(40)}`, { n: 10n ** 40n - 1n })).toBe(true);
  });
});

describe("globs: `*` is any run of characters, dots included; matching is case-sensitive", () => {
  test("as docs/subscriptions.md says", () => {
    expect(glob("order.*")("order.created.v2")).toBe(true);
    expect(glob("*")("")).toBe(true);
    expect(glob("order.*")("order.")).toBe(true);
    expect(glob("order.*")("Order.created")).toBe(false);
    expect(glob("a?c")("abc")).toBe(false);
    expect(glob("a?c")("a?c")).toBe(true);
    expect(compileFilter({ types: ["order.**"] }).identity).toBe(compileFilter({ types: ["order.*"] }).identity);
  });
  test("where keywords and roots are lowercase", () => {
    expect(() => compileFilter({ where: "data.a == 1 AND data.b == 2" })).toThrow(GatewayError);
    expect(() => compileFilter({ where: "Data.a == 1" })).toThrow(GatewayError);
  });
});
