/**
 * The frames the client reads and writes, typed from the server's own definitions: frame type numbers
 * and error codes are imported, never copied. Only `import type` reaches the server's schemas, so a
 * browser bundle of the client holds none of them.
 */
import { Packr } from "msgpackr";
import { ownKeysUnpacker } from "../protocol/own-keys";
import type { ErrorCode } from "../protocol/codes";
import type { Degraded, Gap, Start } from "../protocol/frames";

export { FrameType, PROTOCOL_VERSION } from "../protocol/frame-types";
export type { Degraded, ErrorCode, Gap, Start };
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

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpack = ownKeysUnpacker({ useRecords: false, int64AsType: "number" });

export function encode(frame: object, codec: Codec): Uint8Array | string {
  return codec === "json" ? JSON.stringify(frame) : packr.pack(frame);
}

export function decode(data: unknown): InFrame {
  if (typeof data === "string") return JSON.parse(data);
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array);
  return unpack(bytes) as InFrame;
}
