import { parseKafkaProperties } from "../config/load";
import type { Config } from "../config/schema";
import type { LogRecord, TopicRecordLimits } from "../log/event-log";
import { GatewayError } from "../protocol/errors";
import type { EventLimits } from "../protocol/limits";

/** librdkafka's default message.max.bytes: the most bytes of one record it produces. */
export const DEFAULT_MAX_RECORD_BYTES = 1_000_000;

export function eventLimits(config: Config): EventLimits {
  const set = Number(parseKafkaProperties(config.KAFKA_PROPERTIES)["message.max.bytes"]);
  return {
    maxHeaders: config.MAX_HEADERS_PER_EVENT,
    maxHeaderBytes: config.MAX_HEADER_BYTES,
    // The producer's own, so that what the gateway takes is what librdkafka sends; the embedded log
    // keeps the same bound, as it keeps Kafka's other semantics.
    maxRecordBytes: Number.isSafeInteger(set) && set > 0 ? set : DEFAULT_MAX_RECORD_BYTES,
    maxMapKeys: config.MAX_MAP_KEYS,
    maxEventValues: config.MAX_EVENT_VALUES,
    timeSkewFutureMs: config.TIME_SKEW_FUTURE,
    timeSkewPastMs: config.TIME_SKEW_PAST,
  };
}

/**
 * The size limits of one event, checked on the decoded value before the schema walks it and long
 * before it is encoded, sent to Kafka and delivered: every later stage costs in proportion to
 * what is counted here, and the record layouts count headers in 16 bits. Each count stops at its
 * limit, so a hostile event costs no more than an acceptable one. `countValues` false skips the
 * walk over values and map keys, for events a pre-scan already counted (src/protocol/msgpack-scan.ts).
 * Returns the refusal, or null.
 */
export function checkEventSize(event: unknown, limits: EventLimits, countValues = true): GatewayError | null {
  if (typeof event !== "object" || event === null) return null; // the schema says what is wrong
  const headers = (event as { headers?: unknown }).headers;
  if (typeof headers === "object" && headers !== null && !(headers instanceof Uint8Array)) {
    let count = 0;
    let bytes = 0;
    for (const name in headers) {
      if (++count > limits.maxHeaders) return new GatewayError("EVENT_TOO_LARGE", `more than ${limits.maxHeaders} headers (MAX_HEADERS_PER_EVENT)`);
      const value = (headers as Record<string, unknown>)[name];
      bytes += Buffer.byteLength(name) + (typeof value === "string" ? Buffer.byteLength(value) : value instanceof Uint8Array ? value.byteLength : 0);
      if (bytes > limits.maxHeaderBytes) return new GatewayError("EVENT_TOO_LARGE", `headers of more than ${limits.maxHeaderBytes} bytes (MAX_HEADER_BYTES)`);
    }
  }
  if (!countValues) return null;
  budget = limits.maxEventValues;
  if (!fits(event, limits.maxMapKeys)) {
    return new GatewayError("EVENT_TOO_LARGE", budget < 0 ? `more than ${limits.maxEventValues} values in one event (MAX_EVENT_VALUES)` : `a map of more than ${limits.maxMapKeys} keys (MAX_MAP_KEYS)`);
  }
  return null;
}

/** Values still allowed in the event being counted; a variable, so the walk allocates nothing. */
let budget = 0;

// Depth is already bounded by MAX_DEPTH (plain-data.ts), so recursion is too.
function fits(v: unknown, maxMapKeys: number): boolean {
  if (--budget < 0) return false;
  if (typeof v !== "object" || v === null || v instanceof Uint8Array || v instanceof Date) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (!fits(v[i], maxMapKeys)) return false;
    return true;
  }
  let keys = 0;
  for (const k in v) {
    if (++keys > maxMapKeys || --budget < 0) return false;
    if (!fits((v as Record<string, unknown>)[k], maxMapKeys)) return false;
  }
  return true;
}

/** The event's time as epoch ms (NaN when it names no real instant), or undefined when it has none. */
export function eventTimeMs(time: string | Date | undefined): number | undefined {
  return time === undefined ? undefined : time instanceof Date ? time.getTime() : Date.parse(time);
}

/**
 * Kafka refuses a whole record batch when one record's timestamp is beyond
 * message.timestamp.after.max.ms (1 h by default) ahead of the broker, so one client's future event
 * would fail every other client's events that share its batch. Refused here, per event, first.
 */
export function checkTime(ms: number | undefined, nowMs: number, limits: EventLimits): GatewayError | null {
  if (ms === undefined) return null;
  if (Number.isNaN(ms)) return new GatewayError("INVALID_EVENT", "time: not a real date and time");
  if (ms < 0) return new GatewayError("TIME_SKEW", "time: before 1970-01-01T00:00:00Z, which a Kafka timestamp cannot hold");
  if (ms > nowMs + limits.timeSkewFutureMs) {
    return new GatewayError("TIME_SKEW", `time: more than ${limits.timeSkewFutureMs} ms ahead of the gateway's clock (TIME_SKEW_FUTURE); the gateway's time is ${new Date(nowMs).toISOString()}`);
  }
  if (limits.timeSkewPastMs > 0 && ms < nowMs - limits.timeSkewPastMs) {
    return new GatewayError("TIME_SKEW", `time: more than ${limits.timeSkewPastMs} ms before the gateway's clock (TIME_SKEW_PAST); the gateway's time is ${new Date(nowMs).toISOString()}`);
  }
  return null;
}

/**
 * What a record batch of one record adds to the record's key, value and headers: Kafka's batch
 * header (61 bytes) and the record's own fields at their widest (its length, attributes, timestamp
 * and offset deltas, key and value lengths and header count as varints: 36).
 */
export const RECORD_BATCH_OVERHEAD = 97;

// The broker's clock may be ahead of the gateway's: a record this close to a topic's "after" bound
// is refused here rather than by the broker, with its batch.
const CLOCK_MARGIN_MS = 1000;

/**
 * A record the broker would refuse for its topic's own settings, refused here, per event: Kafka
 * refuses the whole record batch it travels in, so a topic's max.message.bytes or timestamp bounds
 * tighter than the gateway's let one client's event fail other clients' events (outside tester:
 * 177 of 247 innocent events refused), as does a keyless event on a compacted topic.
 * `explicitTime`: the record's timestamp is the client's (otherwise it is the gateway's clock, which
 * the bounds allow). `deadlineMs`: how long the record may take to reach the broker
 * (KAFKA_MESSAGE_TIMEOUT_MS), so late it is older by then. `passedBytes`: the size bound the record
 * has already passed (checkRecordSize's): a topic that takes that much is not counted again.
 */
export function checkTopicRecord(r: LogRecord, topic: TopicRecordLimits, explicitTime: boolean, nowMs: number, deadlineMs: number, passedBytes: number): GatewayError | null {
  if (topic.keyRequired && r.key === null) {
    return new GatewayError("INVALID_EVENT", `topic "${r.topic}" is compacted (its cleanup.policy), and Kafka refuses a record without a key there; give the event a key`);
  }
  if (explicitTime) {
    if (r.timestamp > nowMs + topic.timestampAfterMs - CLOCK_MARGIN_MS) {
      return new GatewayError("TIME_SKEW", `time: more than ${topic.timestampAfterMs} ms ahead, which topic "${r.topic}" refuses (its message.timestamp.after.max.ms); the gateway's time is ${new Date(nowMs).toISOString()}`);
    }
    const age = topic.timestampBeforeMs - Math.min(deadlineMs, topic.timestampBeforeMs / 2);
    if (r.timestamp < nowMs - age) {
      return new GatewayError("TIME_SKEW", `time: more than ${Math.floor(age)} ms before the gateway's clock, which topic "${r.topic}" refuses by the time it is written (its message.timestamp.before.max.ms is ${topic.timestampBeforeMs}); the gateway's time is ${new Date(nowMs).toISOString()}`);
    }
  }
  const max = topic.maxBatchBytes - RECORD_BATCH_OVERHEAD;
  const size = max >= passedBytes ? 0 : sizeOver(r, max);
  if (size === 0) return null;
  return new GatewayError("EVENT_TOO_LARGE", `its Kafka record would be about ${size} bytes (key, value and headers), past what topic "${r.topic}" takes in one record batch (its max.message.bytes of ${topic.maxBatchBytes}, less ${RECORD_BATCH_OVERHEAD} bytes of batch framing)`);
}

/**
 * A record librdkafka would refuse for its size (MSG_SIZE_TOO_LARGE, after the event had passed every
 * other check and reached a Kafka worker), refused first. librdkafka counts the key, the value and
 * each header's name and value with their two length varints (at most 5 bytes each). The sum is
 * bounded first from the strings' lengths (UTF-8 takes at most 3 bytes per UTF-16 unit), so the
 * common record is passed without encoding anything; only one near the bound is counted exactly.
 */
export function checkRecordSize(r: LogRecord, limits: EventLimits): GatewayError | null {
  const size = sizeOver(r, limits.maxRecordBytes);
  return size === 0 ? null : new GatewayError("EVENT_TOO_LARGE", `its Kafka record would be about ${size} bytes (key, value and headers), past the producer's message.max.bytes of ${limits.maxRecordBytes}`);
}

/** The record's size as librdkafka counts it when that is over `max`, else 0. */
function sizeOver(r: LogRecord, max: number): number {
  let bound = (r.value === null ? 0 : r.value.byteLength) + (r.key === null ? 0 : typeof r.key === "string" ? 3 * r.key.length : r.key.byteLength);
  // Indexed, not destructured: this runs for every event published.
  const headers = r.headers;
  for (let i = 0; i < headers.length; i++) {
    const value = headers[i]![1];
    bound += 10 + 3 * headers[i]![0].length + (typeof value === "string" ? 3 * value.length : value.byteLength);
  }
  if (bound <= max) return 0;
  let size = (r.value === null ? 0 : r.value.byteLength) + (r.key === null ? 0 : typeof r.key === "string" ? Buffer.byteLength(r.key) : r.key.byteLength);
  for (const [name, value] of r.headers) size += 10 + Buffer.byteLength(name) + (typeof value === "string" ? Buffer.byteLength(value) : value.byteLength);
  return size <= max ? 0 : size;
}
