import { GatewayError } from "../protocol/errors";
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
  newResults,
  setError,
} from "./event-log";
import { MemoryPartition } from "./memory-partition";
import { MemoryReader } from "./memory-reader";
import { partitionForKey } from "./murmur2";

export interface MemoryLogOptions {
  partitions: number;
  /** Records kept per partition; older ones are dropped, as Kafka retention would. */
  retentionRecords: number;
}

/**
 * The embedded log: Kafka's semantics (topics, partitions by key hash, monotonic offsets, retention)
 * in one process, so the gateway runs with nothing else installed. Not durable across restarts.
 */
export class MemoryLog implements EventLog {
  readonly kind = "memory" as const;
  private readonly topics = new Map<string, MemoryPartition[]>();
  private readonly readers = new Set<MemoryReader>();
  private roundRobin = 0;
  private closed = false;
  private appended = 0;

  constructor(private readonly options: MemoryLogOptions) {}

  async start(): Promise<void> {}

  append(records: LogRecord[]): Promise<AppendResults> {
    const results = newResults(records.length);
    for (let i = 0; i < records.length; i++) {
      if (this.closed) {
        setError(results, i, new GatewayError("SHUTTING_DOWN", "the gateway is shutting down"));
        continue;
      }
      const rec = records[i]!;
      const parts = this.partitionsOf(rec.topic);
      const p = rec.key ? partitionForKey(rec.key, parts.length) : this.roundRobin++ % parts.length;
      try {
        results.offsets[i] = parts[p]!.append(rec);
        results.partitions[i] = p;
      } catch (e) {
        // One record that cannot be stored fails alone; the partition never holds half of it.
        setError(results, i, e instanceof GatewayError ? e : new GatewayError("INTERNAL", "the record could not be stored"));
      }
    }
    this.appended += records.length;
    for (const reader of this.readers) reader.notify();
    return Promise.resolve(results);
  }

  /** Reads retained records of one partition from `offset` on (for readers and tests). */
  read(topic: string, partition: number, offset: number, max = 1000): ConsumedRecord[] {
    return this.topics.get(topic)?.[partition]?.read(offset, max) ?? [];
  }

  offsets(topic: string): Array<{ earliest: number; next: number }> {
    return (this.topics.get(topic) ?? []).map((p) => ({ earliest: p.earliest, next: p.next }));
  }

  /** One process is the whole group here: a group reader simply reads every partition from the end. */
  openReader(handlers: ReaderHandlers, group?: ReaderGroup): LogReader {
    const reader = new MemoryReader(this, handlers);
    this.readers.add(reader);
    if (group) for (const topic of group.topics) reader.assign(this.partitionsOf(topic).map((_, partition) => ({ topic, partition, offset: Offset.END })));
    return reader;
  }

  removeReader(reader: MemoryReader): void {
    this.readers.delete(reader);
  }

  async partitionCount(topic: string): Promise<number> {
    return this.partitionsOf(topic).length;
  }

  async watermarks(topic: string): Promise<Watermark[]> {
    return this.partitionsOf(topic).map((p) => ({ low: p.earliest, high: p.next }));
  }

  async offsetsForTime(topic: string, timestampMs: number): Promise<number[]> {
    return this.partitionsOf(topic).map((p) => p.offsetForTime(timestampMs));
  }

  isReady(): boolean {
    return !this.closed;
  }

  health(): LogHealth {
    return { kind: "memory", ready: !this.closed, topics: this.topics.size, appended: this.appended };
  }

  async close(): Promise<void> {
    this.closed = true;
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
