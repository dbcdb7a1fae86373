import { expect, test } from "bun:test";
import fc from "fast-check";
import { plainValue } from "./arbitraries";
import { encodeFrame, encodeValue } from "../../src/protocol/codec";

/**
 * encodeFrame and encodeValue write JSON with JSON.stringify's own native walk unless a value needs
 * the replacer (a BigInt, bytes); the shortcut must be the very text the replacer writes, for any
 * value, bytes, dates and integers past 2^53 anywhere in it or nowhere.
 */
const rawJSON = (JSON as unknown as { rawJSON: (text: string) => unknown }).rawJSON;
function reference(this: Record<string, unknown>, key: string, value: unknown): unknown {
  if (typeof value === "bigint") return rawJSON(value.toString());
  const raw = this[key];
  if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64");
  return value;
}

test("JSON text with and without the replacer is the same, for 5,000 values", () => {
  // Values with bytes, dates and BigInts anywhere, and with none: the two ways toJsonText takes.
  const sometimes = plainValue({ bytes: true, dates: true, bigints: true });
  const never = plainValue({ bytes: false, dates: true });
  let withBigInt = 0;
  const hasBigInt = (v: unknown) => {
    let has = false;
    JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? ((has = true), null) : x));
    return has;
  };
  fc.assert(
    fc.property(fc.oneof(sometimes, never), (v) => {
      const frame = { t: 22, cid: 1, v };
      expect(encodeFrame(frame, "json")).toBe(JSON.stringify(frame, reference));
      expect(Buffer.from(encodeValue(v, "json")).toString()).toBe(JSON.stringify(v, reference));
      if (hasBigInt(v)) withBigInt++;
    }),
    { numRuns: 5000 },
  );
  // Both ways are taken, often.
  expect(withBigInt).toBeGreaterThan(500);
  expect(withBigInt).toBeLessThan(4500);
});

test("the odd values a frame may hold are written as JSON.stringify writes them with the replacer", () => {
  const odd = [
    { a: undefined, b: [undefined, () => 1], c: 1n },
    { d: new Date(Number.NaN), e: new Date(0), f: Buffer.from("hi"), g: 2n },
    { h: { toJSON: (k: string) => `k=${k}` }, i: [Number.NaN, -0, Number.POSITIVE_INFINITY, 1e21, 5e-324], j: -(2n ** 70n) },
    Object.defineProperty({ k: 3n }, "__proto__", { value: { l: new Uint8Array([1, 2, 3]) }, enumerable: true }),
    [3n, new Uint8Array(0), {}, [], "\ud800", "\u2028"],
  ];
  for (const v of odd) expect(encodeFrame({ t: 22, v }, "json")).toBe(JSON.stringify({ t: 22, v }, reference));
});
