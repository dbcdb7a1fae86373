import { GatewayError } from "./errors";
import { validUtf8 } from "../bytes/utf8-valid";

export interface ScanLimits {
  maxDepth: number;
  maxMapKeys: number;
  /** Values in one event of a publish frame (its `event`, or each element of its `events`). */
  maxEventValues: number;
  /** Values in the whole buffer (a record's payload, which is one value; a client's frame); unbounded when absent. */
  maxValues?: number;
  /** The buffer is a client's frame: past maxValues it is FRAME_TOO_LARGE (MAX_FRAME_VALUES), not a payload's EVENT_TOO_LARGE. */
  frame?: boolean;
}

function tooManyValues(max: number, frame: boolean): GatewayError {
  return frame ? new GatewayError("FRAME_TOO_LARGE", `a frame of more than ${max} values (MAX_FRAME_VALUES)`) : new GatewayError("EVENT_TOO_LARGE", `a value of more than ${max} values (MAX_EVENT_VALUES)`);
}

/** The message a NaN or ±Infinity is refused with: a record's payload holding one goes degraded (decoded-record.ts). */
export const NON_FINITE = "numbers must be finite";

/**
 * A structure walk over a msgpack frame, run before msgpackr sees it, so that a frame is refused
 * for what it is, at the cost of one pass over its bytes and no allocation proportional to it:
 * msgpackr's own error paths are not bounded (a valid value plus one trailing byte made it
 * serialise the whole value into its message: 0.5 s for 1 MiB), and what it accepts is wider than
 * the protocol (its extensions 0x65 Error, 0x72 records, 0x73 Set, 0x74 typed arrays, 0x78 RegExp and others;
 * invalid UTF-8 silently replaced, which changes a key and so a partition; a malformed timestamp
 * as an Invalid Date; map keys of any type).
 *
 * Refuses: truncation and trailing bytes, 0xc1, NaN and ±Infinity (NON_FINITE), every ext type but the timestamp (-1) in its three
 * sizes with nanoseconds below 10^9 and a time a JavaScript Date holds, invalid UTF-8 in any
 * string (bin is bytes and is not looked at), map keys that are not strings or integers
 * (BAD_FRAME); nesting deeper than maxDepth (NESTING_TOO_DEEP); a map with more than maxMapKeys
 * keys, or an event of a publish frame with more than maxEventValues values, counted as
 * src/ingest/event-limits.ts counts them (EVENT_TOO_LARGE). Iterative: hostile nesting costs no
 * stack. On the s0 frame (100 small envelopes) it costs roughly a quarter of msgpackr's decode.
 *
 * Returns true when some map has the key "__proto__", which msgpackr would rename: codec.ts then
 * decodes that rare frame on a path that keeps it.
 */
export function prescanMsgpack(b: Uint8Array, limits: ScanLimits): boolean {
  const maxDepth = limits.maxDepth;
  const maxEventValues = limits.maxEventValues;
  const maxValues = limits.maxValues ?? Number.POSITIVE_INFINITY;
  if (left.length <= maxDepth) (left = new Int32Array(maxDepth + 1)), (isMap = new Uint8Array(maxDepth + 1)), (keyNext = new Uint8Array(maxDepth + 1));
  let depth = 0;
  let p = 0;
  let proto = false;
  const end = b.length;
  view = undefined;
  // Events are found by the frame's shape: the value of a top-level key "event" is one, and so is
  // each element of the array under "events". `eventDepth`: the depth their roots sit at (0: none).
  let values = 0;
  let eventStart = -1;
  let eventDepth = 0;
  let nextIs = 0; // 1: the top-level value about to be read is an event; 2: an array of events
  for (;;) {
    let key = false;
    if (depth > 0) {
      const l = depth - 1;
      left[l]!--;
      if (isMap[l] === 1) key = (keyNext[l]! ^= 1) === 1;
      if (depth <= 2) {
        if (depth === 1 && isMap[0] === 1) {
          if (key) {
            eventStart = -1;
            eventDepth = 0;
            // "event" / "events" in any str spelling: the publisher trusts this count for msgpack.
            nextIs = keyIs(b, p, EVENT) ? 1 : keyIs(b, p, EVENTS) ? 2 : 0;
          } else if (nextIs === 1) (eventStart = values + 1), (eventDepth = 1);
          else if (nextIs === 2) eventDepth = 2;
        } else if (depth === 2 && eventDepth === 2 && isMap[1] === 0) eventStart = values + 1;
      }
    }
    if (++values > maxValues) throw tooManyValues(maxValues, limits.frame === true);
    if (eventStart > 0 && values - eventStart >= maxEventValues) {
      throw new GatewayError("EVENT_TOO_LARGE", `an event of more than ${maxEventValues} values (MAX_EVENT_VALUES)`);
    }
    if (p >= end) throw truncated();
    const c = b[p]!;
    if (key && KEY_OK[c] === 0) throw new GatewayError("BAD_FRAME", "map keys must be strings or integers");
    const fixed = FIXED[c]!;
    let items = -1; // >= 0: a container with that many values follows its header
    let map = 0;
    if (fixed !== 0) {
      // NaN and ±Infinity: every exponent bit set (float32: 8 bits from byte 1; float64: 11).
      if ((c === 0xcb && (b[p + 1]! & 0x7f) === 0x7f && (b[p + 2]! & 0xf0) === 0xf0) || (c === 0xca && (b[p + 1]! & 0x7f) === 0x7f && (b[p + 2]! & 0x80) === 0x80)) {
        throw new GatewayError("BAD_FRAME", NON_FINITE);
      }
      p += fixed;
    } else if (c >= 0xa0 && c <= 0xbf) {
      const n = c & 0x1f;
      p = str(b, p + 1, n);
      if (key && n === 9 && isProto(b, p - 9)) proto = true;
    } else if (c <= 0x8f) (items = 2 * (c & 0x0f)), (map = 1), (p += 1);
    else if (c <= 0x9f) (items = c & 0x0f), (p += 1);
    else {
      switch (c) {
        case 0xc4:
        case 0xc5:
        case 0xc6: {
          const n = 1 << (c - 0xc4);
          p = p + 1 + n + len(b, p + 1, n);
          break;
        }
        case 0xd9:
        case 0xda:
        case 0xdb: {
          const n = 1 << (c - 0xd9);
          const l = len(b, p + 1, n);
          p = str(b, p + 1 + n, l);
          if (key && l === 9 && isProto(b, p - 9)) proto = true;
          break;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
          p = ext(b, p + 2, b[p + 1], 1 << (c - 0xd4));
          break;
        case 0xc7:
        case 0xc8:
        case 0xc9: {
          const n = 1 << (c - 0xc7);
          p = ext(b, p + 2 + n, b[p + 1 + n], len(b, p + 1, n));
          break;
        }
        case 0xdc:
        case 0xdd: {
          const n = c === 0xdc ? 2 : 4;
          items = len(b, p + 1, n);
          p += 1 + n;
          break;
        }
        case 0xde:
        case 0xdf: {
          const n = c === 0xde ? 2 : 4;
          items = 2 * len(b, p + 1, n);
          map = 1;
          p += 1 + n;
          break;
        }
        default:
          throw new GatewayError("BAD_FRAME", "not valid msgpack: 0xc1 is never used");
      }
    }
    if (p > end) throw truncated();
    if (items >= 0) {
      if (depth >= maxDepth) throw new GatewayError("NESTING_TOO_DEEP", `nesting deeper than ${maxDepth} levels`);
      if (map && items / 2 > limits.maxMapKeys) throw new GatewayError("EVENT_TOO_LARGE", `a map of ${items / 2} keys; at most ${limits.maxMapKeys} per map (MAX_MAP_KEYS)`);
      // Each value takes at least one byte: a count the rest of the frame cannot hold is a lie.
      if (items > end - p) throw truncated();
      if (items > 0) {
        left[depth] = items;
        isMap[depth] = map;
        keyNext[depth] = 0;
        depth++;
        continue;
      }
    }
    while (depth > 0 && left[depth - 1] === 0) depth--;
    if (depth === 0) break;
  }
  if (p !== end) throw new GatewayError("BAD_FRAME", `not valid msgpack: ${end - p} bytes after the end of the value`);
  view = undefined;
  return proto;
}

// Whole length of the values whose size their first byte says (fixints, nil, booleans, numbers); 0 for the rest.
const FIXED = new Uint8Array(256);
for (let c = 0; c <= 0x7f; c++) FIXED[c] = 1;
for (let c = 0xe0; c <= 0xff; c++) FIXED[c] = 1;
for (const [c, n] of [[0xc0, 1], [0xc2, 1], [0xc3, 1], [0xcc, 2], [0xd0, 2], [0xcd, 3], [0xd1, 3], [0xca, 5], [0xce, 5], [0xd2, 5], [0xcb, 9], [0xcf, 9], [0xd3, 9]] as const) FIXED[c] = n;

// What may be a map key: strings and integers (msgpackr's objects would turn anything else into text).
const KEY_OK = new Uint8Array(256);
for (let c = 0; c < 256; c++) KEY_OK[c] = c <= 0x7f || c >= 0xe0 || (c >= 0xa0 && c <= 0xbf) || (c >= 0xcc && c <= 0xd3) || (c >= 0xd9 && c <= 0xdb) ? 1 : 0;

const EVENT = [0x65, 0x76, 0x65, 0x6e, 0x74];
const EVENTS = [0x65, 0x76, 0x65, 0x6e, 0x74, 0x73];
/** Whether the str at p (fixstr, str8, str16 or str32) is exactly `word`. */
function keyIs(b: Uint8Array, p: number, word: number[]): boolean {
  const c = b[p];
  const n = word.length;
  let at: number;
  if (c === (0xa0 | n)) at = p + 1;
  else if (c === 0xd9 && b[p + 1] === n) at = p + 2;
  else if (c === 0xda && b[p + 1] === 0 && b[p + 2] === n) at = p + 3;
  else if (c === 0xdb && b[p + 1] === 0 && b[p + 2] === 0 && b[p + 3] === 0 && b[p + 4] === n) at = p + 5;
  else return false;
  for (let i = 0; i < n; i++) if (b[at + i] !== word[i]) return false;
  return true;
}

const truncated = () => new GatewayError("BAD_FRAME", "not valid msgpack: the frame ends inside a value");

function len(b: Uint8Array, p: number, n: number): number {
  if (p + n > b.length) throw truncated();
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[p + i]!;
  return v;
}

// Per open container, reused by every call (a scan runs to its end before the next starts): values
// still to read (a count the frame can hold, so an int32), whether it is a map, and for a map
// whether the next value is a key. Entries are written as each container opens, before any read.
let left = new Int32Array(33);
let isMap = new Uint8Array(33);
let keyNext = new Uint8Array(33);

/**
 * The frame being scanned, for reading four bytes at a time, made at its first long string: a
 * WebSocket message's `.buffer` costs an ArrayBuffer, and at one event per frame that was 5% of the
 * gateway's time when every scan made one. Module state, so no closure is made.
 */
let view: DataView | undefined;
const VIEW_FROM_BYTES = 32;

function str(b: Uint8Array, p: number, n: number): number {
  const e = p + n;
  if (e > b.length) throw truncated();
  if (n >= VIEW_FROM_BYTES && view === undefined) view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (!validUtf8(b, p, e, view)) throw new GatewayError("BAD_FRAME", "not valid msgpack: a string that is not valid UTF-8 (send bytes as bin)");
  return e;
}

const isProto = (b: Uint8Array, p: number) =>
  b[p] === 0x5f && b[p + 1] === 0x5f && b[p + 2] === 0x70 && b[p + 3] === 0x72 && b[p + 4] === 0x6f && b[p + 5] === 0x74 && b[p + 6] === 0x6f && b[p + 7] === 0x5f && b[p + 8] === 0x5f;

// The furthest a JavaScript Date reaches either side of 1970, in whole seconds.
const MAX_DATE_S = 8.64e12;

/** Past an ext value whose data starts at p; only well-formed timestamps are accepted. */
function ext(b: Uint8Array, p: number, type: number | undefined, n: number): number {
  if (p + n > b.length || type === undefined) throw truncated();
  if (type !== 0xff) throw new GatewayError("BAD_FRAME", `msgpack ext type ${type > 127 ? type - 256 : type} is not accepted; only timestamps (-1) are`);
  if (n === 8) {
    if (len(b, p, 4) / 4 >= 1e9) throw badTime();
  } else if (n === 12) {
    const nanos = len(b, p, 4);
    if (nanos >= 1e9) throw badTime();
    const hi = len(b, p + 4, 4);
    // The time is seconds + nanos / 1e9 with 0 <= nanos < 1e9, compared in whole seconds (exact
    // near the bounds): in milliseconds, -8640000000001 s + 999999999 ns rounded onto the bound and
    // passed, 1 ns outside what a Date holds, and JSON subscribers got null for it (hostile tester).
    const seconds = (hi >= 0x80000000 ? hi - 0x100000000 : hi) * 0x100000000 + len(b, p + 8, 4);
    if (seconds < -MAX_DATE_S || seconds > MAX_DATE_S || (seconds === MAX_DATE_S && nanos > 0)) throw badTime();
  } else if (n !== 4) throw badTime();
  return p + n;
}

const badTime = () => new GatewayError("BAD_FRAME", "not a valid msgpack timestamp (4, 8 or 12 bytes, nanoseconds below 10^9, within the ±8.64e15 ms a Date holds)");
