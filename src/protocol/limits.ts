/**
 * Defaults of the limits a client's input is held to (the settings are in src/config/schema.ts, the
 * table in docs/protocol.md). Counts stay far below 65,535: the Kafka IPC and the embedded log hold
 * a record's header count in 16 bits, and msgpackr refuses to encode a map of 65,536 keys, so no
 * accepted event may come near either.
 */
export const LIMIT_DEFAULTS = {
  /** Kafka itself has no header limit, but clients rarely use more than a few dozen; 64 leaves room. */
  MAX_HEADERS_PER_EVENT: 64,
  /** UTF-8 bytes of all header names and values of one event together. */
  MAX_HEADER_BYTES: 64 * 1024,
  /** Keys of any one map in a frame (payload, headers, the frame itself). */
  MAX_MAP_KEYS: 4096,
  /** Values in one event (every map key, map value and array element, at any depth, counts one). */
  MAX_EVENT_VALUES: 65_536,
  /**
   * Values in one msgpack frame, all its events together: msgpackr builds each at about 0.1 µs, in one
   * piece no turn can cut, so a 1 MiB frame of a million zeros (20 events, each within
   * MAX_EVENT_VALUES) held every other connection for about 100 ms (outside tester).
   */
  MAX_FRAME_VALUES: 262_144,
  /** How far ahead of the gateway's clock `time` may be; Kafka refuses a whole batch past 1 h. */
  TIME_SKEW_FUTURE_MS: 5 * 60_000,
  /** How far back `time` may be; 0: any time from 1970 on (Kafka's default is no bound). */
  TIME_SKEW_PAST_MS: 0,
} as const;

/** Headers an event may have whatever the settings say (MAX_HEADERS_PER_EVENT's own maximum). */
export const HEADERS_HARD_MAX = 1000;
/**
 * The longest RFC 3339 `time` string taken (an event's, or a subscription's start): a nanosecond one
 * with an offset is 35 characters. Longer ones, a megabyte of fraction digits, were taken and written
 * to Kafka as the ce_time header whole (outside tester).
 */
export const TIME_MAX_CHARS = 40;

/** The limits one event is checked against before any work is done for it. */
export interface EventLimits {
  maxHeaders: number;
  maxHeaderBytes: number;
  /** Bytes of one Kafka record as librdkafka counts them against its message.max.bytes. */
  maxRecordBytes: number;
  maxMapKeys: number;
  maxEventValues: number;
  timeSkewFutureMs: number;
  timeSkewPastMs: number;
}
