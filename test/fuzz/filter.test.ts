import { expect, test } from "bun:test";
import fc from "fast-check";
import { GatewayError } from "../../src/protocol/errors";
import { type FilterableEvent, compileFilter } from "../../src/subscribe/filter";
import { EXPR_LIMITS, ROOTS } from "../../src/subscribe/filter-expr";
import { glob } from "../../src/protocol/glob";
import { onlyGatewayErrors, plainValue, text } from "./arbitraries";

// A filter comes from any client: whatever it sends compiles, or is refused INVALID_FILTER, in
// bounded time; a compiled filter never throws on any event, reads the payload only when it said
// it would, and means what docs/subscriptions.md and filter-expr.ts say (checked against a small
// reference evaluator written from that text).

/** Generous: a filter is a few KB at most; this only catches runaway work, never a slow machine. */
const SLOW_MS = 2000;

function compiles(spec: unknown) {
  const started = performance.now();
  const out = onlyGatewayErrors(() => compileFilter(spec), ["INVALID_FILTER"]);
  expect(performance.now() - started).toBeLessThan(SLOW_MS);
  return out;
}

// ---- expressions: a generator of trees, a printer with every spelling, and a reference ----

type Prim = string | number | boolean | null;
type Operand = { path: string; steps: Array<string | number> } | { lit: Prim };
type Expr =
  | { k: "and" | "or"; kids: Expr[] }
  | { k: "not"; x: Expr }
  | { k: "cmp"; op: string; l: Operand; r: Operand }
  | { k: "in"; x: Operand; values: Prim[] }
  | { k: "exists"; p: Operand };

// A small vocabulary, shared with the events below, so that comparisons often hold.
const word = fc.oneof(fc.constantFrom("a", "b", "x", "in", "not", "and", "true", "_"), fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}$/));
const str = fc.oneof(fc.constantFrom("", "a", "b", "order.created", "ü", "it's", 'say "hi"', "back\\slash", "tab\there"), text);
const num = fc.oneof(fc.constantFrom(0, 1, -1, 2.5, 1e21, 1e-7, 100), fc.integer({ min: -1000, max: 1000 }), fc.double({ noNaN: true, noDefaultInfinity: true }));
const prim: fc.Arbitrary<Prim> = fc.oneof(str, num, fc.boolean(), fc.constant(null));
const path = fc.record({
  path: fc.constantFrom(...ROOTS),
  steps: fc.array(fc.oneof(word, fc.nat({ max: 3 })), { maxLength: 3 }),
});
const operand: fc.Arbitrary<Operand> = fc.oneof(path, prim.map((lit) => ({ lit })));

const expr = fc.letrec<{ e: Expr }>((tie) => ({
  e: fc.oneof(
    { depthSize: "small", maxDepth: 4 },
    fc.record({ k: fc.constant("cmp" as const), op: fc.constantFrom("==", "!=", "<", "<=", ">", ">="), l: operand, r: operand }),
    fc.record({ k: fc.constant("in" as const), x: operand, values: fc.array(prim, { minLength: 1, maxLength: 5 }) }),
    fc.record({ k: fc.constant("exists" as const), p: path }),
    fc.record({ k: fc.constant("not" as const), x: tie("e") }),
    fc.record({ k: fc.constantFrom("and" as const, "or" as const), kids: fc.array(tie("e"), { minLength: 2, maxLength: 3 }) }),
  ),
})).e;

/** Terms as the parser counts them (EXPR_LIMITS.nodes): operators, paths and values (not in-list values). */
function terms(e: Expr): number {
  switch (e.k) {
    case "and":
    case "or":
      return e.kids.length - 1 + e.kids.reduce((n, k) => n + terms(k), 0);
    case "not":
      return 1 + terms(e.x);
    case "cmp":
      return 3;
    case "in":
      return 2;
    case "exists":
      return 2;
  }
}

/** Every spelling choice the language allows: whitespace, quotes, escapes, redundant parentheses. */
interface Style {
  space: string[];
  quote: Array<"'" | '"'>;
  escapeAll: boolean[];
  parens: boolean[];
}
const style = fc.record({
  space: fc.array(fc.constantFrom(" ", "  ", "\t", "\n", " \r\n "), { minLength: 1, maxLength: 8 }),
  quote: fc.array(fc.constantFrom("'" as const, '"' as const), { minLength: 1, maxLength: 4 }),
  escapeAll: fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
  parens: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
});

function print(e: Expr, s: Style): string {
  let i = 0;
  const pick = <T>(xs: T[]) => xs[i++ % xs.length]!;
  const sp = () => pick(s.space);
  const lit = (v: Prim): string => {
    if (typeof v !== "string") return String(v);
    const q = pick(s.quote);
    const all = pick(s.escapeAll);
    let out = "";
    for (const c of v) {
      if (c === q || c === "\\") out += `\\${c}`;
      else if (all) for (let j = 0; j < c.length; j++) out += `\\u${c.charCodeAt(j).toString(16).padStart(4, "0")}`;
      else out += c;
    }
    return q + out + q;
  };
  const opnd = (o: Operand) => ("lit" in o ? lit(o.lit) : o.path + o.steps.map((x) => (typeof x === "number" ? `[${sp()}${x}${sp()}]` : `.${x}`)).join(""));
  const go = (n: Expr, wrap: boolean): string => {
    const body = (() => {
      switch (n.k) {
        case "and":
        case "or":
          // "and" binds tighter than "or": an "or" inside an "and" needs its parentheses.
          return n.kids.map((k) => go(k, n.k === "and" ? k.k === "or" : false)).join(`${sp()}${n.k}${sp()}`);
        case "not":
          return `not${sp()}${go(n.x, n.x.k === "and" || n.x.k === "or")}`;
        case "cmp":
          return `${opnd(n.l)}${sp()}${n.op}${sp()}${opnd(n.r)}`;
        case "in":
          return `${opnd(n.x)}${sp()}in${sp()}[${n.values.map(lit).join(`,${sp()}`)}]`;
        case "exists":
          return `exists${sp()}(${sp()}${opnd(n.p)}${sp()})`;
      }
    })();
    return wrap || pick(s.parens) ? `(${sp()}${body}${sp()})` : body;
  };
  return go(e, false);
}

function parenDepth(src: string): number {
  let d = 0;
  let max = 0;
  let quote = "";
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "(") max = Math.max(max, ++d);
    else if (c === ")") d--;
  }
  return max;
}

/** The documented semantics, written from the text, not from the implementation. */
function evaluate(e: Expr, ev: FilterableEvent): boolean {
  const isPrim = (v: unknown) => v === null || ["string", "number", "boolean"].includes(typeof v);
  const get = (o: Operand): unknown => {
    if ("lit" in o) return o.lit;
    let v: unknown = (ev as unknown as Record<string, unknown>)[o.path];
    if (o.path === "key" && v === null) v = undefined; // a keyless event has no key (documented)
    for (const s of o.steps) {
      if (v === undefined) break;
      if (typeof s === "number") v = Array.isArray(v) && s < v.length ? v[s] : undefined;
      else v = v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype && Object.hasOwn(v, s) ? (v as Record<string, unknown>)[s] : undefined;
    }
    return v;
  };
  switch (e.k) {
    case "and":
      return e.kids.every((k) => evaluate(k, ev));
    case "or":
      return e.kids.some((k) => evaluate(k, ev));
    case "not":
      return !evaluate(e.x, ev);
    case "exists":
      return get(e.p) !== undefined;
    case "in": {
      const v = get(e.x);
      return isPrim(v) && e.values.some((x) => x === v);
    }
    case "cmp": {
      const a = get(e.l);
      const b = get(e.r);
      if (a === undefined || b === undefined) return false;
      const equal = isPrim(a) && a === b;
      if (e.op === "==") return equal;
      if (e.op === "!=") return !equal;
      const ordered = (typeof a === "number" && typeof b === "number") || (typeof a === "string" && typeof b === "string");
      if (!ordered) return false;
      const [x, y] = [a as number, b as number];
      return e.op === "<" ? x < y : e.op === "<=" ? x <= y : e.op === ">" ? x > y : x >= y;
    }
  }
}

const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
/** Events whose fields share the expressions' vocabulary; data is read through a counting getter. */
const event = fc
  .record({
    type: fc.oneof(str, fc.constantFrom("order.created", "order.deleted", "user.x")),
    source: optional(str),
    subject: optional(str),
    id: optional(str),
    key: fc.oneof(fc.constant(null), str),
    time: optional(str),
    datacontenttype: optional(str),
    headers: fc.dictionary(fc.oneof(word, text), str, { maxKeys: 3, noNullPrototype: true }),
    data: fc.oneof(
      plainValue({ bytes: true, dates: true, maxDepth: 4 }),
      fc.dictionary(word, fc.oneof(prim, fc.array(prim, { maxLength: 3 }), fc.dictionary(word, prim, { maxKeys: 3, noNullPrototype: true })), { maxKeys: 5, noNullPrototype: true }),
      fc.constant(undefined),
    ),
  })
  .map((fields) => {
    const { data, ...rest } = fields;
    const ev = { ...rest, dataReads: 0 } as FilterableEvent & { dataReads: number };
    Object.defineProperty(ev, "data", { enumerable: true, get: () => (ev.dataReads++, data) });
    return ev;
  });

test("generated expressions compile, mean what the documentation says, and read data only when they say so", () => {
  let matched = 0;
  fc.assert(
    fc.property(expr, style, fc.array(event, { minLength: 1, maxLength: 4 }), (e, s, events) => {
      const src = print(e, s);
      fc.pre(terms(e) <= EXPR_LIMITS.nodes && parenDepth(src) <= EXPR_LIMITS.parens && src.length <= EXPR_LIMITS.chars);
      const f = compiles({ where: src });
      if (f instanceof GatewayError) throw new Error(`refused ${JSON.stringify(src)}: ${f.message}`);
      for (const ev of events) {
        ev.dataReads = 0;
        const got = f.matches(ev);
        if (!f.needsData) expect(ev.dataReads).toBe(0);
        ev.dataReads = 0;
        expect({ src, got }).toEqual({ src, got: evaluate(e, ev) });
        if (got) matched++;
      }
    }),
    { numRuns: 3000 },
  );
  expect(matched).toBeGreaterThan(1000); // the vocabulary is shared enough to test both outcomes
});

test("every spelling of the same expression has the same identity", () => {
  fc.assert(
    fc.property(expr, style, style, (e, s1, s2) => {
      const [a, b] = [print(e, s1), print(e, s2)];
      fc.pre([a, b].every((src) => terms(e) <= EXPR_LIMITS.nodes && parenDepth(src) <= EXPR_LIMITS.parens && src.length <= EXPR_LIMITS.chars));
      expect(compileFilter({ where: a }).identity).toBe(compileFilter({ where: b }).identity);
    }),
    { numRuns: 2000 },
  );
});

// ---- hostile and near-valid input ----

/** Strings made of the language's own pieces, so that parsing gets deep before it fails. */
const exprLike = fc
  .array(
    fc.oneof(
      fc.constantFrom("(", ")", "[", "]", ",", ".", "==", "!=", "<", "<=", ">", ">=", "=", "!", "&", "|", "and", "or", "not", "in", "exists", "true", "false", "null"),
      fc.constantFrom(...ROOTS),
      word,
      num.map(String),
      fc.constantFrom("'", '"', "\\", "\\u12", "\\uD800", "'a", "-", "1e999", "9".repeat(400)),
      fc.constantFrom(" ", ""),
    ),
    { maxLength: 60 },
  )
  .map((parts) => parts.join(" "));

test("any where string compiles or is refused INVALID_FILTER, in bounded time", () => {
  fc.assert(
    fc.property(fc.oneof(exprLike, fc.string({ unit: "binary", maxLength: 80 })), (src) => void compiles({ where: src })),
    { numRuns: 6000 },
  );
});

test("where strings at the size limits are refused quickly, never by a stack overflow", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("(", "not ", "not (", "exists(", "data.a == 1 and ", "data.a in [1,", "data" + ".a".repeat(10), "(data.a == 1 or "),
      fc.integer({ min: 1, max: 3000 }),
      (unit, n) => {
        const src = unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
        const out = compiles({ where: src });
        if (src.length > EXPR_LIMITS.chars) expect(out).toBeInstanceOf(GatewayError);
      },
    ),
    { numRuns: 1000 },
  );
});

const globRef = (pattern: string) => new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[^]*")}$`);
// A tiny alphabet, so that globs like "a*ab*b" meet subjects that nearly match them.
const small = fc.string({ unit: fc.constantFrom("a", "b", "."), maxLength: 6 });
const globPattern = fc.string({ unit: fc.constantFrom("a", "b", ".", "*", "*"), minLength: 1, maxLength: 7 });
const listOf = <T>(a: fc.Arbitrary<T>) => fc.oneof(fc.array(a, { maxLength: 4 }), fc.constantFrom(0, 1, 63, 64, 65, 1024, 1025).map((n) => Array.from({ length: n }, (_, i) => `v${i}`)));
const nearLengthString = (max: number) => fc.oneof(fc.constantFrom(0, 1, max, max + 1).map((n) => "t".repeat(n)), fc.string({ maxLength: 8 }).map((s) => `${s}*`), text);
const anything = fc.anything({ maxDepth: 2, withNullPrototype: true, withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true });
/** Mostly a plausible value, sometimes one at a bound, sometimes anything at all. */
const field = (plausible: fc.Arbitrary<unknown>, near: fc.Arbitrary<unknown>) =>
  fc.oneof({ weight: 6, arbitrary: plausible }, { weight: 2, arbitrary: near }, { weight: 1, arbitrary: anything });
const specLike = fc.record(
  {
    types: field(fc.array(globPattern, { minLength: 1, maxLength: 3 }), listOf(nearLengthString(256))),
    source: field(globPattern, fc.oneof(nearLengthString(1024), listOf(nearLengthString(1024)))),
    subject: field(globPattern, nearLengthString(1024)),
    keys: field(fc.array(text, { minLength: 1, maxLength: 3 }), listOf(text)),
    headers: field(
      fc.dictionary(fc.constantFrom("h", "i"), text, { maxKeys: 2, noNullPrototype: true }),
      fc.oneof(
        fc.dictionary(fc.oneof(text, fc.constantFrom("__proto__", "constructor", "")), fc.oneof(text, anything), { maxKeys: 4 }),
        fc.constantFrom(64, 65).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`h${i}`, "v"]))),
      ),
    ),
    where: field(fc.tuple(expr, style).map(([e, s]) => print(e, s)), exprLike),
    unknownField: anything,
  },
  { requiredKeys: [] },
);

test("any filter spec compiles or is refused INVALID_FILTER, and a compiled one never throws on an event", () => {
  let compiled = 0;
  fc.assert(
    fc.property(fc.oneof(specLike, anything), fc.array(event, { maxLength: 3 }), (spec, events) => {
      const f = compiles(spec);
      if (f instanceof GatewayError) return;
      compiled++;
      for (const ev of events) {
        ev.dataReads = 0;
        f.matches(ev);
        if (!f.needsData) expect(ev.dataReads).toBe(0);
      }
    }),
    { numRuns: 3000 },
  );
  expect(compiled).toBeGreaterThan(100);
});

// Integers of any length reach filters from other producers' JSON (parsed exactly, as BigInt): one
// of 500 digits threw "Not an integer" out of the comparison, and the record was skipped for every
// subscriber whose where named it, `or` operands that held included (hostile tester).
const anyInteger = fc.oneof(
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }),
  fc.integer({ min: 300, max: 1200 }).chain((digits) => fc.boolean().map((neg) => (neg ? -1n : 1n) * (10n ** BigInt(digits) - 1n))),
);
const withIntegers = fc.dictionary(fc.constantFrom("n", "m", "a"), fc.oneof(anyInteger, fc.array(anyInteger, { maxLength: 2 }), num), { maxKeys: 3, noNullPrototype: true });

test("integers of any length in data never make a filter throw, and an or still holds by its other operand", () => {
  fc.assert(
    fc.property(fc.tuple(expr, style).map(([e, s]) => print(e, s)), withIntegers, (where, data) => {
      const f = compiles({ where: `(${where}) or type == "hit"` });
      if (f instanceof GatewayError) return;
      const ev = { type: "hit", key: null, headers: Object.create(null), data } as unknown as FilterableEvent;
      expect(f.matches(ev)).toBe(true);
      f.matches({ ...ev, type: "miss" } as FilterableEvent);
    }),
    { numRuns: 2000 },
  );
  const ev = (n: bigint) => ({ type: "x", key: null, headers: Object.create(null), data: { n } }) as unknown as FilterableEvent;
  const huge = 10n ** 500n - 1n;
  expect((compiles({ where: "data.n > 5" }) as ReturnType<typeof compileFilter>).matches(ev(huge))).toBe(true);
  expect((compiles({ where: "data.n < 5" }) as ReturnType<typeof compileFilter>).matches(ev(-huge))).toBe(true);
  expect((compiles({ where: "data.n == 5" }) as ReturnType<typeof compileFilter>).matches(ev(huge))).toBe(false);
});

// ---- the spec's other fields against a reference: globs as regular expressions ----

const smallEvent = fc.record({
  type: small,
  source: optional(small),
  subject: optional(small),
  key: fc.oneof(fc.constant(null), small),
  headers: fc.dictionary(fc.constantFrom("h", "i", "__proto__"), small, { maxKeys: 2, noNullPrototype: true }),
});
const validSpec = fc
  .record({
    types: fc.array(globPattern, { minLength: 1, maxLength: 3 }),
    source: fc.oneof(globPattern, fc.array(globPattern, { minLength: 1, maxLength: 3 })),
    subject: globPattern,
    keys: fc.array(small, { minLength: 1, maxLength: 3 }),
    headers: fc.dictionary(fc.constantFrom("h", "i"), small, { maxKeys: 2, noNullPrototype: true }),
  })
  // One or two fields at a time, so that events match often enough to test both outcomes.
  .chain((all) => fc.subarray(Object.keys(all) as Array<keyof typeof all>, { minLength: 1, maxLength: 2 }).map((keep) => Object.fromEntries(keep.map((k) => [k, all[k]])) as Partial<typeof all>));

test("types, source, subject, keys and headers match as documented (globs against regular expressions)", () => {
  let matched = 0;
  fc.assert(
    fc.property(validSpec, fc.array(smallEvent, { minLength: 1, maxLength: 6 }), (spec, events) => {
      const f = compileFilter(spec);
      for (const ev of events) {
        const sources = typeof spec.source === "string" ? [spec.source] : spec.source;
        const expected =
          (!spec.types || spec.types.some((t) => globRef(t).test(ev.type))) &&
          (!sources || (ev.source !== undefined && sources.some((t) => globRef(t).test(ev.source!)))) &&
          (!spec.subject || (ev.subject !== undefined && globRef(spec.subject).test(ev.subject))) &&
          (!spec.keys || (ev.key !== null && spec.keys.includes(ev.key))) &&
          (!spec.headers || Object.entries(spec.headers).every(([k, v]) => Object.hasOwn(ev.headers, k) && ev.headers[k] === v));
        expect({ spec, ev, got: f.matches(ev as FilterableEvent) }).toEqual({ spec, ev, got: expected });
        if (expected) matched++;
      }
    }),
    { numRuns: 3000 },
  );
  expect(matched).toBeGreaterThan(1000);
});

// Two paths holding long strings are compared once per event and the order remembered under the
// paths' text (src/subscribe/long-strings.ts): every comparison, in either order, on the same event,
// must still mean what comparing the strings means.
test("comparisons of two long strings of one event, many filters on the same event: as comparing the strings", () => {
  const OPS = ["==", "!=", "<", "<=", ">", ">="] as const;
  const ref = (op: string, a: string, b: string) => ({ "==": a === b, "!=": a !== b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b })[op]!;
  // Long strings that share long prefixes and differ near the end, or not at all.
  const longText = fc.tuple(fc.integer({ min: 250, max: 300 }), fc.constantFrom("", "a", "b", "ab", "\u00e9", "\ud83d\ude00")).map(([n, tail]) => "x".repeat(n) + tail);
  fc.assert(
    fc.property(fc.record({ a: longText, b: longText, c: longText }), fc.array(fc.tuple(fc.constantFrom(...OPS), fc.constantFrom("a", "b", "c"), fc.constantFrom("a", "b", "c")), { minLength: 1, maxLength: 12 }), (data, cmps) => {
      const ev: FilterableEvent = { type: "t", key: null, headers: {}, data: { ...data } };
      for (const [op, l, r] of cmps) {
        const f = compileFilter({ where: `data.${l} ${op} data.${r}` });
        expect(f.matches(ev)).toBe(ref(op, data[l as "a"], data[r as "a"]));
      }
    }),
    { numRuns: 2000 },
  );
});

// ---- globs with long parts: the linear search (protocol/glob.ts) against the reference ----

// Parts of 10 to 40 characters of a two-letter alphabet, so both searches (indexOf below 16, the
// linear one from 16) meet subjects that nearly match them, repeats and overlaps included.
const longPart = fc.string({ unit: fc.constantFrom("a", "b"), minLength: 10, maxLength: 40 });
const longGlob = fc.array(fc.oneof(longPart, fc.string({ unit: fc.constantFrom("a", "b"), maxLength: 3 })), { minLength: 1, maxLength: 4 }).map((parts) => parts.join("*"));

test("globs with long middle parts match exactly what the reference expression matches", () => {
  fc.assert(
    fc.property(longGlob, fc.array(fc.string({ unit: fc.constantFrom("a", "b"), maxLength: 120 }), { minLength: 1, maxLength: 6 }), (pattern, subjects) => {
      const test = glob(pattern);
      const ref = globRef(pattern);
      for (const s of subjects) expect(test(s)).toBe(ref.test(s));
      // Each `*` standing for a "b": every part in order, so it matches.
      expect(test(pattern.split("*").join("b"))).toBe(true);
    }),
    { numRuns: 5000 },
  );
});
