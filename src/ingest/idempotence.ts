import { type AppendResults, type EventLog, type LogRecord, newResults, setError } from "../log/event-log";
import type { Logger } from "../observability/logger";
import { GatewayError } from "../protocol/errors";
import { ErrorCodes } from "../protocol/codes";
import type { Metrics } from "../observability/metrics";
import type { Appender } from "./fair-share";
import { IdTail } from "./id-tail";
import { SeenIds } from "./seen-ids";

export interface IdempotenceOptions {
  windowMs: number;
  maxIds: number;
  warmupTimeoutMs: number;
  /** How often the ids reader asks the followed topics' partition counts again (PARTITION_CHECK_MS). */
  partitionCheckMs: number;
}

/** A write in flight: re-sends of its events wait for it and take its outcome. */
interface InFlight {
  results: Promise<AppendResults>;
  /** The event's index in that append. */
  index: number;
}

/**
 * Idempotent publish: an event whose client-given `id` was written to the same topic within the
 * window gets the original position and is not written again, whether the original was written by
 * this instance (remembered at its ack, or still in flight) or by another one (read from the log by
 * IdTail). Events without a client-given id cost nothing here.
 */
export class Idempotence {
  private readonly seen: SeenIds;
  private readonly tail: IdTail;
  private readonly inFlight = new Map<string, Map<string, InFlight>>();
  /**
   * Ids whose write ended in doubt (an error that may have been persisted: WORKER_LOST,
   * PUBLISH_TIMEOUT), per topic, with when: a re-send first waits for the tail to read past where the
   * original would be. At most maxIds of them, each forgotten after the window.
   */
  private readonly doubt = new Map<string, Map<string, number>>();
  private doubtCount = 0;
  /** Per connection and topic, the last append that is behind a marked re-send, not yet in the topic's queue. */
  private readonly resendChains = new Map<string, Promise<void>>();
  /** Each topic's sync for marked re-sends: the one running, and the one they wait for (resendSync). */
  private readonly resendSyncs = new Map<string, { running: Promise<void> | null; next: Promise<void> | null }>();
  /**
   * Per topic, the gate of the last append not yet handed to the log: the next waits for it. The
   * chaos tester saw a client's re-sends, the first frames after it failed over, written after
   * ~8,000 later events of their keys: the first append to look at the instance's expired doubts
   * paid an await forgetting them, and every append released with it (by the tail's warm-up), finding
   * none left, went first. An append without ids went straight to the log past earlier ones with ids.
   */
  private readonly gates = new Map<string, Promise<void>>();

  constructor(
    log: EventLog,
    private readonly options: IdempotenceOptions,
    private readonly metrics: Metrics,
    logger: Logger,
    /** Where new events are written: the log, or the fair share in front of it. */
    private readonly appender: Appender = log,
  ) {
    // Both copies of an event in the log: an unmarked re-send that raced the reader (docs/protocol.md),
    // another producer, or librdkafka's own retry after a broker stopped answering for longer than
    // the message timeout (its in-flight request written after all, the retry under a new producer
    // epoch the broker cannot match). None can be undone; each is counted, and told once a minute.
    let toldAt = -Infinity;
    const writtenTwice = (topic: string) => {
      metrics.eventsWrittenTwice.inc();
      const now = performance.now();
      if (now - toldAt < 60_000) return;
      toldAt = now;
      logger.warn("an event is in its topic twice: its source and id were read at two positions within IDEMPOTENCE_WINDOW_MS (gateway_events_written_twice_total counts them)", { topic });
    };
    this.seen = new SeenIds({ ...options, epoch: () => log.epoch, writtenTwice });
    this.tail = new IdTail(log, this.seen, options, logger);
  }

  /**
   * Appends what is new and answers re-sends from memory. `ids[r]` is the (source, id) identity of record
   * r, or undefined (generated ids cannot repeat). All records are of one topic. Same contract as
   * EventLog.append: settles once every record has a position or an error.
   */
  async append(records: LogRecord[], ids: Array<string | undefined>, source: string, resend = false): Promise<AppendResults> {
    const topic = records[0]!.topic;
    const withIds = ids.some((id) => id !== undefined);
    // A marked re-send reads the topic to its end before it takes its place in the topic's queue (in
    // it, every later append to the topic waited out each read, whoever sent it: one client marking
    // its publishes held another's p50 at 68 ms; outside security tester). Its own connection's later
    // appends to the topic wait behind it here, so they cannot overtake the re-sends of their keys;
    // an original still queued when its re-send comes is ahead of it in the topic's queue, and seen.
    const chainKey = `${source}\0${topic}`;
    const chained = this.resendChains.get(chainKey);
    if (chained !== undefined || (resend && withIds)) {
      let release: () => void;
      const mine = new Promise<void>((resolve) => (release = resolve));
      this.resendChains.set(chainKey, mine);
      try {
        if (chained !== undefined) await chained;
        if (resend && withIds) {
          await this.tail.ready(topic);
          await this.resendSync(topic);
        }
      } catch (e) {
        this.unchain(chainKey, mine, release!);
        throw e;
      }
      // Released once this append is in the topic's queue, which queued() does before its first
      // await: the next of its connection then queues behind it there.
      const inQueue = this.queued(topic, records, ids, source, withIds);
      this.unchain(chainKey, mine, release!);
      return inQueue;
    }
    return this.queued(topic, records, ids, source, withIds);
  }

  private unchain(key: string, mine: Promise<void>, release: () => void): void {
    if (this.resendChains.get(key) === mine) this.resendChains.delete(key);
    release();
  }

  /** append() in the topic's queue: a marked re-send's read of the topic is behind it already. */
  private async queued(topic: string, records: LogRecord[], ids: Array<string | undefined>, source: string, withIds: boolean): Promise<AppendResults> {
    const before = this.gates.get(topic);
    // Nothing to look up and nobody ahead: straight to the log (the common case for clients without ids).
    if (!withIds && before === undefined) return this.appender.append(records, source);
    // Appends of a topic are handed to the log in the order they came, whatever each waits for first
    // (the tail's warm-up, a doubt to settle): otherwise one that waited an await longer than those
    // behind it was written after them, after later events of its own keys (see gates).
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    this.gates.set(topic, gate);
    let passed = false;
    const pass = () => {
      if (passed) return;
      passed = true;
      if (this.gates.get(topic) === gate) this.gates.delete(topic);
      open();
    };
    try {
      if (before !== undefined) await before;
      if (!withIds) {
        const written = this.appender.append(records, source);
        pass();
        return await written;
      }
      return await this.appendChecked(topic, records, ids, source, pass);
    } finally {
      pass();
    }
  }

  /** append() for records with client ids, its turn come; `pass` once the write is handed to the log. */
  private async appendChecked(topic: string, records: LogRecord[], ids: Array<string | undefined>, source: string, pass: () => void): Promise<AppendResults> {
    await this.tail.ready(topic);
    if (this.doubtCount > 0) await this.settleDoubts(topic, ids);
    const now = Date.now();
    // Filled only for re-sends: when every record is new (the common case) the log's own results are returned.
    let results: AppendResults | null = null;
    let flying = this.inFlight.get(topic);
    const write: number[] = [];
    let suppressed = 0;
    const waits: Array<[r: number, on: InFlight]> = [];
    // Registered as in flight while the loop runs, so a second copy in this same batch waits for the first.
    let settle!: (got: AppendResults) => void;
    const pending = new Promise<AppendResults>((resolve) => (settle = resolve));
    for (let r = 0; r < records.length; r++) {
      const id = ids[r];
      if (id === undefined) {
        write.push(r);
        continue;
      }
      const landed = this.seen.get(topic, id, now);
      if (landed !== undefined) {
        results ??= newResults(records.length);
        results.partitions[r] = landed.partition;
        results.offsets[r] = landed.offset;
        suppressed++;
        continue;
      }
      const on = flying?.get(id);
      if (on !== undefined) {
        waits.push([r, on]);
        continue;
      }
      if (flying === undefined) this.inFlight.set(topic, (flying = new Map()));
      flying.set(id, { results: pending, index: write.length });
      write.push(r);
    }
    if (write.length > 0) {
      let got: AppendResults;
      try {
        const written = this.appender.append(write.length === records.length ? records : write.map((r) => records[r]!), source);
        pass();
        got = await written;
      } catch (e) {
        // append settles and never rejects; were it to, the re-sends waiting on this write must not hang.
        got = newResults(write.length);
        for (let w = 0; w < write.length; w++) setError(got, w, new GatewayError("INTERNAL", "the write failed"));
        settle(got);
        throw e;
      }
      settle(got);
      const landedAt = Date.now();
      const all = write.length === records.length;
      if (!all) results ??= newResults(records.length);
      for (let w = 0; w < write.length; w++) {
        const r = write[w]!;
        const err = got.errors?.[w];
        if (!all) {
          if (err) setError(results!, r, err);
          else {
            results!.partitions[r] = got.partitions[w]!;
            results!.offsets[r] = got.offsets[w]!;
          }
        }
        const id = ids[r];
        if (id === undefined || flying!.get(id)?.results !== pending) continue;
        flying!.delete(id);
        if (!err) this.seen.add(topic, id, got.partitions[w]!, got.offsets[w]!, landedAt);
        else if (ErrorCodes[err.code].mayBePersisted) this.noteDoubt(topic, id, landedAt);
      }
      if (all) results = got;
      if (flying !== undefined && flying.size === 0 && this.inFlight.get(topic) === flying) this.inFlight.delete(topic);
      this.tail.written(topic);
    }
    pass();
    results ??= newResults(records.length);
    for (const [r, on] of waits) {
      // Takes the original's outcome, error included: a retriable one is retried by the client, as new.
      const got = await on.results;
      const err = got.errors?.[on.index];
      if (err) setError(results, r, err);
      else {
        results.partitions[r] = got.partitions[on.index]!;
        results.offsets[r] = got.offsets[on.index]!;
        suppressed++;
      }
    }
    if (suppressed > 0) this.metrics.eventsDeduplicated.inc(suppressed);
    this.metrics.idempotenceIds.set(this.seen.size);
    return results;
  }

  /** An id whose write may or may not have landed. */
  private noteDoubt(topic: string, id: string, now: number): void {
    let ids = this.doubt.get(topic);
    if (ids === undefined) this.doubt.set(topic, (ids = new Map()));
    if (!ids.has(id)) this.doubtCount++;
    ids.set(id, now);
    if (this.doubtCount > this.options.maxIds) this.forgetDoubts(Number.NEGATIVE_INFINITY, this.doubtCount - this.options.maxIds);
  }

  /** Drops the doubts noted before `before`, and besides them the `excess` oldest (each topic's in the order noted). */
  private forgetDoubts(before: number, excess = 0): void {
    for (const [topic, ids] of this.doubt) {
      for (const [id, at] of ids) {
        if (at >= before && excess <= 0) break;
        ids.delete(id);
        this.doubtCount--;
        excess--;
      }
      if (ids.size === 0) this.doubt.delete(topic);
    }
  }

  /**
   * A re-send of an id in doubt waits until the tail has read the topic to its end as of now: had the
   * original landed, `seen` then has it and the re-send gets its position, not a second record.
   */
  private async settleDoubts(topic: string, ids: Array<string | undefined>): Promise<void> {
    this.forgetDoubts(Date.now() - this.options.windowMs);
    const doubted = this.doubt.get(topic);
    if (doubted === undefined || !ids.some((id) => id !== undefined && doubted.has(id))) return;
    // The topic's later appends wait behind this one (gates), so they stay behind the re-sends.
    await this.tail.sync(topic, this.options.warmupTimeoutMs);
    for (const id of ids) if (id !== undefined && doubted.delete(id)) this.doubtCount--;
    if (doubted.size === 0 && this.doubt.get(topic) === doubted) this.doubt.delete(topic);
  }

  /**
   * A re-send the client marked (`resend`: its connection dropped before the answer, and it may be
   * on another instance now) waits until the tail has read the topic to its end as of now, as a
   * doubt's does: the original, written through another instance a moment ago, is then in `seen`.
   * Unmarked, about half of such re-sends were written twice under load (outside chaos tester:
   * 28,662 of ~55,000 at 9,000 events/s). A sync reads the end as of its own start, so one already
   * running may miss what this re-send repeats: re-sends wait for the next to start, one running and
   * one waiting per topic, however many re-sends come.
   */
  private resendSync(topic: string): Promise<void> {
    let s = this.resendSyncs.get(topic);
    if (s === undefined) this.resendSyncs.set(topic, (s = { running: null, next: null }));
    const entry = s;
    if (entry.next) return entry.next;
    const start = (): Promise<void> => {
      const p = this.tail.sync(topic, this.options.warmupTimeoutMs).finally(() => {
        if (entry.running === p) entry.running = null;
        if (entry.running === null && entry.next === null && this.resendSyncs.get(topic) === entry) this.resendSyncs.delete(topic);
      });
      entry.running = p;
      return p;
    };
    if (entry.running === null) return start();
    const next = entry.running.then(() => {
      entry.next = null;
      return start();
    });
    entry.next = next;
    return next;
  }

  /** Call once the log has started. */
  start(): void {
    this.tail.prepare();
  }

  close(): void {
    this.tail.close();
  }
}
