import { randomUUID } from "node:crypto";
import { GatewayError, shuttingDown } from "../protocol/errors";
import {
  type AppendResults,
  type ConsumedRecord,
  type EventLog,
  type LogHealth,
  type LogReader,
  type LogRecord,
  Offset,
  type ReaderGroup,
  type ReaderHandlers,
  type Watermark,
  failedResults,
  newResults,
  setError,
} from "./event-log";
import { MemoryPartition } from "./memory-partition";
import { MemoryReader, placeOf } from "./memory-reader";
import { RoundRobin } from "./round-robin";
import { partitionForKey } from "../bytes/murmur2";

// Milliseconds of appending per event-loop turn, shared among the sources waiting: short, so that
// the poll for other clients' frames (and their acks) comes round often.
const APPEND_SLICE_MS = 1;
// Milliseconds of reading per event-loop turn, shared round-robin among the readers with a credit
// and something to read. Reading here is the gateway's own thread decoding records (a Kafka reader's
// is a worker's): done whenever a feed took a batch, sixteen replays read for tens of milliseconds
// a turn, and every other client waited (control publish p50 105 ms in a subscribe storm).
const READ_SLICE_MS = 2;

export interface MemoryLogOptions {
  partitions: number;
  /** Records kept per partition; older ones are dropped, as Kafka retention would. */
  retentionRecords: number;
  /**
   * Bytes the whole log may hold, all topics together: past it, the oldest chunk of the partition
   * holding most is dropped. Without it, memory would grow with record sizes and with every topic a
   * client names.
   */
  retentionBytes: number;
}

/**
 * The embedded log: Kafka's semantics (topics, partitions by key hash, monotonic offsets, retention)
 * in one process, so the gateway runs with nothing else installed. Not durable across restarts.
 */
export class MemoryLog implements EventLog {
  readonly kind = "memory" as const;
  readonly epoch = 0;
  readonly origin = `embedded-${randomUUID()}`;
  private readonly topics = new Map<string, MemoryPartition[]>();
  private readonly readers = new Set<MemoryReader>();
  /** Readers that may have something to read, in the order they get their turn (see readSlice). */
  private readonly toRead = new RoundRobin<MemoryReader, true>();
  private readScheduled = false;
  private roundRobin = 0;
  private closed = false;
  /** Bytes the partitions hold together. */
  private retained = 0;
  /**
   * Each share group's committed positions, by group id, then topic and partition: the offset its
   * next reader starts at. Without them a group whose members had all left started its next reader at
   * the log's end, and what was written meanwhile, or read but not yet handed, reached no member
   * (outside probe: 0 of 100, and 0 of 20,000). Kept per group id and topic set: the feeds of one
   * share name with other topics are readers of their own here, and one's commits must not move the
   * other's. Bounded by MAX_SHARE_GROUPS (and its per-address share), which count on this log too.
   */
  private readonly groupPositions = new Map<string, Map<string, number>>();
  private appended = 0;
  /** Appends not yet done, per source, in order; see append(). */
  private readonly waiting = new RoundRobin<string, Array<{ records: LogRecord[]; resolve: (r: AppendResults) => void }>>();
  private scheduled = false;

  constructor(private readonly options: MemoryLogOptions) {}

  async start(): Promise<void> {}

  /**
   * Appends are queued and done a little later, in slices, rather than at once: then acks take a
   * turn, the per-connection window engages as it does on Kafka (a client that pipelines is no longer
   * acked as fast as it writes: its frames wait unread while the ingress paces it, or meet
   * WINDOW_EXCEEDED), and each turn's budget is shared
   * round-robin among the sources with work queued, so one connection cannot starve the others.
   */
  append(records: LogRecord[], source = ""): Promise<AppendResults> {
    if (this.closed) return Promise.resolve(failedResults(records.length, shuttingDown()));
    return new Promise((resolve) => {
      let queue = this.waiting.get(source);
      if (!queue) this.waiting.join(source, (queue = []));
      queue.push({ records, resolve });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.drainSlice);
  }

  private readonly drainSlice = (): void => {
    this.scheduled = false;
    const left = this.waiting.serve(performance.now() + APPEND_SLICE_MS, (_source, queue) => {
      const next = queue.shift()!;
      next.resolve(this.appendNow(next.records));
      return queue.length > 0;
    });
    for (const reader of this.readers) this.toRead.join(reader, true);
    if (left) this.schedule();
    // Live readers read what was just appended in this same turn, within their own budget.
    if (!this.readScheduled) this.readSlice();
  };

  /** A reader may have something to read: it gets a turn of readSlice. */
  wantsToRead(reader: MemoryReader): void {
    this.toRead.join(reader, true);
    if (this.readScheduled) return;
    this.readScheduled = true;
    setImmediate(this.readSlice);
  }

  /** Up to READ_SLICE_MS of reading, one batch per reader in turn; the rest on the next turn. */
  private readonly readSlice = (): void => {
    this.readScheduled = false;
    const left = this.toRead.serve(performance.now() + READ_SLICE_MS, (reader) => reader.readOnce());
    if (left && !this.readScheduled) {
      this.readScheduled = true;
      setImmediate(this.readSlice);
    }
  };

  private appendNow(records: LogRecord[]): AppendResults {
    const results = newResults(records.length);
    for (let i = 0; i < records.length; i++) {
      const rec = records[i]!;
      const parts = this.partitionsOf(rec.topic);
      const p = rec.key ? partitionForKey(rec.key, parts.length) : this.roundRobin++ % parts.length;
      const part = parts[p]!;
      try {
        const before = part.bytes;
        results.offsets[i] = part.append(rec);
        results.partitions[i] = p;
        this.retained += part.bytes - before;
        if (this.retained > this.options.retentionBytes) this.shrink();
      } catch (e) {
        // One record that cannot be stored fails alone; the partition never holds half of it.
        setError(results, i, e instanceof GatewayError ? e : new GatewayError("INTERNAL", "the record could not be stored"));
      }
    }
    this.appended += records.length;
    return results;
  }

  /** Drops the oldest chunks of the partitions holding most until the log is within retentionBytes. */
  private shrink(): void {
    while (this.retained > this.options.retentionBytes) {
      let largest: MemoryPartition | undefined;
      for (const parts of this.topics.values()) for (const part of parts) if (!largest || part.bytes > largest.bytes) largest = part;
      const freed = largest?.dropOldestChunk() ?? 0;
      if (freed === 0) return;
      this.retained -= freed;
    }
  }

  /** Reads retained records of one partition from `offset` on (for readers and tests). */
  read(topic: string, partition: number, offset: number, max = 1000, maxBytes?: number, firstMayExceed?: boolean): ConsumedRecord[] {
    return this.topics.get(topic)?.[partition]?.read(offset, max, maxBytes, firstMayExceed) ?? [];
  }

  /** The oldest retained offset of a partition (0 for one not written yet). */
  earliest(topic: string, partition: number): number {
    return this.topics.get(topic)?.[partition]?.earliest ?? 0;
  }

  offsets(topic: string): Array<{ earliest: number; next: number }> {
    return (this.topics.get(topic) ?? []).map((p) => ({ earliest: p.earliest, next: p.next }));
  }

  /**
   * One process is the whole group here: a group reader reads every partition, from the group's
   * committed position (startGroupAtEnd made one for each) and commits as a Kafka group does, so
   * that its next reader goes on from there. ReaderOptions are not needed: records are handed over in
   * process, nothing is copied for them.
   */
  openReader(handlers: ReaderHandlers, group?: ReaderGroup): LogReader {
    const committed = group ? this.groupPositionsOf(group) : undefined;
    const reader = new MemoryReader(this, handlers, committed);
    this.readers.add(reader);
    if (group) {
      for (const topic of group.topics) {
        reader.assign(Array.from({ length: this.partitionCountOf(topic) }, (_, partition) => ({ topic, partition, offset: committed!.get(placeOf(topic, partition)) ?? Offset.BEGINNING })));
      }
    }
    return reader;
  }

  private groupPositionsOf(group: ReaderGroup): Map<string, number> {
    const key = `${group.id}\0${[...group.topics].sort().join("\0")}`;
    let positions = this.groupPositions.get(key);
    if (!positions) this.groupPositions.set(key, (positions = new Map()));
    return positions;
  }

  /** How many partitions a topic has, or will have once written (EMBEDDED_PARTITIONS). */
  private partitionCountOf(topic: string): number {
    return this.topics.get(topic)?.length ?? this.options.partitions;
  }

  removeReader(reader: MemoryReader): void {
    this.readers.delete(reader);
    this.toRead.leave(reader);
  }

  /**
   * Every topic exists here, empty until written: questions about one nobody wrote to answer for its
   * EMBEDDED_PARTITIONS empty partitions without making them, so subscribing creates nothing (only
   * appends do) and a flood of made-up topic names costs no memory.
   */
  async partitionCount(topic: string): Promise<number> {
    return this.partitionCountOf(topic);
  }

  async watermarks(topic: string): Promise<Watermark[]> {
    const parts = this.topics.get(topic);
    return parts ? parts.map((p) => ({ low: p.earliest, high: p.next })) : Array.from({ length: this.options.partitions }, () => ({ low: 0, high: 0 }));
  }

  /**
   * Commits the end of every partition the group has no position for, as on Kafka: a new group
   * starts where the log ends at its first member's subscribe. Unlike Kafka, none is ever new to a
   * group with members here (one process is the whole group), so none starts at the log's start: 0.
   */
  async startGroupAtEnd(group: ReaderGroup): Promise<number> {
    const positions = this.groupPositionsOf(group);
    for (const topic of group.topics) {
      const parts = this.topics.get(topic);
      for (let p = 0; p < this.partitionCountOf(topic); p++) {
        const place = placeOf(topic, p);
        if (!positions.has(place)) positions.set(place, parts?.[p]?.next ?? 0);
      }
    }
    return 0;
  }

  /** The embedded log takes what the gateway's own limits let through: nothing to add. */
  topicRecordLimits(): Promise<null> {
    return Promise.resolve(null);
  }

  /** A topic here is never deleted, so never made again: nothing to tell its logs apart by. */
  topicId(): Promise<null> {
    return Promise.resolve(null);
  }

  async offsetsForTime(topic: string, timestampMs: number): Promise<number[]> {
    return this.topics.get(topic)?.map((p) => p.offsetForTime(timestampMs)) ?? new Array<number>(this.options.partitions).fill(0);
  }

  /** Partitions of a topic as yet unwritten (see partitionCount). */
  get partitionsPerTopic(): number {
    return this.options.partitions;
  }

  isReady(): boolean {
    return !this.closed;
  }

  health(): LogHealth {
    return { kind: "memory", ready: !this.closed, topics: this.topics.size, appended: this.appended, retainedBytes: this.retained };
  }

  /** Appends already queued are still done (they were accepted before the stop); new ones are refused. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.waiting.size > 0) this.drainSlice();
  }

  private partitionsOf(topic: string): MemoryPartition[] {
    let parts = this.topics.get(topic);
    if (!parts) {
      parts = Array.from({ length: this.options.partitions }, (_, i) => new MemoryPartition(topic, i, this.options.retentionRecords));
      this.topics.set(topic, parts);
    }
    return parts;
  }
}
