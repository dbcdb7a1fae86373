import { GatewayError } from "./errors";

/**
 * Decoders hand back more than plain data: msgpackr still yields Set and its internal 0xC1 marker
 * object even with hardened options. Everything decoded from a client passes through here before
 * any other code touches it, so the rest of the gateway can assume JSON-like values (integers
 * beyond ±2^53 as BigInt) plus byte arrays and Dates, and bounded depth.
 *
 * Returns true when some number lies beyond ±(2^53−1): a JSON decoder may have rounded it, so
 * codec.ts then parses the text again keeping integers exact.
 */
export function assertPlainData(value: unknown, maxDepth: number): boolean {
  return check(value, 0, maxDepth);
}

const MAX = Number.MAX_SAFE_INTEGER;

function check(v: unknown, depth: number, maxDepth: number): boolean {
  switch (typeof v) {
    case "string":
    case "boolean":
      return false;
    case "number":
      if (!Number.isFinite(v)) throw new GatewayError("BAD_FRAME", "numbers must be finite");
      return v > MAX || v < -MAX;
    case "bigint":
      // msgpack int64/uint64 beyond ±2^53: kept exact (codec.ts).
      return false;
    case "object":
      break;
    default:
      throw new GatewayError("BAD_FRAME", `values of type ${typeof v} are not accepted`);
  }
  if (v === null || v instanceof Uint8Array || v instanceof Date) return false;
  if (depth >= maxDepth) throw new GatewayError("NESTING_TOO_DEEP", `nesting deeper than ${maxDepth} levels`);
  let unsafe = false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (check(v[i], depth + 1, maxDepth)) unsafe = true;
    return unsafe;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) {
    throw new GatewayError("BAD_FRAME", "only maps, arrays, strings, numbers, booleans, nil, binary and timestamps are accepted");
  }
  for (const k in v) if (check((v as Record<string, unknown>)[k], depth + 1, maxDepth)) unsafe = true;
  return unsafe;
}
