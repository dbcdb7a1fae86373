import { describe, expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { decodeFrame, encodeFrame } from "../../src/protocol/codec";
import { GatewayError } from "../../src/protocol/errors";

const limits = { maxFrameBytes: 1 << 20, maxDepth: 32 };
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayError);
    return (e as GatewayError).code;
  }
  throw new Error("expected a GatewayError");
};
const nested = (depth: number) => {
  const b = new Uint8Array(depth + 1).fill(0x91); // fixarray of one element, `depth` times
  b[depth] = 0xc0;
  return b;
};

describe("hostile msgpack is refused with a code, never trusted", () => {
  test("the reserved byte 0xC1", () => expect(code(() => decodeFrame(new Uint8Array([0xc1]), "msgpack", limits))).toBe("BAD_FRAME"));
  test("a Set extension", () => {
    const set = new Packr({ moreTypes: true } as never).pack(new Set([1, 2]));
    expect(code(() => decodeFrame(set, "msgpack", limits))).toBe("BAD_FRAME");
  });
  test("64-bit integers are exact: numbers within ±2^53, BigInt beyond", () => {
    expect(decodeFrame(new Uint8Array([0xcf, 0xff, 0, 0, 0, 0, 0, 0, 1]), "msgpack", limits)).toBe(0xff00000000000001n);
    expect(decodeFrame(new Uint8Array([0xcf, 0, 0, 0, 1, 0, 0, 0, 0]), "msgpack", limits)).toBe(2 ** 32);
    expect(decodeFrame(new Uint8Array([0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), "msgpack", limits)).toBe(-1);
  });
  test("truncated and trailing bytes", () => {
    expect(code(() => decodeFrame(new Packr().pack({ a: "hello" }).subarray(0, 4), "msgpack", limits))).toBe("BAD_FRAME");
    expect(code(() => decodeFrame(new Uint8Array([1, 2]), "msgpack", limits))).toBe("BAD_FRAME");
  });
  test("nesting past the limit, shallow and stack-overflow deep, and the decoder still works after", () => {
    expect(code(() => decodeFrame(nested(33), "msgpack", limits))).toBe("NESTING_TOO_DEEP");
    expect(code(() => decodeFrame(nested(500_000), "msgpack", { ...limits, maxFrameBytes: 1 << 21 }))).toBe("NESTING_TOO_DEEP");
    expect(decodeFrame(nested(32), "msgpack", limits)).toBeDefined();
    expect(decodeFrame(new Packr({ useRecords: false }).pack({ ok: [1, "two"] }), "msgpack", limits)).toEqual({ ok: [1, "two"] });
  });
  test("oversized frames, counted in bytes", () => {
    expect(code(() => decodeFrame(new Uint8Array(2000), "msgpack", { ...limits, maxFrameBytes: 1999 }))).toBe("FRAME_TOO_LARGE");
    expect(code(() => decodeFrame("é".repeat(1000), "json", { ...limits, maxFrameBytes: 1999 }))).toBe("FRAME_TOO_LARGE");
  });
  test("invalid JSON and deep JSON", () => {
    expect(code(() => decodeFrame("{", "json", limits))).toBe("BAD_FRAME");
    expect(code(() => decodeFrame("[".repeat(40) + "]".repeat(40), "json", limits))).toBe("NESTING_TOO_DEEP");
    expect(code(() => decodeFrame(new Uint8Array([0x22, 0xff, 0x22]), "json", limits))).toBe("BAD_FRAME");
  });
  test("plain data round-trips, binary included", () => {
    const frame = { t: 10, cid: 1, event: { type: "x", data: new Uint8Array([1, 2, 3]), time: new Date(0) } };
    expect(decodeFrame(encodeFrame(frame, "msgpack") as Uint8Array, "msgpack", limits)).toEqual(frame);
  });
  test("binary in JSON replies is base64", () => {
    expect(encodeFrame({ b: Buffer.from([1, 2, 3]) }, "json")).toBe('{"b":"AQID"}');
  });
});

test("bytes decoded from one frame stay as they were when the next frames are decoded", () => {
  const packr = new Packr({ useRecords: false });
  const first = decodeFrame(packr.pack({ t: 10, event: { type: "a", data: { bin: Buffer.from([1, 2, 3, 4]) } } }), "msgpack", { maxFrameBytes: 1 << 20, maxDepth: 32 }) as { event: { data: { bin: Uint8Array } } };
  for (let i = 0; i < 3; i++) decodeFrame(packr.pack({ t: 10, event: { type: "b", data: { bin: Buffer.alloc(1000, 0xee) } } }), "msgpack", { maxFrameBytes: 1 << 20, maxDepth: 32 });
  expect([...first.event.data.bin]).toEqual([1, 2, 3, 4]);
  // Its own copy, not a view of the buffer frames are decoded from.
  expect(first.event.data.bin).toBeInstanceOf(Uint8Array);
  expect(first.event.data.bin.buffer.byteLength).toBe(4);
});

test("a msgpack timestamp is accepted exactly when a Date holds it, to the nanosecond", () => {
  const ts96 = (seconds: bigint, nanos: number) => {
    const b = Buffer.alloc(15);
    b[0] = 0xc7;
    b[1] = 12;
    b[2] = 0xff;
    b.writeUInt32BE(nanos, 3);
    b.writeBigInt64BE(seconds, 7);
    return b;
  };
  const frame = (ext: Buffer) => Buffer.concat([Buffer.from([0x82, 0xa1, 0x74, 0x0a, 0xa4, ...Buffer.from("data")]), ext]);
  const decodes = (ext: Buffer) => {
    try {
      decodeFrame(frame(ext), "msgpack", { maxFrameBytes: 1 << 20, maxDepth: 32 });
      return true;
    } catch (e) {
      expect((e as GatewayError).code).toBe("BAD_FRAME");
      return false;
    }
  };
  expect(decodes(ts96(8_640_000_000_000n, 0))).toBe(true);
  expect(decodes(ts96(8_640_000_000_000n, 1))).toBe(false);
  expect(decodes(ts96(-8_640_000_000_000n, 0))).toBe(true);
  expect(decodes(ts96(-8_640_000_000_000n, 999_999_999))).toBe(true);
  // 1 ns before the earliest time a Date holds: rounded in milliseconds, it passed.
  expect(decodes(ts96(-8_640_000_000_001n, 999_999_999))).toBe(false);
  expect(decodes(ts96(-(2n ** 63n), 0))).toBe(false);
  expect(decodes(ts96(2n ** 63n - 1n, 0))).toBe(false);
});
