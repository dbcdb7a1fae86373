/**
 * Integer fidelity across codecs. Decoders give JS numbers for every integer a double holds
 * exactly and BigInt beyond (msgpackr's int64AsType "auto", json-exact.ts). Encoders must not
 * undo that: msgpackr writes an integer number beyond 32 bits as a float64, which would turn an
 * int64 epoch-ms into a float for every other consumer, and JSON.stringify refuses BigInt.
 */

const LOW = -(2 ** 31);
const HIGH = 2 ** 32;

const LIMIT = 2 ** 53;

// Integers outside what msgpackr writes as an integer, up to ±2^53: msgpackr's "auto" decodes an
// int64 to a number up to there (2^53 included), a BigInt beyond.
const isWide = (n: number) => (n < LOW || n >= HIGH) && n >= -LIMIT && n <= LIMIT && Number.isInteger(n);

function hasWide(v: unknown, depth: number): boolean {
  if (typeof v === "number") return isWide(v);
  if (typeof v !== "object" || v === null || depth > 512 || ArrayBuffer.isView(v) || v instanceof Date) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (hasWide(v[i], depth + 1)) return true;
    return false;
  }
  for (const k in v) if (hasWide((v as Record<string, unknown>)[k], depth + 1)) return true;
  return false;
}

function widen(v: unknown): unknown {
  if (typeof v === "number") return isWide(v) ? BigInt(v) : v;
  if (typeof v !== "object" || v === null || ArrayBuffer.isView(v) || v instanceof Date) return v;
  if (Array.isArray(v)) return v.map(widen);
  const out: Record<string, unknown> = {};
  for (const k in v) {
    const x = widen((v as Record<string, unknown>)[k]);
    if (k === "__proto__") Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
    else out[k] = x;
  }
  return out;
}

/**
 * `v` with every integer beyond 32 bits as a BigInt, so msgpackr writes it as int64/uint64; `v`
 * itself (no copy) when it has none, the common case.
 */
export function withIntegersAsInt64(v: unknown): unknown {
  return hasWide(v, 0) ? widen(v) : v;
}

/**
 * msgpackr's int64AsType "auto" (unpack.js: int64/uint64 as a number when within ±2^53, BigInt
 * beyond), which its type declarations leave out.
 */
export const INT64_AUTO = { int64AsType: "auto" } as unknown as { int64AsType: "bigint" };
