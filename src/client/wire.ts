/**
 * The frames the client reads and writes, typed from the server's own definitions: frame type numbers
 * and error codes are imported, never copied. Only `import type` reaches the server's schemas, so a
 * browser bundle of the client holds none of them.
 */
import { Packr } from "msgpackr";
import { ownKeysUnpacker } from "../protocol/own-keys";
import { type ErrorCode, ErrorCodes } from "../protocol/codes";
import { type WireError, isGatewayError } from "../protocol/errors";
import { bigintAsDigits, parseJsonValue } from "../protocol/json-exact";
import { prescanMsgpack } from "../protocol/msgpack-scan";
import { assertPlainData } from "../protocol/plain-data";
import type { Degraded, Gap, Start } from "../protocol/frames";

export { FrameType, PROTOCOL_VERSION } from "../protocol/frame-types";
export type { Degraded, ErrorCode, Gap, Start };
/** JSON with integers a double cannot hold as BigInt, both ways (docs/client.md, "Integers are exact"). */
export { bigintAsDigits, parseJsonValue };
/** An error as the gateway sends it (nack, error frame, batch_ack entry). */
export type { WireError } from "../protocol/errors";

export type Codec = "msgpack" | "json";

/** An event as a client publishes it (the envelope; docs/protocol.md). */
export interface OutgoingEvent {
  type: string;
  id?: string;
  key?: string;
  source?: string;
  subject?: string;
  time?: string | number | Date;
  data?: unknown;
  data_base64?: string;
  datacontenttype?: string;
  headers?: Record<string, string | Uint8Array>;
}

/** An event as a subscriber receives it, with where it is in Kafka. */
export interface DeliveredEvent {
  topic: string;
  partition: number;
  offset: number;
  /**
   * Keys and header values that are not UTF-8 come as bytes over msgpack; over JSON, in `key_base64`
   * and `headers_base64` (docs/protocol.md, "The delivered envelope").
   */
  event: Omit<OutgoingEvent, "key"> & { id: string; source: string; time?: string; key?: string | Uint8Array; key_base64?: string; headers_base64?: Record<string, string> };
  /** Set when the event could not be sent whole: which part was given up (docs/protocol.md). */
  degraded?: Degraded;
  /** Why, when degraded. */
  reason?: string;
}

/** Every frame the gateway sends, loosely: fields by frame type are documented in docs/protocol.md. */
export interface InFrame {
  t: number;
  cid?: number;
  sub?: string;
  token?: string;
  [field: string]: unknown;
}

// `undefined` as JSON.stringify has it: a property left out, an array element null. msgpackr's own
// encoding of it, ext type 0, is refused by the gateway, and refused the whole frame it was in:
// `{ key: user?.id }` failed every event published with it.
// (skipValues is in msgpackr's pack.js, not in its type declarations.)
const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true, ...{ skipValues: [undefined] } });
// Integers past ±2^53 as BigInt, exact as the gateway keeps them (docs/protocol.md, "Integers");
// those within as numbers. ("auto" is in msgpackr's unpack.js, not in its type declarations.)
const unpack = ownKeysUnpacker({ useRecords: false, int64AsType: "auto" as "bigint" });

/**
 * `value` as the frame will carry it, checked on the way: with every typed array but Uint8Array
 * (and every DataView) as a Uint8Array over the same bytes for msgpack (msgpackr 2.1.3 writes such
 * a view's byteLength as its bin's length but copies it element by element: a Float64Array [1.5]
 * became 01 00 00 00 00 00 00 00, the rest of the bin whatever its reused buffer held), rebuilt only
 * along the paths that hold one. Anything the codec would write as something other than what it is
 * throws (CLIENT_UNENCODABLE for that event; publisher.ts): JSON wrote a Map or a Set as {}, bytes
 * as {"0":1,…}, and msgpackr a RegExp as an array, so each codec is handed plain data only: null,
 * booleans, numbers, strings, BigInt, undefined (left out), plain objects, arrays and Dates, and
 * bytes in msgpack. `depth` bounds the walk (anything deeper is refused by the frame checks
 * anyway, and a cycle by the encoder).
 */
function carried(value: unknown, json: boolean, depth = 0): unknown {
  if (typeof value === "function" || typeof value === "symbol") throw new TypeError(`a ${typeof value} is not data`);
  if (typeof value !== "object" || value === null || depth > 256) return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    if (json) throw new TypeError("bytes cannot go in JSON as they are: send them as data_base64");
    return value instanceof Uint8Array || value instanceof ArrayBuffer ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      const w = carried(v, json, depth + 1);
      if (w !== v) (out ??= value.slice())[i] = w;
    }
    return out ?? value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    if (value instanceof Date) return value;
    throw new TypeError(`a ${(value as object).constructor?.name ?? "non-plain object"} is not data the gateway keeps as written; send a plain object, an array${json ? "" : " or bytes"}`);
  }
  let out: Record<string, unknown> | null = null;
  for (const k of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[k];
    const w = carried(v, json, depth + 1);
    if (w !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = w;
  }
  return out ?? value;
}

export function encode(frame: object, codec: Codec): Uint8Array | string {
  return codec === "json" ? JSON.stringify(carried(frame, true)) : packr.pack(carried(frame, false));
}

/** Why the gateway would refuse a frame whole, before reading any of its events. */
export interface FrameRefusal {
  code: string;
  message: string;
  /** The gateway's number for `code`, when it is the gateway's code. */
  num?: number;
}

/**
 * What the gateway would refuse an encoded frame for as a whole, by the gateway's own checks
 * (src/protocol: the msgpack pre-scan, or JSON's plain-data walk) and the limits its welcome
 * advertised; null when it would read the frame's events. A batch refused so fails every event in
 * it for what one of them holds, so the publisher finds that one and refuses it alone (publisher.ts).
 */
export function frameRefusal(data: Uint8Array | string, codec: Codec, limits: Record<string, number>): FrameRefusal | null {
  const maxDepth = limits.maxDepth ?? 1024;
  const maxMapKeys = limits.maxMapKeys ?? Number.MAX_SAFE_INTEGER;
  try {
    // As the gateway reads it. For msgpack the pre-scan refuses whatever the whole decode would
    // (test/fuzz/codec.test.ts), so the frame is not decoded again here.
    if (codec === "msgpack") prescanMsgpack(data as Uint8Array, { maxDepth, maxMapKeys, maxEventValues: limits.maxEventValues ?? Number.MAX_SAFE_INTEGER, maxValues: limits.maxFrameValues, frame: true });
    else assertPlainData(JSON.parse(data as string), maxDepth, maxMapKeys, true, true);
    return null;
  } catch (e) {
    if (isGatewayError(e)) return { code: e.code, message: e.message, num: ErrorCodes[e.code].num };
    if (e instanceof RangeError) return { code: "NESTING_TOO_DEEP", message: `nesting deeper than ${maxDepth} levels`, num: ErrorCodes.NESTING_TOO_DEEP.num };
    throw e;
  }
}

/**
 * Why a subscribe's filter cannot go as written, or null. A filter is JSON-like data (docs/subscriptions.md),
 * and anything else would reach the gateway as some other filter: JSON writes a Map or a Set as {},
 * an empty filter that matches every event. Filters nest a few levels; 32 bounds the walk, and a cycle.
 */
export function filterRefusal(filter: unknown): WireError | null {
  try {
    if (isJsonLike(filter, 0) && typeof filter === "object" && filter !== null && !Array.isArray(filter)) return null;
  } catch {
    // a getter or proxy that throws: not data either
  }
  return { code: "INVALID_FILTER", num: ErrorCodes.INVALID_FILTER.num, message: "a filter must be a plain object of strings, numbers, booleans, null, arrays and plain objects", retriable: false, mayBePersisted: false };
}

function isJsonLike(v: unknown, depth: number): boolean {
  if (v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (typeof v !== "object" || depth >= 32) return false;
  if (Array.isArray(v)) return v.every((x) => isJsonLike(x, depth + 1));
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.keys(v).every((k) => isJsonLike((v as Record<string, unknown>)[k], depth + 1));
}

export function decode(data: unknown): InFrame {
  if (typeof data === "string") return parseJsonValue(data) as InFrame;
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array);
  return unpack(bytes) as InFrame;
}
