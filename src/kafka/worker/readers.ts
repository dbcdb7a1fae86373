/**
 * The consuming half of the Bun Kafka worker (main.ts), with the Node worker's protocol
 * (worker-readers.ts): a reader is a consumer with manual assignment and no commits, or, for a
 * shared subscription, a group member with auto-commit; it sends RECORDS only while fewer than
 * READER_CREDIT of them await a RECORDS_ACK. Each record's key, value and headers are copied once,
 * from librdkafka's memory straight into the outgoing message (../wire/records-layout.ts).
 */
import type { Assignment } from "../../log/event-log";
import { ByteWriter, IpcType, READER_CREDIT, jsonMessage } from "../wire/ipc";
import { Consumer, type ConsumerHandle, Err, MessageBatch, destroyHandle, newConsumerHandle } from "../librdkafka";
import { encodeSourceRecord } from "../wire/records-layout";
import type { StatusReporter } from "./status";

const BATCH = 500;
// What one RECORDS message should hold at most. A reader has READER_CREDIT of them in flight, held
// by the gateway until its subscribers take them (a replay whose client does not read holds them):
// 500 records of 16 KB were 8 MB each, and eight such replays took 400 MB in each process.
const RECORDS_BUDGET_BYTES = 1024 * 1024;
// What one reader may have awaiting RECORDS_ACK, in bytes, besides READER_CREDIT messages: records
// of 900 KB make each message one record, and four of them per replay that is not read, times the
// replays, were what the gateway held (64 such replays: 1.6 GB). One message always goes.
const OUTSTANDING_BYTES = RECORDS_BUDGET_BYTES;
// How long a manual reader may be held (its subscribers not taking what it sent) before what
// librdkafka fetched ahead for it is let go. Fetches are sized in compressed bytes and held
// decompressed: 24 replays of records that compress 250:1, none read, held 572 MB in a worker, and
// 64 of them 1.7 GB, until it answered no ping and was killed, failing other clients' publishes
// WORKER_LOST (hostile tester). Released, a held reader costs the worker nothing; it is assigned
// again at exactly the offsets it stopped at once its subscribers take what it sent.
const RELEASE_HELD_AFTER_MS = 200;
// What reading may take of one turn of the worker's loop, over all its readers; the rest are served
// next turn, a millisecond later. The producer's delivery reports are polled between turns: sixteen
// replays each encoding a 1 MiB RECORDS message in one turn held every publish acknowledgement of
// the worker behind them (a control publisher's p99 0.2-1 s with one worker).
const READ_TURN_MS = 3;
// RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET: with auto.offset.reset=error, a fetch position the log does not have.
const AUTO_OFFSET_RESET = -140;
// RD_KAFKA_RESP_ERR__PARTITION_EOF (enable.partition.eof): the fetch position reached the partition's
// end; the message's offset is that position, past any transaction markers and aborted records.
const PARTITION_EOF = -191;

/** A partition whose fetch position the log no longer has (OUT_OF_RANGE), or whose end it reached past its last record (PARTITION_END). */
interface LostPlace {
  topic: string;
  partition: number;
  offset: number;
}

type ReaderGroup = { id: string; topics: string[]; metadataRefreshMs?: number };
type ReaderMessage = { readerId: number; group?: ReaderGroup; assignments?: Assignment[]; onlyHeaders?: string[]; bulk?: boolean };

/** A reader's consumer properties: the worker's, then what its mode needs. */
function readerProps(config: Record<string, string | number | boolean>, readerId: number, group?: ReaderGroup): Record<string, string | number | boolean> {
  // A group commits only what the gateway says its members were handed (STORE_OFFSETS), never what
  // this worker merely read: a member whose connection drops leaves its records to the group.
  // A manual reader whose next offset is gone does not jump anywhere by itself (librdkafka's default
  // would be the partition's end, skipping what is still there, in silence): it stops, and the
  // gateway decides where to go on and tells the subscribers what they missed (OUT_OF_RANGE).
  // A group reader whose commit is gone (retention, or the topic created again since) reads on from
  // the log's start: at least once. A new group does not start there: the gateway commits the end
  // for it first (startGroupAtEnd), so earliest only ever applies to a commit the log lost.
  const mode: Record<string, string | boolean> = group
    ? { "enable.auto.commit": true, "enable.auto.offset.store": false, "auto.offset.reset": "earliest" }
    : { "enable.auto.commit": false, "auto.offset.reset": "error" };
  // As the Node reader (worker-readers.ts): a group member whose worker dies holds its partitions
  // until its session times out, so share groups get 10 s rather than librdkafka's 45 s.
  // A group finds partitions added to its topics when its members refresh the topics' metadata:
  // at librdkafka's default, every 5 minutes, which left a share group's members without the new
  // partitions' records that long (chaos tester). KAFKA_PROPERTIES may still set it otherwise.
  // Under group.protocol=consumer (KIP-848) the broker sets both, and librdkafka refuses them.
  const brokerSide = config["group.protocol"] === "consumer";
  const session: Record<string, number> = group ? { ...(brokerSide ? {} : { "session.timeout.ms": 10_000, "heartbeat.interval.ms": 3000 }), ...(group.metadataRefreshMs ? { "topic.metadata.refresh.interval.ms": group.metadataRefreshMs } : {}) } : {};
  // A manual reader is told where a partition ends (PARTITION_EOF), since a replay goes live only
  // once it is there, and a partition may end in offsets no record is handed for: transaction
  // markers and aborted records. A group member's feed has no end to reach.
  return { ...session, ...config, ...mode, "enable.partition.eof": !group, "group.id": group?.id ?? `kgw-reader-${process.pid}-${readerId}` };
}

/**
 * Throws librdkafka's reason if a reader's consumer, of any kind (manual, bulk, group member), could
 * not be made from `config` and `bulkConfig`: the worker's start fails with it (WORKER_CONFIG_REFUSED).
 * The producer alone was made at the start, and a property only a consumer refuses
 * (receive.message.max.bytes below fetch.max.bytes + 512, say) left every subscription answered and
 * never delivered, the gateway ready, its worker reporting the failure of each open as a warning.
 */
export function checkReaderProps(config: Record<string, string | number | boolean>, bulkConfig: Record<string, string | number | boolean>): void {
  const group = { id: "kgw-config-check", topics: [], metadataRefreshMs: 1000 };
  for (const props of [readerProps(config, 0), readerProps({ ...config, ...bulkConfig }, 0), readerProps(config, 0, group)]) {
    destroyHandle(newConsumerHandle(props).rk);
  }
}

class Reader {
  private readonly consumer: Consumer;
  private readonly batch = new MessageBatch(BATCH);
  /**
   * The first record of `batch` not yet sent. A batch is sized by the records seen so far, and a
   * record much larger than them fills a RECORDS message on its own: the rest wait here, taken
   * already from librdkafka, for the next message. (The first batch of 200 KB records was 30 of
   * them, one 6 MB message and one 6 MB frame that each of 64 replays that did not read made Bun
   * hold: the gateway at 1.2 GB.)
   */
  private sentUpTo = 0;
  /** Partitions ("partition:topic") unassigned while records of theirs wait in `batch`: those are not sent. */
  private readonly dropCarried = new Set<string>();
  /** For consume() calls whose records are discarded (closing, released): `batch` may hold some unsent. */
  private readonly discard = new MessageBatch(BATCH);
  private readonly out = new ByteWriter(64 * 1024);
  /** Sizes of the RECORDS awaiting RECORDS_ACK (as many as are), oldest first: acks come in order. */
  private readonly outstanding: number[] = [];
  private outstandingBytes = 0;
  private closing = false;
  /** Messages the last tick() took from librdkafka (records and errors). */
  consumed = 0;
  /** Bytes per record in the RECORDS sent so far (a moving average): sizes the next batch to the budget. */
  private recordBytes = 256;
  /**
   * A manual reader's partitions, each with the offset it was assigned at, then (at a release) the
   * next one to hand over: where it is assigned again. Null for a group member, whose partitions are
   * the group's to move.
   */
  private readonly next: Map<string, Assignment> | null;
  /**
   * A manual reader's next offset after the last record sent, per partition ("partition:topic"): a
   * partition end is worth telling only past it (a transaction's marker or aborted records between).
   */
  private readonly sentNext = new Map<string, number>();
  /**
   * The run of records of one partition encode() is sending: the index of its last (-1: none), noted
   * in sentNext when the run ends, so the key is made once per run rather than per record.
   */
  private runLast = -1;
  private runTopic = 0;
  private runPartition = -1;
  /** Topics ("" for the group) Kafka's ACLs refused, told to the gateway (READER_DENIED) once each. */
  private readonly deniedTopics = new Set<string>();
  /** Refusals found by the last encode(), sent after its records. */
  private readonly denials: Array<{ topic: string; message: string }> = [];
  /** When the reader became held (performance.now()), 0 while it is not. */
  private heldSince = 0;
  /** Its partitions are unassigned while it is held (RELEASE_HELD_AFTER_MS). */
  private released = false;

  constructor(
    readonly id: number,
    handle: ConsumerHandle,
    private readonly send: (buf: Buffer) => void,
    private readonly status: StatusReporter,
    group?: ReaderGroup,
    /** ReaderOptions.onlyHeaders, as bytes to compare names with. */
    private readonly only: Uint8Array[] | null = null,
  ) {
    this.consumer = new Consumer(handle);
    const groupTopics = group?.topics;
    this.next = groupTopics ? null : new Map();
    if (groupTopics) this.consumer.subscribe(groupTopics);
    // The consumer connects in the background, as the Node reader's 'ready' did.
    send(jsonMessage(IpcType.READER_READY, { readerId: id }));
  }

  /**
   * Reads `list`'s partitions from their offsets. A partition already assigned is moved there
   * (unassigned first): librdkafka refuses a whole list holding one already assigned, and a feed's
   * move of one partition racing its reader's opening (a worker restart mid-replay) left every other
   * partition of the list unread, for good.
   */
  assign(list: Assignment[]): void {
    if (this.next) {
      const again = list.filter((a) => this.next!.has(`${a.partition}:${a.topic}`));
      if (again.length > 0) this.unassign(again);
    }
    for (const a of list) {
      this.next?.set(`${a.partition}:${a.topic}`, { ...a });
      this.sentNext.delete(`${a.partition}:${a.topic}`);
      // Asked for afresh (a long-lived reader following a topic it had let go): a refusal is news again.
      if (this.deniedTopics.size > 0) this.deniedTopics.delete(a.topic);
    }
    if (!this.released) this.consumer.incrementalAssign(list);
  }

  /** Stops reading `list`'s partitions; those not assigned are left alone (librdkafka refuses the whole list for one). */
  unassign(list: Assignment[]): void {
    const present = this.next ? list.filter((a) => this.next!.has(`${a.partition}:${a.topic}`)) : list;
    if (present.length === 0) return;
    for (const a of present) {
      this.next?.delete(`${a.partition}:${a.topic}`);
      this.sentNext.delete(`${a.partition}:${a.topic}`);
    }
    if (this.sentUpTo > 0) for (const a of present) this.dropCarried.add(`${a.partition}:${a.topic}`);
    if (!this.released) this.consumer.incrementalUnassign(present.map(({ topic, partition }) => ({ topic, partition })));
  }

  /** Lets go of what librdkafka holds for this reader: its partitions, and with them what it fetched ahead. */
  private release(): void {
    const parts = [...this.next!.values()];
    // Where it is: past every record librdkafka handed it, else as assigned.
    const at = parts.length > 0 ? this.consumer.positions(parts) : [];
    // Let go first: should librdkafka refuse, nothing here has changed, and the records carried stay to be sent.
    if (parts.length > 0) this.consumer.incrementalUnassign(parts.map(({ topic, partition }) => ({ topic, partition })));
    this.released = true;
    parts.forEach((p, i) => {
      if (at[i]! >= 0) p.offset = at[i]!;
    });
    // Records taken from librdkafka and not sent yet are let go too, and read again from the first.
    const b = this.batch;
    for (let i = this.sentUpTo; i < b.count; i++) {
      if (b.err(i) !== 0) continue;
      const key = `${b.partition(i)}:${b.topic(i)}`;
      const p = this.next!.get(key);
      if (p && !this.dropCarried.has(key) && b.offset(i) < p.offset) p.offset = b.offset(i);
    }
    b.release();
    this.sentUpTo = 0;
    this.dropCarried.clear();
  }

  private restore(): void {
    this.released = false;
    if (this.next!.size > 0) this.consumer.incrementalAssign([...this.next!.values()]);
  }

  acked(): void {
    this.outstandingBytes -= this.outstanding.shift() ?? 0;
  }

  storeOffsets(list: Assignment[]): void {
    if (!this.closing) this.consumer.storeOffsets(list);
  }

  close(): void {
    this.closing = true;
    try {
      this.consumer.beginClose();
    } catch {
      // Already closing or never joined: destroy() in tick() finishes it either way.
    }
  }

  /** Reads what is ready (never blocks). Returns false once closed and freed. */
  tick(): boolean {
    if (this.closing) {
      this.batch.release();
      this.consumer.consume(this.discard, 0); // serves the close; records are discarded
      this.discard.release();
      if (!this.consumer.closed()) return true;
      this.consumer.destroy();
      return false;
    }
    const held = this.outstanding.length;
    if (held >= READER_CREDIT || (held > 0 && this.outstandingBytes >= OUTSTANDING_BYTES)) {
      if (this.next === null) return true;
      const now = performance.now();
      if (this.heldSince === 0) this.heldSince = now;
      else if (!this.released && now - this.heldSince >= RELEASE_HELD_AFTER_MS) this.release();
      if (this.released) {
        // What was fetched for the partitions before they were let go is stale now: serving the
        // queue frees it (and anything it returns is read again from `next` once restored).
        this.consumer.consume(this.discard, 0);
        this.discard.release();
      }
      return true;
    }
    this.heldSince = 0;
    if (this.released) this.restore();
    let from = this.sentUpTo;
    if (from >= this.batch.count) {
      from = 0;
      this.consumer.consume(this.batch, 0, Math.floor(RECORDS_BUDGET_BYTES / this.recordBytes));
    }
    const n = this.batch.count;
    // Records handed on: what makes the worker's loop come back soon (carried ones included).
    this.consumed = n - from;
    if (n > from) {
      const gone: LostPlace[] = [];
      const ends: LostPlace[] = [];
      const { msg, end } = this.encode(from, n, gone, ends);
      if (msg) this.recordBytes = Math.max(16, 0.5 * this.recordBytes + (0.5 * msg.length) / (end - from));
      this.sentUpTo = end;
      if (end >= n) {
        this.batch.release();
        this.sentUpTo = 0;
        this.dropCarried.clear();
      }
      if (msg) {
        this.outstanding.push(msg.length);
        this.outstandingBytes += msg.length;
        this.send(msg);
      }
      // After the records: those of the partition before its lost position (or its end) come first.
      for (const g of gone) this.send(jsonMessage(IpcType.OUT_OF_RANGE, { readerId: this.id, ...g }));
      for (const e of ends) this.send(jsonMessage(IpcType.PARTITION_END, { readerId: this.id, ...e }));
      for (const d of this.denials.splice(0)) this.send(jsonMessage(IpcType.READER_DENIED, { readerId: this.id, ...d }));
    }
    return true;
  }

  /** Kafka's ACLs refuse `topic` ("": the group) to this reader's principal: the gateway is told once, the log says it once. */
  private denied(topic: string, message: string): void {
    if (this.deniedTopics.has(topic)) return;
    this.deniedTopics.add(topic);
    this.denials.push({ topic, message });
    this.status.report("warn", "reader_denied", `${topic === "" ? "the reader's group" : topic}: ${message}`, { readerId: this.id });
  }

  /**
   * RECORDS for the batch's records from `from`, up to RECORDS_BUDGET_BYTES (one record at least),
   * and where it stopped; msg null if none. Errors are reported, not forwarded, except a position
   * the log no longer has, which goes into `gone` (OUT_OF_RANGE), and a partition's end past the
   * last record sent, into `ends` (PARTITION_END).
   */
  private encode(from: number, n: number, gone: LostPlace[], ends: LostPlace[]): { msg: Buffer | null; end: number } {
    const b = this.batch;
    const w = this.out;
    const start = w.beginMessage(IpcType.RECORDS);
    w.u32(this.id);
    const countPos = w.pos;
    w.u32(0);
    let count = 0;
    let i = from;
    for (; i < n && (count === 0 || w.pos - start < RECORDS_BUDGET_BYTES); i++) {
      const err = b.err(i);
      if (err === PARTITION_EOF) {
        this.endRun();
        this.partitionEnd(b.topic(i), b.partition(i), b.offset(i), ends);
        continue;
      }
      if (err === AUTO_OFFSET_RESET) gone.push({ topic: b.topic(i), partition: b.partition(i), offset: b.offset(i) });
      else if (err === Err.TOPIC_AUTHORIZATION_FAILED) this.denied(b.topicIfAny(i), b.errorString(i));
      // A manual reader's group id only names it (it never joins nor commits): a group it may not use
      // costs it nothing, and its records still come.
      else if (err === Err.GROUP_AUTHORIZATION_FAILED && this.next === null) this.denied("", b.errorString(i));
      else if (err !== 0) this.status.report("warn", "reader_error", b.errorString(i), { code: err, readerId: this.id });
      if (err !== 0) continue;
      // Read again (an ACL granted since): a later refusal of it is news again.
      if (this.deniedTopics.size > 0) this.deniedTopics.delete(b.topic(i));
      if (this.dropCarried.size > 0 && this.dropCarried.has(`${b.partition(i)}:${b.topic(i)}`)) continue;
      if (this.next !== null) {
        const topic = b.topicHandle(i);
        const partition = b.partition(i);
        if (this.runLast >= 0 && (topic !== this.runTopic || partition !== this.runPartition)) this.endRun();
        this.runLast = i;
        this.runTopic = topic;
        this.runPartition = partition;
      }
      count++;
      const recordStart = w.pos;
      try {
        encodeSourceRecord(w, b, i, true, this.only);
      } catch (e) {
        // The record still goes (its offset moves every position on), without what could not be
        // encoded: subscribers get it with no headers, not a worker that dies on it at every read.
        w.pos = recordStart;
        this.status.report("warn", "record_unencodable", `${b.topic(i)}/${b.partition(i)}@${b.offset(i)}: ${String((e as Error)?.message ?? e)}`, { readerId: this.id });
        encodeSourceRecord(w, b, i, false);
      }
    }
    this.endRun();
    if (count === 0) {
      w.pos = 0;
      return { msg: null, end: i };
    }
    w.buf.writeUInt32LE(count, countPos);
    w.endMessage(start);
    return { msg: w.take(), end: i };
  }

  private endRun(): void {
    if (this.runLast < 0) return;
    const b = this.batch;
    this.sentNext.set(`${b.partition(this.runLast)}:${b.topic(this.runLast)}`, b.offset(this.runLast) + 1);
    this.runLast = -1;
  }

  /** An end is told when it lies past the last record sent (or none was): a live reader's ends never are. */
  private partitionEnd(topic: string, partition: number, offset: number, ends: LostPlace[]): void {
    const key = `${partition}:${topic}`;
    if (this.next === null || offset < 0 || this.dropCarried.has(key)) return;
    const sent = this.sentNext.get(key);
    if (sent !== undefined && offset <= sent) return;
    this.sentNext.set(key, offset);
    ends.push({ topic, partition, offset });
  }
}

/**
 * Makes a consumer's handle off the worker's loop (a thread of ./queries.ts) and calls back on it: rd_kafka_new()
 * blocks while librdkafka starts its threads.
 */
export type ConsumerOpener = (props: Record<string, string | number | boolean>, done: (made: ConsumerHandle | Error) => void) => void;

/** The readers of one worker process, driven by the gateway's JSON control messages. */
export class FfiReaders {
  private readonly readers = new Map<number, Reader>();
  /**
   * Readers whose consumer is being made, with the messages that came for them meanwhile (applied in
   * order once it is). Made on the loop, sixteen replays opened at once held the worker's delivery
   * reports, and so other clients' publish acks, for 60-270 ms: 4-27 ms each.
   */
  private readonly opening = new Map<number, Array<[number, ReaderMessage]>>();

  constructor(
    private readonly config: Record<string, string | number | boolean>,
    /** What a bulk reader's consumer sets on top of `config` (OPEN_READER's `bulk`). */
    private readonly bulkConfig: Record<string, string | number | boolean>,
    private readonly send: (buf: Buffer) => void,
    private readonly status: StatusReporter,
    private readonly open: ConsumerOpener,
  ) {}

  get size(): number {
    return this.readers.size;
  }

  handle(type: number, msg: ReaderMessage): void {
    const waiting = this.opening.get(msg.readerId);
    if (waiting) return void waiting.push([type, msg]);
    if (type === IpcType.OPEN_READER) {
      this.opening.set(msg.readerId, []);
      const props = readerProps({ ...this.config, ...(msg.bulk === true ? this.bulkConfig : {}) }, msg.readerId, msg.group);
      this.open(props, (made) => this.opened(msg, made));
      return;
    }
    const reader = this.readers.get(msg.readerId);
    if (!reader) return;
    if (type === IpcType.ASSIGN) reader.assign(msg.assignments ?? []);
    else if (type === IpcType.UNASSIGN) reader.unassign(msg.assignments ?? []);
    else if (type === IpcType.RECORDS_ACK) reader.acked();
    else if (type === IpcType.STORE_OFFSETS) reader.storeOffsets(msg.assignments ?? []);
    else if (type === IpcType.CLOSE_READER) {
      // Kept until its close completes (tick), then freed; the gateway has already forgotten it.
      this.readers.delete(msg.readerId);
      this.order = null;
      reader.close();
      this.closing.add(reader);
    }
  }

  /** A consumer was made for OPEN_READER `msg` (or could not be: the gateway's ready timeout answers its opener). */
  private opened(msg: ReaderMessage, made: ConsumerHandle | Error): void {
    const waiting = this.opening.get(msg.readerId) ?? [];
    this.opening.delete(msg.readerId);
    if (made instanceof Error) return void this.status.report("error", "reader_error", made.message, { readerId: msg.readerId });
    const only = Array.isArray(msg.onlyHeaders) ? msg.onlyHeaders.map((n) => Buffer.from(n)) : null;
    this.order = null;
    this.readers.set(msg.readerId, new Reader(msg.readerId, made, this.send, this.status, msg.group, only));
    for (const [type, m] of waiting) this.handle(type, m);
  }

  private readonly closing = new Set<Reader>();
  /** The readers in turn order, made again only when one opens or closes (tick runs every millisecond). */
  private order: Reader[] | null = null;
  /** Where the next turn starts among the readers, when the last was cut short. */
  private nextReader = 0;
  /** The last tick() ran out of its budget before every reader was served. */
  cutShort = false;

  /**
   * Serves every reader once without blocking; returns how many messages they took. One reader
   * that throws is reported and skipped, not allowed to starve the others.
   */
  tick(): number {
    let consumed = 0;
    this.cutShort = false;
    // From where the last turn stopped, while the turn's budget lasts (one reader at least).
    const readers = (this.order ??= [...this.readers.values()]);
    const began = performance.now();
    for (let k = 0; k < readers.length; k++) {
      const r = readers[(this.nextReader + k) % readers.length]!;
      try {
        r.consumed = 0;
        r.tick();
        consumed += r.consumed;
      } catch (e) {
        this.status.report("error", "reader_error", String((e as Error)?.message ?? e), { readerId: r.id });
      }
      if (performance.now() - began >= READ_TURN_MS && k + 1 < readers.length) {
        this.nextReader = (this.nextReader + k + 1) % readers.length;
        this.cutShort = true;
        break;
      }
    }
    for (const r of this.closing) {
      try {
        if (!r.tick()) this.closing.delete(r);
      } catch (e) {
        this.closing.delete(r); // a close that fails is not retried every millisecond
        this.status.report("error", "reader_error", String((e as Error)?.message ?? e), { readerId: r.id });
      }
    }
    return consumed;
  }

  closeAll(): void {
    for (const [readerId, waiting] of this.opening) waiting.push([IpcType.CLOSE_READER, { readerId }]);
    for (const r of this.readers.values()) {
      r.close();
      this.closing.add(r);
    }
    this.readers.clear();
    this.order = null;
  }

  /** Whether readers are still finishing their close. */
  get closingCount(): number {
    return this.closing.size;
  }
}
