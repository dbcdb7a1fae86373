/**
 * Event frames (`event`, `event_batch`) spliced from entries encoded once per record.
 *
 * A record matched by many subscriptions used to be encoded in full for each (its frame differs only
 * in `sub` and `token`): 100 subscribers of 200 KB events encoded 600 MB a second, and the garbage
 * kept the gateway's memory at 500–700 MB where 100 MB was live (hostile tester). Now each record's
 * entry (`{topic, partition, offset, event}`, or its degraded form) is encoded once per codec, and
 * each subscription's frame is that entry with its own few fields around it.
 *
 * The frames are byte for byte what encodeFrame writes for the same object, with keys in the same
 * order (test/fuzz/event-frames.test.ts):
 *   event:       {t, sub, topic, partition, offset, event[, degraded, reason][, token]}
 *   event_batch: {t, sub, events: [{topic, partition, offset, event[, degraded, reason]}…][, token]}
 */
import { copyBytes } from "../bytes/utf8";
import { type CodecName, encodeFrame, packedStringSize, packPart, packString } from "./codec";
import { FrameType } from "./frame-types";

// A msgpack map 16's header: 0xde, then its field count (u16, big-endian).
const ENTRY_HEADER = 3;

/** One record's entry of an event frame in one codec: a msgpack map, or a JSON object's text. */
export type EncodedEntry = Uint8Array | string;

/** Encodes an entry; throws as encodeFrame does for a value the codec cannot hold. */
export function encodeEntry(entry: Record<string, unknown>, codec: CodecName): EncodedEntry {
  const encoded = encodeFrame(entry, codec);
  // A single event's entry is spliced into the frame's own map: its header must be the map 16 that
  // msgpackr writes for every object (its fields follow at ENTRY_HEADER).
  if (typeof encoded !== "string" && encoded[0] !== 0xde) throw new RangeError("an event entry that is not a map 16");
  return encoded;
}

/** The frame carrying `entries` (encoded in `codec`) to subscription `sub`; `token` when it has one. */
export function eventFrame(codec: CodecName, sub: string, entries: readonly EncodedEntry[], token: string | undefined): Uint8Array | string {
  return codec === "json" ? jsonFrame(sub, entries as readonly string[], token) : msgpackFrame(sub, entries as readonly Uint8Array[], token);
}

/**
 * The size in bytes eventFrame's frame will have (JSON text in UTF-8, as the socket sends it),
 * without building it: a subscription queues its frame as the entries it shares with every other
 * subscriber, and builds it only when its socket takes it.
 */
export function eventFrameSize(codec: CodecName, sub: string, entries: readonly EncodedEntry[], token: string | undefined): number {
  // Measured, not packed: a frame is sized when queued and built when its socket takes it, and
  // packing here too cost each frame its `sub` twice and the token cache its hits.
  return codec === "json" ? jsonFrameSize(sub, entries as readonly string[], token) : msgpackFrameSize(packedStringSize(sub), entries as readonly Uint8Array[], token ? packedStringSize(token) : 0);
}

const jsonTail = (token: string | undefined) => (token ? `,"token":${JSON.stringify(token)}}` : "}");

// The last JSON frame built, and what it was built of. Subscribers of one filter get the same token
// after each batch, and clients number their subscriptions alike (the SDK's first is always the
// same id), so a fan-out's frames are mostly one frame: built once it is one string, made flat
// (a frame is built as a rope) the first time a socket takes it, where each subscriber's own rope was
// a copy of its size, garbage once sent (30 non-reading subscribers of a 5.4 MB frame: 160 MB a
// record, and every other client's acks waited out the collections: outside tester).
let lastJson: { sub: string; token: string | undefined; entries: readonly string[]; frame: string } | null = null;

function jsonFrame(sub: string, entries: readonly string[], token: string | undefined): string {
  const last = lastJson;
  if (last !== null && last.sub === sub && last.token === token && sameEntries(last.entries, entries)) return last.frame;
  const frame = buildJsonFrame(sub, entries, token);
  lastJson = { sub, token, entries, frame };
  return frame;
}

function sameEntries(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function buildJsonFrame(sub: string, entries: readonly string[], token: string | undefined): string {
  const tail = jsonTail(token);
  if (entries.length === 1) return `{"t":${FrameType.EVENT},"sub":${JSON.stringify(sub)},${entries[0]!.slice(1, -1)}${tail}`;
  // Concatenated, not joined: join() copied the entries into a buffer of its own per frame, with
  // slack (400 non-reading JSON subscribers held 1.5-2x their queued bytes when frames were built
  // at once); the socket flattens the rope as it sends it.
  let events = entries[0]!;
  for (let i = 1; i < entries.length; i++) events = events + "," + entries[i]!;
  return `{"t":${FrameType.EVENT_BATCH},"sub":${JSON.stringify(sub)},"events":[${events}]${tail}`;
}

/**
 * jsonFrame's size in UTF-8 bytes, what the socket sends, its parts counted as it writes them: in
 * UTF-16 units, a subscriber of CJK events held three times its buffer bounds.
 */
function jsonFrameSize(sub: string, entries: readonly string[], token: string | undefined): number {
  const tail = Buffer.byteLength(jsonTail(token));
  const subText = Buffer.byteLength(JSON.stringify(sub));
  if (entries.length === 1) return `{"t":${FrameType.EVENT},"sub":`.length + subText + 1 + Buffer.byteLength(entries[0]!) - 2 + tail;
  let events = entries.length - 1;
  for (const e of entries) events += Buffer.byteLength(e);
  return `{"t":${FrameType.EVENT_BATCH},"sub":`.length + subText + `,"events":[`.length + events + 1 + tail;
}

const KEY_T = packPart("t");
const KEY_SUB = packPart("sub");
const KEY_EVENTS = packPart("events");
const KEY_TOKEN = packPart("token");
const T_EVENT = packPart(FrameType.EVENT);
const T_EVENT_BATCH = packPart(FrameType.EVENT_BATCH);

// The last token packed: every subscription of a feed under one filter carries the same token after
// each batch (src/subscribe/position.ts), so 1,000 subscribers' frames pack it once. msgpackr never
// writes over what it returned (it moves to a new buffer when its own runs short), so it is kept.
let lastToken = "";
let lastTokenBytes: Uint8Array = packPart("");

function packedToken(token: string): Uint8Array {
  if (token !== lastToken) {
    lastTokenBytes = packPart(token);
    lastToken = token;
  }
  return lastTokenBytes;
}

/** msgpackFrame's size: the one place its layout's length is counted, for the frame and for eventFrameSize. */
function msgpackFrameSize(subBytes: number, entries: readonly Uint8Array[], tokenBytes: number): number {
  const single = entries.length === 1;
  let size = ENTRY_HEADER + KEY_T.length + (single ? T_EVENT : T_EVENT_BATCH).length + KEY_SUB.length + subBytes;
  if (tokenBytes > 0) size += KEY_TOKEN.length + tokenBytes;
  if (single) size += entries[0]!.length - ENTRY_HEADER;
  else {
    size += KEY_EVENTS.length + arrayHeaderSize(entries.length);
    for (const e of entries) size += e.length;
  }
  return size;
}

function msgpackFrame(sub: string, entries: readonly Uint8Array[], token: string | undefined): Uint8Array {
  const subBytes = packString(sub);
  const tokenBytes = token ? packedToken(token) : null;
  const single = entries.length === 1;
  const n = entries.length;
  const out = Buffer.allocUnsafe(msgpackFrameSize(subBytes.length, entries, tokenBytes ? tokenBytes.length : 0));
  let p = 0;
  const put = (b: Uint8Array, from = 0) => {
    copyBytes(out, p, from === 0 ? b : b.subarray(from));
    p += b.length - from;
  };
  // The frame's map (a map 16, as msgpackr writes every object): t, sub, then the single entry's own
  // fields (or events), then token.
  const fields = (single ? 2 + ((entries[0]![1]! << 8) | entries[0]![2]!) : 3) + (tokenBytes ? 1 : 0);
  out[p++] = 0xde;
  p = out.writeUInt16BE(fields, p);
  put(KEY_T);
  put(single ? T_EVENT : T_EVENT_BATCH);
  put(KEY_SUB);
  put(subBytes);
  if (single) put(entries[0]!, ENTRY_HEADER);
  else {
    put(KEY_EVENTS);
    if (n < 16) out[p++] = 0x90 | n;
    else if (n < 0x10000) {
      out[p++] = 0xdc;
      p = out.writeUInt16BE(n, p);
    } else {
      out[p++] = 0xdd;
      p = out.writeUInt32BE(n, p);
    }
    for (const e of entries) put(e);
  }
  if (tokenBytes) {
    put(KEY_TOKEN);
    put(tokenBytes);
  }
  return out;
}

function arrayHeaderSize(n: number): number {
  return n < 16 ? 1 : n < 0x10000 ? 3 : 5;
}
