/**
 * Small helpers for passing JS memory to librdkafka and reading its memory back without BigInts.
 * Pointers are JS numbers (user-space addresses are below 2^47), written into reused buffers as two
 * 32-bit halves: a BigInt per pointer was most of the JS cost per record in the spike.
 */
import { dlopen, FFIType, ptr as addressOf, read } from "bun:ffi";

const TWO_32 = 4294967296;

/** A NUL-terminated UTF-8 copy of `s`, for `const char *` arguments. Keep it alive across the call. */
export function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** Writes a pointer-sized (or int64) integer as two halves at `u32[index]`, `u32[index + 1]`. */
export function write64(u32: Uint32Array, index: number, v: number): void {
  u32[index] = v >>> 0;
  u32[index + 1] = Math.floor(v / TWO_32);
}

/** Reads a signed int64 at `p + offset` as a number (exact below 2^53, which offsets and times are). */
export function readI64(p: number, offset: number): number {
  return read.i32(p, offset + 4) * TWO_32 + read.u32(p, offset);
}

/** Reads the 64-bit integer at `u32[index]` (little-endian halves) as a number. */
export function read64(u32: Uint32Array, index: number): number {
  return (u32[index + 1]! | 0) * TWO_32 + u32[index]!;
}

const libc = dlopen("libc.so.6", {
  memcpy: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.ptr },
  strlen: { args: [FFIType.ptr], returns: FFIType.u64 },
}).symbols;

/**
 * Copies `len` bytes of librdkafka's memory at `src` into `dst` at `dstOffset`: one call and no
 * intermediate ArrayBuffer, so a consumed value is copied exactly once, into its final place.
 */
export function copyOut(dst: Uint8Array, dstOffset: number, src: number, len: number): void {
  if (len > 0) libc.memcpy(addressOf(dst, dstOffset), src as never, len);
}

/** Length of the NUL-terminated string at `p`. */
export function strlen(p: number): number {
  return Number(libc.strlen(p as never));
}

/** A UTF-8 C string at `p` (of known length `len`, or up to its NUL) as a JS string. */
export function readString(p: number, len = -1): string {
  const n = len >= 0 ? len : strlen(p);
  if (n === 0) return "";
  const bytes = new Uint8Array(n);
  copyOut(bytes, 0, p, n);
  return Buffer.from(bytes.buffer, 0, n).toString("utf8");
}

export { addressOf, read };
