import { Packr, Unpackr, isNativeAccelerationEnabled } from "msgpackr";
import { GatewayError, isGatewayError } from "./errors";
import { INT64_AUTO, withIntegersAsInt64 } from "./integers";
import { parseJsonExact } from "./json-exact";
import { toJsonText } from "./json-text";
import { LIMIT_DEFAULTS } from "./limits";
import { prescanMsgpack } from "./msgpack-scan";
import { mapsToObjects } from "./own-keys";
import { assertPlainData } from "./plain-data";
// Registers the msgpack timestamp that keeps its nanoseconds, for every decode in this process.
import "./precise-time";
import { frameBytes } from "./frame-bytes";

/** A WebSocket binary frame speaks msgpack; a text frame speaks the same protocol in JSON. */
export type CodecName = "msgpack" | "json";

export interface DecodeLimits {
  maxFrameBytes: number;
  maxDepth: number;
  /** Keys of any one map; MAX_MAP_KEYS's default when not given. */
  maxMapKeys?: number;
  /** Values of one event, checked before a msgpack frame is decoded; MAX_EVENT_VALUES's default when not given. */
  maxEventValues?: number;
  /** Values of a whole msgpack frame, checked before it is decoded; MAX_FRAME_VALUES's default when not given. */
  maxFrameValues?: number;
}

/** The decode limits a gateway's settings give. */
export function decodeLimits(config: { MAX_FRAME_BYTES: number; MAX_DEPTH: number; MAX_MAP_KEYS: number; MAX_EVENT_VALUES: number; MAX_FRAME_VALUES: number }): DecodeLimits {
  return { maxFrameBytes: config.MAX_FRAME_BYTES, maxDepth: config.MAX_DEPTH, maxMapKeys: config.MAX_MAP_KEYS, maxEventValues: config.MAX_EVENT_VALUES, maxFrameValues: config.MAX_FRAME_VALUES };
}

// Records and structured clone let a peer define shapes or cycles that we would then trust.
// "auto": int64/uint64 values come back as numbers when a double holds them exactly (so epoch ms
// or a cid from a client that always writes 64-bit integers just work), as BigInt beyond ±2^53.
// copyBuffers: a bin value is its own copy, never a view of the frame (see inScratch).
const unpackr = new Unpackr({
  useRecords: false,
  structuredClone: false,
  mapsAsObjects: true,
  moreTypes: false,
  copyBuffers: true,
  ...INT64_AUTO,
});
// For the rare frame with a map key "__proto__": unpackr renames it "__proto_", so such a frame is
// decoded to Maps and rebuilt as objects that keep the key (./own-keys.ts mapsToObjects).
const mapUnpackr = new Unpackr({ useRecords: false, structuredClone: false, mapsAsObjects: false, moreTypes: false, copyBuffers: true, ...INT64_AUTO });

/**
 * `raw` copied into one buffer reused by every decode. msgpackr reads through a DataView it keeps on
 * its source; made for each WebSocket message, that DataView made Bun build the ArrayBuffer behind
 * the message first (7% of the gateway's CPU at one event per frame). The copy is a memcpy, and
 * nothing decoded points into it (copyBuffers). A plain Uint8Array, not a Buffer: msgpackr copies a
 * bin value out with Uint8Array's slice on its source, which for a Buffer goes through Buffer's
 * constructor (4.7% of the gateway's CPU at one event per frame with a bin payload); bin values come
 * out as Uint8Arrays.
 */
let scratch = new Uint8Array(64 * 1024);
function inScratch(raw: Uint8Array): Uint8Array {
  if (raw.length > scratch.length) scratch = new Uint8Array(Math.max(raw.length, 2 * scratch.length));
  scratch.set(raw);
  return scratch;
}
// JSON text can hold integers past 64 bits, which msgpack cannot: those go out as their digits in a
// string rather than throwing in the middle of a delivery.
const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false, largeBigIntToString: true });

export const msgpackNativeAcceleration: boolean = isNativeAccelerationEnabled;

const textDecoder = new TextDecoder("utf-8", { fatal: true });

export function decodeFrame(raw: Uint8Array | string, codec: CodecName, limits: DecodeLimits): unknown {
  const size = frameBytes(raw);
  if (size > limits.maxFrameBytes) {
    throw new GatewayError("FRAME_TOO_LARGE", `frame of ${size} bytes exceeds the ${limits.maxFrameBytes}-byte limit`);
  }
  const maxMapKeys = limits.maxMapKeys ?? LIMIT_DEFAULTS.MAX_MAP_KEYS;
  let value: unknown;
  let text = "";
  try {
    if (codec === "msgpack") {
      // Refuses, cheaply, what msgpackr would accept but we do not, or pay too much to refuse.
      const proto = prescanMsgpack(raw as Uint8Array, { maxDepth: limits.maxDepth, maxMapKeys, maxEventValues: limits.maxEventValues ?? LIMIT_DEFAULTS.MAX_EVENT_VALUES, maxValues: limits.maxFrameValues ?? LIMIT_DEFAULTS.MAX_FRAME_VALUES, frame: true });
      // What the pre-scan passes is plain data: it refuses whatever assertPlainData would refuse in
      // msgpackr's output (test/fuzz/codec.test.ts, "the whole decode passes"), so no second walk.
      // The end as a number (msgpackr's unpack(source, end)): no options object per frame.
      const end = raw.length;
      return proto ? mapsToObjects(mapUnpackr.unpack(inScratch(raw as Uint8Array), end)) : unpackr.unpack(inScratch(raw as Uint8Array), end);
    } else {
      // One leading byte order mark is let go (RFC 8259 8.1 allows it): the decoder lets go of it in
      // bytes (an HTTP body), and here it is let go of in a text frame, so that the same JSON is one
      // request on either transport, and a second mark is an error on both.
      text = typeof raw === "string" ? (raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw) : textDecoder.decode(raw);
      value = JSON.parse(text);
    }
  } catch (e) {
    // Decoders recurse, so hostile nesting surfaces as a stack overflow; it is recoverable (checked
    // in test/protocol/codec.test.ts) but must not be reported as a generic parse error.
    if (isGatewayError(e)) throw e;
    if (e instanceof RangeError) throw new GatewayError("NESTING_TOO_DEEP", `nesting deeper than ${limits.maxDepth} levels`);
    // A decoder's message may quote the input: only its start is worth sending back.
    throw new GatewayError("BAD_FRAME", `not valid ${codec === "msgpack" ? "msgpack" : "JSON"}: ${String((e as Error).message).slice(0, 200)}`);
  }
  let beyondDouble: boolean;
  try {
    beyondDouble = assertPlainData(value, limits.maxDepth, maxMapKeys, codec === "json", codec === "json");
  } catch (e) {
    if (isGatewayError(e)) throw e;
    throw new GatewayError("NESTING_TOO_DEEP", `nesting deeper than ${limits.maxDepth} levels`);
  }
  if (!beyondDouble || codec !== "json") return value;
  // JSON.parse rounds integers past 2^53 (to infinity past 308 digits); the rare text that has one
  // is parsed again, exactly, and checked again: what is still infinite was a float (1e400).
  const exact = parseJsonExact(text);
  assertPlainData(exact, limits.maxDepth, maxMapKeys, false);
  return exact;
}

export function encodeFrame(frame: object, codec: CodecName): Uint8Array | string {
  return codec === "msgpack" ? packr.pack(frame) : toJsonText(frame);
}

/** One value in msgpack exactly as encodeFrame writes it inside a frame: for parts of frames spliced elsewhere (./event-frames.ts). */
export function packPart(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * A string as packPart writes it, without msgpackr's per-call cost for the ASCII ones up to 255
 * characters (a frame's `sub`, an ack's `id`): a fixstr or a str8, its header then its characters,
 * as msgpack and msgpackr spell them (test/fuzz/event-frames, test/fuzz/ack-frame).
 */
export function packString(s: string): Uint8Array {
  const n = s.length;
  if (n > 255) return packPart(s);
  const head = n < 32 ? 1 : 2;
  const out = Buffer.allocUnsafe(head + n);
  if (head === 1) out[0] = 0xa0 | n;
  else (out[0] = 0xd9), (out[1] = n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return packPart(s);
    out[head + i] = c;
  }
  return out;
}

/**
 * packString(s).length without making it, for an ASCII string (any length: msgpackr writes the
 * shortest header for those, fixstr, str8, str16 or str32, test/fuzz/event-frames); other strings
 * are packed to be measured.
 */
export function packedStringSize(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return packString(s).length;
  return (n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5) + n;
}

/** Encodes a structured event payload as the Kafka record value. */
export function encodeValue(data: unknown, codec: CodecName): Uint8Array {
  return codec === "msgpack" ? packr.pack(withIntegersAsInt64(data)) : Buffer.from(toJsonText(data));
}

export const mediaTypes: Record<CodecName, string> = {
  msgpack: "application/msgpack",
  json: "application/json",
};
