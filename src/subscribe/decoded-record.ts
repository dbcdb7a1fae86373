import { Unpackr } from "msgpackr";
import type { ConsumedRecord } from "../log/event-log";
import { type CodecName, parseJsonValue } from "../protocol/codec";
import { INT64_AUTO, withIntegersAsInt64 } from "../protocol/integers";
import type { FilterableEvent } from "./filter";

// Payloads in Kafka come from anyone; decode them with the same guarded options as client frames,
// integers exact: numbers where a double holds them, BigInt beyond (filters compare both).
const unpackr = new Unpackr({ useRecords: false, structuredClone: false, mapsAsObjects: true, moreTypes: false, ...INT64_AUTO });
const utf8 = new TextDecoder();
const CE_FIELDS: Record<string, keyof FilterableEvent> = {
  ce_id: "id",
  ce_source: "source",
  ce_type: "type",
  ce_subject: "subject",
  "content-type": "datacontenttype",
};

/**
 * One Kafka record, decoded once for every subscriber: CloudEvents headers back into envelope
 * fields (the inverse of ingest/to-record.ts), and the payload parsed only when a filter or a
 * subscriber needs it. Records not written by this gateway still work: missing ce_type reads as "".
 */
export class DecodedRecord implements FilterableEvent {
  type = "";
  id?: string;
  source?: string;
  subject?: string;
  datacontenttype?: string;
  key: string | null;
  headers: Record<string, string> = {};
  private ceTime: string | undefined;
  private decoded = false;
  private decodedData: unknown;
  private wire: Record<string, unknown> | undefined;
  private wireJson: Record<string, unknown> | undefined;

  constructor(readonly record: ConsumedRecord) {
    this.key = record.key ? utf8.decode(record.key) : null;
    for (const [name, value] of record.headers) {
      const field = CE_FIELDS[name];
      if (field) (this as Record<string, unknown>)[field] = utf8.decode(value);
      else if (name === "ce_time") this.ceTime = utf8.decode(value);
      else if (name !== "ce_specversion") this.headers[name] = utf8.decode(value);
    }
  }

  /**
   * ce_time, else the record timestamp (RFC 3339, UTC, milliseconds): the same value for filters
   * and in the delivered envelope, made only when read.
   */
  get time(): string {
    return (this.ceTime ??= new Date(this.record.timestamp).toISOString());
  }

  /** The payload as a value: parsed msgpack or JSON by content type, else the bytes. */
  get data(): unknown {
    if (!this.decoded) {
      this.decoded = true;
      const v = this.record.value;
      if (v === null) this.decodedData = undefined;
      else if (this.datacontenttype === "application/msgpack") this.decodedData = tryDecode(() => unpackr.unpack(v), v);
      else if (this.datacontenttype === "application/json") this.decodedData = tryDecode(() => parseJsonValue(utf8.decode(v)), v);
      else this.decodedData = v;
    }
    return this.decodedData;
  }

  /** The envelope as subscribers receive it, built once per codec. */
  event(codec: CodecName): Record<string, unknown> {
    if (codec === "msgpack") return (this.wire ??= this.build(false));
    return (this.wireJson ??= this.build(true));
  }

  private build(json: boolean): Record<string, unknown> {
    const e: Record<string, unknown> = { type: this.type };
    if (this.id !== undefined) e.id = this.id;
    if (this.source !== undefined) e.source = this.source;
    if (this.subject !== undefined) e.subject = this.subject;
    e.time = this.time;
    if (this.datacontenttype !== undefined) e.datacontenttype = this.datacontenttype;
    if (this.key !== null) e.key = this.key;
    if (Object.keys(this.headers).length > 0) e.headers = this.headers;
    const data = this.data;
    if (data instanceof Uint8Array) {
      if (json) e.data_base64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
      else e.data = data;
    } else if (data !== undefined) e.data = json ? data : withIntegersAsInt64(data);
    return e;
  }
}

function tryDecode(f: () => unknown, raw: Uint8Array): unknown {
  try {
    return f();
  } catch {
    return raw; // not what its content type says: hand over the bytes rather than drop the event
  }
}
