/**
 * Writes `s` as UTF-8 into `buf` at `pos` and returns the byte count. Short ASCII strings (topics,
 * header names, ids, types, keys: nearly every string a record carries) are copied by a JS loop;
 * Bun's Buffer#write costs far more per call than the copy itself, and it was 31% of the embedded
 * log's ingest profile. Anything else goes through Buffer#write. The caller guarantees room for
 * 3 bytes per UTF-16 unit.
 */
export function writeUtf8(buf: Buffer, pos: number, s: string): number {
  const n = s.length;
  if (n <= 64) {
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[pos + i] = c;
    }
    if (i === n) return n;
  }
  return buf.write(s, pos, "utf8");
}

/** Copies `v` into `buf` at `pos`: a loop up to 1 KiB, where TypedArray#set cost ~10x more per call in Bun (profile of S1). */
export function copyBytes(buf: Uint8Array, pos: number, v: Uint8Array): void {
  const n = v.byteLength;
  if (n > 1024) buf.set(v, pos);
  else for (let i = 0; i < n; i++) buf[pos + i] = v[i]!;
}

// Exact: bytes that are not UTF-8 have no text (fatal), and a leading U+FEFF is part of the text (a
// default TextDecoder drops it: "\uFEFForder-1" read back as "order-1", hostile tester).
const exactDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The text `b` holds, exactly as written, or null when it is not UTF-8. */
export function utf8Text(b: Uint8Array): string | null {
  try {
    return exactDecoder.decode(b);
  } catch {
    return null;
  }
}
