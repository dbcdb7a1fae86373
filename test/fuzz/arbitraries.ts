import fc from "fast-check";
import { GatewayError } from "../../src/protocol/errors";
import { EnvelopeSchema } from "../../src/protocol/frames";

/**
 * Generators shared by the property tests. Every property runs with an explicit numRuns; when one
 * fails, fast-check prints the seed and path that replay it, e.g.
 *   fc.assert(property, { seed: 1234, path: "5:1", endOnFailure: true })
 */

// A failure report then says what went wrong, not only with which input.
fc.configureGlobal({ ...fc.readConfigureGlobal(), includeErrorInReport: true });

/** Map keys, with the ones that collide with Object.prototype names; "__proto__" has its own tests. */
export const mapKey = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom("type", "data", "headers", "constructor", "toString", "hasOwnProperty", "valueOf", "0", "length") },
);

/** Well-formed text (UTF-8 can carry it): ASCII, any code point, and the odd long one. */
export const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 16 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 64 }) },
);

/** A string with at least one unpaired UTF-16 surrogate: JSON can spell it, UTF-8 cannot. */
export const loneSurrogateText = fc
  .tuple(fc.string({ maxLength: 6 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ maxLength: 6 }))
  .map(([a, s, b]) => a + String.fromCharCode(s) + b)
  .filter((s) => !s.isWellFormed());

const finite = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0));

/** What a client may put in a frame: plain JSON-like values, and bytes and timestamps in msgpack. */
export function plainValue(opts: { bytes: boolean; dates: boolean; maxDepth?: number; bigints?: boolean }) {
  const leaves: Array<fc.Arbitrary<unknown>> = [fc.constant(null), fc.boolean(), finite, fc.maxSafeInteger(), text];
  if (opts.bigints) leaves.push(fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }));
  if (opts.bytes) leaves.push(fc.uint8Array({ maxLength: 24 }));
  if (opts.dates) leaves.push(fc.date({ noInvalidDate: true }));
  const leaf = fc.oneof(...leaves);
  return fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
    value: fc.oneof({ depthSize: "small", maxDepth: opts.maxDepth ?? 6 }, leaf, tie("array"), tie("object")),
    array: fc.array(tie("value"), { maxLength: 5 }),
    object: fc.dictionary(mapKey, tie("value"), { maxKeys: 5, noNullPrototype: true }),
  })).value;
}

/** Runs `f`; anything thrown must be a GatewayError, and its code one of `codes` when given. */
export function onlyGatewayErrors<T>(f: () => T, codes?: readonly string[]): T | GatewayError {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof GatewayError)) throw new Error(`threw ${(e as Error)?.name ?? typeof e} instead of a GatewayError: ${String((e as Error)?.message ?? e)}`);
    if (codes && !codes.includes(e.code)) throw new Error(`threw GatewayError ${e.code}, expected one of ${codes.join(", ")}: ${e.message}`);
    return e;
  }
}

/**
 * A structure with bytes and dates spelled out and map entries sorted, so that equality is about
 * content, not classes or key order (msgpack and JSON maps are unordered; zod re-orders keys).
 */
/**
 * `asJsonText`: a number stands for the digits JSON.stringify writes for it, which is what a JSON
 * decoder that keeps integers exact reads back (beyond 2^53 that is not the double's own value).
 */
export function canonical(v: unknown, asJsonText = false): unknown {
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex") };
  if (v instanceof Date) return { date: v.getTime() };
  // Integers compare by value: beyond ±2^53 the decoders give a BigInt for what was a number.
  if (typeof v === "bigint") return { int: v.toString() };
  if (typeof v === "number" && Number.isInteger(v) && !Object.is(v, -0)) {
    const text = String(v);
    return { int: asJsonText && !text.includes("e") ? text : BigInt(v).toString() };
  }
  if (Array.isArray(v)) return v.map((x) => canonical(x, asJsonText));
  if (typeof v === "object" && v !== null) {
    return Object.entries(v)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, x]) => [k, canonical(x, asJsonText)]);
  }
  return v;
}

/** Byte-level damage to apply to an encoding: overwrite, insert, delete, or cut the tail. */
export const damage = fc.array(
  fc.record({ kind: fc.constantFrom("set", "insert", "delete", "truncate"), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  { minLength: 1, maxLength: 4 },
);

export function applyDamage(bytes: Uint8Array, ops: Array<{ kind: string; at: number; byte: number }>): Uint8Array {
  let b = Array.from(bytes);
  for (const op of ops) {
    const i = b.length === 0 ? 0 : op.at % (b.length + (op.kind === "insert" ? 1 : 0));
    if (op.kind === "set" && b.length > 0) b[i] = op.byte;
    else if (op.kind === "insert") b.splice(i, 0, op.byte);
    else if (op.kind === "delete") b.splice(i, 1);
    else if (op.kind === "truncate") b = b.slice(0, i);
  }
  return Uint8Array.from(b);
}

/** RFC 3339 times as people write them, some of which the schema refuses (lower-case t, no offset, …). */
export const rfc3339 = fc
  .tuple(
    fc.date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true }),
    fc.constantFrom("", ".1", ".123", ".123456789", ".1234567890"),
    fc.constantFrom("Z", "z", "+00:00", "-05:30", "+14:00", "+24:00", "", "+0000", "+05"),
    fc.constantFrom("T", "t", " "),
  )
  .map(([d, frac, zone, sep]) => d.toISOString().slice(0, 19).replace("T", sep) + frac + zone);
const someText = text.filter((s) => s.length > 0);

/** An envelope the schema accepts. */
export const validEnvelope = fc.record(
  {
    type: someText,
    specversion: fc.constant("1.0"),
    id: someText,
    source: someText,
    subject: someText,
    time: fc.oneof(rfc3339.filter((t) => EnvelopeSchema.shape.time.safeParse(t).success), fc.date({ noInvalidDate: true })),
    datacontenttype: fc.oneof(fc.constantFrom("application/msgpack", "application/json", "text/plain"), someText),
    data: plainValue({ bytes: true, dates: true, maxDepth: 3 }),
    key: fc.oneof(text, fc.uint8Array({ maxLength: 8 })),
    headers: fc.dictionary(
      someText.filter((n) => !/^(ce_|content-type$)/i.test(n) && n !== "__proto__" && !n.includes("\0")),
      fc.oneof(text, fc.uint8Array({ maxLength: 8 })),
      { maxKeys: 4, noNullPrototype: true },
    ),
  },
  { requiredKeys: ["type"], noNullPrototype: true },
);
