/**
 * Whether b[start, end) is well-formed UTF-8 (RFC 3629: shortest forms only, no surrogates, nothing
 * past U+10FFFF). ASCII, the common case, costs one comparison a byte and no allocation.
 */
export function validUtf8(b: Uint8Array, start: number, end: number, view?: DataView): boolean {
  let i = start;
  // Four bytes at a time while they are ASCII: text is mostly ASCII, and this is the hot loop.
  if (view !== undefined) while (i + 4 <= end && (view.getUint32(i) & 0x80808080) === 0) i += 4;
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      if (i + 1 >= end || (b[i + 1]! & 0xc0) !== 0x80) return false;
      i += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      if (i + 2 >= end) return false;
      const c1 = b[i + 1]!;
      // E0 needs A0–BF (no overlong forms), ED needs 80–9F (no surrogates).
      if (c === 0xe0 ? c1 < 0xa0 || c1 > 0xbf : c === 0xed ? c1 < 0x80 || c1 > 0x9f : (c1 & 0xc0) !== 0x80) return false;
      if ((b[i + 2]! & 0xc0) !== 0x80) return false;
      i += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      if (i + 3 >= end) return false;
      const c1 = b[i + 1]!;
      // F0 needs 90–BF (no overlong forms), F4 needs 80–8F (nothing past U+10FFFF).
      if (c === 0xf0 ? c1 < 0x90 || c1 > 0xbf : c === 0xf4 ? c1 < 0x80 || c1 > 0x8f : (c1 & 0xc0) !== 0x80) return false;
      if ((b[i + 2]! & 0xc0) !== 0x80 || (b[i + 3]! & 0xc0) !== 0x80) return false;
      i += 4;
    } else return false;
  }
  return true;
}
