/**
 * The consuming half of a Kafka worker (runs on Node, inside worker.ts). Each reader is a
 * KafkaConsumer with manual assignment and no commits: positions belong to the gateway's
 * subscribers, not to a consumer group (docs/subscriptions.md).
 */
import Kafka from "@confluentinc/kafka-javascript";
import type { Assignment } from "../log/event-log";
import { ByteWriter, IpcType, READER_CREDIT, jsonMessage } from "./ipc";
import { type ConsumedMessage, encodeRecord } from "./records-layout";
import type { StatusReporter } from "./status";

type KafkaMessage = ConsumedMessage;

const BATCH = 500;

class Reader {
  private readonly consumer: InstanceType<typeof Kafka.KafkaConsumer>;
  private outstanding = 0;
  private polling = false;
  private closed = false;
  private readonly out = new ByteWriter(64 * 1024);

  constructor(
    readonly id: number,
    config: Record<string, string | number | boolean>,
    private readonly send: (buf: Buffer) => void,
    private readonly status: StatusReporter,
    /** Group mode (shared subscriptions): Kafka assigns the partitions and offsets are committed. */
    groupTopics?: string[],
  ) {
    const mode = groupTopics
      ? { "enable.auto.commit": true, "auto.offset.reset": "latest" }
      : { "enable.auto.commit": false };
    // A group member that dies without leaving (its worker killed) holds its partitions until its
    // session times out; librdkafka's 45 s default would stall a share group that long after every
    // worker loss. 10 s (heartbeats every 3 s) is the broker's usual floor of 6 s with room to spare;
    // KAFKA_PROPERTIES can still set it.
    const session = groupTopics ? { "session.timeout.ms": 10_000, "heartbeat.interval.ms": 3000 } : {};
    this.consumer = new Kafka.KafkaConsumer({ ...session, ...config, ...mode, "enable.partition.eof": false } as never, {} as never);
    this.consumer.setDefaultConsumeTimeout(100);
    // Wait for the first message only, then take what is already fetched. By default the binding
    // waits up to the timeout for every message until the batch is full, so a topic with 100
    // events/s delivered them seconds late (S4: p50 2.6 s with 1,000 subscribers).
    // (In lib/kafka-consumer.js, missing from the binding's type declarations.)
    (this.consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(v: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
    this.consumer.on("ready", () => {
      if (groupTopics) this.consumer.subscribe(groupTopics);
      send(jsonMessage(IpcType.READER_READY, { readerId: id }));
      this.poll();
    });
    // Readers share one report per kind: with the brokers down every one of them says the same thing.
    this.consumer.on("event.error", (err: { code: number; message: string }) => status.report("warn", "reader_error", err.message, { code: err.code, readerId: id }));
    this.consumer.connect();
  }

  // In the binding (lib/kafka-consumer.js) but missing from its type declarations.
  private get incremental() {
    return this.consumer as unknown as { incrementalAssign(l: object[]): void; incrementalUnassign(l: object[]): void };
  }

  assign(list: Assignment[]): void {
    this.incremental.incrementalAssign(list);
  }

  unassign(list: Assignment[]): void {
    this.incremental.incrementalUnassign(list.map(({ topic, partition }) => ({ topic, partition })));
  }

  acked(): void {
    this.outstanding--;
    this.poll();
  }

  close(): void {
    this.closed = true;
    this.consumer.disconnect();
  }

  private poll(): void {
    if (this.polling || this.closed || this.outstanding >= READER_CREDIT) return;
    this.polling = true;
    this.consumer.consume(BATCH, (err: unknown, messages: KafkaMessage[]) => {
      this.polling = false;
      if (this.closed) return;
      if (!err && messages.length > 0) {
        let batch: Buffer | null = null;
        try {
          batch = this.encode(messages);
        } catch (e) {
          // Not thrown out of librdkafka's callback: that would take the worker, and every reader on it, down.
          this.status.report("error", "records_unencodable", String((e as Error)?.message ?? e), { readerId: this.id });
        }
        if (batch) {
          this.outstanding++;
          this.send(batch);
        }
      }
      // Errors here are transient (timeouts, rebalances of metadata); event.error reports the rest.
      this.poll();
    });
  }

  private encode(messages: KafkaMessage[]): Buffer {
    const w = this.out;
    const start = w.beginMessage(IpcType.RECORDS);
    w.u32(this.id);
    w.u32(messages.length);
    for (const m of messages) {
      const recordStart = w.pos;
      try {
        encodeRecord(w, m, m.headers ?? []);
      } catch (e) {
        // The record still goes (its offset moves every position on), without what could not be
        // encoded: subscribers get it with no headers, not a worker that dies on it at every read.
        w.pos = recordStart;
        this.status.report("warn", "record_unencodable", `${m.topic}/${m.partition}@${m.offset}: ${String((e as Error)?.message ?? e)}`, { readerId: this.id });
        encodeRecord(w, m, []);
      }
    }
    w.endMessage(start);
    return w.take();
  }
}

/** The readers of one worker process, driven by the gateway's JSON control messages. */
export class Readers {
  private readonly readers = new Map<number, Reader>();

  constructor(
    private readonly config: Record<string, string | number | boolean>,
    private readonly send: (buf: Buffer) => void,
    private readonly status: StatusReporter,
  ) {}

  handle(type: number, msg: { readerId: number; group?: { id: string; topics: string[] }; assignments?: Assignment[] }): void {
    if (type === IpcType.OPEN_READER) {
      const groupId = msg.group?.id ?? `kgw-reader-${process.pid}-${msg.readerId}`;
      this.readers.set(msg.readerId, new Reader(msg.readerId, { ...this.config, "group.id": groupId }, this.send, this.status, msg.group?.topics));
      return;
    }
    const reader = this.readers.get(msg.readerId);
    if (!reader) return;
    if (type === IpcType.ASSIGN) reader.assign(msg.assignments ?? []);
    else if (type === IpcType.UNASSIGN) reader.unassign(msg.assignments ?? []);
    else if (type === IpcType.RECORDS_ACK) reader.acked();
    else if (type === IpcType.CLOSE_READER) {
      reader.close();
      this.readers.delete(msg.readerId);
    }
  }

  closeAll(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
  }
}
