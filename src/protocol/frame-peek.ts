/**
 * The frame type of a frame whose first field is `t` with a small integer value, read in O(1)
 * without decoding: the shape every client of ours, msgpackr's and JSON.stringify's sends, since
 * they write fields in order. Returns undefined whenever that field is not so; the caller then
 * decodes as usual. Used to refuse a publish from a connection whose window is already spent without
 * paying for its decode (a pipelining client would otherwise buy all the CPU it liked with frames
 * that are refused anyway). A frame may name `t` again further on, and the decoder keeps the last:
 * before refusing on it, the caller reads that one (cid-scan.ts, scanFrameType), still without decoding.
 */
export function peekFrameType(raw: Uint8Array | string): number | undefined {
  if (typeof raw === "string") {
    // {"t":NN, …  exactly, digits then a comma: anything else is left to the decoder.
    if (raw.charCodeAt(0) !== 0x7b || raw.charCodeAt(1) !== 0x22 || raw.charCodeAt(2) !== 0x74 || raw.charCodeAt(3) !== 0x22 || raw.charCodeAt(4) !== 0x3a) return undefined;
    let v = 0;
    let i = 5;
    for (; i < 8; i++) {
      const c = raw.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
    }
    return i > 5 && raw.charCodeAt(i) === 0x2c && !(raw.charCodeAt(5) === 0x30 && i > 6) ? v : undefined;
  }
  // fixmap (or map16) whose first key is the fixstr "t" and first value a positive fixint.
  const c = raw[0];
  const at = c !== undefined && c >= 0x81 && c <= 0x8f ? 1 : c === 0xde && raw.length > 3 && (raw[1]! > 0 || raw[2]! > 0) ? 3 : -1;
  if (at < 0 || raw[at] !== 0xa1 || raw[at + 1] !== 0x74) return undefined;
  const v = raw[at + 2];
  return v !== undefined && v <= 0x7f ? v : undefined;
}
