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

// Largest a number takes (float64).
const NUMBER_MAX = 9;

export function ackFrameMsgpack(cid: number, id: string, topic: string, partition: number, offset: number): Uint8Array {
  if (topic !== lastTopic) {
    lastTopicBytes = packPart(topic);
    lastTopic = topic;
  }
  const idBytes = packString(id);
  const size = HEAD.length + NUMBER_MAX + KEY_ID.length + idBytes.length + KEY_TOPIC.length + lastTopicBytes.length + KEY_PARTITION.length + NUMBER_MAX + KEY_OFFSET.length + NUMBER_MAX;
  const out = Buffer.allocUnsafe(size);
  out.set(HEAD, 0);
  let p = writeNumber(out, HEAD.length, cid);
  out.set(KEY_ID, p);
  p += KEY_ID.length;
  out.set(idBytes, p);
  p += idBytes.length;
  out.set(KEY_TOPIC, p);
  p += KEY_TOPIC.length;
  out.set(lastTopicBytes, p);
  p += lastTopicBytes.length;
  out.set(KEY_PARTITION, p);
  p = writeNumber(out, p + KEY_PARTITION.length, partition);
  out.set(KEY_OFFSET, p);
  p = writeNumber(out, p + KEY_OFFSET.length, offset);
  return out.subarray(0, p);
}

/** A number as msgpackr writes it (useRecords off): the smallest int up to 32 bits, else float64. */
function writeNumber(out: Buffer, p: number, v: number): number {
  if (v >>> 0 === v) {
    if (v < 0x80) out[p++] = v;
    else if (v < 0x100) (out[p++] = 0xcc), (out[p++] = v);
    else if (v < 0x10000) (out[p++] = 0xcd), (p = out.writeUInt16BE(v, p));
    else (out[p++] = 0xce), (p = out.writeUInt32BE(v, p));
  } else if (v >> 0 === v) {
    if (v >= -0x20) out[p++] = 0x100 + v;
    else if (v >= -0x80) (out[p++] = 0xd0), (out[p++] = v + 0x100);
    else if (v >= -0x8000) (out[p++] = 0xd1), (p = out.writeInt16BE(v, p));
    else (out[p++] = 0xd2), (p = out.writeInt32BE(v, p));
  } else (out[p++] = 0xcb), (p = out.writeDoubleBE(v, p));
  return p;
}
