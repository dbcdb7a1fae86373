/**
 * The `ack` frame in msgpack, {t, cid, id, topic, partition, offset}, written straight into its
 * bytes: at one event per frame it is the reply to nearly every frame, and msgpackr's pack (an
 * object per ack, its buffer management) was 9% of the gateway's profile. Byte for byte what
 * encodeFrame writes for the same object (test/fuzz/ack-frame.test.ts): a map 16, keys as fixstr,
 * integers in their smallest msgpack form up to 32 bits and float64 past them, as msgpackr writes
 * numbers, strings as str of their UTF-8 length (codec.ts packString).
 */
import { packPart, packString } from "./codec";
import { FrameType } from "./frame-types";

const HEAD = Uint8Array.from([0xde, 0, 6, ...packPart("t"), ...packPart(FrameType.ACK), ...packPart("cid")]);
const KEY_ID = packPart("id");
const KEY_TOPIC = packPart("topic");
const KEY_PARTITION = packPart("partition");
const KEY_OFFSET = packPart("offset");

// The last topic's bytes: a connection publishes to few topics, usually one.
let lastTopic = "";
let lastTopicBytes: Uint8Array = packPart("");

/**
 * Each part is measured first and written once into a buffer of exactly its size: Buffer's subarray
 * of a larger one was 4% of the gateway's profile at one event per frame, and the parts' own
 * buffers (the id's, Buffer#set of a few bytes) as much again.
 */
export function ackFrameMsgpack(cid: number, id: string, topic: string, partition: number, offset: number): Uint8Array {
  if (topic !== lastTopic) {
    lastTopicBytes = packPart(topic);
    lastTopic = topic;
  }
  // An id is nearly always ASCII of at most 255 characters (a UUID): written in place; else packed.
  const n = id.length;
  let idBytes: Uint8Array | null = null;
  if (n > 255) idBytes = packString(id);
  else
    for (let i = 0; i < n; i++)
      if (id.charCodeAt(i) >= 0x80) {
        idBytes = packString(id);
        break;
      }
  const idSize = idBytes !== null ? idBytes.length : n < 32 ? 1 + n : 2 + n;
  const size = HEAD.length + numberSize(cid) + KEY_ID.length + idSize + KEY_TOPIC.length + lastTopicBytes.length + KEY_PARTITION.length + numberSize(partition) + KEY_OFFSET.length + numberSize(offset);
  const out = new Uint8Array(size);
  let p = copy(out, HEAD, 0);
  p = writeNumber(out, p, cid);
  p = copy(out, KEY_ID, p);
  if (idBytes !== null) p = copy(out, idBytes, p);
  else {
    if (n < 32) out[p++] = 0xa0 | n;
    else (out[p++] = 0xd9), (out[p++] = n);
    for (let i = 0; i < n; i++) out[p++] = id.charCodeAt(i);
  }
  p = copy(out, KEY_TOPIC, p);
  p = copy(out, lastTopicBytes, p);
  p = copy(out, KEY_PARTITION, p);
  p = writeNumber(out, p, partition);
  p = copy(out, KEY_OFFSET, p);
  writeNumber(out, p, offset);
  return out;
}

/** A few bytes, by a loop: TypedArray#set costs more than it copies at these sizes. */
function copy(dst: Uint8Array, src: Uint8Array, at: number): number {
  for (let i = 0; i < src.length; i++) dst[at + i] = src[i]!;
  return at + src.length;
}

/** The bytes writeNumber takes for `v`. */
function numberSize(v: number): number {
  if (v >>> 0 === v) return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 5;
  if (v >> 0 === v) return v >= -0x20 ? 1 : v >= -0x80 ? 2 : v >= -0x8000 ? 3 : 5;
  return 9;
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** A number as msgpackr writes it (useRecords off): the smallest int up to 32 bits, else float64; big-endian. */
function writeNumber(out: Uint8Array, p: number, v: number): number {
  if (v >>> 0 === v) {
    if (v < 0x80) out[p++] = v;
    else if (v < 0x100) (out[p++] = 0xcc), (out[p++] = v);
    else if (v < 0x10000) (out[p++] = 0xcd), (out[p++] = v >>> 8), (out[p++] = v & 0xff);
    else (out[p++] = 0xce), (p = be32(out, p, v));
  } else if (v >> 0 === v) {
    if (v >= -0x20) out[p++] = 0x100 + v;
    else if (v >= -0x80) (out[p++] = 0xd0), (out[p++] = v + 0x100);
    else if (v >= -0x8000) (out[p++] = 0xd1), (out[p++] = (v >> 8) & 0xff), (out[p++] = v & 0xff);
    else (out[p++] = 0xd2), (p = be32(out, p, v));
  } else {
    out[p++] = 0xcb;
    f64[0] = v;
    for (let i = 0; i < 8; i++) out[p++] = f64Bytes[littleEndian ? 7 - i : i]!;
  }
  return p;
}

function be32(out: Uint8Array, p: number, v: number): number {
  out[p] = (v >>> 24) & 0xff;
  out[p + 1] = (v >>> 16) & 0xff;
  out[p + 2] = (v >>> 8) & 0xff;
  out[p + 3] = v & 0xff;
  return p + 4;
}
