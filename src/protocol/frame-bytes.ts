/**
 * A frame's size as the client sent it: a text frame's UTF-8 bytes, a binary frame's bytes. Every
 * bound on what a client sends counts this. A string's `length` counts UTF-16 code units, a third
 * of the bytes of CJK text, so bytes/s limits and queue bounds held three times what they said.
 */
export function frameBytes(raw: Uint8Array | string): number {
  return typeof raw === "string" ? Buffer.byteLength(raw) : raw.byteLength;
}
