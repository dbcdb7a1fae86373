import type { FilterableEvent } from "./filter";
import { COMPARE, type Tok, at, fail, show, tokenize } from "./filter-tokens";
import { LONG_STRING, compareLong } from "./long-strings";

/**
 * The `where` language of subscription filters: a hand-written tokenizer (filter-tokens.ts) and
 * recursive-descent parser whose tree is compiled into closures. Never eval or new Function: the
 * text comes from any client. Every bound below caps the work one event costs, whatever is sent.
 *
 *   or := and ("or" and)*          and := not ("and" not)*          not := "not" not | atom
 *   atom := "(" or ")" | "exists" "(" path ")" | operand cmp operand | operand "in" "[" literal,… "]"
 *   operand := path | literal      path := root ("." ident | "[" int "]")*
 *   literal := number | 'str' | "str" | true | false | null
 *
 * Semantics: `==` holds only between equal primitives (no coercion: 5 == "5" is false), `!=` is its
 * negation, `<` `<=` `>` `>=` hold only when both sides are numbers or both strings. Numbers compare
 * by value whatever their width: integers beyond ±2^53 (BigInt in data, integer literals of any
 * length) are exact, and equal a double only when it is the same number. A keyless event has no
 * `key` (missing, not null). A missing path
 * is undefined, and every comparison with undefined is false, `!=` included: `data.x != 1` is false
 * when there is no data.x (write `not data.x == 1` to include events without it). Objects and arrays
 * equal nothing, so they are `!=` to everything present. `exists(p)` is true when p is present
 * (null counts as present). `in` is true when the value is a primitive in the list.
 */
export const EXPR_LIMITS = { chars: 2048, nodes: 128, inList: 256, pathDepth: 8, parens: 32 } as const;

export const ROOTS = ["type", "source", "subject", "id", "key", "time", "datacontenttype", "data", "headers"] as const;
const ROOT_SET: ReadonlySet<string> = new Set(ROOTS);

export interface CompiledExpr {
  test: (ev: FilterableEvent) => boolean;
  /** The expression re-printed in a normal form: same meaning, same text (for filter identity). */
  canonical: string;
  /** Its terms (operators, paths and values): what evaluating it costs, at most EXPR_LIMITS.nodes. */
  terms: number;
  needsData: boolean;
}

type Prim = string | number | bigint | boolean | null;
type Path = { k: "path"; root: string; steps: (string | number)[] };
type Operand = Path | { k: "lit"; v: Prim };
type Node =
  | { k: "or" | "and"; kids: Node[] }
  | { k: "not"; x: Node }
  | { k: "cmp"; op: string; l: Operand; r: Operand }
  | { k: "in"; x: Operand; values: Prim[] }
  | { k: "exists"; p: Path };

export function compileExpr(src: string): CompiledExpr {
  if (src.length > EXPR_LIMITS.chars) fail(`too long: ${src.length} characters, the limit is ${EXPR_LIMITS.chars}`);
  const parser = new Parser(tokenize(src));
  const tree = parser.parseOr();
  const rest = parser.peek();
  if (rest.k !== "end") parser.fail(`unexpected ${show(rest)}; expected "and", "or" or the end`, rest);
  return { test: compile(tree), canonical: print(tree), needsData: parser.needsData, terms: parser.terms };
}

// ---- parser ----

class Parser {
  needsData = false;
  private i = 0;
  private nodes = 0;
  get terms(): number {
    return this.nodes;
  }
  private parens = 0;
  constructor(private readonly toks: Tok[]) {}

  peek(): Tok {
    return this.toks[this.i]!;
  }
  private next(): Tok {
    const t = this.toks[this.i]!;
    if (t.k !== "end") this.i++;
    return t;
  }
  fail(problem: string, t = this.peek()): never {
    return fail(`${problem} ${at(t.pos)}${t.k === "end" ? " (the end)" : ""}`);
  }
  private isWord(v: string): boolean {
    const t = this.peek();
    return t.k === "word" && t.v === v;
  }
  private take(op: string): boolean {
    const t = this.peek();
    if (t.k !== "op" || t.v !== op) return false;
    this.next();
    return true;
  }
  private expect(op: string, after: string): void {
    const t = this.peek();
    if (t.k !== "op" || t.v !== op) this.fail(`expected "${op}" ${after} but found ${show(t)}`);
    this.next();
  }
  // Counted when a node is known to exist, before its children are parsed, so hostile input is
  // refused before it can recurse deep.
  private count(): void {
    if (++this.nodes > EXPR_LIMITS.nodes) this.fail(`more than ${EXPR_LIMITS.nodes} terms (operators, paths and values)`);
  }

  parseOr(): Node {
    return this.chain("or", () => this.parseAnd());
  }
  private parseAnd(): Node {
    return this.chain("and", () => this.parseNot());
  }
  private chain(k: "or" | "and", parseKid: () => Node): Node {
    const first = parseKid();
    if (!this.isWord(k)) return first;
    const kids = [first];
    while (this.isWord(k)) {
      this.count();
      this.next();
      kids.push(parseKid());
    }
    return { k, kids };
  }
  private parseNot(): Node {
    if (!this.isWord("not")) return this.parseAtom();
    this.count();
    this.next();
    return { k: "not", x: this.parseNot() };
  }

  private parseAtom(): Node {
    const t = this.peek();
    if (t.k === "op" && t.v === "(") {
      if (++this.parens > EXPR_LIMITS.parens) this.fail(`parentheses nested more than ${EXPR_LIMITS.parens} deep`);
      this.next();
      const inner = this.parseOr();
      this.expect(")", `to close the "(" ${at(t.pos)}`);
      this.parens--;
      return inner;
    }
    if (this.isWord("exists")) {
      this.count();
      this.next();
      this.expect("(", 'after "exists"');
      const pt = this.peek();
      const p = this.parseOperand();
      if (p.k !== "path") this.fail("expected a path in exists()", pt);
      this.expect(")", "after the path in exists(");
      return { k: "exists", p };
    }
    const l = this.parseOperand();
    const op = this.peek();
    if (op.k === "op" && COMPARE.has(op.v)) {
      this.count();
      this.next();
      return { k: "cmp", op: op.v, l, r: this.parseOperand() };
    }
    if (this.isWord("in")) {
      this.count();
      this.next();
      this.expect("[", 'after "in"');
      const values: Prim[] = [];
      do {
        if (values.length === EXPR_LIMITS.inList) this.fail(`"in" list longer than ${EXPR_LIMITS.inList} values`);
        // List values are not terms: the list has its own bound and costs one Set lookup.
        const vt = this.peek();
        const v = this.parseOperand(false);
        if (v.k !== "lit") this.fail('only literals may appear in an "in" list', vt);
        values.push(v.v);
      } while (this.take(","));
      this.expect("]", 'to close the "in" list');
      return { k: "in", x: l, values };
    }
    return this.fail(`expected a comparison (==, !=, <, <=, >, >=) or "in" but found ${show(op)}`, op);
  }

  private parseOperand(counted = true): Operand {
    const t = this.peek();
    if (t.k === "num" || t.k === "str") {
      if (counted) this.count();
      this.next();
      return { k: "lit", v: t.k === "num" ? (t.b === undefined ? t.n : exactNumber(t.b)) : t.v };
    }
    if (t.k === "word") {
      if (t.v === "true" || t.v === "false" || t.v === "null") {
        if (counted) this.count();
        this.next();
        return { k: "lit", v: t.v === "null" ? null : t.v === "true" };
      }
      if (ROOT_SET.has(t.v)) return this.parsePath();
      this.fail(`unknown field "${t.v}" (paths start with ${ROOTS.join(", ")})`);
    }
    return this.fail(`expected a value but found ${show(t)}`);
  }

  private parsePath(): Path {
    this.count();
    const root = this.next().v;
    if (root === "data") this.needsData = true;
    const steps: (string | number)[] = [];
    for (let t = this.peek(); t.k === "op" && (t.v === "." || t.v === "["); t = this.peek()) {
      if (steps.length === EXPR_LIMITS.pathDepth) this.fail(`path deeper than ${EXPR_LIMITS.pathDepth} steps`);
      this.next();
      const s = this.next();
      if (t.v === ".") {
        // Any word, keywords included: data.in and data.not are ordinary fields.
        if (s.k !== "word") this.fail(`expected a field name after "." but found ${show(s)}`, s);
        steps.push(s.v);
      } else {
        if (s.k !== "num" || !Number.isSafeInteger(s.n) || s.n < 0) this.fail(`expected an array index (0, 1, …) after "[" but found ${show(s)}`, s);
        this.expect("]", "after the array index");
        steps.push(s.n);
      }
    }
    return { k: "path", root, steps };
  }
}

// ---- compiling to closures ----

type Test = (ev: FilterableEvent) => boolean;
type Get = (ev: FilterableEvent) => unknown;

function compile(n: Node): Test {
  switch (n.k) {
    case "or": {
      const kids = n.kids.map(compile);
      return (ev) => kids.some((f) => f(ev));
    }
    case "and": {
      const kids = n.kids.map(compile);
      return (ev) => kids.every((f) => f(ev));
    }
    case "not": {
      const x = compile(n.x);
      return (ev) => !x(ev);
    }
    case "exists": {
      const g = getter(n.p);
      return (ev) => g(ev) !== undefined;
    }
    case "in": {
      // A Set, so a 256-value list costs one lookup. Undefined and objects are never in it.
      const set = new Set<unknown>(n.values);
      const g = getter(n.x);
      return (ev) => set.has(g(ev));
    }
    case "cmp": {
      const l = getter(n.l);
      const r = getter(n.r);
      const cmp = COMPARATORS[n.op]!;
      // Two paths can be two long strings of the event, whose comparison costs their length: each is
      // compared once per event (long-strings.ts). A literal bounds the cost by its own length.
      if (n.l.k === "path" && n.r.k === "path") {
        const sign = SIGN_TESTS[n.op]!;
        const equality = n.op === "==" || n.op === "!=";
        const pair = `${printOperand(n.l)}\u0000${printOperand(n.r)}`;
        const reversed = `${printOperand(n.r)}\u0000${printOperand(n.l)}`;
        return (ev) => {
          const a = l(ev);
          const b = r(ev);
          if (a === undefined || b === undefined) return false;
          if (typeof a !== "string" || typeof b !== "string" || a.length < LONG_STRING || b.length < LONG_STRING) return cmp(a, b);
          // Strings of unequal lengths are unequal at no cost.
          if (equality && a.length !== b.length) return sign(1);
          return sign(compareLong(ev, pair, reversed, a, b));
        };
      }
      return (ev) => {
        const a = l(ev);
        const b = r(ev);
        return a !== undefined && b !== undefined && cmp(a, b);
      };
    }
  }
}

/**
 * One representation per integer value: a BigInt a double holds exactly becomes that double, so
 * `===` and Set lookups (in) compare values, and a BigInt is left only where no double is equal.
 */
function exactNumber(b: bigint): number | bigint {
  const n = Number(b);
  // Past the largest double Number() is ±Infinity, which BigInt() refuses: such a BigInt stays one.
  return Number.isFinite(n) && BigInt(n) === b ? n : b;
}

const isPrim = (v: unknown) => v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean" || typeof v === "bigint";
const isNum = (v: unknown) => typeof v === "number" || typeof v === "bigint";
// Relational operators compare a number and a BigInt by exact value.
const ordered = (a: unknown, b: unknown) => (isNum(a) && isNum(b)) || (typeof a === "string" && typeof b === "string");
// Only called with both sides present (not undefined).
const COMPARATORS: Record<string, (a: unknown, b: unknown) => boolean> = {
  "==": (a, b) => a === b && isPrim(a),
  "!=": (a, b) => !(a === b && isPrim(a)),
  "<": (a, b) => ordered(a, b) && (a as number) < (b as number),
  "<=": (a, b) => ordered(a, b) && (a as number) <= (b as number),
  ">": (a, b) => ordered(a, b) && (a as number) > (b as number),
  ">=": (a, b) => ordered(a, b) && (a as number) >= (b as number),
};

// COMPARATORS for two strings, from their order (-1, 0, 1).
const SIGN_TESTS: Record<string, (sign: number) => boolean> = {
  "==": (s) => s === 0,
  "!=": (s) => s !== 0,
  "<": (s) => s < 0,
  "<=": (s) => s <= 0,
  ">": (s) => s > 0,
  ">=": (s) => s >= 0,
};

function getter(o: Operand): Get {
  if (o.k === "lit") {
    const v = o.v;
    return () => v;
  }
  const { root, steps } = o;
  return (ev) => {
    // root is one of ROOTS, so this never reaches anything but the event's own fields.
    let v: unknown = (ev as unknown as Record<string, unknown>)[root];
    // FilterableEvent spells "no key" null; in expressions it is missing, like any absent field.
    if (v === null && root === "key") return undefined;
    for (let i = 0; i < steps.length && v !== undefined; i++) v = step(v, steps[i]!);
    return typeof v === "bigint" ? exactNumber(v) : v;
  };
}

// Own properties of plain objects and elements of arrays only: never the prototype chain
// (data.constructor, data.__proto__) and never into bytes.
function step(v: unknown, s: string | number): unknown {
  if (typeof s === "number") return Array.isArray(v) && s < v.length ? v[s] : undefined;
  if (typeof v !== "object" || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return undefined;
  return Object.hasOwn(v, s) ? (v as Record<string, unknown>)[s] : undefined;
}

// ---- canonical form ----

// `and`/`or` are commutative and side-effect free here, so their operands are flattened, sorted and
// deduplicated; `in` lists likewise. Literals print as JSON. Whitespace and quotes never matter.
function print(n: Node): string {
  switch (n.k) {
    case "or":
    case "and": {
      const parts = new Set<string>();
      const flatten = (m: Node) => (m.k === n.k ? m.kids.forEach(flatten) : parts.add(print(m)));
      flatten(n);
      return parts.size === 1 ? [...parts][0]! : `(${[...parts].sort().join(` ${n.k} `)})`;
    }
    case "not":
      return `not ${print(n.x)}`;
    case "exists":
      return `exists(${printOperand(n.p)})`;
    case "in":
      return `${printOperand(n.x)} in [${[...new Set(n.values.map(printLiteral))].sort().join(",")}]`;
    case "cmp":
      return `${printOperand(n.l)} ${n.op} ${printOperand(n.r)}`;
  }
}

const printLiteral = (v: Prim) => (typeof v === "bigint" ? v.toString() : JSON.stringify(v));

function printOperand(o: Operand): string {
  if (o.k === "lit") return printLiteral(o.v);
  return o.root + o.steps.map((s) => (typeof s === "number" ? `[${s}]` : `.${s}`)).join("");
}
