import { type ConsumedRecord, MAX_HEADER_NAMES } from "../log/event-log";
import { type CodecName, encodeFrame } from "../protocol/codec";
import { GatewayError } from "../protocol/errors";
import { parseJsonValue } from "../protocol/json-exact";
import { payloadEncoding } from "../protocol/media-types";
import { type EncodedEntry, encodeEntry } from "../protocol/event-frames";
import type { Degraded } from "../protocol/frames";
import { NON_FINITE, type ScanLimits, prescanMsgpack } from "../protocol/msgpack-scan";
import { ownKeysUnpacker } from "../protocol/own-keys";
import { INT64_AUTO, withIntegersAsInt64 } from "../protocol/integers";
import type { FilterableEvent } from "./filter";
import { utf8Text } from "../bytes/utf8";

// Payloads in Kafka come from anyone; decode them with the same guarded options as client frames,
// integers exact: numbers where a double holds them, BigInt beyond (filters compare both).
const unpack = ownKeysUnpacker({ useRecords: false, structuredClone: false, moreTypes: false, ...INT64_AUTO });
/**
 * Deeper than any frame can be (MAX_DEPTH is at most 256), so not written by this gateway. JSON.parse
 * builds any depth without complaint, but every encoder after it recurses, and at 100,000 levels
 * each attempt costs seconds of stack overflow: such a payload goes out as its bytes instead.
 */
export const MAX_DATA_DEPTH = 256;

// Exact: a leading U+FEFF is part of a key, a type or a header value (a default TextDecoder drops
// it, so `type: "\uFEFFa"` was delivered as "a" and matched the filter for "a").
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
// What a msgpack payload must be to be decoded, as for a client's frame (0xc1, ext types but the
// timestamp, invalid UTF-8, trailing bytes refused): msgpackr read the single byte 0xc1 as its own
// marker object, {"name":"MessagePack 0xC1"}, and delivered that as the data (hostile tester).
// Sizes are the producer's business: only nesting is bounded, as for JSON (MAX_DATA_DEPTH).
// A NaN or ±Infinity is refused too (NON_FINITE), and the payload goes degraded: JSON subscribers
// would get null for it without a word.
const PAYLOAD_SCAN = { maxDepth: MAX_DATA_DEPTH, maxMapKeys: Number.MAX_SAFE_INTEGER, maxEventValues: Number.MAX_SAFE_INTEGER };

/**
 * What a payload may hold to be decoded for subscribers. Decoding and encoding again cost about a
 * microsecond per value, in one piece no delivery turn can cut: one record of 900,000 zeros that
 * another producer wrote (under Kafka's 1 MB) held every client of the gateway for 0.3-1.4 s. A
 * payload over the bound goes as its stored bytes, `degraded: "data"` (docs/protocol.md).
 */
export interface PayloadLimits {
  /** Values in one payload, counted as MAX_EVENT_VALUES counts a client's event. */
  readonly maxValues: number;
  /** The msgpack pre-scan's limits for a payload (PAYLOAD_SCAN and maxValues), made once. */
  readonly scan: ScanLimits;
}

/** The bounds for payloads of `maxValues` values at most: made once per configuration, not per record. */
export function payloadLimits(maxValues: number): PayloadLimits {
  return { maxValues, scan: { ...PAYLOAD_SCAN, maxValues } };
}
const UNBOUNDED = payloadLimits(Number.MAX_SAFE_INTEGER);
// JSON text that may hold what neither codec carries as it is: an escaped surrogate (alone, it is
// not Unicode: msgpack's str must be UTF-8), or a number long enough to pass a double's range (1e400
// parses to Infinity, which JSON writes as null). Only text that matches is walked to see. Three
// tests, not one alternation: on 350 KB of numbers the alternation took 1.8 ms, longer than the
// parse, and these 0.1 ms (0.3 ms on 425 KB of English text, where every "e" is a candidate).
const ESCAPED_SURROGATE = /\\u[dD][89a-fA-F]/;
const LONG_EXPONENT = /[eE][+-]?\d{3}/;
const LONG_MANTISSA = /\d{309}/;
const mayBeUnfaithful = (text: string) => ESCAPED_SURROGATE.test(text) || LONG_EXPONENT.test(text) || LONG_MANTISSA.test(text);
// JSON text may begin with a byte order mark, which a parser may ignore (RFC 8259, 8.1).
const jsonUtf8 = new TextDecoder("utf-8", { fatal: true });

// A Map, not an object literal: header names come from any producer, and "constructor" or
// "toString" must not find Object.prototype's members.
const CE_FIELDS = new Map<string, "id" | "source" | "type" | "subject" | "datacontenttype">([
  ["ce_id", "id"],
  ["ce_source", "source"],
  ["ce_type", "type"],
  ["ce_subject", "subject"],
  ["content-type", "datacontenttype"],
]);

/**
 * The longest value of each envelope field that filters match patterns against: what a client's
 * event may hold there (docs/protocol.md). Another producer's record may hold anything: a ce_source
 * of 900 KB matched against every source pattern of every filter cost 5-6 s a record, in one piece
 * of work (outside tester). A longer value is absent for filters, and delivered as written.
 */
export const MATCHED_LENGTH: ReadonlyMap<string, number> = new Map([
  ["type", 256],
  ["source", 1024],
  ["subject", 1024],
]);

/** What a subscriber gets for one record: the envelope, and when it had to be degraded, why and how. */
export interface DeliveredEvent {
  event: Record<string, unknown>;
  /** "data": the payload as stored bytes; "headers": that, and only MAX_HEADER_NAMES of the headers; "event": only the envelope's text fields. */
  degraded?: Degraded;
  /** Why the full event could not be encoded. */
  reason?: string;
}

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
  /** The key as text for filters; not UTF-8, it is delivered as `keyBytes` (and filters see it decoded leniently). */
  key: string | null;
  private keyBytes: Uint8Array | null = null;
  /**
   * Without a prototype: any name is a header ("__proto__" too), and no inherited name is one. As
   * text, for filters; values that are not UTF-8 are delivered from `binaryHeaders`.
   */
  headers: Record<string, string> = Object.create(null);
  private binaryHeaders: Record<string, Uint8Array> | null = null;
  private headerCount = 0;
  private readonly delivered: Partial<Record<CodecName, DeliveredEvent>> = {};
  private readonly entries: Partial<Record<CodecName, EncodedEntry>> = {};
  private ceTime: string | undefined;
  private decoded = false;
  private decodedData: unknown;
  /** A JSON payload's text, kept when it parsed: spliced into JSON entries as it is (jsonEntry). */
  private jsonText: string | undefined;
  private wire: Record<string, unknown> | undefined;
  private wireJson: Record<string, unknown> | undefined;

  /** Envelope fields longer than MATCHED_LENGTH: absent for filters, delivered as written. */
  private overLong: Partial<Record<"id" | "source" | "type" | "subject" | "datacontenttype", string>> | null = null;
  /** Why the payload, which parsed, is delivered as its bytes (degraded "data"); null when it is not. */
  private unfaithful: string | null = null;
  /** The record has more headers than MAX_HEADER_NAMES: only those are kept, and it goes degraded "headers". */
  private headersCut = false;

  constructor(
    readonly record: ConsumedRecord,
    private readonly limits: PayloadLimits = UNBOUNDED,
  ) {
    if (record.key) {
      this.key = utf8Text(record.key);
      if (this.key === null) {
        this.keyBytes = record.key;
        this.key = utf8.decode(record.key);
      }
    } else this.key = null;
    // Names past MAX_HEADER_NAMES the worker did not carry: degraded "headers", as if cut here.
    if (record.headersLeftOut) this.headersCut = true;
    for (const [name, value] of record.headers) {
      const field = CE_FIELDS.get(name);
      if (field) {
        const text = utf8.decode(value);
        const most = MATCHED_LENGTH.get(field);
        if (most !== undefined && text.length > most) {
          // Filters see it as absent; subscribers get it as written (textFields).
          (this.overLong ??= {})[field] = text;
          if (field === "type") this.type = "";
          else this[field] = undefined;
        } else {
          this[field] = text;
          if (this.overLong) delete this.overLong[field]; // a later header of the name wins
        }
      }
      else if (name === "ce_time") this.ceTime = utf8.decode(value);
      else if (name !== "ce_specversion") {
        if (!Object.hasOwn(this.headers, name)) {
          // Kept only up to what the degraded form keeps: building and trying to encode 70,000
          // headers, three times over, held every other client for over a second (hostile tester).
          if (this.headerCount >= MAX_HEADER_NAMES) {
            this.headersCut = true;
            continue;
          }
          this.headerCount++;
        }
        const text = utf8Text(value);
        if (text === null) (this.binaryHeaders ??= Object.create(null) as Record<string, Uint8Array>)[name] = value;
        else if (this.binaryHeaders !== null) delete this.binaryHeaders[name]; // a later header of the same name wins
        this.headers[name] = text ?? utf8.decode(value);
      }
    }
  }

  /**
   * ce_time, else the record timestamp (RFC 3339, UTC, milliseconds): the same value for filters
   * and in the delivered envelope, made only when read. Undefined for a record with neither (Kafka's
   * -1), or whose timestamp is past year 9999: "9000000000000000" was delivered, not RFC 3339.
   */
  get time(): string | undefined {
    return (this.ceTime ??= isoTime(this.record.timestamp));
  }

  /** The payload as a value: parsed msgpack or JSON by content type, else the bytes. */
  get data(): unknown {
    if (!this.decoded) {
      this.decoded = true;
      const v = this.record.value;
      const encoding = v === null ? null : payloadEncoding(this.datacontenttype);
      if (v === null) this.decodedData = undefined;
      else if (encoding === "msgpack") {
        this.decodedData = v;
        try {
          prescanMsgpack(v, this.limits.scan);
          this.decodedData = unpack(v);
        } catch (e) {
          // Not what its content type says: the bytes rather than nothing. Too many values: the bytes, said so.
          if (e instanceof GatewayError && e.code === "EVENT_TOO_LARGE") this.unfaithful = e.message;
          else if (e instanceof GatewayError && e.message === NON_FINITE) this.unfaithful = "a number that is NaN or ±Infinity, which JSON cannot carry";
        }
      }
      // JSON text is UTF-8 (RFC 8259): bytes that are not are not JSON, and go as they are rather
      // than with each bad byte replaced, which would change the data without saying so.
      else if (encoding === "json") {
        this.decodedData = v;
        const shape = jsonShape(v, this.limits.maxValues);
        if (shape === "values") this.unfaithful = `a payload of more than ${this.limits.maxValues} values (MAX_EVENT_VALUES)`;
        else if (shape === null) {
          try {
            const text = jsonUtf8.decode(v);
            const parsed = parseJsonValue(text);
            this.unfaithful = mayBeUnfaithful(text) ? unfaithfulIn(parsed) : null;
            if (this.unfaithful === null) {
              this.decodedData = parsed;
              this.jsonText = text;
            }
          } catch (e) {
            // Not JSON, or not UTF-8: delivered as its bytes. An integer too long to read: the bytes, said so.
            if (e instanceof GatewayError && e.code === "EVENT_TOO_LARGE") this.unfaithful = e.message;
          }
        }
      } else this.decodedData = v;
    }
    return this.decodedData;
  }

  /** The envelope as subscribers receive it, built once per codec. */
  event(codec: CodecName): Record<string, unknown> {
    if (codec === "msgpack") return (this.wire ??= this.build(false));
    return (this.wireJson ??= this.build(true));
  }

  /**
   * Its entry of an event frame in `codec` (protocol/event-frames.ts), encoded once for every
   * subscription it goes to: the event whole, or degraded as deliverable() says when it cannot be
   * encoded whole, so one record that cannot be encoded costs only itself.
   */
  entry(codec: CodecName): EncodedEntry {
    const cached = this.entries[codec];
    if (cached !== undefined) return cached;
    const r = this.record;
    let encoded: EncodedEntry | null = codec === "json" ? this.jsonEntry() : this.msgpackEntry();
    if (encoded !== null) return (this.entries[codec] = encoded);
    try {
      encoded = encodeEntry({ topic: r.topic, partition: r.partition, offset: r.offset, event: this.event(codec) }, codec);
    } catch {
      encoded = encodeEntry({ topic: r.topic, partition: r.partition, offset: r.offset, ...this.deliverable(codec) }, codec);
    }
    return (this.entries[codec] = encoded);
  }

  /**
   * The JSON entry with a JSON payload's own text as `data`, rather than its parsed value written
   * out again: JSON.stringify of 200 KB payloads was a quarter of the gateway's time delivering
   * replays of them. The text parsed (it is JSON, and UTF-8) and nests within MAX_DATA_DEPTH, so the
   * subscriber parses the same value from it; it is as its producer wrote it, so `1.0`, `-0` and
   * integers past 2^53 keep their spelling, and of duplicate keys a parser keeps the last as ours did
   * (test/fuzz/event-frames.test.ts). Text with a line break is written out again instead: it would
   * end an SSE `data:` line. `data` is the envelope's last field (build), so it goes before the
   * closing braces of the event and the entry. Null when the payload is not such text.
   */
  private jsonEntry(): string | null {
    const v = this.record.value;
    if (payloadEncoding(this.datacontenttype) !== "json" || v === null) return null;
    void this.data; // parses the payload, keeping its text when it is JSON
    const text = this.jsonText;
    if (text === undefined || this.headersCut || v.indexOf(0x0a) >= 0 || v.indexOf(0x0d) >= 0) return null;
    const r = this.record;
    const head = encodeEntry({ topic: r.topic, partition: r.partition, offset: r.offset, event: this.build(true, false, Infinity, false) }, "json") as string;
    return `${head.slice(0, -2)},"data":${text.trim()}}}`;
  }

  /**
   * The msgpack entry with a msgpack payload's own bytes as `data`, rather than its value decoded and
   * packed again: that was a third of the gateway's time delivering replays of 1 KB events. The bytes
   * pass the scan every payload is decoded behind (prescanMsgpack: one whole value, no ext but the
   * timestamp, UTF-8 strings, string or integer keys, within MAX_DEPTH, MAX_MAP_KEYS and
   * MAX_EVENT_VALUES, no NaN or ±Infinity) and hold no "__proto__" key, so a subscriber decodes from
   * them the value it would decode from the value packed again (test/fuzz/msgpack-entry.test.ts),
   * and they are as their producer wrote them: integers keep their width, -0 its sign. `data` is the
   * envelope's last field and the event the entry's: packed with `data` nil, the entry ends in that
   * nil's one byte (0xc0), which the payload's bytes take the place of. Null when the payload is not
   * such bytes; the entry is then encoded whole.
   */
  private msgpackEntry(): Uint8Array | null {
    const v = this.record.value;
    if (v === null || this.headersCut || (this.decoded && this.unfaithful !== null) || payloadEncoding(this.datacontenttype) !== "msgpack") return null;
    try {
      if (prescanMsgpack(v, this.limits.scan)) return null;
      const r = this.record;
      const event = this.build(false, false, Infinity, false);
      event.data = null;
      const head = encodeEntry({ topic: r.topic, partition: r.partition, offset: r.offset, event }, "msgpack") as Uint8Array;
      if (head[head.length - 1] !== 0xc0) return null;
      const out = new Uint8Array(head.length - 1 + v.length);
      out.set(head.subarray(0, head.length - 1), 0);
      out.set(v, head.length - 1);
      return out;
    } catch {
      return null;
    }
  }

  /**
   * The envelope as it can be delivered in `codec`: whole when it encodes, else degraded step by
   * step (payload as its stored bytes, then headers cut to MAX_HEADER_NAMES, then the text
   * fields alone), so one record that cannot be encoded costs only itself. Only asked when the
   * frame carrying the record failed to encode: the common case never encodes an event twice.
   */
  deliverable(codec: CodecName): DeliveredEvent {
    const cached = this.delivered[codec];
    if (cached) return cached;
    const json = codec === "json";
    let reason = "";
    const attempt = (make: () => Record<string, unknown>): Record<string, unknown> | null => {
      try {
        const event = make();
        encodeFrame(event, codec);
        return event;
      } catch (e) {
        reason ||= String((e as Error)?.message ?? e);
        return null;
      }
    };
    let out: DeliveredEvent;
    let event = attempt(() => this.event(codec));
    if (event) out = { event };
    else if ((event = attempt(() => this.build(json, true, Infinity)))) out = { event, degraded: "data", reason };
    else if ((event = attempt(() => this.build(json, true, MAX_HEADER_NAMES)))) out = { event, degraded: "headers", reason };
    else out = { event: this.textFields(), degraded: "event", reason };
    return (this.delivered[codec] = out);
  }

  /** `raw`: the payload as stored, not decoded; `maxHeaders`: how many headers to keep; `withData`: false leaves the payload out. */
  private build(json: boolean, raw = false, maxHeaders = Infinity, withData = true): Record<string, unknown> {
    if (this.headersCut && maxHeaders > MAX_HEADER_NAMES) throw new Error(`more than ${MAX_HEADER_NAMES} headers`);
    const e = this.textFields();
    if (this.keyBytes !== null) {
      if (json) e.key_base64 = base64(this.keyBytes);
      else e.key = this.keyBytes;
    } else if (this.key !== null) e.key = this.key;
    if (this.headerCount > 0) {
      const headers = this.headerCount <= maxHeaders ? this.headers : firstHeaders(this.headers, maxHeaders);
      if (this.binaryHeaders === null) e.headers = headers;
      else Object.assign(e, withBinaryHeaders(headers, this.binaryHeaders, json));
    }
    if (!withData) return e;
    const data = raw ? (this.record.value ?? undefined) : this.data;
    // Whole, it would not be what was written: deliverable() sends the bytes, degraded and said why.
    if (!raw && this.unfaithful !== null) throw new Error(this.unfaithful);
    if (data instanceof Uint8Array) {
      if (json) e.data_base64 = base64(data);
      else e.data = data;
    } else if (data !== undefined) e.data = json ? data : withIntegersAsInt64(data);
    return e;
  }

  private textFields(): Record<string, unknown> {
    const long = this.overLong;
    const e: Record<string, unknown> = { type: long?.type ?? this.type };
    if (this.id !== undefined) e.id = this.id;
    const source = long?.source ?? this.source;
    if (source !== undefined) e.source = source;
    const subject = long?.subject ?? this.subject;
    if (subject !== undefined) e.subject = subject;
    const time = this.time;
    if (time !== undefined) e.time = time;
    if (this.datacontenttype !== undefined) e.datacontenttype = this.datacontenttype;
    return e;
  }
}

const base64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");

/**
 * `headers` (text) with the values that are not UTF-8 as bytes: in place for msgpack; for JSON, which
 * has no bytes, in `headers_base64` beside the text ones (as `data_base64` is beside `data`).
 */
function withBinaryHeaders(headers: Record<string, string>, binary: Record<string, Uint8Array>, json: boolean): { headers?: Record<string, string | Uint8Array>; headers_base64?: Record<string, string> } {
  const out: Record<string, string | Uint8Array> = Object.create(null);
  const encoded: Record<string, string> = Object.create(null);
  let texts = 0;
  let bytes = 0;
  for (const name in headers) {
    const b = Object.hasOwn(binary, name) ? binary[name]! : undefined;
    if (b === undefined) {
      out[name] = headers[name]!;
      texts++;
    } else if (json) {
      encoded[name] = base64(b);
      bytes++;
    } else out[name] = b;
  }
  if (!json) return { headers: out };
  return { ...(texts > 0 ? { headers: out } : {}), ...(bytes > 0 ? { headers_base64: encoded } : {}) };
}

function firstHeaders(headers: Record<string, string>, n: number): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const name in headers) {
    if (n-- <= 0) break;
    out[name] = headers[name]!;
  }
  return out;
}

// RFC 3339 writes years 0000-9999 only; and Kafka's timestamp -1 means the record has none.
const LAST_RFC3339_MS = 253_402_300_799_999;

/** A record timestamp as RFC 3339, or undefined when it has none RFC 3339 can write. */
function isoTime(ms: number): string | undefined {
  return ms >= 0 && ms <= LAST_RFC3339_MS ? new Date(ms).toISOString() : undefined;
}

/** Why a parsed JSON value is not what either codec would carry as written, or null. */
function unfaithfulIn(v: unknown): string | null {
  if (typeof v === "string") return v.isWellFormed() ? null : "a string with an unpaired surrogate (not Unicode)";
  if (typeof v === "number") return Number.isFinite(v) ? null : "a number past a double's range";
  if (typeof v !== "object" || v === null) return null;
  if (Array.isArray(v)) {
    for (const x of v) {
      const why = unfaithfulIn(x);
      if (why !== null) return why;
    }
    return null;
  }
  for (const k of Object.keys(v)) {
    const why = k.isWellFormed() ? unfaithfulIn((v as Record<string, unknown>)[k]) : "a key with an unpaired surrogate (not Unicode)";
    if (why !== null) return why;
  }
  return null;
}

/** Whether JSON text nests deeper than MAX_DATA_DEPTH (as jsonShape). */
export function jsonNestedTooDeep(v: Uint8Array): boolean {
  return jsonShape(v, Number.POSITIVE_INFINITY) === "deep";
}

/**
 * Whether JSON text nests deeper than MAX_DATA_DEPTH ("deep") or holds more than `maxValues` values
 * ("values": each comma, colon and bracket opened outside strings counts one, about as
 * MAX_EVENT_VALUES counts); null when neither. Text too short for either is not scanned.
 * Strings are skipped with indexOf (memchr) to their closing quote, one after an even run of
 * backslashes: most of a large payload is inside strings, and a byte loop over them was a fifth of
 * the gateway's time delivering 200 KB events. test/fuzz/json-depth checks it against that loop.
 */
function jsonShape(v: Uint8Array, maxValues: number): "deep" | "values" | null {
  if (v.length <= MAX_DATA_DEPTH && v.length <= maxValues) return null;
  let depth = 0;
  let values = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === 0x22) {
      let end = i;
      for (;;) {
        end = v.indexOf(0x22, end + 1);
        if (end < 0) return null; // the rest is inside an unterminated string
        let backslashes = 0;
        while (v[end - 1 - backslashes] === 0x5c) backslashes++; // stops at the opening quote at the latest
        if (backslashes % 2 === 0) break;
      }
      i = end;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DATA_DEPTH) return "deep";
      if (++values > maxValues) return "values";
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if ((c === 0x2c || c === 0x3a) && ++values > maxValues) return "values";
  }
  return null;
}

