import { Packr, Unpackr, isNativeAccelerationEnabled } from "msgpackr";
import { GatewayError, isGatewayError } from "./errors";
import { assertPlainData } from "./plain-data";

/** A WebSocket binary frame speaks msgpack; a text frame speaks the same protocol in JSON. */
export type CodecName = "msgpack" | "json";

export interface DecodeLimits {
  maxFrameBytes: number;
  maxDepth: number;
}

// Records and structured clone let a peer define shapes or cycles that we would then trust;
// bigint keeps 64-bit integers exact so plain-data can reject them instead of rounding silently.
const unpackr = new Unpackr({
  useRecords: false,
  structuredClone: false,
  mapsAsObjects: true,
  moreTypes: false,
  int64AsType: "bigint",
});
const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false });

export const msgpackNativeAcceleration: boolean = isNativeAccelerationEnabled;

const textDecoder = new TextDecoder("utf-8", { fatal: true });

export function decodeFrame(raw: Uint8Array | string, codec: CodecName, limits: DecodeLimits): unknown {
  const size = typeof raw === "string" ? Buffer.byteLength(raw) : raw.byteLength;
  if (size > limits.maxFrameBytes) {
    throw new GatewayError("FRAME_TOO_LARGE", `frame of ${size} bytes exceeds the ${limits.maxFrameBytes}-byte limit`);
  }
  let value: unknown;
  try {
    if (codec === "msgpack") {
      value = unpackr.unpack(raw as Uint8Array);
    } else {
      value = JSON.parse(typeof raw === "string" ? raw : textDecoder.decode(raw));
    }
  } catch (e) {
    // Decoders recurse, so hostile nesting surfaces as a stack overflow; it is recoverable (checked
    // in test/protocol/codec.test.ts) but must not be reported as a generic parse error.
    if (e instanceof RangeError) throw new GatewayError("NESTING_TOO_DEEP", `nesting deeper than ${limits.maxDepth} levels`);
    throw new GatewayError("BAD_FRAME", `not valid ${codec === "msgpack" ? "msgpack" : "JSON"}: ${(e as Error).message}`);
  }
  try {
    assertPlainData(value, limits.maxDepth);
  } catch (e) {
    if (isGatewayError(e)) throw e;
    throw new GatewayError("NESTING_TOO_DEEP", `nesting deeper than ${limits.maxDepth} levels`);
  }
  return value;
}

export function encodeFrame(frame: object, codec: CodecName): Uint8Array | string {
  return codec === "msgpack" ? packr.pack(frame) : JSON.stringify(frame, jsonReplacer);
}

/** Encodes a structured event payload as the Kafka record value. */
export function encodeValue(data: unknown, codec: CodecName): Uint8Array {
  return codec === "msgpack" ? packr.pack(data) : Buffer.from(JSON.stringify(data, jsonReplacer));
}

export const mediaTypes: Record<CodecName, string> = {
  msgpack: "application/msgpack",
  json: "application/json",
};

// Buffer.toJSON runs before a replacer sees the value, so look at the holder's raw property.
function jsonReplacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64");
  return value;
}
