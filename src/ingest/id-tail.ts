import type { ConsumedRecord, EventLog, LogReader } from "../log/event-log";
import type { Logger } from "../observability/logger";
import { isGatewayError } from "../protocol/errors";
import type { SeenIds } from "./seen-ids";
import { eventIdentity } from "./event-identity";
import { utf8Text } from "../bytes/utf8";

export interface IdTailOptions {
  windowMs: number;
  /** Read at most this many records back per partition at the start (the index holds no more anyway). */
  maxIds: number;
  /** How long the first publish to a topic waits for the window's history to be read. */
  warmupTimeoutMs: number;
  /** How often the followed topics' partition counts are asked again (partitions added are read from 0). */
  partitionCheckMs: number;
}

interface TopicTail {
  /** Settles once the window's history (up to the high watermarks when the tail started) is read. */
  ready: Promise<void>;
  state: "warming" | "live" | "absent";
  next: number[];
  target: number[];
  caughtUp: () => void;
  /** When an absent topic (not created yet) is looked for again, ms. */
  retryAt: number;
  /** The last publish with ids to it here, ms: a topic idle for two windows is no longer followed. */
  usedAt: number;
  /** When the log last said it has no such topic (state "absent"), ms. */
  unknownAt?: number;
  /** Partition checks running that found no such topic (two: deleted). */
  misses?: number;
  /** Partition checks running that found fewer partitions than `next` holds. */
  fewer?: number;
  /** The topic's id (EventLog.topicId) when it was followed, or first seen since: the log `next` is in. */
  id?: string | null;
  /**
   * Kafka's ACLs refuse the reader the topic (no Read): nothing waits for its history, which cannot
   * come. It stays assigned, so once Read is granted its records come and this clears.
   */
  denied?: boolean;
}

const ABSENT_RETRY_MS = 1000;
/**
 * A topic found missing this recently and there now was created since (by this instance's first
 * write, or another's meanwhile): its whole history is younger than this, so it is followed from its
 * start without the first publishes waiting for it. They waited 0.6-0.9 s while the reader, new to
 * the topic, found its leader and read what the first second had written (acks at 10,000 events/s:
 * p99 650-780 ms with ids, 50-180 ms without). A re-send of an event another instance wrote there in
 * those seconds is within the reader's lag, the race docs/protocol.md names.
 */
const FRESH_TOPIC_MS = 2 * ABSENT_RETRY_MS;
const IDENTITY_HEADERS = ["ce_id", "ce_source", "ce_authid"] as const;

/**
 * The log as the instances' shared memory of ids: one reader on this instance follows every topic
 * published to here with ids, from `windowMs` back, and records each event's identity (`ce_source`
 * and `ce_id`: event-identity.ts) with its position, whoever wrote it (another instance, or any CloudEvents producer). The first publish to a topic
 * waits until the window's history is read, so a re-send arriving here after another instance
 * wrote the original is recognised. What remains is a race: a re-send that arrives before this
 * reader has read the original, i.e. within the reader's lag (docs/protocol.md, "Idempotent publish").
 */
// After a failed question about a partition whose position is gone, the next try.
const RETRY_PAST_MS = 500;

export class IdTail {
  private readonly topics = new Map<string, TopicTail>();
  private reader: Promise<LogReader> | null = null;
  private closed = false;
  private readonly sweep: Timer;
  private readonly partitionTimer: Timer;
  private checkingPartitions = false;
  /** The log's epoch the followed topics' positions belong to. */
  private epoch: number;
  private reopening: Promise<void> | null = null;

  constructor(
    private readonly log: EventLog,
    private readonly seen: SeenIds,
    private readonly options: IdTailOptions,
    private readonly logger: Logger,
  ) {
    this.epoch = log.epoch;
    // Following costs reading every record of the topic; a topic nobody publishes to with ids here
    // any more is let go (its ids with it, as they age out), and warmed again if it comes back.
    this.sweep = setInterval(() => this.forgetIdle(), Math.max(1000, options.windowMs));
    this.sweep.unref();
    this.partitionTimer = setInterval(() => void this.checkPartitions(), options.partitionCheckMs);
    this.partitionTimer.unref();
  }

  /**
   * Partitions added to a followed topic: a re-send of an id another instance wrote there must find
   * it, so they are read from their start. Before, the reader never read them, and such re-sends
   * were written again. A topic the log has lacked at two checks running was deleted: see deleted().
   */
  private async checkPartitions(): Promise<void> {
    if (this.checkingPartitions || this.closed) return;
    this.checkingPartitions = true;
    try {
      const followed = [...this.topics].filter(([, t]) => t.state !== "absent" && t.next.length > 0);
      // -1: the log has no such topic.
      const counts = await Promise.all(followed.map(([topic]) => this.log.partitionCount(topic).catch((e) => (isGatewayError(e) && e.code === "UNKNOWN_TOPIC" ? -1 : 0))));
      // After the counts: partitions a count shows are of the log this id names, or of a later one.
      const ids = await Promise.all(followed.map(([topic]) => this.log.topicId(topic)));
      if (this.epoch !== this.log.epoch || this.reopening) return; // positions of other logs, or reassigned anyway
      const reader = this.reader && (await this.reader.catch(() => null));
      followed.forEach(([topic, t], i) => {
        // Followed afresh, or forgotten (a reset its reader found) while the questions were out.
        if (!this.following(topic, t)) return;
        // Twice running, so that one answer from a broker that has not heard of the topic yet is not
        // taken for a deletion (as the subscriptions' check does).
        t.misses = counts[i] === -1 ? (t.misses ?? 0) + 1 : 0;
        if (t.misses >= 2) return this.forgetLog(topic, t, reader, "idempotence: a topic followed for its ids was deleted; its ids are forgotten");
        // Made again between two checks, too quickly to be found missing: another id. At once: until
        // then a re-send of an id read from the old log is answered from it.
        const id = ids[i];
        if (id && t.id && id !== t.id) return this.forgetLog(topic, t, reader, "idempotence: a topic followed for its ids was made again (its topic id changed); its ids are forgotten");
        if (id) t.id = id;
        t.fewer = counts[i]! > 0 && counts[i]! < t.next.length ? (t.fewer ?? 0) + 1 : 0;
        if (t.fewer >= 2) return this.partitionsGone(topic, t, counts[i]!, reader);
        if (counts[i]! <= t.next.length) return;
        const added = [];
        for (let partition = t.next.length; partition < counts[i]!; partition++) added.push({ topic, partition, offset: 0 });
        for (const a of added) t.next[a.partition] = 0;
        reader?.assign(added);
      });
    } finally {
      this.checkingPartitions = false;
    }
  }

  /** Whether `t` is still how `topic` is followed: not followed afresh, nor forgotten (forgetLog), since it was taken. */
  private following(topic: string, t: TopicTail): boolean {
    return this.topics.get(topic) === t && t.state !== "absent";
  }

  /**
   * The topic was deleted, or made again (another id, or a partition's log reset past its end): the
   * ids read from it name positions its log no longer has, and a topic made again under the name has
   * other records there. Read on from the old positions, the reader skipped the new log's first
   * records, and a re-send of an id read before was answered with an offset now holding another
   * event: an ack for an event the log does not have. Its ids are forgotten and it is no longer
   * read; the next publish with an id follows it afresh, as a topic never seen (absent until it
   * exists again). Before topic ids, a topic made again whose new logs had outgrown the positions
   * before a check (never seen missing, no offset out of range) kept its old ids.
   */
  private forgetLog(topic: string, t: TopicTail, reader: LogReader | null, why: string): void {
    this.logger.warn(why, { topic });
    reader?.unassign(t.next.map((_, partition) => ({ topic, partition, offset: 0 })));
    this.seen.forgetTopic(topic);
    t.state = "absent";
    t.next = [];
    t.target = [];
    t.unknownAt = Date.now();
    t.retryAt = t.unknownAt + ABSENT_RETRY_MS;
    t.caughtUp(); // deleted while warming: its publishes have no history left to wait for
  }

  /**
   * The topic has fewer partitions than are read (twice running): it was deleted and made again
   * with fewer between two checks, too quickly to be found missing. The partitions it has report
   * their old offsets out of range (readOnPast); the ids read from those it lacks are forgotten and
   * the reader lets them go, to read them from their start if they are added again. Before, a
   * re-send of such an id was answered with its offset in a partition gone with the old log.
   */
  private partitionsGone(topic: string, t: TopicTail, keep: number, reader: LogReader | null): void {
    const gone = [];
    for (let partition = keep; partition < t.next.length; partition++) {
      gone.push({ topic, partition, offset: 0 });
      this.seen.forgetPartition(topic, partition);
    }
    this.logger.warn("idempotence: a topic followed for its ids has fewer partitions (made again); the ids of those it lacks are forgotten", { topic, from: keep, to: t.next.length });
    reader?.unassign(gone);
    t.next.length = keep;
    if (t.target.length > keep) t.target.length = keep;
    t.fewer = 0;
    if (t.state === "warming") this.checkCaughtUp(t);
  }

  /**
   * Opens the reader ahead of the first publish: starting a Kafka consumer takes longer than
   * reading a topic's window once it runs, and the first publish with an id would wait for both.
   */
  prepare(): void {
    this.readerOnce().catch((e) => this.logger.warn("idempotence: the ids reader could not open yet; the first publish with an id will try again", { error: String(e) }));
  }

  /** Resolves once `topic`'s recent ids are known here (or the topic does not exist yet). */
  ready(topic: string): Promise<void> {
    const t = this.topics.get(topic);
    if (t === undefined) return this.follow(topic).ready;
    t.usedAt = Date.now();
    if (t.state === "absent" && Date.now() >= t.retryAt) this.follow(topic);
    return t.ready;
  }

  /**
   * Resolves once this reader has read `topic` up to its high watermarks as of now, so that any write
   * that landed before the call is in `seen`; or after `timeoutMs`, whichever comes first. For a
   * re-send of an event whose write ended in doubt (its worker died): the reader may have died with
   * it, and lag by seconds.
   */
  async sync(topic: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const t = this.topics.get(topic);
    if (t === undefined || t.state === "absent" || t.denied) return;
    await Promise.race([t.ready, Bun.sleep(timeoutMs)]);
    let target: number[] | null = null;
    // The watermarks come from a worker, and the one asked may be the one being replaced.
    while (target === null && Date.now() < deadline) {
      try {
        target = (await this.log.watermarks(topic)).map((m) => m.high);
      } catch {
        await Bun.sleep(100);
      }
    }
    // A refusal that came while the watermarks were asked for resolved no waiter of this call yet.
    if (target === null || t.denied) return;
    const reached = () => target!.every((high, p) => (t.next[p] ?? 0) >= high);
    if (reached()) return;
    const left = deadline - Date.now();
    if (left <= 0) return;
    await new Promise<void>((resolve) => {
      const waiter = { topic, reached, resolve: () => (clearTimeout(timer), this.syncs.delete(waiter), resolve()) };
      const timer = setTimeout(waiter.resolve, left);
      this.syncs.add(waiter);
    });
  }

  private readonly syncs = new Set<{ topic: string; reached: () => boolean; resolve: () => void }>();

  /** A write to `topic` landed: a topic that did not exist does now, so follow it. */
  written(topic: string): void {
    const t = this.topics.get(topic);
    if (t?.state === "absent" && Date.now() >= t.retryAt) this.follow(topic);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweep);
    clearInterval(this.partitionTimer);
    void this.reader?.then((r) => r.close(), () => {});
    this.reader = null;
  }

  private forgetIdle(): void {
    const before = Date.now() - 2 * this.options.windowMs;
    for (const [topic, t] of this.topics) {
      if (t.usedAt >= before || t.state === "warming") continue;
      this.topics.delete(topic);
      if (t.state === "live") void this.reader?.then((r) => r.unassign(t.next.map((_, partition) => ({ topic, partition, offset: 0 }))), () => {});
    }
  }

  private follow(topic: string): TopicTail {
    let caughtUp!: () => void;
    const ready = new Promise<void>((resolve) => (caughtUp = resolve));
    const before = this.topics.get(topic);
    const t: TopicTail = { ready, state: "warming", next: [], target: [], caughtUp, retryAt: 0, usedAt: Date.now() };
    this.topics.set(topic, t);
    void this.start(topic, t, before?.state === "absent" ? before.unknownAt : undefined);
    return t;
  }

  /** `unknownAt`: when the log last said it had no such topic, if it did. */
  private async start(topic: string, t: TopicTail, unknownAt?: number): Promise<void> {
    const fresh = unknownAt !== undefined && Date.now() - unknownAt <= FRESH_TOPIC_MS;
    const timer = setTimeout(() => {
      if (t.state !== "warming") return;
      this.logger.warn("idempotence: the window's history was not read in time; re-sends of older events may be written again", { topic, timeoutMs: this.options.warmupTimeoutMs });
      t.caughtUp();
    }, this.options.warmupTimeoutMs);
    try {
      // The id before the positions: a topic made again between the two reads as made again later.
      t.id = await this.log.topicId(topic);
      await this.log.partitionCount(topic); // UNKNOWN_TOPIC without creating it, unlike some other questions
      // Back by count, not by time: a record's timestamp is its event's `time` (a backfill's, a buffered
      // device's: hours old), which says nothing about when it was written, so "the window's records"
      // cannot be found by timestamp. The last records the index could hold are read instead; those
      // older than the window are remembered for a window from now, which only ever answers a re-send
      // with its original ack.
      const marks = await this.log.watermarks(topic);
      const perPartition = Math.ceil(this.options.maxIds / Math.max(1, marks.length));
      t.target = fresh ? [] : marks.map((m) => m.high);
      t.next = marks.map((m) => (fresh ? m.low : Math.max(m.low, m.high - perPartition)));
      const reader = await this.readerOnce();
      reader.assign(t.next.map((offset, partition) => ({ topic, partition, offset })));
      this.checkCaughtUp(t);
    } catch (e) {
      // A topic that does not exist yet has no history to know; it is followed once a write creates it.
      if (isGatewayError(e) && e.code === "UNKNOWN_TOPIC") t.unknownAt = Date.now();
      else this.logger.warn("idempotence: cannot follow the topic's ids; retrying", { topic, error: String(e) });
      t.state = "absent";
      t.retryAt = Date.now() + ABSENT_RETRY_MS;
      t.caughtUp();
    } finally {
      if (t.state !== "warming") clearTimeout(timer);
      else void t.ready.then(() => clearTimeout(timer));
    }
  }

  private readerOnce(): Promise<LogReader> {
    this.reader ??= (async () => {
      // Only what identifies an event: neither values nor other headers cross from the Kafka worker.
      const reader = this.log.openReader(
        { onRecords: (records, done) => this.onRecords(records, done), onLost: () => void this.reopen(), onOutOfRange: (topic, partition) => void this.readOnPast(topic, partition), onEnd: (topic, partition, offset) => this.onEnd(topic, partition, offset), onDenied: (topic, message) => this.onDenied(topic, message) },
        undefined,
        // Never held (done() at once), and the first publish with an id waits for it to read the
        // topic's window: it fetches in bulk.
        { onlyHeaders: IDENTITY_HEADERS, bulk: true },
      );
      await reader.ready;
      return reader;
    })();
    this.reader.catch(() => (this.reader = null));
    return this.reader;
  }

  private onRecords(records: ConsumedRecord[], done: () => void): void {
    const now = Date.now();
    for (const r of records) {
      const t = this.topics.get(r.topic);
      // Absent: not read (any more). Records the reader sent before it let a deleted topic go name
      // positions of the old log.
      if (t === undefined || t.state === "absent") continue;
      t.denied = false;
      t.next[r.partition] = r.offset + 1;
      let id: Uint8Array | undefined;
      let source: Uint8Array | undefined;
      let author: Uint8Array | undefined;
      for (const [name, value] of r.headers) {
        if (name === "ce_id") id ??= value;
        else if (name === "ce_source") source ??= value;
        else if (name === "ce_authid") author ??= value;
      }
      if (id === undefined) continue;
      // Ids are compared as their exact bytes (docs/protocol.md); one that is not UTF-8 is no
      // client's (theirs are strings), so it is not remembered.
      const idText = utf8Text(id);
      const sourceText = source === undefined ? undefined : utf8Text(source);
      const authorText = author === undefined ? undefined : utf8Text(author);
      if (idText !== null && sourceText !== null && authorText !== null) this.seen.add(r.topic, eventIdentity(sourceText, idText, authorText), r.partition, r.offset, now);
    }
    done();
    for (const t of this.topics.values()) if (t.state === "warming") this.checkCaughtUp(t);
    for (const w of this.syncs) if (w.reached()) w.resolve();
  }

  /**
   * The reader may not read `topic` (Kafka's ACLs): publishes with ids stop waiting for its history
   * (each first one per topic waited out the warm-up, every re-send marked `resend` its sync), and the
   * operator is told once what is lost: re-sends reaching another instance, or this one restarted,
   * are written again.
   */
  private onDenied(topic: string, message: string): void {
    const t = this.topics.get(topic);
    if (t === undefined || t.denied) return;
    t.denied = true;
    if (t.state === "warming") t.state = "live";
    this.logger.warn("idempotence: Kafka's ACLs refuse the ids reader this topic (grant the gateway's principal Read): re-sends reaching another instance, or this one after a restart, are written again", { topic, error: message });
    t.caughtUp();
    for (const w of this.syncs) if (w.topic === topic) w.resolve();
  }

  /** The partition ends past the last record read (a transaction's marker): the history is read up to there. */
  private onEnd(topic: string, partition: number, offset: number): void {
    const t = this.topics.get(topic);
    if (t === undefined || offset <= (t.next[partition] ?? 0)) return;
    t.next[partition] = offset;
    if (t.state === "warming") this.checkCaughtUp(t);
    for (const w of this.syncs) if (w.reached()) w.resolve();
  }

  /**
   * The partition's log no longer has the next id to read (retention deleted it, or the log was
   * reset): read on from the log's start, and stop waiting for an end a reset log no longer reaches.
   */
  private async readOnPast(topic: string, partition: number): Promise<void> {
    const t = this.topics.get(topic);
    if (!t || this.closed) return;
    try {
      const m = (await this.log.watermarks(topic))[partition];
      if (!m || !this.following(topic, t)) return;
      // Past the end: the log was reset, the topic made again (whole: the other partitions' ids name
      // positions that are gone too, even where their new logs have outgrown them), or a log cut short
      // by an unclean leader election (re-sends of what it kept are written again: at least once).
      if ((t.next[partition] ?? 0) > m.high) {
        const reader = await this.readerOnce();
        if (!this.following(topic, t)) return; // followed afresh or forgotten meanwhile
        return this.forgetLog(topic, t, reader, "idempotence: a partition of a topic followed for its ids was reset (its position past the end); the topic's ids are forgotten");
      }
      t.next[partition] = m.low;
      if ((t.target[partition] ?? 0) > m.high) t.target[partition] = m.high;
      const reader = await this.readerOnce();
      const place = [{ topic, partition, offset: m.low }];
      reader.unassign(place);
      reader.assign(place);
      if (t.state === "warming") this.checkCaughtUp(t);
    } catch (e) {
      // The watermarks can fail just after a topic is created again: asked again shortly, or the
      // partition would stay unread (and a reset's old ids remembered) for good.
      this.logger.warn("idempotence: cannot read on past a lost position yet; retrying", { topic, partition, error: String(e) });
      setTimeout(() => void this.readOnPast(topic, partition), RETRY_PAST_MS).unref();
    }
  }

  private checkCaughtUp(t: TopicTail): void {
    for (let p = 0; p < t.target.length; p++) if ((t.next[p] ?? 0) < t.target[p]!) return;
    t.state = "live";
    t.caughtUp();
  }

  /** The reader died with its worker: a new one reads on from where each topic was (one attempt loop at a time). */
  private reopen(): Promise<void> {
    return (this.reopening ??= this.reopenLoop().finally(() => (this.reopening = null)));
  }

  private async reopenLoop(): Promise<void> {
    this.reader = null;
    for (let delayMs = 250; !this.closed; delayMs = Math.min(delayMs * 2, 10_000)) {
      try {
        const reader = await this.readerOnce();
        // The logs were replaced (a new cluster at the brokers' address, EventLog.epoch): every topic is
        // followed afresh at its next publish, its window read back from the new log's end as at the
        // first publish (a topic the new cluster lacks is absent until written). Carrying positions
        // over instead left one missing topic failing every reopen, and no topic read at all. The ids
        // remembered from the old logs are forgotten by SeenIds.
        if (this.epoch !== this.log.epoch) {
          this.epoch = this.log.epoch;
          this.topics.clear();
        }
        for (const [topic, t] of this.topics) if (t.state !== "absent") reader.assign(t.next.map((offset, partition) => ({ topic, partition, offset })));
        return;
      } catch (e) {
        this.logger.warn("idempotence: the ids reader could not reopen yet; retrying", { error: String(e), retryInMs: delayMs });
      }
      await Bun.sleep(delayMs);
    }
  }
}
