import { GatewayError } from "./errors";

/**
 * Decoders hand back more than plain data: msgpackr still yields Set and its internal 0xC1 marker
 * object even with hardened options (codec.ts's pre-scan refuses those bytes first; this stays as
 * the definition). Everything decoded from a client passes through here before any other code
 * touches it, so the rest of the gateway can assume JSON-like values (integers beyond ±2^53 as
 * BigInt) plus byte arrays and valid Dates, well-formed Unicode, bounded depth and map sizes.
 *
 * Returns true when some number lies beyond ±(2^53−1): a JSON decoder may have rounded it, so
 * codec.ts then parses the text again keeping integers exact. With `roundedFromJson` (JSON.parse's
 * value, which has no infinity but rounds an integer of 309 digits or more to one) an infinite
 * number is such a number too; the exact value is then checked again without it, where a float
 * literal past the doubles (1e400) is still infinite, and refused.
 */
export function assertPlainData(value: unknown, maxDepth: number, maxMapKeys = Number.MAX_SAFE_INTEGER, checkText = true, roundedFromJson = false): boolean {
  textChecked = checkText;
  roundedJson = roundedFromJson;
  return check(value, 0, maxDepth, maxMapKeys);
}

/**
 * Whether strings need the well-formedness check: JSON text can spell a lone surrogate; strings a
 * msgpack decoder built from UTF-8 the pre-scan validated cannot hold one. A variable, so the
 * recursion carries no extra argument.
 */
let textChecked = true;
/** The value is JSON.parse's: an infinite number there is a literal past the doubles (see assertPlainData). */
let roundedJson = false;

const MAX = Number.MAX_SAFE_INTEGER;

// JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 writer can encode: they would
// reach Kafka as U+FFFD, a different key or type than the one acked.
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
const notUnicode = () => new GatewayError("BAD_FRAME", "strings must be well-formed Unicode (no unpaired surrogates)");

function check(v: unknown, depth: number, maxDepth: number, maxMapKeys: number): boolean {
  switch (typeof v) {
    case "string":
      if (textChecked && !wellFormed(v)) throw notUnicode();
      return false;
    case "boolean":
      return false;
    case "number":
      if (!Number.isFinite(v)) {
        if (roundedJson) return true;
        throw new GatewayError("BAD_FRAME", "numbers must be finite");
      }
      return v > MAX || v < -MAX;
    case "bigint":
      // msgpack int64/uint64 beyond ±2^53: kept exact (codec.ts).
      return false;
    case "object":
      break;
    default:
      throw new GatewayError("BAD_FRAME", `values of type ${typeof v} are not accepted`);
  }
  if (v === null || v instanceof Uint8Array) return false;
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new GatewayError("BAD_FRAME", "not a valid timestamp");
    return false;
  }
  if (depth >= maxDepth) throw new GatewayError("NESTING_TOO_DEEP", `nesting deeper than ${maxDepth} levels`);
  let unsafe = false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (check(v[i], depth + 1, maxDepth, maxMapKeys)) unsafe = true;
    return unsafe;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) {
    throw new GatewayError("BAD_FRAME", "only maps, arrays, strings, numbers, booleans, nil, binary and timestamps are accepted");
  }
  let keys = 0;
  for (const k in v) {
    if (++keys > maxMapKeys) throw new GatewayError("EVENT_TOO_LARGE", `a map of more than ${maxMapKeys} keys (MAX_MAP_KEYS)`);
    if (textChecked && !wellFormed(k)) throw notUnicode();
    if (check((v as Record<string, unknown>)[k], depth + 1, maxDepth, maxMapKeys)) unsafe = true;
  }
  return unsafe;
}

