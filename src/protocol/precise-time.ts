import { addExtension } from "msgpackr";

const NS_PER_MS = 1_000_000;

/**
 * A msgpack timestamp (extension −1) as the client wrote it. msgpackr decodes one to a Date, which
 * holds milliseconds: the nanoseconds Go's time.Time or Python's Timestamp carry were lost, in
 * `time` (ce_time) and in any `data` the gateway re-encodes, and a time before 1970 with a fraction
 * was rounded toward 1970 rather than down. This is still a Date to everything that reads one (the
 * instant floored to its millisecond), and it also keeps:
 * - the extension's payload exactly, which msgpack encoding writes back byte for byte;
 * - the nanoseconds within the millisecond, which toISOString (and so JSON) prints.
 *
 * Registered for the whole process when this module loads (msgpackr's extensions are global):
 * codec.ts imports it, so every msgpack value the gateway decodes has it.
 */
export class PreciseTime extends Date {
  /** Nanoseconds past getTime()'s millisecond: 0 to 999,999. */
  readonly subMillisecondNanos: number;

  constructor(
    seconds: number,
    nanos: number,
    /** The extension's payload (4, 8 or 12 bytes), as received. */
    readonly payload: Uint8Array,
  ) {
    // Floored, so the remainder below is never negative (−1 s + 999,999,999 ns is 1 ns before 1970).
    super(seconds * 1000 + Math.floor(nanos / NS_PER_MS));
    this.subMillisecondNanos = nanos % NS_PER_MS;
  }

  /** RFC 3339 in UTC with as many fractional digits as the timestamp has (3, 6 or 9). */
  override toISOString(): string {
    const iso = super.toISOString();
    if (this.subMillisecondNanos === 0) return iso;
    const micros = String(this.subMillisecondNanos).padStart(6, "0");
    return `${iso.slice(0, -1)}${micros.endsWith("000") ? micros.slice(0, 3) : micros}Z`;
  }
}

/** The timestamp in `payload` (its length says which of the three layouts), or an Invalid Date. */
function unpackTimestamp(payload: Uint8Array): Date {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let seconds: number;
  let nanos: number;
  if (payload.length === 4) {
    seconds = v.getUint32(0);
    nanos = 0;
  } else if (payload.length === 8) {
    // 30 bits of nanoseconds, then 34 of seconds.
    const hi = v.getUint32(0);
    nanos = hi >>> 2;
    seconds = (hi & 0x3) * 0x1_0000_0000 + v.getUint32(4);
  } else if (payload.length === 12) {
    nanos = v.getUint32(0);
    seconds = Number(v.getBigInt64(4));
  } else {
    return new Date(Number.NaN);
  }
  // msgpack-scan.ts refuses these in frames; other decoders of this process get an Invalid Date.
  if (nanos >= 1_000_000_000) return new Date(Number.NaN);
  return new PreciseTime(seconds, nanos, payload.slice());
}

addExtension({
  Class: PreciseTime,
  // The unsigned byte msgpackr indexes extensions by: −1.
  type: 0xff,
  unpack: unpackTimestamp,
  pack(time: PreciseTime, allocateForWrite: (size: number) => { target: Uint8Array; position: number }) {
    const p = time.payload;
    // fixext 4 / fixext 8 / ext 8 of 12 bytes: the three forms the spec gives a timestamp.
    const head = p.length === 4 ? [0xd6, 0xff] : p.length === 8 ? [0xd7, 0xff] : [0xc7, 12, 0xff];
    const { target, position } = allocateForWrite(head.length + p.length);
    target.set(head, position);
    target.set(p, position + head.length);
  },
} as never);
