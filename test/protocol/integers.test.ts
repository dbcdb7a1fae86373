import { describe, expect, test } from "bun:test";
import { Unpackr } from "msgpackr";
import { decodeFrame, encodeFrame, encodeValue } from "../../src/protocol/codec";
import { parseJsonValue } from "../../src/protocol/json-exact";

const limits = { maxFrameBytes: 1 << 20, maxDepth: 32 };
const exact = new Unpackr({ useRecords: false, int64AsType: "bigint" });

describe("JSON integers stay exact", () => {
  test("past 2^53 as BigInt, everything else as JSON.parse gives it", () => {
    const text = '{"a":12345678901234567890,"b":-9223372036854775808,"c":9007199254740993,"d":1.5e300,"e":[1,2.5,"12345678901234567890"],"f":9007199254740991,"__proto__":{"x":1}}';
    const v = decodeFrame(text, "json", limits) as Record<string, unknown>;
    expect(v.a).toBe(12345678901234567890n);
    expect(v.b).toBe(-9223372036854775808n);
    expect(v.c).toBe(9007199254740993n);
    expect(v.d).toBe(1.5e300);
    expect(v.e).toEqual([1, 2.5, "12345678901234567890"]);
    expect(v.f).toBe(9007199254740991);
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.hasOwn(v, "__proto__")).toBe(true);
    const plain = '{"s":"a\\"b\\\\","n":[],"o":{},"t":true,"u":null,"big":123456789012345678901234567890}';
    expect(decodeFrame(plain, "json", limits)).toEqual({ s: 'a"b\\', n: [], o: {}, t: true, u: null, big: 123456789012345678901234567890n });
  });
  test("written back as the same digits, in values and in frames", () => {
    const v = decodeFrame('{"n":12345678901234567890}', "json", limits);
    expect(Buffer.from(encodeValue(v, "json")).toString()).toBe('{"n":12345678901234567890}');
    expect(encodeFrame({ t: 24, event: { data: v } }, "json")).toBe('{"t":24,"event":{"data":{"n":12345678901234567890}}}');
    expect(parseJsonValue('{"n":-18446744073709551615}')).toEqual({ n: -18446744073709551615n });
  });
});

describe("msgpack integers stay integers", () => {
  test("an integer past 64 bits (possible in JSON) goes to msgpack as its digits in a string, never rounded", () => {
    const v = decodeFrame('{"n":123456789012345678901234567890}', "json", limits);
    expect(exact.unpack(encodeFrame({ t: 24, event: { data: v } }, "msgpack") as Uint8Array)).toEqual({ t: 24, event: { data: { n: "123456789012345678901234567890" } } });
  });
  test("an integer past 32 bits is written as int64/uint64, never as a float", () => {
    for (const n of [2 ** 32, -(2 ** 31) - 1, 1_764_400_000_123, 2 ** 53, -(2 ** 53), 2n ** 64n - 1n, -(2n ** 63n)]) {
      const back = exact.unpack(encodeValue({ n }, "msgpack")) as { n: unknown };
      expect({ n, back: back.n }).toEqual({ n, back: BigInt(n) });
    }
    // Small integers and floats keep their forms.
    expect(exact.unpack(encodeValue({ a: 5, b: -7, c: 1.5, d: 4294967295 }, "msgpack"))).toEqual({ a: 5, b: -7, c: 1.5, d: 4294967295 });
  });
  test("an object without wide integers is packed as it is, not copied", () => {
    const data = { a: [1, 2, { b: "c" }] };
    expect(exact.unpack(encodeValue(data, "msgpack"))).toEqual(data);
  });
});
