import { expect, test } from "bun:test";
import { copyBytes, writeUtf8 } from "../../src/bytes/utf8";

test("writeUtf8 writes exactly what Buffer does, on and off its ASCII fast path", () => {
  const cases = ["", "a", "ce_type", "x".repeat(64), "x".repeat(65), "héllo", "日本語", "emoji 😀 pair", `${"a".repeat(63)}é`, "\u007f\u0080", "lone \ud800 surrogate"];
  for (const s of cases) {
    const buf = Buffer.alloc(3 * s.length + 8, 0xaa);
    const n = writeUtf8(buf, 3, s);
    const expected = Buffer.from(s, "utf8");
    expect({ s, n, bytes: [...buf.subarray(3, 3 + n)] }).toEqual({ s, n: expected.length, bytes: [...expected] });
    expect(buf[2]).toBe(0xaa); // nothing before pos
  }
});

test("copyBytes copies small and large arrays in place", () => {
  for (const size of [0, 1, 64, 65, 1024, 1025, 5000]) {
    const v = Uint8Array.from({ length: size }, (_, i) => i & 0xff);
    const buf = new Uint8Array(size + 4);
    copyBytes(buf, 2, v);
    expect([...buf.subarray(2, 2 + size)]).toEqual([...v]);
  }
});
