import { TopicQuestions } from "./topic-questions";
import { type PoolEvent, type PoolOptions, WorkerPool } from "./pool";
import type { RecordSink } from "./worker-slot";
import { GatewayError } from "../protocol/errors";
import {
  type AppendResults,
  type EventLog,
  type LogHealth,
  type LogReader,
  type LogRecord,
  type ReaderGroup,
  type ReaderHandlers,
  type ReaderOptions,
  type TopicRecordLimits,
  type Watermark,
  newResults,
  setError,
} from "../log/event-log";
import { murmur2 } from "../bytes/murmur2";

/** Collects the outcomes of one append call, whichever workers its records went to. */
class PendingAppend implements RecordSink {
  readonly results: AppendResults;
  private remaining: number;
  private resolve!: (r: AppendResults) => void;
  readonly promise: Promise<AppendResults>;

  constructor(private readonly records: LogRecord[]) {
    this.results = newResults(records.length);
    this.remaining = records.length;
    this.promise = new Promise((r) => (this.resolve = r));
  }
  delivered(index: number, partition: number, offset: number): void {
    this.results.partitions[index] = partition;
    this.results.offsets[index] = offset;
    if (--this.remaining === 0) this.resolve(this.results);
  }
  failed(index: number, error: GatewayError): void {
    setError(this.results, index, error);
    if (--this.remaining === 0) this.resolve(this.results);
  }
  record(index: number): LogRecord {
    return this.records[index]!;
  }
}

/**
 * The EventLog over real Kafka, through the Kafka worker pool. A keyed record always goes to the same
 * worker, hence the same producer, which is what keeps per-key order (librdkafka then keeps it per
 * partition with idempotence on). Keyless records of one append stay together on one worker.
 */
export class KafkaLog implements EventLog {
  readonly kind = "kafka" as const;
  readonly pool: WorkerPool;
  private roundRobin = 0;
  private readerSeq = 0;
  private readonly partitionCounts: TopicQuestions<number>;
  private readonly recordLimits: TopicQuestions<TopicRecordLimits | null>;
  private readonly ids: TopicQuestions<string | null>;

  constructor(options: PoolOptions, onEvent?: (e: PoolEvent) => void) {
    this.pool = new WorkerPool(options, onEvent);
    this.partitionCounts = new TopicQuestions((topics) => this.pool.query<number[]>({ kind: "partitions", topics }), 0);
    this.recordLimits = new TopicQuestions((topics) => this.pool.query<Array<TopicRecordLimits | null>>({ kind: "recordLimits", topics }), null);
    this.ids = new TopicQuestions((topics) => this.pool.query<Array<string | null>>({ kind: "topicIds", topics }), null);
  }

  start(): Promise<void> {
    return this.pool.start();
  }

  get epoch(): number {
    return this.pool.epoch;
  }

  get origin(): string | null {
    return this.pool.cluster;
  }

  append(records: LogRecord[], _source?: string, acceptedAt = Date.now()): Promise<AppendResults> {
    if (records.length === 0) return Promise.resolve(newResults(0));
    const pending = new PendingAppend(records);
    const workers = this.pool.slots.length;
    const keyless = this.roundRobin++ % workers;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const worker = r.key ? (murmur2(r.key) & 0x7fffffff) % workers : keyless;
      this.pool.submit(worker, r.topic, r.key, r.value, r.timestamp, r.headers, pending, i, acceptedAt);
    }
    return pending.promise;
  }

  isReady(): boolean {
    return this.pool.isReady();
  }

  openReader(handlers: ReaderHandlers, group?: ReaderGroup, options?: ReaderOptions): LogReader {
    return this.pool.openReader(handlers, { worker: this.readerSeq++ % this.pool.slots.length, group, options });
  }

  /**
   * Asks without creating: the workers read the cluster's topic list rather than naming the topic
   * (which has the producer's metadata request auto-create it). Subscribing must never create a topic.
   * Retries briefly, for a topic created a moment ago whose partitions are not led yet.
   */
  async partitionCount(topic: string): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const n = await this.partitionCounts.of(topic);
      if (n > 0) return n;
      if (attempt >= 4) throw new GatewayError("UNKNOWN_TOPIC", `topic "${topic}" does not exist, or Kafka's ACLs hide it from the gateway's principal (no Describe); subscribing does not create topics`);
      await Bun.sleep(100);
    }
  }

  async watermarks(topic: string): Promise<Watermark[]> {
    return this.pool.query<Watermark[]>({ kind: "watermarks", topic, partitions: await this.partitionCount(topic) });
  }

  async offsetsForTime(topic: string, timestampMs: number): Promise<number[]> {
    const partitions = await this.partitionCount(topic);
    // The ends first, then the times, never both at once: "no record at or after that time" (-1)
    // then means none up to an end asked before it, so starting there misses nothing. Asked together,
    // an event written between the two answers was in neither, and a subscription from `earliest`
    // started after it (test/subscribe/earliest-race).
    const marks = await this.pool.query<Watermark[]>({ kind: "watermarks", topic, partitions });
    const offsets = await this.pool.query<number[]>({ kind: "offsetsForTime", topic, partitions, timestampMs });
    return offsets.map((o, p) => (o < 0 ? marks[p]!.high : o));
  }

  /** The topic's max.message.bytes and timestamp bounds, by DescribeConfigs (which creates nothing). */
  topicRecordLimits(topic: string): Promise<TopicRecordLimits | null> {
    return this.recordLimits.of(topic);
  }

  /** By DescribeTopics, which creates nothing. A question that failed answers null. */
  topicId(topic: string): Promise<string | null> {
    return this.ids.of(topic).catch(() => null);
  }

  startGroupAtEnd(group: ReaderGroup): Promise<number> {
    return this.pool.query<number>({ kind: "startGroupAtEnd", group: group.id, topics: group.topics });
  }

  health(): LogHealth {
    return { kind: "kafka", ready: this.isReady(), cluster: this.pool.cluster ?? undefined, workers: this.pool.health() };
  }

  close(timeoutMs?: number): Promise<void> {
    return this.pool.close(timeoutMs);
  }
}
