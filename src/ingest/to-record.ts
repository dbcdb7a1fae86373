import { type CodecName, encodeValue, mediaTypes } from "../protocol/codec";
import { GatewayError } from "../protocol/errors";
import type { Envelope } from "../protocol/frames";
import type { LogRecord } from "../log/event-log";
import { eventTimeMs } from "./event-limits";

/**
 * Maps an envelope onto a Kafka record in CloudEvents' Kafka binding, binary content mode: the
 * attributes become `ce_*` headers, `datacontenttype` becomes `content-type`, and the value is the
 * payload alone. Any Kafka consumer, in any language, can read it without knowing this gateway.
 *
 * Byte payloads go through untouched. Structured payloads are written in the codec they arrived in
 * (msgpack or JSON), and `content-type` says which.
 */
export function toRecord(ev: Envelope, id: string, topic: string, codec: CodecName, defaultSource: string, nowMs: number, author?: string): LogRecord {
  let value: Uint8Array | null = null;
  let contentType: string | undefined;
  if (ev.data_base64 !== undefined) {
    value = Buffer.from(ev.data_base64, "base64");
    contentType = ev.datacontenttype ?? "application/octet-stream";
  } else if (ev.data instanceof Uint8Array) {
    value = ev.data;
    contentType = ev.datacontenttype ?? "application/octet-stream";
  } else if (ev.data !== undefined) {
    contentType = mediaTypes[codec];
    if (ev.datacontenttype !== undefined && ev.datacontenttype !== contentType) {
      throw new GatewayError("INVALID_EVENT", `datacontenttype ${ev.datacontenttype} does not match structured data sent as ${codec}; send the payload as bytes to use another content type`);
    }
    value = encodeValue(ev.data, codec);
  }

  const headers: LogRecord["headers"] = [
    ["ce_specversion", "1.0"],
    ["ce_id", id],
    ["ce_source", ev.source ?? defaultSource],
    ["ce_type", ev.type],
  ];
  // ce_time only when the producer said when: the record timestamp already carries arrival time,
  // and each header costs the Kafka worker about a microsecond per event.
  // The time is already checked (publisher.ts checkTime): a real instant Kafka takes.
  const timestamp = eventTimeMs(ev.time) ?? nowMs;
  if (ev.time !== undefined) headers.push(["ce_time", ev.time instanceof Date ? ev.time.toISOString() : ev.time]);
  if (ev.subject !== undefined) headers.push(["ce_subject", ev.subject]);
  // Who wrote it, with authentication on, in CloudEvents' authcontext extension: the token's subject,
  // of a type the gateway cannot know. Part of the event's identity (event-identity.ts).
  if (author !== undefined) headers.push(["ce_authtype", "unknown"], ["ce_authid", author]);
  if (contentType !== undefined) headers.push(["content-type", contentType]);
  if (ev.headers) for (const name in ev.headers) headers.push([name, ev.headers[name]!]);

  return { topic, key: ev.key ?? null, value, headers, timestamp };
}
