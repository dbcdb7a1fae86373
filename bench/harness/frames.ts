import { Packr } from "msgpackr";

/**
 * Publish frames built once and re-sent with patched bytes, so the load client spends its CPU on
 * the socket and not on encoding: at a million events a second the client shares two cores with
 * the gateway it measures.
 *
 * Each template is a msgpack `publish_batch` (or `publish` for one event) whose correlation id is a
 * fixed-width uint32, and whose events each carry `data` bytes that start with an 8-byte float64:
 * the frame's intended send time, so a subscriber can measure publish → delivery latency.
 */
export interface FrameTemplate {
  bytes: Uint8Array;
  view: DataView;
  cidAt: number;
  stampsAt: number[];
}

export interface FrameShape {
  batch: number;
  payloadBytes: number;
  keys: number;
  topic: string;
  /** The event type of event `n` (a running count over all templates), for subscriber filters. */
  typeOf?: (n: number) => string;
}

const packr = new Packr({ useRecords: false });
const CID_PLACEHOLDER = 0xfedcba98;

export function buildTemplates(shape: FrameShape): FrameTemplate[] {
  const { batch, payloadBytes, keys, topic } = shape;
  const typeOf = shape.typeOf ?? (() => "bench.event");
  if (payloadBytes < 8) throw new Error("--payload must be at least 8 bytes (the send-time stamp)");
  // Enough templates that the keys cycle through their whole range.
  const count = Math.max(1, Math.min(1024, Math.ceil(keys / batch)));
  const templates: FrameTemplate[] = [];
  let n = 0;
  for (let f = 0; f < count; f++) {
    const events = [];
    for (let i = 0; i < batch; i++, n++) {
      const data = new Uint8Array(payloadBytes).fill(120);
      // A unique marker where the stamp goes, so its offset can be found in the encoded frame.
      new DataView(data.buffer).setFloat64(0, 1e15 + n);
      events.push({ type: typeOf(n), key: `k${n % keys}`, data });
    }
    const frame = batch === 1 ? { t: 10, cid: CID_PLACEHOLDER, topic, event: events[0] } : { t: 11, cid: CID_PLACEHOLDER, topic, events };
    const bytes = new Uint8Array(packr.pack(frame));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const cidAt = findUint32(bytes, CID_PLACEHOLDER);
    const stampsAt = events.map((e) => indexOf(bytes, (e.data as Uint8Array).subarray(0, 8)));
    templates.push({ bytes, view, cidAt, stampsAt });
  }
  return templates;
}

/** Writes the correlation id and the intended send time (epoch ms) into a template, in place. */
export function stamp(t: FrameTemplate, cid: number, sendAtEpochMs: number): Uint8Array {
  t.view.setUint32(t.cidAt, cid);
  for (const at of t.stampsAt) t.view.setFloat64(at, sendAtEpochMs);
  return t.bytes;
}

/** The send-time stamp at the start of an event's data, as written by `stamp`. */
export function readStamp(data: Uint8Array): number {
  return data.byteLength >= 8 ? new DataView(data.buffer, data.byteOffset, 8).getFloat64(0) : Number.NaN;
}

function findUint32(bytes: Uint8Array, value: number): number {
  const needle = new Uint8Array(4);
  new DataView(needle.buffer).setUint32(0, value);
  return indexOf(bytes, needle);
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  const at = Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength));
  if (at < 0) throw new Error("frame template marker not found");
  return at;
}
