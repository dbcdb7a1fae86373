import { bigintAsDigits } from "./json-exact";

/**
 * The JSON text the gateway writes (frames to JSON clients, JSON payloads to Kafka): what
 * JSON.stringify(value, jsonReplacer) writes, where jsonReplacer spells a BigInt (an integer past
 * ±2^53) as its digits and bytes as base64.
 *
 * A replacer is a call per value, and a BigInt through it a JSON.rawJSON object: a JSON event of
 * 65,000 zeros took 35 ms that way, and one of 45,000 20-digit integers 45 ms, where the native walk
 * takes 0.5 ms. A client sending those within its bytes rate took every other client's time
 * (outside tester). So a value with neither BigInt nor bytes goes to JSON.stringify alone, and one
 * with them is written here, value by value, a few times faster than through the replacer. Both
 * are the replacer's text exactly (test/fuzz/json-text.test.ts).
 */
export function toJsonText(value: unknown): string {
  return needsReplacer(value) ? write(value, "")! : JSON.stringify(value);
}

// Depth is bounded where the value was made: decoded data by MAX_DEPTH, frames by their layout.
function needsReplacer(v: unknown): boolean {
  if (typeof v === "bigint") return true;
  if (typeof v !== "object" || v === null) return false;
  if (v instanceof Uint8Array) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (needsReplacer(v[i])) return true;
    return false;
  }
  for (const k in v) if (needsReplacer((v as Record<string, unknown>)[k])) return true;
  return false;
}

/**
 * `v` as JSON.stringify writes it with jsonReplacer, or undefined where it writes nothing (then
 * `null` in an array, the member left out in an object). Plain maps and arrays are walked here;
 * anything else (a Date, or an object with its own toJSON) is handed to JSON.stringify with the
 * replacer, as its holder would have been.
 */
function write(v: unknown, key: string): string | undefined {
  switch (typeof v) {
    case "string":
      return JSON.stringify(v);
    case "number":
      return Number.isFinite(v) ? String(v) : "null";
    case "boolean":
      return v ? "true" : "false";
    case "bigint":
      return v.toString();
    case "object":
      break;
    default:
      return JSON.stringify(v, jsonReplacer);
  }
  if (v === null) return "null";
  if (v instanceof Uint8Array) return `"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64")}"`;
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    let s = "[";
    for (let i = 0; i < v.length; i++) s += (i === 0 ? "" : ",") + (write(v[i], String(i)) ?? "null");
    return s + "]";
  }
  if (Object.getPrototypeOf(v) !== Object.prototype || typeof (v as { toJSON?: unknown }).toJSON === "function") {
    return JSON.stringify({ [key]: v }, jsonReplacer).slice(JSON.stringify(key).length + 2, -1) || undefined;
  }
  let s = "";
  for (const k in v) {
    const w = write((v as Record<string, unknown>)[k], k);
    if (w !== undefined) s += (s === "" ? "{" : ",") + JSON.stringify(k) + ":" + w;
  }
  return s === "" ? "{}" : s + "}";
}

// Buffer.toJSON runs before a replacer sees the value, so look at the holder's raw property.
// BigInt (integers beyond ±2^53) is written as its digits, which JSON allows and JSON.stringify refuses.
function jsonReplacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  if (typeof value === "bigint") return bigintAsDigits(key, value);
  const raw = this[key];
  if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64");
  return value;
}
