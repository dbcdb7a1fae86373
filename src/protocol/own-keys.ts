import { Unpackr } from "msgpackr";

type UnpackrOptions = ConstructorParameters<typeof Unpackr>[0];

// The key as msgpack stores it in any string format: its UTF-8 bytes.
const PROTO = new TextEncoder().encode("__proto__");

/**
 * A msgpack decoder that keeps a map key named "__proto__". msgpackr, building plain objects, renames
 * that key "__proto_" (so that it cannot set a prototype), which changes the data: a payload written
 * with the key would be delivered with another. Payloads that hold those nine bytes nowhere (nearly
 * all) take msgpackr's own path; the others are decoded into Maps and rebuilt as objects whose keys
 * are own properties, as JSON.parse builds them.
 */
export function ownKeysUnpacker(options: UnpackrOptions): (bytes: Uint8Array) => unknown {
  const fast = new Unpackr({ ...options, mapsAsObjects: true });
  const maps = new Unpackr({ ...options, mapsAsObjects: false });
  return (bytes) => (indexOf(bytes, PROTO) < 0 ? fast.unpack(bytes) : mapsToObjects(maps.unpack(bytes)));
}

/**
 * Rebuilds msgpackr's Maps (decoded with mapsAsObjects: false) as plain objects whose every key is
 * an own property, "__proto__" included. Keys are written as their text, as msgpackr's objects do.
 */
export function mapsToObjects(v: unknown): unknown {
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of v) defineOwn(out, String(k), mapsToObjects(x));
    return out;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = mapsToObjects(v[i]);
  }
  return v;
}

/** `out[key] = value`, also for "__proto__", which assignment would take as the prototype. */
export function defineOwn(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0]!;
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}
