import type { Socket, Subprocess } from "bun";
import { GatewayError } from "../protocol/errors";
import { type ByteReader, ByteWriter, type DeliveryError, HeaderKind, InternTable, IpcType, LITERAL } from "./wire/ipc";
import { Err } from "./librdkafka/layout";
import type { SocketWriter } from "./wire/socket-writer";
import { type KeyedRecord, LostKeys } from "../log/lost-keys";

// The topic is not in Kafka (or not yet in the worker's metadata): librdkafka's own, and the broker's.
const UNKNOWN_TOPIC = new Set<number>([Err.UNKNOWN_TOPIC, Err.UNKNOWN_TOPIC_OR_PART]);
// Kafka's ACLs refuse the gateway's own principal.
const DENIED = new Set<number>([Err.TOPIC_AUTHORIZATION_FAILED, Err.GROUP_AUTHORIZATION_FAILED, Err.CLUSTER_AUTHORIZATION_FAILED, Err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED]);
/** Strings up to this many UTF-16 units are at most 0xffff bytes of UTF-8, so need no measuring. */
const MAX_U16_CHARS = 0x5555;

/**
 * Headers whose values repeat across records; ids, times and subjects are one-offs. ce_authtype and
 * ce_authid go with every event of an authenticated client (to-record.ts): an entry per principal.
 */
const REPEATING_HEADERS = new Set(["ce_specversion", "ce_source", "ce_type", "content-type", "ce_authtype", "ce_authid"]);

/** Where a record's outcome goes: the append call that submitted it, at its index. */
export interface RecordSink {
  delivered(index: number, partition: number, offset: number): void;
  failed(index: number, error: GatewayError): void;
  /** The record submitted at `index`: a lost one's key and id are read from it (LostKeys). */
  record(index: number): KeyedRecord;
}

/** Records of one PRODUCE message, in order, with where each outcome goes. */
export interface SentBatch {
  sinks: RecordSink[];
  indexes: number[];
  /** Date.now() time after which the gateway answers for the worker (see expire). */
  deadline: number;
  /** When the gateway took the batch's oldest record (before any wait in the fair share), Date.now(). */
  acceptedAt: number;
  /** Records answered already by a DELIVERY_PART (1 at their index), and how many; absent until one comes. */
  settled?: Uint8Array;
  settledCount?: number;
}

export type SlotState = "starting" | "connected" | "ready" | "stopped";

/** A record taken while the slot's worker is being replaced, handed to the replacement once it is ready. */
interface HeldRecord {
  topic: string;
  key: Uint8Array | string | null;
  value: Uint8Array | null;
  timestamp: number;
  headers: Array<[string, string | Uint8Array]>;
  sink: RecordSink;
  index: number;
  acceptedAt: number;
}

/** What a held record is counted as, on top of its key and value: its headers are bounded per event, and small. */
const HELD_OVERHEAD_BYTES = 256;

function heldCost(key: Uint8Array | string | null, value: Uint8Array | null): number {
  return HELD_OVERHEAD_BYTES + (value?.byteLength ?? 0) + (key === null ? 0 : typeof key === "string" ? key.length * 3 : key.byteLength);
}

/** One worker process and everything the gateway tracks about it. */
export class WorkerSlot {
  state: SlotState = "starting";
  proc: Subprocess | null = null;
  socket: Socket<unknown> | null = null;
  writer: SocketWriter | null = null;
  generation = 0;
  restarts = 0;
  consecutiveFailures = 0;
  readySince = 0;
  inflight = 0;
  pid = 0;
  /** How the worker's process ended, once it has, while its socket is still being read. */
  exitReason = "";
  /**
   * What the worker's librdkafka last reported (STATUS), kept while it is news: cleared when the
   * worker becomes ready or its brokers come back, so /health never shows a recovered outage's
   * error as if it were current.
   */
  lastError = "";
  /** Date.now() when lastError was reported. */
  lastErrorAt = 0;
  /** The worker's producer reaches a broker (its HEALTH reports); a fresh worker does once READY. */
  brokersUp = true;
  /** Something arrived from the worker since the pool's last liveness check. */
  heard = false;
  /** When the pool last had proof of life (Date.now()), and last pinged. */
  lastHeard = 0;
  lastPing = 0;
  readonly sent = new Map<number, SentBatch>();
  /**
   * Until when (Date.now()) records for this slot are held rather than refused while its worker is
   * replaced (WorkerPool.onLost); 0: not holding.
   */
  holdUntil = 0;
  /**
   * The seq of the PING whose answer will prove the worker is still there after the gateway stalled
   * (WorkerPool.tick); 0: nothing to prove. Records are held meanwhile.
   */
  confirming = 0;
  private held: HeldRecord[] = [];
  private heldBytes = 0;
  /** Keys whose later events are refused, for earlier ones refused or lost here are to come again. */
  readonly lostKeys: LostKeys;

  // The batch being filled; written out on the next flush.
  private readonly out = new ByteWriter(256 * 1024);
  private messageStart = -1;
  private countPos = 0;
  private openBatch: SentBatch | null = null;
  private openBatchId = 0;
  // Topics and repeating headers, sent once per worker connection (see PRODUCE in ./ipc.ts).
  private readonly topicTable = new InternTable(4096);
  private readonly headerTable = new InternTable(4096);

  constructor(
    readonly index: number,
    /** How long a batch handed to the worker may go unanswered: Kafka's message timeout and a margin. */
    private readonly deadlineMs: number,
    /** The in-flight cap: what the slot may lose at once, and what LostKeys remembers. */
    maxInflight: number,
  ) {
    this.lostKeys = new LostKeys(maxInflight);
  }

  /** A new worker connection starts with empty string tables on both sides. */
  connected(writer: SocketWriter): void {
    this.writer = writer;
    this.topicTable.clear();
    this.headerTable.clear();
  }

  /**
   * Keeps a record for the replacement worker, if the slot is holding and has room (`maxBytes` of
   * keys and values, the in-flight cap with what it holds); false: refuse it as before.
   */
  hold(topic: string, key: Uint8Array | string | null, value: Uint8Array | null, timestamp: number, headers: Array<[string, string | Uint8Array]>, sink: RecordSink, index: number, acceptedAt: number, maxBytes: number, maxInflight: number, now: number): boolean {
    if (this.holdUntil <= now || this.inflight + this.held.length >= maxInflight) return false;
    const bytes = heldCost(key, value);
    if (this.heldBytes + bytes > maxBytes) return false;
    this.heldBytes += bytes;
    this.held.push({ topic, key, value, timestamp, headers, sink, index, acceptedAt });
    return true;
  }

  /** The records held, in the order they came, taken out (to be added now that a worker is ready). */
  takeHeld(): HeldRecord[] {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    this.holdUntil = 0;
    this.confirming = 0;
    // Blocked keys are not freed here: what their clients sent before reading the refusals may still
    // be on its way, or waiting behind an in-doubt re-send (each block ends at its own time).
    return held;
  }

  /** Ends the hold, failing what it held: they never left this process. */
  releaseHeld(error: GatewayError): void {
    for (const r of this.takeHeld()) r.sink.failed(r.index, error);
  }

  get openBytes(): number {
    return this.out.pos;
  }

  /**
   * Appends one record to the open batch; `nextBatchId` is called when a new batch starts. A record
   * the PRODUCE layout cannot carry is refused through its sink, and a record that fails half-way is
   * taken back out, string-table entries included: the batch never carries half a record.
   */
  add(
    topic: string,
    key: Uint8Array | string | null,
    value: Uint8Array | null,
    timestamp: number,
    headers: Array<[string, string | Uint8Array]>,
    sink: RecordSink,
    index: number,
    nextBatchId: () => number,
    acceptedAt = Date.now(),
  ): void {
    // Only the topic keeps a 16-bit length (Kafka allows 249 characters); checked before writing.
    if (topic.length > MAX_U16_CHARS && Buffer.byteLength(topic) > 0xffff) {
      return sink.failed(index, new GatewayError("INVALID_TOPIC", "the topic name is longer than Kafka allows"));
    }
    const w = this.out;
    if (!this.openBatch) {
      this.openBatchId = nextBatchId();
      this.openBatch = { sinks: [], indexes: [], deadline: 0, acceptedAt };
      this.messageStart = w.beginMessage(IpcType.PRODUCE);
      w.u32(this.openBatchId);
      this.countPos = w.pos;
      w.u32(0);
    }
    const recordStart = w.pos;
    const topicMark = this.topicTable.mark();
    const headerMark = this.headerTable.mark();
    try {
      this.write(topic, key, value, timestamp, headers);
    } catch (e) {
      w.pos = recordStart;
      this.topicTable.rollback(topicMark);
      this.headerTable.rollback(headerMark);
      if (this.openBatch.sinks.length === 0) {
        w.pos = this.messageStart; // a batch opened for this record alone is not sent empty
        this.openBatch = null;
      }
      return sink.failed(index, new GatewayError("INVALID_EVENT", `the event cannot be passed to Kafka: ${String((e as Error)?.message ?? e)}`));
    }
    this.openBatch.sinks.push(sink);
    this.openBatch.indexes.push(index);
    if (acceptedAt < this.openBatch.acceptedAt) this.openBatch.acceptedAt = acceptedAt;
    this.inflight++;
  }

  private write(topic: string, key: Uint8Array | string | null, value: Uint8Array | null, timestamp: number, headers: Array<[string, string | Uint8Array]>): void {
    const w = this.out;
    const topicRef = this.topicTable.knownAt(0, "", topic);
    if (topicRef >= 0) w.u16(topicRef);
    else {
      w.u16(this.topicTable.add("", topic));
      w.shortString(topic);
    }
    w.nullableBytesOrString(key);
    w.nullableBytes(value);
    w.f64(timestamp);
    w.u32(headers.length);
    for (let h = 0; h < headers.length; h++) {
      const [name, v] = headers[h]!;
      if (typeof v === "string" && REPEATING_HEADERS.has(name)) {
        const ref = this.headerTable.knownAt(h, name, v);
        if (ref >= 0) {
          w.u16(ref);
          continue;
        }
        w.u16(this.headerTable.add(name, v));
      } else {
        w.u16(LITERAL);
      }
      w.longString(name);
      if (typeof v === "string") {
        w.u8(HeaderKind.TEXT);
        w.longString(v);
      } else {
        w.u8(HeaderKind.BYTES);
        w.u32(v.byteLength);
        w.bytes(v);
      }
    }
  }

  /** Sends the open batch to the worker, if any. */
  flush(): void {
    const batch = this.openBatch;
    if (!batch) return;
    this.openBatch = null;
    this.out.buf.writeUInt32LE(batch.sinks.length, this.countPos);
    this.out.endMessage(this.messageStart);
    const bytes = this.out.written();
    if (!this.writer) {
      this.out.reset();
      return this.fail(batch, new GatewayError("UNAVAILABLE", "the Kafka worker is not connected"));
    }
    // The deadline counts from when the gateway took the events, so a wait for their turn (the fair
    // share) is inside it: a client's answer comes within KAFKA_MESSAGE_TIMEOUT_MS and the margin.
    batch.deadline = Math.min(Date.now(), batch.acceptedAt) + this.deadlineMs;
    this.sent.set(this.openBatchId, batch);
    // From the writer's own buffer: only what the kernel does not take at once is copied.
    this.writer.writeTransient(bytes);
    this.out.reset();
  }

  /** A DELIVERY message: the outcome of every record of one batch, unless its deadline has passed. */
  delivered(r: ByteReader): void {
    const batchId = r.u32();
    const count = r.u32();
    const batch = this.sent.get(batchId);
    if (!batch) return;
    this.sent.delete(batchId);
    const errors = readErrors(r, count * 16);
    const settled = batch.settled;
    for (let i = 0; i < count; i++) {
      const partition = r.i32();
      const offset = r.f64();
      const errorIndex = r.i32();
      if (settled === undefined || settled[i] === 0) settle(batch, i, partition, offset, errorIndex, errors);
    }
    this.inflight -= count - (batch.settledCount ?? 0);
  }

  /**
   * A DELIVERY_PART message: records of a batch that have their outcome while others of it still
   * wait (worker/pending.ts), answered now; the batch's DELIVERY skips them later.
   */
  deliveredPart(r: ByteReader): void {
    const batch = this.sent.get(r.u32());
    if (!batch) return;
    const count = r.u32();
    const errors = readErrors(r, count * 20);
    const settled = (batch.settled ??= new Uint8Array(batch.sinks.length));
    for (let n = 0; n < count; n++) {
      const i = r.u32();
      const partition = r.i32();
      const offset = r.f64();
      const errorIndex = r.i32();
      if (i >= settled.length || settled[i] === 1) continue;
      settled[i] = 1;
      batch.settledCount = (batch.settledCount ?? 0) + 1;
      this.inflight--;
      settle(batch, i, partition, offset, errorIndex, errors);
    }
  }

  /**
   * The worker is gone. Records it had may or may not have reached Kafka (WORKER_LOST says so);
   * records still in our own open batch never left this process. Each failed record's key is
   * blocked (LostKeys) until `blockUntil`, or `lostBlockUntil` for those whose write is in doubt
   * (0: not at all, the gateway stopping), and records held already (after a stall, while the worker
   * was checked) that came after one of them are refused.
   */
  failEverything(reason: string, blockUntil: number, lostBlockUntil: number, keyOrder: GatewayError): void {
    const holding = blockUntil !== 0;
    const lost = new GatewayError("WORKER_LOST", `the Kafka worker exited (${reason}) before Kafka acknowledged the event; it may or may not have been written`);
    const lostBlock = lostBlockUntil !== 0 ? { until: lostBlockUntil, refusal: keyOrder } : undefined;
    for (const batch of this.sent.values()) this.fail(batch, lost, lostBlock);
    this.sent.clear();
    if (this.openBatch) {
      const batch = this.openBatch;
      this.openBatch = null;
      this.out.pos = 0;
      this.fail(batch, new GatewayError("UNAVAILABLE", `the Kafka worker is unavailable: ${reason}`), holding ? { until: blockUntil, refusal: keyOrder } : undefined);
    }
    if (!holding || this.lostKeys.empty || this.held.length === 0) return;
    const kept: HeldRecord[] = [];
    const now = Date.now();
    for (const r of this.held) {
      if (!this.lostKeys.blocks(r, now)) kept.push(r);
      else {
        this.lostKeys.block(r, blockUntil, keyOrder);
        this.heldBytes -= heldCost(r.key, r.value);
        r.sink.failed(r.index, keyOrder);
      }
    }
    this.held = kept;
  }

  /**
   * Answers for the worker where it has not: batches past their deadline are failed PUBLISH_TIMEOUT
   * (they may yet be written), and their delivery reports, should they come, find nothing.
   */
  expire(now: number): void {
    let timeout: GatewayError | null = null;
    for (const [id, batch] of this.sent) {
      // Deadlines follow sending order but for waits in the fair share, which make a later batch's
      // earlier: every batch is looked at (a few hundred at most, a few times a second).
      if (batch.deadline > now) continue;
      this.sent.delete(id);
      timeout ??= new GatewayError("PUBLISH_TIMEOUT", `Kafka did not acknowledge the event within ${this.deadlineMs} ms; it may or may not have been written`);
      this.fail(batch, timeout);
    }
  }

  /** Fails what `batch` has not settled with `error`; with `block`, each failed record's key is blocked until then, later events refused with its refusal. */
  private fail(batch: SentBatch, error: GatewayError, block?: { until: number; refusal: GatewayError }): void {
    const settled = batch.settled;
    for (let i = 0; i < batch.sinks.length; i++) {
      if (settled !== undefined && settled[i] !== 0) continue;
      if (block) this.lostKeys.block(batch.sinks[i]!.record(batch.indexes[i]!), block.until, block.refusal);
      batch.sinks[i]!.failed(batch.indexes[i]!, error);
    }
    this.inflight -= batch.sinks.length - (batch.settledCount ?? 0);
  }
}

/**
 * The errors JSON that follows `recordsBytes` of records in DELIVERY and DELIVERY_PART (ipc.ts);
 * `r` is left at the first record.
 */
function readErrors(r: ByteReader, recordsBytes: number): GatewayError[] {
  const recordsStart = r.pos;
  r.pos = recordsStart + recordsBytes;
  const errorsLen = r.u32();
  // One GatewayError for each error the worker sent, shared by every record that names it.
  const errors = errorsLen > 2 ? (JSON.parse(r.buf.toString("utf8", r.pos, r.pos + errorsLen)) as DeliveryError[]).map(toGatewayError) : [];
  r.pos = recordsStart;
  return errors;
}

/** Record `i` of `batch` told its outcome: written at `partition`/`offset`, or `errors[errorIndex]`. */
function settle(batch: SentBatch, i: number, partition: number, offset: number, errorIndex: number, errors: GatewayError[]): void {
  if (errorIndex < 0) batch.sinks[i]!.delivered(batch.indexes[i]!, partition, offset);
  else batch.sinks[i]!.failed(batch.indexes[i]!, errors[errorIndex]!);
}

function toGatewayError(e: DeliveryError): GatewayError {
  if (e.code === Err.MSG_TIMED_OUT) {
    // One situation, one code: librdkafka's own UNKNOWN_TOPIC comes only once the topic has been
    // missing for topic.metadata.propagation.max.ms, and a shorter message timeout came first.
    if (e.unpartitioned) return new GatewayError("KAFKA_REJECTED", `UNKNOWN_TOPIC: Kafka answered throughout the message timeout (${e.message}) and never had the event's topic; it was never sent`, { topicUnknown: true });
    return new GatewayError("PUBLISH_TIMEOUT", `Kafka did not acknowledge the event in time (${e.message})`);
  }
  if (UNKNOWN_TOPIC.has(e.code)) return new GatewayError("KAFKA_REJECTED", `${e.name}: ${e.message}`, { topicUnknown: true });
  if (DENIED.has(e.code)) return new GatewayError("KAFKA_DENIED", `${e.name}: ${e.message}: Kafka's ACLs refuse the gateway's own principal this write; an operator must grant it Write on the topic`);
  return new GatewayError(e.retriable ? "KAFKA_RETRIABLE" : "KAFKA_REJECTED", `${e.name}: ${e.message}`);
}
