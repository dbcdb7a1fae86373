import { GatewayError } from "./errors";

/**
 * Decoders hand back more than plain data: msgpackr still yields Set, BigInt and its internal 0xC1
 * marker object even with hardened options. Everything decoded from a client passes through here
 * before any other code touches it, so the rest of the gateway can assume JSON-like values plus
 * byte arrays and Dates, and bounded depth.
 */
export function assertPlainData(value: unknown, maxDepth: number): void {
  check(value, 0, maxDepth);
}

function check(v: unknown, depth: number, maxDepth: number): void {
  switch (typeof v) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(v)) throw new GatewayError("BAD_FRAME", "numbers must be finite");
      return;
    case "bigint":
      throw new GatewayError("BAD_FRAME", "integers beyond ±2^53 are not accepted; send them as strings or bytes");
    case "object":
      break;
    default:
      throw new GatewayError("BAD_FRAME", `values of type ${typeof v} are not accepted`);
  }
  if (v === null || v instanceof Uint8Array || v instanceof Date) return;
  if (depth >= maxDepth) throw new GatewayError("NESTING_TOO_DEEP", `nesting deeper than ${maxDepth} levels`);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) check(v[i], depth + 1, maxDepth);
    return;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype) {
    throw new GatewayError("BAD_FRAME", "only maps, arrays, strings, numbers, booleans, nil, binary and timestamps are accepted");
  }
  for (const k in v) check((v as Record<string, unknown>)[k], depth + 1, maxDepth);
}
