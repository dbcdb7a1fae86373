import { describe, expect, test } from "bun:test";
import { GatewayError } from "../../src/protocol/errors";
import { type FilterableEvent, compileFilter } from "../../src/subscribe/filter";
import { glob } from "../../src/protocol/glob";

const event = (over: Partial<FilterableEvent> = {}): FilterableEvent => ({
  type: "order.created",
  source: "/shop/eu",
  subject: "orders/42",
  id: "e-1",
  key: "k1",
  time: "2024-05-01T10:00:00Z",
  datacontenttype: "application/json",
  headers: { tenant: "acme" },
  data: { amount: 500, currency: "EUR", tags: ["a", "b"], nested: { deep: { x: 1 } }, flag: true, none: null, in: 3 },
  ...over,
});
const where = (expr: string, ev = event()) => compileFilter({ where: expr }).matches(ev);
/** The INVALID_FILTER message for a spec, failing the test if it compiles. */
const rejection = (spec: unknown): string => {
  try {
    compileFilter(spec);
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError);
    expect((e as GatewayError).code).toBe("INVALID_FILTER");
    return (e as GatewayError).message;
  }
  throw new Error(`expected ${JSON.stringify(spec)} to be refused`);
};

describe("spec fields", () => {
  test("an empty filter matches everything", () => expect(compileFilter({}).matches(event())).toBe(true));
  test("types: exact and globs", () => {
    const m = (types: string[], type: string) => compileFilter({ types }).matches(event({ type }));
    expect(m(["order.created"], "order.created")).toBe(true);
    expect(m(["order.created"], "order.created.v2")).toBe(false);
    expect(m(["order.*"], "order.created")).toBe(true);
    expect(m(["order.*"], "order.")).toBe(true);
    expect(m(["order.*"], "orders.created")).toBe(false);
    expect(m(["*.created"], "user.created")).toBe(true);
    expect(m(["*.created"], "user.updated")).toBe(false);
    expect(m(["o*d*d"], "order.created")).toBe(true);
    expect(m(["o*d*d"], "order.create")).toBe(false);
    expect(m(["a*a"], "a")).toBe(false); // first and last part may not overlap
    expect(m(["*"], "anything")).toBe(true);
    expect(m(["x", "user.*"], "user.deleted")).toBe(true);
    expect(m(["o.(x)+?*"], "o.(x)+?y")).toBe(true); // regex characters are literal
  });
  test("glob middle parts are placed leftmost and never past the suffix", () => {
    expect(glob("a*b*c")("abbbc")).toBe(true);
    expect(glob("a*bc*c")("abcc")).toBe(true);
    expect(glob("a*bc*c")("abc")).toBe(false);
    expect(glob("*ab*b")("xab")).toBe(false);
    expect(glob("*ab*")("xxaxab")).toBe(true);
  });
  test("globs agree with a regular-expression reference on random strings", () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const word = (alphabet: string, max: number) => Array.from({ length: rand(max + 1) }, () => alphabet[rand(alphabet.length)]).join("");
    for (let i = 0; i < 5000; i++) {
      const pattern = word("ab*", 6);
      const s = word("ab", 8);
      const reference = new RegExp(`^${pattern.replace(/\*+/g, ".*")}$`).test(s);
      expect([pattern, s, glob(pattern.replace(/\*+/g, "*"))(s)]).toEqual([pattern, s, reference]);
    }
  });
  test("source: one glob or a list; a missing source never matches", () => {
    expect(compileFilter({ source: "/shop/*" }).matches(event())).toBe(true);
    expect(compileFilter({ source: ["/x", "/shop/eu"] }).matches(event())).toBe(true);
    expect(compileFilter({ source: "/x" }).matches(event())).toBe(false);
    expect(compileFilter({ source: "*" }).matches(event({ source: undefined }))).toBe(false);
  });
  test("subject glob", () => {
    expect(compileFilter({ subject: "orders/*" }).matches(event())).toBe(true);
    expect(compileFilter({ subject: "users/*" }).matches(event())).toBe(false);
    expect(compileFilter({ subject: "*" }).matches(event({ subject: undefined }))).toBe(false);
  });
  test("keys: exact; a record without a key never matches", () => {
    expect(compileFilter({ keys: ["k0", "k1"] }).matches(event())).toBe(true);
    expect(compileFilter({ keys: ["k0"] }).matches(event())).toBe(false);
    expect(compileFilter({ keys: ["k1"] }).matches(event({ key: null }))).toBe(false);
  });
  test("headers: every one must be equal, and inherited names are not headers", () => {
    expect(compileFilter({ headers: { tenant: "acme" } }).matches(event())).toBe(true);
    expect(compileFilter({ headers: { tenant: "acme", region: "eu" } }).matches(event())).toBe(false);
    expect(compileFilter({ headers: { tenant: "other" } }).matches(event())).toBe(false);
    expect(compileFilter({ headers: { toString: "x" } }).matches(event())).toBe(false);
    // "__proto__" is a header name like any other (events may carry it): filtered on, not refused, not dropped.
    const proto = compileFilter(JSON.parse('{"headers":{"__proto__":"x"}}'));
    const carrying = Object.assign(Object.create(null), { tenant: "acme" });
    carrying.__proto__ = "x"; // an own property: the object has no prototype to set
    expect(proto.matches(event({ headers: carrying }))).toBe(true);
    expect(proto.matches(event())).toBe(false);
    expect(JSON.parse(proto.identity).headers).toEqual([["__proto__", "x"]]);
  });
  test("all fields are AND-ed", () => {
    const f = compileFilter({ types: ["order.*"], keys: ["k1"], source: "/shop/*", subject: "orders/*", headers: { tenant: "acme" }, where: "data.amount >= 500" });
    expect(f.matches(event())).toBe(true);
    expect(f.matches(event({ key: "k2" }))).toBe(false);
    expect(f.matches(event({ data: { amount: 1 } }))).toBe(false);
  });
});

describe("where: grammar", () => {
  test("every comparison operator on numbers and strings", () => {
    for (const [expr, want] of [
      ["data.amount == 500", true], ["data.amount != 500", false], ["data.amount < 501", true], ["data.amount <= 500", true],
      ["data.amount > 500", false], ["data.amount >= 500", true], ["500 == data.amount", true], ["data.currency < 'F'", true],
      ["time >= '2024-01-01'", true], ["1 == 1", true],
    ] as const) expect([expr, where(expr)]).toEqual([expr, want]);
  });
  test("literals: integers, negatives, decimals, exponents, both quotes, escapes, true, false, null", () => {
    expect(where("data.x == -1.5e2", event({ data: { x: -150 } }))).toBe(true);
    expect(where("data.x == 0.25", event({ data: { x: 0.25 } }))).toBe(true);
    expect(where(`data.s == 'it\\'s "q"'`, event({ data: { s: `it's "q"` } }))).toBe(true);
    expect(where(`data.s == "a\\\\b\\n\\u00e9"`, event({ data: { s: "a\\b\né" } }))).toBe(true);
    expect(where("data.flag == true and data.flag != false")).toBe(true);
    expect(where("data.none == null")).toBe(true);
  });
  test("a keyless event has no key: exists(key) is false and no comparison with key holds", () => {
    const keyless = event({ key: null });
    expect(where("exists(key)", keyless)).toBe(false);
    expect(where("not exists(key)", keyless)).toBe(true);
    expect(where("key == null", keyless)).toBe(false);
    expect(where("key != 'k1'", keyless)).toBe(false);
    expect(where("exists(key)")).toBe(true);
  });
  test("paths: every root, fields, array indexes, nesting, keywords as field names", () => {
    for (const expr of [
      "type == 'order.created'", "source == '/shop/eu'", "subject == 'orders/42'", "id == 'e-1'", "key == 'k1'",
      "time == '2024-05-01T10:00:00Z'", "datacontenttype == 'application/json'", "headers.tenant == 'acme'",
      "data.tags[1] == 'b'", "data.nested.deep.x == 1", "data.in == 3", "data.amount==500",
    ]) expect([expr, where(expr)]).toEqual([expr, true]);
    expect(where("data.tags[2] == 'c'")).toBe(false);
  });
  test("exists, in, not, parentheses", () => {
    expect(where("exists(data.amount)")).toBe(true);
    expect(where("exists(data.missing)")).toBe(false);
    expect(where("exists(data.none)")).toBe(true); // null is a value
    expect(where("exists(subject)", event({ subject: undefined }))).toBe(false);
    expect(where("key in ['k0', 'k1']")).toBe(true);
    expect(where("data.amount in [1, 500, 'x', null]")).toBe(true);
    expect(where("data.none in [null]")).toBe(true);
    expect(where("data.amount in ['500']")).toBe(false);
    expect(where("data.tags in ['a']")).toBe(false);
    expect(where("not data.amount == 1")).toBe(true);
    expect(where("not not data.amount == 1")).toBe(false);
    expect(where("not (data.amount == 500 or key == 'x')")).toBe(false);
  });
  test("precedence: not binds tighter than and, and tighter than or", () => {
    const t = "data.amount == 500"; // true
    const f = "data.amount == 1"; // false
    expect(where(`${t} or ${f} and ${f}`)).toBe(true); // t or (f and f)
    expect(where(`(${t} or ${f}) and ${f}`)).toBe(false);
    expect(where(`${f} and ${f} or ${t}`)).toBe(true); // (f and f) or t
    expect(where(`not ${t} or ${t}`)).toBe(true); // (not t) or t
    expect(where(`not ${f} and ${f}`)).toBe(false); // (not f) and f
    const canonical = JSON.parse(compileFilter({ where: "type == 'a' or source == 'b' and subject == 'c'" }).identity).where;
    expect(canonical).toBe('((source == "b" and subject == "c") or type == "a")');
  });
});

describe("where: semantics", () => {
  test("a missing value makes every comparison false, != included", () => {
    for (const op of ["==", "!=", "<", "<=", ">", ">="]) expect(where(`data.missing ${op} 1`)).toBe(false);
    expect(where("data.missing != null")).toBe(false);
    expect(where("not data.missing == 1")).toBe(true); // the way to include events without it
    expect(where("data.amount.x == 1")).toBe(false); // a field of a number
    expect(where("data.tags[0].x == 1")).toBe(false);
    expect(where("data.x == 1", event({ data: undefined }))).toBe(false);
  });
  test("equality is strict; ordering needs two numbers or two strings", () => {
    expect(where("data.amount == '500'")).toBe(false);
    expect(where("data.amount != '500'")).toBe(true);
    expect(where("data.flag == 1")).toBe(false);
    expect(where("data.amount < '600'")).toBe(false);
    expect(where("data.amount >= '1'")).toBe(false);
    expect(where("data.none < 1")).toBe(false);
    expect(where("'b' > 'a'")).toBe(true);
  });
  test("objects and arrays equal nothing", () => {
    expect(where("data.nested == data.nested")).toBe(false);
    expect(where("data.nested != null")).toBe(true);
    expect(where("data.tags < 1")).toBe(false);
  });
  test("paths never reach the prototype chain, nor into bytes", () => {
    expect(where("exists(data.constructor)")).toBe(false);
    expect(where("exists(data.__proto__)")).toBe(false);
    expect(where("exists(headers.toString)")).toBe(false);
    expect(where("exists(data.tags.length)")).toBe(false);
    expect(where("exists(data[0])", event({ data: new Uint8Array([1]) }))).toBe(false);
    expect(where("exists(data)", event({ data: new Uint8Array([1]) }))).toBe(true);
  });
});

describe("bounds: each refused with INVALID_FILTER naming the limit", () => {
  const ors = (n: number) => Array.from({ length: n }, (_, i) => `data.a == ${i}`).join(" or ");
  test("length: 2048 characters", () => {
    const ok = `data.s == '${"x".repeat(2048 - 12)}'`;
    expect(ok.length).toBe(2048);
    expect(() => compileFilter({ where: ok })).not.toThrow();
    expect(rejection({ where: ok + " " })).toContain("too long: 2049 characters, the limit is 2048");
  });
  test("nodes: 128", () => {
    // Each comparison is 3 terms (path, operator, value) and each `or` one more: n comparisons = 4n - 1.
    expect(() => compileFilter({ where: ors(32) })).not.toThrow(); // 127
    expect(rejection({ where: ors(33) })).toMatch(/more than 128 terms .* at position \d+/);
    expect(rejection({ where: `${"not ".repeat(500)}data.a == 1` })).toContain("more than 128 terms");
  });
  test("in lists: 256 values", () => {
    const list = (n: number) => `data.a in [${Array.from({ length: n }, (_, i) => i).join(",")}]`;
    expect(compileFilter({ where: list(256) }).matches(event({ data: { a: 255 } }))).toBe(true);
    expect(rejection({ where: list(257) })).toContain('"in" list longer than 256 values');
  });
  test("path depth: 8 steps after the root", () => {
    expect(() => compileFilter({ where: `exists(data${".a".repeat(8)})` })).not.toThrow();
    expect(rejection({ where: `exists(data${".a".repeat(9)})` })).toContain("path deeper than 8 steps at position 28");
  });
  test("parentheses: 32 deep", () => {
    const nest = (n: number) => `${"(".repeat(n)}data.a == 1${")".repeat(n)}`;
    expect(() => compileFilter({ where: nest(32) })).not.toThrow();
    expect(rejection({ where: nest(33) })).toContain("parentheses nested more than 32 deep at position 33");
  });
  test("list sizes of the spec", () => {
    expect(rejection({ types: Array.from({ length: 65 }, (_, i) => `t${i}`) })).toBe("filter.types: at most 64 entries");
    expect(rejection({ keys: Array.from({ length: 1025 }, (_, i) => `k${i}`) })).toBe("filter.keys: at most 1024 entries");
    expect(rejection({ headers: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, "v"])) })).toContain("at most 64 headers");
  });
});

describe("malformed filters are refused with the problem and where it is", () => {
  test("spec shape", () => {
    expect(rejection({ types: "x" })).toBe("filter.types: must be a list of strings");
    expect(rejection({ types: [] })).toContain("filter.types: give at least one");
    expect(rejection({ types: [""] })).toBe("filter.types.0: must not be empty");
    expect(rejection({ source: 5 })).toBe("filter.source: must be a string or a list of strings");
    expect(rejection({ type: ["x"] })).toContain('Unrecognized key: "type"');
    expect(rejection({ headers: { a: 1 } })).toContain("filter.headers.a");
    expect(rejection(null)).toContain("expected object");
    expect(rejection({ where: 5 })).toContain("filter.where");
  });
  test("expressions", () => {
    const cases: [string, string][] = [
      ["data.x ==", "expected a value but found nothing at position 10 (the end)"],
      ["data.x == 'abc", "unterminated string starting at position 11"],
      ["data.x == 'abc\\", "unterminated string starting at position 11"],
      ["foo.x == 1", 'unknown field "foo" (paths start with type, source,'],
      ["data.x = 1", 'unexpected character "=" at position 8; use "==" to compare'],
      ["data.x == 1 && key == 'a'", 'unexpected character "&" at position 13; use "and"'],
      ["data.x", 'expected a comparison (==, !=, <, <=, >, >=) or "in" but found nothing'],
      ["data.x == 1 key == 2", 'unexpected "key"; expected "and", "or" or the end at position 13'],
      ["(data.x == 1", 'expected ")" to close the "(" at position 1 but found nothing at position 13'],
      ["data. == 1", 'expected a field name after "." but found "==" at position 7'],
      ["data[x] == 1", 'expected an array index (0, 1, …) after "[" but found "x" at position 6'],
      ["data[-1] == 1", "expected an array index"],
      ["key in ['a', data.x]", 'only literals may appear in an "in" list at position 14'],
      ["key in 'a'", 'expected "[" after "in" but found the string "a"'],
      ["exists(1)", "expected a path in exists() at position 8"],
      ["data.s == 'a\\qb'", 'unknown escape "\\q" at position 13'],
      ["data.n == 1e999", "number out of range at position 11"],
      ["", "expected a value but found nothing at position 1 (the end)"],
      ["   ", "expected a value but found nothing"],
    ];
    for (const [expr, message] of cases) expect([expr, rejection({ where: expr })]).toEqual([expr, expect.stringContaining(message)]);
    expect(rejection({ where: "foo.x == 1" })).toStartWith("filter.where: ");
  });
  test("random text either compiles or is refused with INVALID_FILTER, never anything else", () => {
    const pieces = ["data", ".", "x", "[", "0", "]", "(", ")", "==", "<", "in", "not", "and", "or", "exists", "'s", "'", "1", "-", ",", " ", "null", "\\"];
    let seed = 3;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 5000; i++) {
      const expr = Array.from({ length: 1 + rand(12) }, () => pieces[rand(pieces.length)]).join("");
      try {
        compileFilter({ where: expr }).matches(event());
      } catch (e) {
        expect([expr, (e as GatewayError).code]).toEqual([expr, "INVALID_FILTER"]);
      }
    }
  });
});

describe("identity, needsData and index hints", () => {
  test("equivalent specs written differently share one identity", () => {
    const a = compileFilter({ types: ["b.*", "a"], keys: ["k2", "k1"], source: "/s", headers: { y: "2", x: "1" }, where: "key in ['a','b'] and data.x == 1" });
    const b = compileFilter({ where: `data.x==1   and key in ["b", "a", "a"]`, headers: { x: "1", y: "2" }, source: ["/s"], keys: ["k1", "k2", "k1"], types: ["a", "b.**"] });
    expect(b.identity).toBe(a.identity);
    expect(compileFilter({ where: "(a == 1 or b == 2) or c == 3".replace(/\b([abc])\b/g, "data.$1") }).identity).toBe(
      compileFilter({ where: "data.c == 3 or (data.b == 2 or data.a == 1)" }).identity,
    );
  });
  test("different filters have different identities", () => {
    const ids = [{}, { types: ["a"] }, { types: ["a*"] }, { keys: ["a"] }, { source: "a" }, { subject: "a" }, { headers: { a: "a" } }, { where: "key == 'a'" }, { where: "key != 'a'" }, { where: "key == \"a\" or key == 'b'" }].map((s) => compileFilter(s).identity);
    expect(new Set(ids).size).toBe(ids.length);
  });
  test("needsData only when the expression reads data", () => {
    expect(compileFilter({ types: ["a"], where: "headers.x == 'y'" }).needsData).toBe(false);
    expect(compileFilter({ where: "key == 'a' or data.x == 1" }).needsData).toBe(true);
    expect(compileFilter({ where: "exists(data)" }).needsData).toBe(true);
    expect(compileFilter({}).needsData).toBe(false);
  });
  test("payloads are not read when the filter does not need them", () => {
    let reads = 0;
    const ev = { ...event(), get data() { return reads++, {}; } };
    compileFilter({ where: "key == 'k1'" }).matches(ev);
    expect(reads).toBe(0);
    compileFilter({ where: "key == 'k1' and data.x == 1" }).matches(ev);
    expect(reads).toBe(1);
  });
  test("exactTypes, typePrefixes and keys", () => {
    const exact = compileFilter({ types: ["b", "a", "a"], keys: ["k2", "k1"] });
    expect([exact.exactTypes, exact.typePrefixes, exact.keys]).toEqual([["a", "b"], ["a", "b"], ["k1", "k2"]]);
    const prefixed = compileFilter({ types: ["order.created", "order.*", "order.cr*", "user.*"] });
    expect([prefixed.exactTypes, prefixed.typePrefixes]).toEqual([null, ["order.", "user."]]);
    expect(compileFilter({ types: ["*"] }).typePrefixes).toEqual([""]);
    const globbed = compileFilter({ types: ["a.*", "*.created"] });
    expect([globbed.exactTypes, globbed.typePrefixes, globbed.keys]).toEqual([null, null, null]);
    expect(compileFilter({ types: ["a*b"] }).typePrefixes).toBeNull();
  });
});
