/**
 * What producers and consumers share: the `rd_kafka_t` handle and the metadata questions.
 *
 * The metadata calls (partitionCount, watermarks, offsetsForTimes) block the calling thread until
 * the broker answers or the timeout passes. They are never called in the gateway (whose thread
 * serves every socket); a Kafka worker calls them off its producing thread, and callers keep the
 * timeouts short (QUERY_TIMEOUT_MS), since a thread blocked in one does nothing else meanwhile.
 */
import { Conf, type KafkaProps, cString } from "./conf";
import { KafkaError, check, errString } from "./errors";
import { Err, METADATA, METADATA_TOPIC, TP, TPLIST } from "./layout";
import { addressOf, cstr, read, readI64, readString } from "./memory";
import { rdk } from "./symbols";
import { topicNamesCollide } from "../../log/event-log";

/**
 * A new `rd_kafka_t` of `type` (layout.ts: RD_KAFKA_PRODUCER or RD_KAFKA_CONSUMER). It blocks until
 * librdkafka's own threads have started: 3-6 ms on a quiet machine, up to 27 ms under load. Any
 * thread may call it and hand the handle to another (see ../worker/queries.ts).
 */
export function newHandle(type: number, props: KafkaProps, events = 0): number {
  const conf = new Conf(props, events);
  const errstr = Buffer.alloc(512);
  const rk = rdk().rd_kafka_new(type, conf.handle as never, errstr, errstr.length) as number | null;
  if (!rk) {
    conf.destroy(); // rd_kafka_new() takes the conf only when it succeeds
    throw new KafkaError(Err.INVALID_ARG, `cannot create the Kafka client: ${cString(errstr)}`);
  }
  return rk;
}

/** Frees a handle from newHandle() that no Client owns. Blocking, while librdkafka's threads stop. */
export function destroyHandle(rk: number): void {
  rdk().rd_kafka_destroy(rk as never);
}

/** A short default for blocking metadata calls: the worker produces nothing while it waits. */
export const QUERY_TIMEOUT_MS = 5000;

export abstract class Client {
  rk: number;
  private queries: MetadataQueries | null = null;

  /** `rk`: a handle from newHandle(), which this object now owns. */
  protected constructor(rk: number) {
    this.rk = rk;
  }

  private get meta(): MetadataQueries {
    return (this.queries ??= new MetadataQueries(this.rk));
  }

  /** See MetadataQueries.partitionCount. */
  partitionCount(topic: string, timeoutMs = QUERY_TIMEOUT_MS): number {
    return this.meta.partitionCount(topic, timeoutMs);
  }

  /** See MetadataQueries.watermarks. */
  watermarks(topic: string, partition: number, timeoutMs = QUERY_TIMEOUT_MS): { low: number; high: number } {
    return this.meta.watermarks(topic, partition, timeoutMs);
  }

  /** See MetadataQueries.offsetsForTimes. */
  offsetsForTimes(topic: string, partitions: number, timestampMs: number, timeoutMs = QUERY_TIMEOUT_MS): number[] {
    return this.meta.offsetsForTimes(topic, partitions, timestampMs, timeoutMs);
  }

  /** Frees the handle. Blocking: a consumer should be closed first (consumer.ts). */
  destroy(): void {
    if (!this.rk) return;
    const rk = this.rk;
    this.rk = 0;
    destroyHandle(rk);
  }
}

/**
 * Metadata questions asked through an existing `rd_kafka_t` (librdkafka's API is thread-safe, so a
 * helper thread may ask them through a handle another thread produces with; the handle must
 * outlive the questions).
 */
export class MetadataQueries {
  // Out-parameters (int64 low/high, const rd_kafka_metadata_t **), allocated once and kept
  // referenced, so their addresses stay valid.
  private readonly out = new Uint32Array(6);
  private readonly outAddr = addressOf(this.out);

  constructor(readonly rk: number) {}

  /** Whether a broker answers a metadata request (no topics) within `timeoutMs`; throws if not. */
  ping(timeoutMs = QUERY_TIMEOUT_MS): void {
    check(rdk().rd_kafka_metadata(this.rk as never, 0, null, this.outAddr as never, timeoutMs), "metadata");
    rdk().rd_kafka_metadata_destroy(read.ptr(this.outAddr, 0) as never);
  }

  /**
   * The id of the cluster the last metadata answer came from (null before the first). librdkafka
   * takes a new id as it comes, so a cluster replaced at the same address shows here.
   */
  clusterId(): string | null {
    const lib = rdk();
    const p = lib.rd_kafka_clusterid(this.rk as never, 0) as unknown as number;
    if (!p) return null;
    try {
      return readString(p);
    } finally {
      lib.rd_kafka_mem_free(this.rk as never, p as never);
    }
  }

  /**
   * Partitions of `topic` (0 if the cluster does not have it). Blocks up to `timeoutMs`. Asks for
   * every topic and picks this one out: a metadata request naming a topic makes the broker
   * auto-create it (auto.create.topics.enable), and asking must never create a topic.
   */
  partitionCount(topic: string, timeoutMs = QUERY_TIMEOUT_MS): number {
    return this.partitionCounts([topic], timeoutMs)[0]!;
  }

  /** As partitionCount, for many topics from one metadata request: what the gateway's callers share. */
  partitionCounts(topics: readonly string[], timeoutMs = QUERY_TIMEOUT_MS): number[] {
    const lib = rdk();
    check(lib.rd_kafka_metadata(this.rk as never, 1, null, this.outAddr as never, timeoutMs), `metadata for ${topics.length} topics`);
    const md = read.ptr(this.outAddr, 0);
    try {
      const wanted = new Map<string, number>(topics.map((t) => [t, 0]));
      const list = read.ptr(md, METADATA.TOPICS);
      for (let i = 0; i < read.i32(md, METADATA.TOPIC_CNT); i++) {
        const t = list + i * METADATA_TOPIC.SIZE;
        if (read.i32(t, METADATA_TOPIC.ERR) !== 0) continue;
        const name = readString(read.ptr(t, METADATA_TOPIC.NAME));
        if (wanted.has(name)) wanted.set(name, read.i32(t, METADATA_TOPIC.PARTITION_CNT));
      }
      return topics.map((t) => wanted.get(t)!);
    } finally {
      lib.rd_kafka_metadata_destroy(md as never);
    }
  }

  /**
   * A topic the cluster has whose name is `topic`'s but for `.` and `_` (Kafka takes them for one
   * name and refuses to create the second), or null. Asks for every topic, as partitionCounts does.
   */
  collidingTopic(topic: string, timeoutMs = QUERY_TIMEOUT_MS): string | null {
    const lib = rdk();
    check(lib.rd_kafka_metadata(this.rk as never, 1, null, this.outAddr as never, timeoutMs), "metadata for every topic");
    const md = read.ptr(this.outAddr, 0);
    try {
      const list = read.ptr(md, METADATA.TOPICS);
      for (let i = 0; i < read.i32(md, METADATA.TOPIC_CNT); i++) {
        const name = readString(read.ptr(list + i * METADATA_TOPIC.SIZE, METADATA_TOPIC.NAME));
        if (topicNamesCollide(name, topic)) return name;
      }
      return null;
    } finally {
      lib.rd_kafka_metadata_destroy(md as never);
    }
  }

  /** Low and high watermark of one partition, asked of its leader. Blocks up to `timeoutMs`. */
  watermarks(topic: string, partition: number, timeoutMs = QUERY_TIMEOUT_MS): { low: number; high: number } {
    const err = rdk().rd_kafka_query_watermark_offsets(this.rk as never, cstr(topic), partition, this.outAddr as never, (this.outAddr + 8) as never, timeoutMs);
    check(err, `watermarks of ${topic}/${partition}`);
    return { low: readI64(this.outAddr, 0), high: readI64(this.outAddr, 8) };
  }

  /**
   * For each partition 0..partitions-1, the earliest offset whose timestamp is >= `timestampMs`
   * (-1: none, i.e. the end). Blocks up to `timeoutMs`.
   */
  offsetsForTimes(topic: string, partitions: number, timestampMs: number, timeoutMs = QUERY_TIMEOUT_MS): number[] {
    const list = new PartitionList(partitions);
    try {
      for (let p = 0; p < partitions; p++) list.add(topic, p, timestampMs);
      check(rdk().rd_kafka_offsets_for_times(this.rk as never, list.handle as never, timeoutMs), `offsets for time in ${topic}`);
      const out: number[] = new Array(partitions);
      for (let i = 0; i < list.count; i++) {
        const e = list.elem(i);
        const err = read.i32(e, TP.ERR);
        if (err !== 0) throw new KafkaError(err, `offsets for time in ${topic}/${read.i32(e, TP.PARTITION)}: ${errString(err)}`);
        out[read.i32(e, TP.PARTITION)] = readI64(e, TP.OFFSET);
      }
      return out;
    } finally {
      list.destroy();
    }
  }
}

/** An `rd_kafka_topic_partition_list_t` built from JS; destroy() it after the call that reads it. */
export class PartitionList {
  handle: number;
  // Topic strings stay referenced until destroy(): list_add copies them, but this keeps it obvious.
  constructor(size: number) {
    this.handle = rdk().rd_kafka_topic_partition_list_new(Math.max(1, size)) as number;
  }

  static of(items: Array<{ topic: string; partition: number; offset?: number }>): PartitionList {
    const l = new PartitionList(items.length);
    for (const it of items) l.add(it.topic, it.partition, it.offset);
    return l;
  }

  /** Appends topic/partition; `offset` (an absolute offset, a logical one, or a timestamp) if given. */
  add(topic: string, partition: number, offset?: number): void {
    const lib = rdk();
    const name = cstr(topic);
    lib.rd_kafka_topic_partition_list_add(this.handle as never, name, partition);
    // set_offset takes an int64 by value: a JS number, no BigInt and no write into C memory.
    if (offset !== undefined) lib.rd_kafka_topic_partition_list_set_offset(this.handle as never, name, partition, offset);
  }

  get count(): number {
    return read.i32(this.handle, TPLIST.CNT);
  }

  /** Address of element `i` (an rd_kafka_topic_partition_t). */
  elem(i: number): number {
    return read.ptr(this.handle, TPLIST.ELEMS) + i * TP.SIZE;
  }

  destroy(): void {
    if (this.handle) rdk().rd_kafka_topic_partition_list_destroy(this.handle as never);
    this.handle = 0;
  }
}
