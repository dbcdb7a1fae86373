import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket, TCPSocketListener, UnixSocketListener } from "bun";
import { GatewayError, shuttingDown } from "../protocol/errors";
import { ByteReader, IpcType, MessageReader, type Query, jsonMessage } from "./wire/ipc";
import { QueryTable } from "./queries";
import { removeStaleWorkerFiles } from "./stale-files";
import type { LogReader, ReaderGroup, ReaderHandlers, ReaderOptions } from "../log/event-log";
import { ReaderRegistry } from "./readers";
import { SocketWriter } from "./wire/socket-writer";
import { type RecordSink, WorkerSlot } from "./worker-slot";
import { WORKER_CONFIG_REFUSED, type WorkerConfig } from "./wire/worker-config";
import { ConfigError } from "../config/load";
import { IN_DOUBT_RESEND_WAIT_MS, KEY_BLOCK_MS, KEY_ORDER_MESSAGE } from "../log/lost-keys";

export interface PoolOptions {
  workers: number;
  /** librdkafka producer properties. */
  producer: Record<string, string | number | boolean>;
  /** librdkafka properties readers' consumers start from. */
  consumer: Record<string, string | number | boolean>;
  /** What a bulk reader's consumer sets on top of `consumer` (ReaderOptions.bulk). */
  bulkConsumer: Record<string, string | number | boolean>;
  /** Records a worker may hold before new ones are refused with OVERLOADED. */
  maxInflightPerWorker: number;
  /** An open batch is sent as soon as it reaches this size, else at the end of the event-loop turn. */
  flushBytes: number;
  restartBackoffMinMs: number;
  restartBackoffMaxMs: number;
  /** How long start() waits for every worker to connect to Kafka before returning not-ready. */
  connectTimeoutMs: number;
  /**
   * How long a batch handed to a worker may go unanswered before its events are nacked
   * PUBLISH_TIMEOUT: librdkafka's message.timeout.ms and a margin. Default 35 s.
   */
  deliveryDeadlineMs?: number;
  /** A worker that answers no ping for this long is hung: killed and replaced. Default 3 s. */
  pingTimeoutMs?: number;
  /** How long one of a worker's broker probes may take before it counts as failed. Default 1.5 s. */
  brokerProbeTimeoutMs?: number;
  /** How long a metadata question may go unanswered. Default 10 s. */
  queryTimeoutMs?: number;
}

export type PoolEvent =
  | { event: "worker_ready"; worker: number; pid: number }
  | { event: "worker_exit"; worker: number; pid: number; reason: string; inflight: number; wasReady: boolean }
  | { event: "worker_restart"; worker: number; delayMs: number }
  | { event: "worker_brokers"; worker: number; brokers: "up" | "down"; reason: string }
  | { event: "cluster_changed"; from: string; to: string }
  | { event: "worker_status"; worker: number; level: string; kind: string; code?: number; message: string; suppressed?: number };

interface ConnData {
  slot: WorkerSlot | null;
  generation: number;
  reader: MessageReader;
}

const PING = jsonMessage(IpcType.PING, {});
const BUN_WORKER = join(import.meta.dir, "worker", "main.ts");
const HELLO_TIMEOUT_MS = 20_000;
/** The least a worker waits without a word from the gateway before it leaves (WorkerConfig.gatewaySilentMs). */
const GATEWAY_SILENT_MIN_MS = 10_000;
/**
 * How long past its planned restart a worker that was ready is waited for, records for it held
 * rather than refused: a replacement is ready in ~0.2 s, and every event a client sent in that time,
 * or while the gateway itself was stopped long enough for its workers to leave, was refused
 * UNAVAILABLE (outside chaos tester: 6,522 events after a 12 s stop).
 */
const RESTART_HOLD_MS = 3_000;
/** Key and value bytes one slot holds so, at most (and the in-flight cap, with what it holds). */
const RESTART_HOLD_BYTES = 16 * 1024 * 1024;
/** How long after a worker's exit its socket may take to be read to its end before the loss is declared anyway. */
const EXIT_READ_MS = 1_000;

/**
 * Starts and supervises the Kafka worker processes (Bun, worker/main.ts), routes records to them in binary batches and maps
 * delivery reports back to whoever submitted each record. A worker that dies has everything it held
 * failed as WORKER_LOST (retriable) and is restarted with backoff.
 */
export class WorkerPool {
  readonly slots: WorkerSlot[];
  private readonly socketPath = join(tmpdir(), `kgw-${process.pid}-${crypto.randomUUID().slice(0, 8)}.sock`);
  private readonly token = crypto.randomUUID();
  private listener: UnixSocketListener<ConnData> | TCPSocketListener<ConnData> | null = null;
  private batchSeq = 0;
  private flushScheduled = false;
  private closing = false;
  private readyWaiters: Array<() => void> = [];
  /** While start() waits: fails it when a worker refuses its settings (WORKER_CONFIG_REFUSED). */
  private refuseStart: ((reason: string) => void) | null = null;
  private readonly readers = new ReaderRegistry();
  private readonly queries: QueryTable;
  private readonly pingTimeoutMs: number;
  private watchdog: Timer | null = null;
  private lastTick = 0;
  /** The seq of the last PING sent to confirm a worker after a stall. */
  private nextConfirm = 0;
  /** The last tick left deadlines alone (it came after a stall). */
  private skippedExpiry = false;
  /** The id of the Kafka cluster the workers' probes last found (null until one answers). */
  cluster: string | null = null;
  /** How many times a new cluster has replaced the one before (EventLog.epoch). */
  epoch = 0;
  // Refusals are values, made once: under overload every event of every frame is refused, and a
  // GatewayError per event (with its stack capture) would cost most when the box has least to spare.
  private readonly closedError = shuttingDown();
  private readonly refusals: Array<{ starting: GatewayError; startingFor: string; stopped: GatewayError; overloaded: GatewayError; noBrokers: GatewayError; unconfirmed: GatewayError; keyOrder: GatewayError; keyOrderOverloaded: GatewayError }>;
  private readonly nextBatchId = () => (this.batchSeq = (this.batchSeq + 1) >>> 0);
  private readonly flushAll = () => {
    this.flushScheduled = false;
    for (const slot of this.slots) slot.flush();
  };

  constructor(
    private readonly options: PoolOptions,
    private readonly onEvent: (e: PoolEvent) => void = () => {},
  ) {
    this.slots = Array.from({ length: options.workers }, (_, i) => new WorkerSlot(i, options.deliveryDeadlineMs ?? 35_000, options.maxInflightPerWorker));
    this.refusals = this.slots.map((_, i) => ({
      starting: new GatewayError("UNAVAILABLE", `Kafka worker ${i} is not connected to Kafka yet`),
      startingFor: "",
      stopped: new GatewayError("UNAVAILABLE", `Kafka worker ${i} is stopped`),
      overloaded: new GatewayError("OVERLOADED", `Kafka worker ${i} holds its maximum of ${options.maxInflightPerWorker} unacknowledged events; retry after acks arrive`),
      noBrokers: new GatewayError("UNAVAILABLE", `Kafka worker ${i} cannot reach any Kafka broker; the event was not sent`),
      unconfirmed: new GatewayError("UNAVAILABLE", `Kafka worker ${i} is being checked after this gateway stood still, and holds all it may meanwhile; the event was not sent`),
      keyOrder: new GatewayError("UNAVAILABLE", `${KEY_ORDER_MESSAGE} (Kafka worker ${i})`),
      keyOrderOverloaded: new GatewayError("OVERLOADED", `${KEY_ORDER_MESSAGE} (Kafka worker ${i} held its maximum of unacknowledged events)`),
    }));
    this.queries = new QueryTable(options.queryTimeoutMs ?? 10_000);
    this.pingTimeoutMs = options.pingTimeoutMs ?? 3000;
  }

  async start(): Promise<void> {
    removeStaleWorkerFiles(tmpdir());
    this.listener = Bun.listen<ConnData>({
      unix: this.socketPath,
      socket: {
        open: (s) => {
          s.data = {
            slot: null,
            generation: -1,
            // A bug in handling one message must not cost the worker: its stream stays framed.
            reader: new MessageReader(
              (type, body, owned) => this.onMessage(s, type, body, owned),
              false,
              (e, type) => this.onEvent({ event: "worker_status", worker: s.data.slot?.index ?? -1, level: "error", kind: "message_failed", message: `handling the worker's message of type ${type} failed: ${String((e as Error)?.stack ?? e)}` }),
            ),
          };
        },
        data: (s, chunk) => s.data.reader.push(chunk as Buffer),
        drain: (s) => {
          if (s.data.slot?.socket === s) s.data.slot.writer?.drain();
        },
        close: (s) => this.onSocketClosed(s),
        error: () => {},
      },
    });
    for (const slot of this.slots) this.spawn(slot);
    this.lastTick = Date.now();
    this.watchdog = setInterval(this.tick, Math.max(20, Math.min(250, this.pingTimeoutMs / 4)));
    // A worker that cannot take its settings (an unknown librdkafka property or value in KAFKA_PROPERTIES,
    // say) fails every restart the same way: at start-up that is a configuration error, not a restart loop.
    const refused = new Promise<string>((resolve) => (this.refuseStart = resolve));
    const reason = await Promise.race([this.waitReady(this.options.connectTimeoutMs).then(() => null), refused]);
    this.refuseStart = null;
    if (reason !== null) {
      await this.close(1000);
      throw new ConfigError(`config: the Kafka workers cannot start (their librdkafka settings, KAFKA_PROPERTIES among them, or the librdkafka they load): ${reason}`);
    }
  }

  /** Every worker is connected and reaches a broker: the log takes writes. */
  isReady(): boolean {
    return !this.closing && this.slots.every((s) => s.state === "ready" && s.brokersUp);
  }

  /** Queues one record on a worker; its outcome arrives later through `sink`. */
  /** `acceptedAt`: when the gateway took the record (Date.now()); its deadline counts from then. */
  submit(worker: number, topic: string, key: Uint8Array | string | null, value: Uint8Array | null, timestamp: number, headers: Array<[string, string | Uint8Array]>, sink: RecordSink, index: number, acceptedAt: number): void {
    this.put(worker, topic, key, value, timestamp, headers, sink, index, acceptedAt, true);
  }

  /** submit; `checkKeys` false for records held for a replacement, checked when they came. */
  private put(worker: number, topic: string, key: Uint8Array | string | null, value: Uint8Array | null, timestamp: number, headers: Array<[string, string | Uint8Array]>, sink: RecordSink, index: number, acceptedAt: number, checkKeys: boolean): void {
    const slot = this.slots[worker]!;
    if (this.closing) return sink.failed(index, this.closedError);
    // Woken from a stall with frames read before the watchdog's timer: it looks first (see tick).
    if (acceptedAt - this.lastTick > this.pingTimeoutMs / 2) this.tick();
    // A later event of a key whose earlier event was refused or lost here, and is to come again, is
    // not written before it (LostKeys). Empty but for a moment after a refusal: one property read.
    if (checkKeys && !slot.lostKeys.empty) {
      const refusal = slot.lostKeys.refusal(sink.record(index), Date.now());
      if (refusal !== null) return sink.failed(index, refusal);
    }
    if (slot.state !== "ready" || slot.confirming !== 0) {
      const now = Date.now();
      if (slot.hold(topic, key, value, timestamp, headers, sink, index, acceptedAt, RESTART_HOLD_BYTES, this.options.maxInflightPerWorker, now)) return;
      return this.refuse(slot, sink, index, slot.state === "stopped" ? this.refusals[worker]!.stopped : slot.state === "ready" ? this.refusals[worker]!.unconfirmed : this.startingRefusal(slot));
    }
    // Handed to librdkafka now, it would wait out the whole message timeout; refused, it can be retried at once.
    if (!slot.brokersUp) return this.refuse(slot, sink, index, this.refusals[worker]!.noBrokers);
    if (slot.inflight >= this.options.maxInflightPerWorker) return this.refuse(slot, sink, index, this.refusals[worker]!.overloaded);
    slot.add(topic, key, value, timestamp, headers, sink, index, this.nextBatchId, acceptedAt);
    if (slot.openBytes >= this.options.flushBytes) slot.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /**
   * Refuses a record (retriably: it may come again) and blocks its key until it does, for as long as
   * the slot holds records and KEY_BLOCK_MS at least: an event of its key sent behind it, before its
   * client read the refusal, would otherwise be written first.
   */
  private refuse(slot: WorkerSlot, sink: RecordSink, index: number, error: GatewayError): void {
    const now = Date.now();
    const r = this.refusals[slot.index]!;
    slot.lostKeys.block(sink.record(index), Math.max(slot.holdUntil, now + KEY_BLOCK_MS), error.code === "OVERLOADED" ? r.keyOrderOverloaded : r.keyOrder);
    sink.failed(index, error);
  }

  /**
   * Not connected yet, with why when the worker has said (a wrong SASL password shows as
   * "authentication failure"): made again only when the reason changes.
   */
  private startingRefusal(slot: WorkerSlot): GatewayError {
    const r = this.refusals[slot.index]!;
    if (r.startingFor !== slot.lastError) {
      r.startingFor = slot.lastError;
      r.starting = new GatewayError("UNAVAILABLE", `Kafka worker ${slot.index} is not connected to Kafka yet${slot.lastError ? ` (last error: ${slot.lastError})` : ""}`);
    }
    return r.starting;
  }

  /**
   * Opens a Kafka reader (manual assignment, no commits) on a worker, `worker` or else the next ready
   * one; see ReaderHandlers.
   */
  openReader(handlers: ReaderHandlers, opts: { worker?: number; group?: ReaderGroup; options?: ReaderOptions } = {}): LogReader {
    const n = this.slots.length;
    for (let i = 0; i < n; i++) {
      const slot = this.slots[((opts.worker ?? 0) + i) % n]!;
      if (slot.state === "ready" && !this.closing) return this.readers.open(slot, handlers, opts.group, opts.options);
    }
    throw new GatewayError("UNAVAILABLE", "no Kafka worker is connected to Kafka");
  }

  /** Asks a ready worker a metadata question (see Query). */
  query<T>(q: Query): Promise<T> {
    return this.queries.ask<T>(this.slots.filter((s) => s.state === "ready" && s.brokersUp), q);
  }

  health() {
    return this.slots.map((s) => ({
      worker: s.index,
      pid: s.pid,
      state: s.state,
      inflight: s.inflight,
      restarts: s.restarts,
      brokers: s.state === "ready" ? (s.brokersUp ? "up" : "down") : undefined,
      queuedBytes: s.writer?.queuedBytes ?? 0,
      lastError: s.lastError || undefined,
      lastErrorAt: s.lastError ? new Date(s.lastErrorAt).toISOString() : undefined,
    }));
  }

  async close(timeoutMs = 10_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const slot of this.slots) slot.releaseHeld(this.closedError);
    this.readers.clear();
    this.flushAll();
    const shutdown = jsonMessage(IpcType.SHUTDOWN, { timeoutMs });
    for (const slot of this.slots) {
      // A worker that never reached Kafka holds nothing; waiting on it would only delay the stop.
      if (slot.state !== "ready") slot.proc?.kill("SIGKILL");
      else slot.writer?.write(shutdown);
    }
    const deadline = Date.now() + timeoutMs + 2000;
    while (Date.now() < deadline && this.slots.some((s) => s.proc && s.proc.exitCode === null && s.proc.signalCode === null)) {
      await Bun.sleep(20);
    }
    for (const slot of this.slots) {
      slot.proc?.kill("SIGKILL");
      slot.failEverything("the gateway shut down", 0, 0, this.closedError);
      slot.state = "stopped";
    }
    if (this.watchdog) clearInterval(this.watchdog);
    this.listener?.stop(true);
    rmSync(this.socketPath, { force: true });
  }

  private spawn(slot: WorkerSlot): void {
    slot.generation++;
    slot.exitReason = "";
    slot.state = "starting";
    slot.lastHeard = Date.now(); // until HELLO: when it was started
    const config: WorkerConfig = {
      socketPath: this.socketPath,
      workerIndex: slot.index,
      token: `${this.token}:${slot.generation}`,
      producer: this.options.producer,
      consumer: this.options.consumer,
      bulkConsumer: this.options.bulkConsumer,
      probeTimeoutMs: this.options.brokerProbeTimeoutMs ?? 1500,
      gatewaySilentMs: Math.max(GATEWAY_SILENT_MIN_MS, 3 * this.pingTimeoutMs),
      aliveEveryMs: Math.max(1, Math.floor(this.pingTimeoutMs / 4)),
    };
    const generation = slot.generation;
    // Run from source by this same Bun: no bundle, no Node.js at run time.
    slot.proc = Bun.spawn([process.execPath, BUN_WORKER], {
      env: { ...process.env, KGW_WORKER_CONFIG: JSON.stringify(config) },
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
      onExit: (_proc, code, signal) => {
        if (code === WORKER_CONFIG_REFUSED && this.refuseStart) return this.refuseStart(`worker ${slot.index} exited ${code}; its reason is the line before this one`);
        const reason = signal ? `signal ${signal}` : `exit code ${code}`;
        // What the worker wrote before it went is still in its socket, whose close comes once it is
        // read: Kafka's acks in it were nacked WORKER_LOST when the exit was seen first (a gateway
        // waking from a stop sees both at once). The socket decides; this, if it does not.
        if (slot.generation === generation && slot.socket) {
          slot.exitReason = reason;
          setTimeout(() => this.onLost(slot, generation, reason), EXIT_READ_MS);
        } else this.onLost(slot, generation, reason);
      },
    });
    slot.pid = slot.proc.pid;
  }

  private onMessage(s: Socket<ConnData>, type: number, body: Buffer, owned: boolean): void {
    if (s.data.slot) s.data.slot.heard = true;
    if (type === IpcType.DELIVERY) return s.data.slot!.delivered(new ByteReader(body));
    if (type === IpcType.DELIVERY_PART) return s.data.slot!.deliveredPart(new ByteReader(body));
    if (type === IpcType.RECORDS) return this.readers.onRecords(new ByteReader(body), owned);
    const msg = new ByteReader(body).json<Record<string, unknown>>();
    if (type === IpcType.HELLO) {
      const [token, gen] = String(msg.token).split(":");
      const slot = this.slots[Number(msg.workerIndex)];
      if (token !== this.token || !slot || Number(gen) !== slot.generation) return void s.end();
      s.data.slot = slot;
      s.data.generation = slot.generation;
      slot.socket = s as Socket<unknown>;
      slot.connected(new SocketWriter(s as Socket<unknown>));
      slot.state = "connected";
      slot.lastHeard = Date.now();
    } else if (type === IpcType.READY) {
      const slot = s.data.slot!;
      // A worker started meanwhile may be the first to meet a new cluster: all start afresh, it too.
      if (typeof msg.cluster === "string" && this.onCluster(msg.cluster)) return;
      slot.state = "ready";
      slot.brokersUp = true;
      slot.readySince = Date.now();
      slot.lastError = "";
      this.onEvent({ event: "worker_ready", worker: slot.index, pid: slot.pid });
      // What was held for the replacement goes first, in the order it came; back through submit, so
      // the replacement's brokers and cap decide for it as for any record.
      this.handHeld(slot);
      if (this.isReady()) for (const w of this.readyWaiters.splice(0)) w();
      this.readers.onSlotReady(slot);
    } else if (type === IpcType.PONG) {
      const slot = s.data.slot!;
      if (slot.confirming !== 0 && msg.seq === slot.confirming) this.handHeld(slot);
    } else if (type === IpcType.QUERY_RESULT) {
      this.queries.answered(msg);
    } else if (type === IpcType.HEALTH) {
      const slot = s.data.slot!;
      if (typeof msg.cluster === "string") return void this.onCluster(msg.cluster);
      const up = msg.brokers === "up";
      if (slot.brokersUp === up) return;
      slot.brokersUp = up;
      if (up) slot.lastError = "";
      this.onEvent({ event: "worker_brokers", worker: slot.index, brokers: up ? "up" : "down", reason: String(msg.reason) });
    } else if (type === IpcType.READER_READY) {
      this.readers.onReady(Number(msg.readerId));
    } else if (type === IpcType.READER_DENIED) {
      this.readers.onDenied(Number(msg.readerId), String(msg.topic), String(msg.message));
    } else if (type === IpcType.OUT_OF_RANGE) {
      this.readers.onOutOfRange(Number(msg.readerId), String(msg.topic), Number(msg.partition), Number(msg.offset));
    } else if (type === IpcType.PARTITION_END) {
      this.readers.onEnd(Number(msg.readerId), String(msg.topic), Number(msg.partition), Number(msg.offset));
    } else if (type === IpcType.STATUS) {
      const slot = s.data.slot;
      if (slot) {
        slot.lastError = String(msg.message);
        slot.lastErrorAt = Date.now();
      }
      const code = typeof msg.code === "number" ? msg.code : undefined;
      const suppressed = typeof msg.suppressed === "number" ? msg.suppressed : undefined;
      this.onEvent({ event: "worker_status", worker: slot?.index ?? -1, level: String(msg.level), kind: String(msg.event), code, message: String(msg.message), suppressed });
    }
  }

  /**
   * Hands the records held for the slot (a replacement ready, or the worker proved there after a
   * stall) to it, in the order they came; through submit, so its brokers and cap decide as for any.
   */
  private handHeld(slot: WorkerSlot): void {
    for (const r of slot.takeHeld()) this.put(slot.index, r.topic, r.key, r.value, r.timestamp, r.headers, r.sink, r.index, r.acceptedAt, false);
  }

  /**
   * A worker's probe names the cluster that answered it. A new id at the same address is a new
   * cluster (its data wiped, or the address now names another): every log starts again from 0, and
   * librdkafka's clients carry over what no longer holds (the idempotent producer's sequences, the
   * readers' leader epochs), so publishes time out and readers wait in silence. Every worker is
   * started afresh, as if lost (what they hold is nacked WORKER_LOST), and `epoch` moves on: readers
   * reopened after it read each partition from its new log's start (feed.ts, id-tail.ts). Returns
   * whether the cluster changed.
   */
  private onCluster(id: string): boolean {
    const from = this.cluster;
    this.cluster = id;
    if (from === null || from === id) return false;
    this.epoch++;
    this.onEvent({ event: "cluster_changed", from, to: id });
    for (const slot of this.slots) if (slot.writer) this.onLost(slot, slot.generation, `the Kafka cluster at the brokers' address changed (cluster id ${from}, now ${id}); the worker starts afresh`);
    return true;
  }

  private onSocketClosed(s: Socket<ConnData>): void {
    const slot = s.data.slot;
    if (slot && slot.socket === s) this.onLost(slot, s.data.generation, slot.exitReason || "its socket closed");
  }

  private onLost(slot: WorkerSlot, generation: number, reason: string): void {
    if (slot.generation !== generation || slot.state === "stopped" && this.closing) return;
    const inflight = slot.inflight;
    const wasReady = slot.state === "ready";
    const wasReadyFor = slot.readySince ? Date.now() - slot.readySince : 0;
    // The slot is seen as gone before anyone is told: whatever they do next must not land on it.
    slot.generation++; // whichever of exit and socket-close comes second is ignored
    slot.state = this.closing ? "stopped" : "starting";
    slot.socket?.end();
    slot.socket = null;
    slot.writer = null;
    slot.readySince = 0;
    slot.confirming = 0;
    if (slot.proc && slot.proc.exitCode === null && slot.proc.signalCode === null) slot.proc.kill("SIGKILL");
    slot.proc = null; // until the replacement is spawned: nothing left to watch or to stop
    // A worker that ran for a while gets restarted at once; one that keeps dying backs off.
    slot.consecutiveFailures = wasReadyFor > 10_000 ? 0 : slot.consecutiveFailures + 1;
    const delayMs = Math.min(this.options.restartBackoffMaxMs, this.options.restartBackoffMinMs * 2 ** Math.max(0, slot.consecutiveFailures - 1));
    const now = Date.now();
    // Only for a worker that was serving and is replaced at once: one that keeps dying is refused at once.
    // Set before the records it had are failed, so their keys are blocked (LostKeys) for the hold.
    if (wasReady && slot.consecutiveFailures <= 1 && !this.closing) slot.holdUntil = now + delayMs + RESTART_HOLD_MS;
    // A lost event's re-send may wait IN_DOUBT_RESEND_WAIT_MS before it is written: its block outlasts that.
    slot.failEverything(reason, this.closing ? 0 : Math.max(slot.holdUntil, now + KEY_BLOCK_MS), this.closing ? 0 : Math.max(slot.holdUntil, now + IN_DOUBT_RESEND_WAIT_MS + KEY_BLOCK_MS), this.refusals[slot.index]!.keyOrder);
    this.readers.onSlotLost(slot, reason);
    this.queries.slotLost(slot, reason);
    this.onEvent({ event: "worker_exit", worker: slot.index, pid: slot.pid, reason, inflight, wasReady });
    if (this.closing) return;
    slot.restarts++;
    this.onEvent({ event: "worker_restart", worker: slot.index, delayMs });
    setTimeout(() => {
      if (!this.closing) this.spawn(slot);
    }, delayMs);
  }

  /**
   * The gateway's own deadlines, checked a few times a second: batches and questions nobody answered
   * in time are failed, and a worker that stopped answering pings (hung, stopped, wedged in a native
   * call) is killed and replaced rather than waited for.
   */
  private readonly tick = () => {
    const now = Date.now();
    // A late tick means this process stalled, not the workers: their silence over that time proves nothing.
    const gap = now - this.lastTick;
    const stalled = gap > this.pingTimeoutMs / 2;
    this.lastTick = now;
    // Past a second late (LoopStalls' measure), what the workers answered meanwhile waits to be read.
    // One tick only: a process late on every tick still answers for its workers.
    const unread = (stalled || gap > 1_000) && !this.skippedExpiry;
    this.skippedExpiry = unread;
    for (const slot of this.slots) {
      if (!slot.lostKeys.empty) slot.lostKeys.sweep(now);
      if (!unread && slot.holdUntil !== 0 && slot.holdUntil <= now) {
        // Still there after the hold (checked after a stall, its answer merely late behind what it
        // was handed: the socket's close would have said otherwise): it takes what waited. Not
        // ready again in time (a replacement): what waited is refused.
        if (slot.state === "ready") this.handHeld(slot);
        else slot.releaseHeld(this.startingRefusal(slot));
      }
      // Records read after a stall would be written to a worker that may have left while the
      // gateway was stopped (it does after gatewaySilentMs), and be nacked WORKER_LOST though they
      // never reached it. They wait for its answer to this ping (submit runs this tick first when
      // the frames are read before the timer fires).
      if (stalled && slot.writer && slot.state === "ready" && slot.confirming === 0) {
        slot.confirming = this.nextConfirm = (this.nextConfirm % 0x7fffffff) + 1;
        slot.holdUntil = now + RESTART_HOLD_MS;
        slot.lastPing = now;
        slot.writer.write(jsonMessage(IpcType.PING, { seq: slot.confirming }));
      }
      if (!slot.writer) {
        // Started but never connected (node wedged while loading): as hung as one that stopped answering.
        if (slot.state === "starting" && slot.proc && !stalled && now - slot.lastHeard > HELLO_TIMEOUT_MS) {
          this.onLost(slot, slot.generation, `it did not connect within ${HELLO_TIMEOUT_MS} ms of starting`);
        }
        continue;
      }
      if (slot.heard || stalled) {
        slot.heard = false;
        slot.lastHeard = now;
      } else if (now - slot.lastHeard > this.pingTimeoutMs) {
        this.onLost(slot, slot.generation, `it answered no ping for ${now - slot.lastHeard} ms`);
        continue;
      }
      if (now - slot.lastPing >= this.pingTimeoutMs / 3) {
        slot.lastPing = now;
        slot.writer.write(PING);
      }
      // Timers run before sockets are read when the process wakes: the answers the workers wrote
      // meanwhile are still unread, and batches Kafka acknowledged would be nacked PUBLISH_TIMEOUT
      // (a client re-sending them writes them twice). The next tick comes after they are read.
      if (!unread) slot.expire(now);
    }
    if (!unread) this.queries.expire(now);
  };

  private waitReady(timeoutMs: number): Promise<void> {
    if (this.isReady()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
