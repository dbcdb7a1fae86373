import type { GatewayError } from "../protocol/errors";

/**
 * One record as it will sit in Kafka. Values are already encoded; string keys and headers are
 * UTF-8, written as bytes only where they leave the process (encoding each key up front cost the
 * embedded log a tenth of its ingest time).
 */
export interface LogRecord {
  topic: string;
  key: Uint8Array | string | null;
  value: Uint8Array | null;
  headers: Array<[name: string, value: string | Uint8Array]>;
  timestamp: number;
}

/**
 * Results of one append, column by column (no object per event). For record i: either
 * `errors?.[i]` is set, or `partitions[i]`/`offsets[i]` say where it landed.
 */
export interface AppendResults {
  partitions: Int32Array;
  offsets: Float64Array;
  errors: Array<GatewayError | undefined> | null;
}

/** A record read back from the log. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Array<[name: string, value: Uint8Array]>;
  /**
   * Headers of the record left out for having names past MAX_HEADER_NAMES (counted in the Kafka
   * worker, src/kafka/wire/records-layout.ts): the record is read only that far.
   */
  headersLeftOut?: number;
}

/** Header names that are the CloudEvents envelope's fields (binary mode): read wherever in a record they are. */
export const ENVELOPE_HEADER_NAMES: ReadonlySet<string> = new Set(["ce_id", "ce_source", "ce_type", "ce_subject", "ce_time", "ce_specversion", "content-type"]);

/**
 * Header names of one record read for subscribers besides the envelope's: a record with more goes
 * degraded "headers", read as far as its first MAX_HEADER_NAMES names (docs/protocol.md, "Events that
 * cannot be encoded").
 */
export const MAX_HEADER_NAMES = 1000;

/** Logical start offsets, as librdkafka spells them. */
export const Offset = { BEGINNING: -2, END: -1 } as const;

export interface Assignment {
  topic: string;
  partition: number;
  /** An offset, or Offset.BEGINNING / Offset.END. */
  offset: number;
}

export interface ReaderHandlers {
  /**
   * A batch, in offset order per partition. Call `done` once it is dealt with: until then it holds
   * one of the reader's few credits, and with all of them held the reader stops reading.
   */
  onRecords(records: ConsumedRecord[], done: () => void): void;
  /** The reader is gone (its worker died); open a new one from the positions you had. */
  onLost(reason: string): void;
  /**
   * The partition's log no longer has `offset`, the reader's next one: retention deleted it, or the
   * log was reset below it (the topic created again). The reader has stopped reading that partition,
   * after handing over every record before it, until it is assigned again. Readers in a group are not
   * told: the group's own reset policy applies there.
   */
  onOutOfRange(topic: string, partition: number, offset: number): void;
  /**
   * The reader reached the partition's end at `offset`, past offsets it hands no record for: a
   * transaction's commit or abort marker, or aborted records (Kafka readers read committed records
   * only). Told only when the end lies past the last record handed over, after that record.
   */
  onEnd?(topic: string, partition: number, offset: number): void;
  /**
   * Kafka's ACLs refuse the gateway's own principal `topic` ("": the reader's group): the reader will
   * read none of it. It stays open (librdkafka goes on asking); closing it is the owner's to do.
   */
  onDenied?(topic: string, message: string): void;
}

/**
 * A reader in a consumer group: the log assigns its partitions (split with the group's readers in
 * other gateway instances) and keeps its offsets. Used for shared subscriptions only.
 */
export interface ReaderGroup {
  id: string;
  topics: string[];
  /**
   * How often the group's reader asks the topics' metadata again (PARTITION_CHECK_MS): partitions
   * added to a topic are found and dealt to members by the group itself, only when it looks.
   */
  metadataRefreshMs?: number;
}

/** What a reader's records carry, when not all of it is needed. */
export interface ReaderOptions {
  /**
   * Records come with a null key and value and only the headers of these names: the rest is not
   * copied out of the Kafka worker at all (the idempotence ids reader needs two headers of each record).
   */
  onlyHeaders?: readonly string[];
  /**
   * Its records are taken as soon as they come, never held for a client (the idempotence ids
   * reader): its fetches are sized to read a topic's history fast (kafka/options.ts, bulkConsumer).
   */
  bulk?: boolean;
}

export interface LogReader {
  readonly ready: Promise<void>;
  assign(list: Assignment[]): void;
  unassign(list: Assignment[]): void;
  /**
   * A group reader's positions its group may commit: the next offset of each partition whose records
   * before it were all handed over. Nothing for a reader with manual assignment, nor on the embedded
   * log (one process is the whole group there).
   */
  storeOffsets(list: Assignment[]): void;
  close(): void;
}

export interface Watermark {
  /** Earliest offset still retained. */
  low: number;
  /** The offset the next record will get. */
  high: number;
}

export interface LogHealth {
  kind: "memory" | "kafka";
  ready: boolean;
  [detail: string]: unknown;
}

/**
 * Where events go. The gateway never blocks on it: append hands records over and the promise
 * settles (never rejects) once every record has a durable position or an error. Two adapters:
 * `memory` (embedded, the default) and `kafka` (the Kafka worker pool).
 */
/** A topic's own bounds on its records (EventLog.topicRecordLimits); NO_BOUND where it has none. */
export interface TopicRecordLimits {
  /** The most bytes of one record batch (Kafka's max.message.bytes), so at least of one record. */
  maxBatchBytes: number;
  /** How far ahead of the broker's clock a record's timestamp may be (message.timestamp.after.max.ms). */
  timestampAfterMs: number;
  /** How far behind it (message.timestamp.before.max.ms). */
  timestampBeforeMs: number;
  /** Every record needs a key: the topic is compacted (cleanup.policy has "compact"). */
  keyRequired: boolean;
  /**
   * The topic does not exist and cannot be made: the cluster has this one, whose name differs only
   * in `.` and `_`, which Kafka takes for the same name.
   */
  collidesWith?: string;
  /**
   * Kafka did not have the topic when asked: its first write makes it where the brokers auto-create,
   * and where they do not (or a create policy refuses it) its records wait out the message timeout.
   */
  missing?: boolean;
}

/**
 * Whether Kafka takes `a` and `b` for one topic: names that differ only in `.` and `_` (its
 * Topic.hasCollision), of which the cluster makes only the first it meets.
 */
export function topicNamesCollide(a: string, b: string): boolean {
  return a !== b && a.length === b.length && a.replaceAll(".", "_") === b.replaceAll(".", "_");
}

/** No bound: a number, not Infinity, since TopicRecordLimits cross the workers' JSON IPC. */
export const NO_BOUND = Number.MAX_SAFE_INTEGER;

export interface EventLog {
  readonly kind: "memory" | "kafka";
  start(): Promise<void>;
  /**
   * How many times every log was replaced under the gateway: a new Kafka cluster at the brokers'
   * address (never, for the embedded log). Positions read before it moved name nothing in the logs
   * after, so a reader reopened past it starts each partition at its new log's start.
   */
  readonly epoch: number;
  /**
   * Names the logs that positions (offsets, resume tokens) belong to: the Kafka cluster's id, or the
   * embedded log's per-process id (its logs end with the process). Null until known. A resume token
   * carries it, so one from another cluster is not read as offsets into this one.
   */
  readonly origin: string | null;
  /**
   * `source` names the connection (for fair scheduling); `acceptedAt` is when the gateway took the
   * records (Date.now()), if they waited before this call: a deadline counts from then.
   */
  append(records: LogRecord[], source?: string, acceptedAt?: number): Promise<AppendResults>;
  isReady(): boolean;
  health(): LogHealth;
  /** A reader with manual assignment and no commits (positions belong to the caller), or in a group. */
  openReader(handlers: ReaderHandlers, group?: ReaderGroup, options?: ReaderOptions): LogReader;
  /** Partitions of a topic. Never creates it (only appends may): UNKNOWN_TOPIC when it does not exist. */
  partitionCount(topic: string): Promise<number>;
  watermarks(topic: string): Promise<Watermark[]>;
  /**
   * A group reader starts, where its group has committed nothing, at the end as of its joining the
   * group, seconds after it is opened; this makes that the end as of now (Kafka: commits it for the
   * group). On the embedded log a group reader starts at the end at once: nothing to do. Resolves to
   * the partitions left to start at the log's start instead (Kafka refuses the commit from outside a
   * group that has members): 0 normally.
   */
  startGroupAtEnd(group: ReaderGroup): Promise<number>;
  /** Per partition, the first offset at or after `timestampMs` (the high watermark if none). */
  offsetsForTime(topic: string, timestampMs: number): Promise<number[]>;
  /**
   * What the log refuses of `topic`'s records beyond the gateway's own limits: on Kafka the topic's
   * own max.message.bytes and timestamp bounds, past which the broker refuses the whole record batch
   * (other clients' events with it). Null when there is nothing to add: the embedded log keeps the
   * gateway's limits, and Kafka does not have the topic yet (it will be made with the broker's
   * defaults). Never creates the topic.
   */
  topicRecordLimits(topic: string): Promise<TopicRecordLimits | null>;
  /**
   * The id of `topic`'s log, which a topic deleted and made again under its name does not share
   * (Kafka's topic id), or null when there is none to know it by: the topic is missing, the question
   * failed, or the log never makes a topic again (the embedded log). Never creates the topic, and
   * never rejects.
   */
  topicId(topic: string): Promise<string | null>;
  /** Stops taking records, settles everything in flight, releases resources. */
  close(timeoutMs?: number): Promise<void>;
}

export function newResults(n: number): AppendResults {
  return { partitions: new Int32Array(n), offsets: new Float64Array(n), errors: null };
}

/** Results for `n` records that all failed with `error`. */
export function failedResults(n: number, error: GatewayError): AppendResults {
  const results = newResults(n);
  for (let i = 0; i < n; i++) setError(results, i, error);
  return results;
}

export function setError(results: AppendResults, i: number, error: GatewayError): void {
  results.partitions[i] = -1;
  results.offsets[i] = -1;
  (results.errors ??= new Array(results.partitions.length))[i] = error;
}
