import { z } from "zod";
import { GatewayError } from "../protocol/errors";
import { describeIssues, units } from "../protocol/frames";
import { compileExpr } from "./filter-expr";
import { glob } from "../protocol/glob";

/** What a filter sees of a record. `data` may be a lazy getter: it is read only when `needsData`. */
export interface FilterableEvent {
  type: string;
  source?: string;
  subject?: string;
  id?: string;
  key: string | null;
  time?: string;
  datacontenttype?: string;
  headers: Record<string, string>;
  data?: unknown;
}

export interface CompiledFilter {
  matches(ev: FilterableEvent): boolean;
  /** True only if `where` reads `data`: otherwise the payload need not be decoded at all. */
  needsData: boolean;
  /** The same string for every spelling of the same filter (key order, list order, whitespace). */
  identity: string;
  /** Every type of the filter, when none has a `*`; null otherwise (or when there is no `types`). */
  exactTypes: string[] | null;
  /**
   * When every type is exact or `prefix*`: strings such that every type this filter can match starts
   * with one of them (exact types are their own prefix). Minimal, so no entry is a prefix of
   * another. For indexing only: a superset, matches() decides. Null otherwise.
   */
  typePrefixes: string[] | null;
  /** The `keys` of the filter, sorted and without duplicates; null when it has none. */
  keys: string[] | null;
  /**
   * What matching one event against it costs, in terms: one for the filter, one per pattern, header,
   * and the keys' lookup, and the `where` expression's terms (MAX_FILTER_TERMS_PER_TOPIC).
   */
  terms: number;
  /**
   * What holding it costs in memory, in characters (MAX_FILTER_CHARS_PER_ADDRESS): its canonical form,
   * and FOOTPRINT_PER_ITEM more for each key, pattern part, header and `where` term, each of which is
   * an object of its own once compiled and indexed. By characters alone, patterns of one-letter parts
   * (`*a*a*a…`) held 86 bytes a character and keys 49 (outside hostile tester); long keys, 2.3.
   */
  footprint: number;
}

const FOOTPRINT_PER_ITEM = 64;

const text = (max: number) => units(1, max);
const list = <T extends z.ZodType>(item: T, max: number, what = "a list") =>
  z.array(item, { error: `must be ${what}` }).min(1, "give at least one, or leave the field out").max(max, `at most ${max} entries`);
const MAX_HEADERS = 64;

/**
 * Header names to values, checked by hand rather than by z.record: zod's record drops a key named
 * "__proto__" without a word (which would silently widen the filter), and events may carry a header
 * of that name. Every own key is checked; the object is kept as it is.
 */
const HeaderFilterSchema = z.unknown().superRefine((v, ctx) => {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    ctx.addIssue({ code: "custom", message: "must be a map of header names to strings" });
    return;
  }
  const names = Object.keys(v);
  if (names.length > MAX_HEADERS) {
    ctx.addIssue({ code: "custom", message: `at most ${MAX_HEADERS} headers` });
    return;
  }
  for (const name of names) {
    if (name.length < 1 || name.length > 256) ctx.addIssue({ code: "custom", path: [name], message: "header names are 1–256 characters" });
    const value = (v as Record<string, unknown>)[name];
    if (typeof value !== "string" || value.length > 65536) ctx.addIssue({ code: "custom", path: [name], message: "must be a string of at most 65,536 characters" });
  }
}) as unknown as z.ZodType<Record<string, string>>;

/** All fields optional; all given fields must match. Unknown fields are refused, not ignored. */
export const FilterSpecSchema = z.strictObject({
  types: list(text(256), 64, "a list of strings").optional(),
  // One string is a list of one: a single schema, so errors name the real problem.
  source: z.preprocess((v) => (typeof v === "string" ? [v] : v), list(text(1024), 64, "a string or a list of strings")).optional(),
  subject: text(1024).optional(),
  keys: list(units(0, 32768), 1024, "a list of strings").optional(),
  headers: HeaderFilterSchema.optional(),
  // Its length limit is checked by compileExpr, whose message names the limit.
  where: z.string().optional(),
});
export type FilterSpec = z.infer<typeof FilterSpecSchema>;

type Check = (ev: FilterableEvent) => boolean;

export function compileFilter(spec: unknown): CompiledFilter {
  const parsed = FilterSpecSchema.safeParse(spec);
  if (!parsed.success) throw new GatewayError("INVALID_FILTER", describeIssues(parsed.error, "filter"));
  const s = parsed.data;

  // `**` means the same as `*`; collapsing first gives one spelling for identity and indexes.
  const types = s.types && normalize(s.types.map((t) => t.replace(/\*+/g, "*")));
  const sources = s.source && normalize(s.source.map((t) => t.replace(/\*+/g, "*")));
  const subject = s.subject?.replace(/\*+/g, "*");
  const keys = s.keys && normalize(s.keys);
  const headers = s.headers && Object.entries(s.headers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const where = s.where === undefined ? undefined : compileExpr(s.where);

  // Cheapest checks first: the `where` expression, which may decode the payload, runs last.
  const checks: Check[] = [];
  if (types) {
    const test = anyOf(types);
    checks.push((ev) => test(ev.type));
  }
  if (keys) {
    const set = new Set(keys);
    checks.push((ev) => ev.key !== null && set.has(ev.key));
  }
  if (sources) {
    const test = anyOf(sources);
    checks.push((ev) => ev.source !== undefined && test(ev.source));
  }
  if (subject !== undefined) {
    const test = glob(subject);
    checks.push((ev) => ev.subject !== undefined && test(ev.subject));
  }
  if (headers) checks.push((ev) => headers.every(([name, value]) => Object.hasOwn(ev.headers, name) && ev.headers[name] === value));
  if (where) checks.push(where.test);

  // Fixed field order and normalized values; JSON so no value can forge a separator.
  const identity = JSON.stringify({ types, source: sources, subject, keys, headers, where: where?.canonical });
  const exactTypes = types && types.every((t) => !t.includes("*")) ? types : null;
  const prefixable = types && types.every((t) => t.indexOf("*") === -1 || t.indexOf("*") === t.length - 1) ? types : null;
  return {
    matches: checks.length === 0 ? () => true : checks.length === 1 ? checks[0]! : (ev) => checks.every((c) => c(ev)),
    needsData: where?.needsData ?? false,
    identity,
    exactTypes,
    typePrefixes: prefixable && minimalPrefixes(prefixable.map((t) => (t.endsWith("*") ? t.slice(0, -1) : t))),
    keys: keys ?? null,
    footprint:
      identity.length +
      FOOTPRINT_PER_ITEM * (patternParts(types) + patternParts(sources) + patternParts(subject === undefined ? undefined : [subject]) + (keys?.length ?? 0) + (headers?.length ?? 0) + (where?.terms ?? 0)),
    terms: 1 + patternTerms(types) + patternTerms(sources) + patternTerms(subject === undefined ? undefined : [subject]) + (keys ? 1 : 0) + (headers?.length ?? 0) + (where?.terms ?? 0),
  };
}

/** Sorted by UTF-16 code units (locale-free, so stable across machines), duplicates removed. */
function normalize(values: string[]): string[] {
  return [...new Set(values)].sort();
}

/** Drops every prefix that has a shorter one in the list: an event type then hits at most one. */
function minimalPrefixes(prefixes: string[]): string[] {
  const kept: string[] = [];
  for (const p of [...new Set(prefixes)].sort((a, b) => a.length - b.length)) {
    if (!kept.some((k) => p.startsWith(k))) kept.push(p);
  }
  return kept.sort();
}

function anyOf(patterns: string[]): (s: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes("*")));
  const globs = patterns.filter((p) => p.includes("*")).map(glob);
  if (globs.length === 0) return (s) => exact.has(s);
  return (s) => exact.has(s) || globs.some((g) => g(s));
}

// A pattern's test costs a pass over the subject and over the pattern: one term per
// PATTERN_CHARS_PER_TERM of it besides its own, so filters of long patterns meet
// MAX_FILTER_TERMS_PER_TOPIC sooner. 64,000 patterns of 500-800 characters, each one term, cost
// 0.3 s a record even with the linear search (protocol/glob.ts); counted so, a topic holds some 9,000.
const PATTERN_CHARS_PER_TERM = 64;

/** The literal parts between `*`s of every pattern: each is matched, and held, on its own. */
function patternParts(patterns: readonly string[] | undefined): number {
  if (patterns === undefined) return 0;
  let n = 0;
  for (const p of patterns) n += p.split("*").length;
  return n;
}

function patternTerms(patterns: readonly string[] | undefined): number {
  if (patterns === undefined) return 0;
  let n = 0;
  for (const p of patterns) n += 1 + Math.floor(p.length / PATTERN_CHARS_PER_TERM);
  return n;
}
