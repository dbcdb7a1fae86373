import type { Assignment, ConsumedRecord, EventLog, LogReader, ReaderGroup, Watermark } from "../log/event-log";
import type { Gap } from "../protocol/frames";
import { murmur2 } from "../bytes/murmur2";
import type { Logger } from "../observability/logger";
import type { Metrics } from "../observability/metrics";
import { DecodedRecord, type PayloadLimits } from "./decoded-record";
import type { TurnBudget } from "../limits/turn-budget";
import { FilterIndex } from "./filter-index";
import type { CompiledFilter } from "./filter";
import type { SharedPace } from "./replay-paces";
import type { Positions } from "./position";
import { ShareLedger } from "./share-ledger";
import type { ShareDealer, Subscription } from "./subscription";

export interface FeedOptions {
  /** The delivery budget of each event-loop turn, shared by every feed (limits/turn-budget.ts). */
  turns: TurnBudget;
  /** Shared subscription: read in this consumer group, and give each record to one member. */
  group?: ReaderGroup;
  /** Events/s while replaying (not yet live); undefined for the shared live feeds. */
  replayRate?: number;
  /** While replaying, the schedule this feed shares with its client address's other replays (replay-paces.ts). */
  addressPace?: SharedPace | null;
  /** Positions at which the feed has caught up with history (high watermarks at subscribe time). */
  target?: Positions;
  /** What a record's payload may hold to be decoded (decoded-record.ts). */
  payload: PayloadLimits;
  /** Each topic's id (EventLog.topicId), asked before its positions were: the log they are offsets of. */
  ids?: ReadonlyMap<string, string | null>;
  /**
   * Kafka's ACLs refuse the gateway's principal what this feed reads (`reason` says which): it will
   * deliver nothing, ever. The owner ends its subscriptions and closes it.
   */
  onDenied?: (feed: Feed, reason: string) => void;
}

// How often a share group's feed tells its reader what the group may commit (it commits every 5 s).
const STORE_INTERVAL_MS = 200;
// A partition said to be out of range whose watermarks say otherwise (a leader moving): read it again after this.
const RECHECK_MS = 500;
// A share group whose every matching member is full: how often it looks for room again.
const REDEAL_RETRY_MS = 50;

/** Where a share group's record went: to a member, to none (no member's filter takes it), or nowhere yet (every member it could go to is full). */
type Dealt = "member" | "none" | "full";

/** A partition whose next offset the log no longer has, and its watermarks once asked (null: the question failed). */
interface Gone {
  topic: string;
  partition: number;
  offset: number;
  /** The opening of the reader that reported it (Feed.opens). */
  opening: number;
  /** Every partition's watermarks once asked (null: the question failed). */
  marks?: Watermark[] | null;
}

/** What the reader handed over, in order: a batch of records, or a partition it lost its place in. */
/**
 * A topic's log replaced (EventLog.epoch): its partitions' watermarks in the new one. Or partitions
 * gone from the log (`keep`, `marks` empty): those from `keep` on are let go, all of them for a
 * topic deleted, those it lacks for one made again with fewer.
 */
interface Replaced {
  topic: string;
  marks: Watermark[];
  keep?: number;
  /** Only these partitions' logs were reset (watermarksNow); the others read on as they are. */
  only?: number[];
  /** With `only`: how many log_reset gaps the feed had told when the check was made (resetWithin). */
  told?: number;
  /** With `only`: the topic's id now, when a new id found them (topicIdNow); partitions already of it stay. */
  id?: string;
}

/** A partition's end, where the reader found it past the last record it handed over (ReaderHandlers.onEnd). */
interface End {
  topic: string;
  partition: number;
  offset: number;
  opening: number;
}

type Waiting = { records: ConsumedRecord[]; done: () => void; /** Records delivered so far (a batch spread over turns). */ at: number; opening: number } | { gone: Gone } | { replaced: Replaced } | { end: End };

/**
 * One log reader and the subscriptions it serves. Each record is decoded once, the index yields the
 * candidate subscriptions (identical filters evaluated once), and each touched subscription gets one
 * frame per batch. Live, slow subscribers never hold the reader back: their own queues absorb or
 * drop. History is read at the pace its subscriber takes it, so a replay is never dropped for being slow.
 * If the reader is lost with its worker, the feed reopens at exactly the positions it had.
 */
export class Feed implements ShareDealer {
  readonly subs = new Set<Subscription>();
  /** Records read so far: each subscription's `examined` counts from its own start (delivery health). */
  recordsRead = 0;
  private readonly index = new FilterIndex<Subscription>();
  private reader: LogReader | null = null;
  /** Readers opened so far: what each hands over carries the count at its opening (see readAgainFrom). */
  private opens = 0;
  /**
   * Partitions ("partition:topic") read again from their new log's start (readAgainFrom), with the first opening
   * whose reports of them count: an earlier reader's came from where they were before the move.
   */
  private readonly fences = new Map<string, number>();
  private closed = false;
  private live: boolean;
  private touched = new Set<Subscription>();
  private readonly candidates: Subscription[] = [];
  private roundRobin = 0;
  /** Batches (and lost places) handed over by the reader, in order, not yet delivered. */
  private readonly waiting: Waiting[] = [];
  private pumping = false;
  private paceTimer: Timer | null = null;
  /**
   * Set while the feed waits for its next turn of delivery (FeedOptions.turns). A batch can cost
   * seconds (a thousand subscriptions with filters of dozens of clauses, each record encoded for
   * each): done in one go, every other client's frames waited behind it (the hostile tester's
   * control publish: p50 0.8 ms → 990 ms).
   */
  private waitingTurn = false;
  /** While replaying: waiting for a subscriber to take what it was given (Subscription.holdsReplay). */
  private held = false;
  /** While replaying: when the next batch may be delivered (performance.now() time). */
  private paceAt = 0;
  /** While replaying: the head batch waits its turn of the address's pace (FeedOptions.addressPace). */
  private paceQueued = false;
  /** The head batch's turn of the address's pace came (and is paid for): it goes when next pumped. */
  private paceGranted = false;
  private readonly paceGrant = (): void => {
    this.paceQueued = false;
    this.paceGranted = true;
    this.pump();
  };
  /** A share group's feed: what its members were handed, which is what the group may commit. */
  private readonly ledger: ShareLedger | null;
  /**
   * A share group's records no member had room for (or given back by a member that ended or
   * overflowed), in order, outstanding in the ledger. While any wait, the feed reads nothing more: a
   * work queue slows to its members' pace rather than dropping what one of them cannot take.
   */
  private readonly redeal: DecodedRecord[] = [];
  private redealTimer: Timer | null = null;
  private storeTimer: Timer | null = null;
  /** Each client address's distinct filters here (by identity, with how many of its subscriptions hold each) and their terms together. */
  private readonly termsByAddress = new Map<string, { filters: Map<string, number>; terms: number }>();
  /** The log's epoch the positions were read in. */
  private epoch: number;
  /** The reader once open() has assigned it the positions; partitions found later are assigned to it as well. */
  private assigned: LogReader | null = null;

  constructor(
    private readonly log: EventLog,
    readonly topics: string[],
    /** Next offset of every partition of every topic: where the feed has read up to. */
    readonly positions: Positions,
    private readonly options: FeedOptions,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.live = !options.target || this.caughtUp();
    this.ledger = options.group ? new ShareLedger() : null;
    this.epoch = log.epoch;
    for (const [topic, offsets] of positions) {
      const id = options.ids?.get(topic) ?? undefined;
      this.logIds.set(topic, offsets.map(() => id));
      if (id !== undefined) this.idSeen.set(topic, id);
    }
  }

  get isLive(): boolean {
    return this.live;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The terms of this feed's distinct filters, were `filter` added (FilterIndex.termsWith). */
  filterTermsWith(filter: CompiledFilter): number {
    return this.index.termsWith(filter);
  }

  /**
   * The terms of `address`'s distinct filters here, were `filter` added (MAX_FILTER_TERMS_PER_ADDRESS):
   * each counted once for the address, whoever else holds it too.
   */
  addressTermsWith(address: string, filter: CompiledFilter): number {
    const held = this.termsByAddress.get(address);
    return (held?.terms ?? 0) + (held?.filters.has(filter.identity) ? 0 : filter.terms);
  }

  add(sub: Subscription): void {
    if (this.subs.has(sub)) return;
    this.subs.add(sub);
    sub.readFrom(this);
    if (this.ledger) sub.dealtBy(this);
    this.index.add(sub, sub.filter);
    this.chargeAddress(sub, 1);
    if (this.live) sub.goLive();
  }

  /**
   * Everything read has been delivered and nothing is pending: no batch waiting or half delivered, no
   * reset or fence to tell, its reader assigned. The subscriptions were handed exactly what lies
   * before `positions`, and nothing after: where a caught-up replay may be moved onto another feed
   * that has read exactly as far (samePlace; SubscriptionManager.handOver).
   */
  get settled(): boolean {
    return !this.closed && this.live && !this.ledger && this.reader !== null && this.assigned === this.reader && this.waiting.length === 0 && !this.pumping && !this.waitingTurn && this.touched.size === 0 && this.fences.size === 0 && this.resetSuspects.size === 0 && this.redeal.length === 0;
  }

  /** Whether `other` has read `topic` exactly as far as this feed, partition by partition, in the same logs. */
  samePlace(other: Feed, topic: string): boolean {
    const a = this.positions.get(topic);
    const b = other.positions.get(topic);
    const ids = this.logIds.get(topic);
    const otherIds = other.logIds.get(topic);
    if (!a || !b || !ids || !otherIds || a.length !== b.length || ids.length !== a.length || otherIds.length !== b.length || this.epoch !== other.epoch) return false;
    for (let p = 0; p < a.length; p++) if (a[p] !== b[p] || ids[p] !== otherIds[p]) return false;
    return true;
  }

  remove(sub: Subscription): void {
    if (!this.subs.delete(sub)) return;
    this.index.remove(sub);
    this.chargeAddress(sub, -1);
  }

  private chargeAddress(sub: Subscription, delta: 1 | -1): void {
    let held = this.termsByAddress.get(sub.address);
    if (!held) this.termsByAddress.set(sub.address, (held = { filters: new Map(), terms: 0 }));
    const id = sub.filter.identity;
    const count = (held.filters.get(id) ?? 0) + delta;
    if (count > 0) held.filters.set(id, count);
    else held.filters.delete(id);
    if (count === 1 && delta === 1) held.terms += sub.filter.terms;
    if (count === 0) held.terms -= sub.filter.terms;
    if (held.filters.size === 0) this.termsByAddress.delete(sub.address);
  }

  async open(): Promise<void> {
    // Numbered before any wait: a reset found meanwhile fences what came before this one (readAgainFrom).
    const opening = ++this.opens;
    // The reader this one replaces, lost or let go: closed, so that none is left behind reading.
    this.reader?.close();
    this.reader = null;
    // The logs were replaced since the positions were read (a new cluster): they name nothing now.
    // A group's commits went with the old cluster; it starts where its reset policy says.
    const epoch = this.log.epoch;
    const replaced = epoch !== this.epoch && !this.options.group ? await this.newLogMarks() : null;
    if (this.closed || opening !== this.opens) return; // closed, or a later open took over meanwhile
    const reader = this.log.openReader(
      {
        onRecords: (r, done) => this.onRecords(r, done, opening),
        // Reopened only if it is still the feed's reader: one let go may be told later, by a pool that
        // kept it for its worker's replacement, and a second reopen would leave two readers.
        onLost: (reason) => {
          if (opening === this.opens) void this.reopen(reason);
        },
        onOutOfRange: (t, p, o) => this.onOutOfRange(t, p, o, opening),
        onEnd: (t, p, o) => this.onEnd(t, p, o, opening),
        onDenied: (t, m) => this.onDenied(t, m),
      },
      this.options.group,
    );
    this.reader = reader;
    await reader.ready;
    if (this.closed || opening !== this.opens) return reader.close();
    if (this.options.group) return; // the group assigns partitions
    const list: Assignment[] = [];
    for (const [topic, offsets] of this.positions) {
      const now = replaced?.get(topic);
      // A partition the new log does not have is not assigned: were it made again, it would be read from `offset`.
      offsets.forEach((offset, partition) => {
        if (!now || partition < now.length) list.push({ topic, partition, offset: now?.[partition]?.low ?? offset });
      });
    }
    reader.assign(list);
    this.assigned = reader;
    if (replaced) this.readNewLogs(epoch, replaced);
  }

  /**
   * Partitions added to a topic since the feed started (`counts`: partitions per topic now): all of
   * their records are new to the subscribers, so they are read from offset 0 (a log that no longer
   * starts there says so with a retention gap). Before, a reader assigned by hand never read them.
   */
  partitionsNow(counts: ReadonlyMap<string, number>): void {
    if (this.closed || this.options.group) return; // a group's reader is assigned its partitions by the group
    for (const [topic, offsets] of this.positions) {
      const now = counts.get(topic) ?? 0;
      if (now > 0 && now < offsets.length) this.fewerPartitions(topic, now);
      else this.fewer.delete(topic);
      if (now <= offsets.length) continue;
      const added: Assignment[] = [];
      for (let partition = offsets.length; partition < now; partition++) added.push({ topic, partition, offset: 0 });
      const tags = this.tagsOf(topic);
      for (const a of added) {
        offsets[a.partition] = 0;
        // Found with the id this check saw (topicIdNow comes first): of that log, whatever is reset.
        tags[a.partition] = this.idSeen.get(topic);
      }
      this.logger.info("partitions were added to a topic a feed reads; reading them from their start", { topic, from: now - added.length, to: now, subscriptions: this.subs.size });
      // A reader opening meanwhile is assigned every position once ready, these with them.
      if (this.reader && this.assigned === this.reader) this.reader.assign(added);
    }
  }

  /** Topics whose partitions wait their turn in `waiting` to be let go, with how many are kept (letGo). */
  private readonly lettingGo = new Map<string, number>();
  /** Topics found with fewer partitions than are read, with how many checks running. */
  private readonly fewer = new Map<string, number>();

  /**
   * The topic has fewer partitions than the feed reads: Kafka never takes partitions away, so it
   * was deleted and made again with fewer between two checks (too quickly to be found missing
   * twice). The partitions it has report their old offsets out of range (readOnPast); those it
   * lacks are let go with a log_reset gap, and read from their start if they are added again.
   * Before, they were told nothing, and once added again the reader went on from the old offsets,
   * skipping the new log's records below them in silence. Twice running, as a deletion, so that one
   * answer from a broker that has not yet heard of partitions just added does not let them go.
   */
  private fewerPartitions(topic: string, now: number): void {
    const checks = (this.fewer.get(topic) ?? 0) + 1;
    this.fewer.set(topic, checks);
    if (checks < 2 || this.lettingGo.has(topic)) return;
    this.lettingGo.set(topic, now);
    this.waiting.push({ replaced: { topic, marks: [], keep: now } });
    this.pump();
  }

  /**
   * The log no longer has `topic` (deleted, and not created again when last asked). What was not
   * read of it is gone: its subscribers are told with a log_reset gap per partition, in order behind
   * what was read before, and a replay goes live (nothing of it is left to read). If the topic is
   * created again, its partitions are read from their start (partitionsNow). Before, a replay waited
   * at its old offsets for good, its replay slot held and nothing said; and a topic made again with
   * more records than that offset had those below it skipped in silence.
   */
  topicDeleted(topic: string): void {
    if (this.closed || this.options.group || this.lettingGo.get(topic) === 0 || (this.positions.get(topic)?.length ?? 0) === 0) return;
    this.lettingGo.set(topic, 0); // told again at every check until its turn in the queue comes
    this.waiting.push({ replaced: { topic, marks: [], keep: 0 } });
    this.pump();
  }

  private async newLogMarks(): Promise<Map<string, Watermark[]>> {
    const marks = new Map<string, Watermark[]>();
    for (const topic of this.positions.keys()) marks.set(topic, await this.log.watermarks(topic));
    return marks;
  }

  /**
   * The reader reads each partition's new log from its start; behind what was read from the old
   * logs, the subscribers are told with log_reset gaps (readNewLog).
   */
  private readNewLogs(epoch: number, marks: Map<string, Watermark[]>): void {
    this.epoch = epoch;
    for (const [topic, perPartition] of marks) this.waiting.push({ replaced: { topic, marks: perPartition } });
    this.pump();
  }

  /**
   * A topic's positions move to its new log all at once, and only then is each partition read into
   * told with a `log_reset` gap, so that every gap's token names the new log only. A partition the
   * new log lacks (the topic made again with fewer) leaves the positions: added later, it is read
   * from its start (partitionsNow). Before, a gap went out per partition, each with the token of its
   * moment, and a partition the new log lacked got none: the chaos tester's cluster came back with
   * 3 partitions of 4, the tokens went on naming p3's old offset, and once p3 was added again its
   * first 6,250 records were skipped in silence.
   */
  private readNewLog({ topic, marks, keep, only, told, id }: Replaced): void {
    const offsets = this.positions.get(topic);
    if (this.closed || !offsets) return;
    if (keep !== undefined) return this.letGo(topic, offsets, keep);
    if (only !== undefined) return this.resetWithin(topic, offsets, marks, only, told ?? 0, id);
    const gaps: Gap[] = [];
    for (let p = 0; p < offsets.length; p++) {
      // Every partition, wherever it was: one never read into may have held records never read.
      gaps.push({ topic, partition: p, from: offsets[p]!, to: marks[p]?.low ?? 0, reason: "log_reset" });
    }
    const before = offsets.length;
    offsets.length = marks.length;
    marks.forEach((m, p) => (offsets[p] = m.low));
    // Logs of another cluster: their ids are yet to be seen (topicIdNow).
    this.logIds.set(topic, offsets.map(() => undefined));
    this.idSeen.delete(topic);
    this.idClears++;
    // Partitions the old log did not have: the reader was assigned those it had (open).
    const added = marks.slice(before).map((m, i) => ({ topic, partition: before + i, offset: m.low }));
    if (added.length > 0 && this.reader && this.assigned === this.reader) this.reader.assign(added);
    // A new log ends before the old end a replay was to reach: its new end is the target.
    const target = this.options.target?.get(topic);
    if (target) {
      if (target.length > marks.length) target.length = marks.length;
      marks.forEach((m, p) => {
        if ((target[p] ?? 0) > m.high) target[p] = m.high;
      });
    }
    for (const gap of gaps) this.tell(gap);
  }

  /**
   * The watermarks of `topic` now (a lag sample of a live feed, or the partition check of a replay).
   * A log's end never moves back unless the log was reset: the topic deleted and made again between
   * two checks (the gateway's own producer makes it again at once where the broker auto-creates), too
   * quickly to be found missing. A partition read past the new end is reported by its reader
   * (readOnPast); one whose position still lies within the new log (never read into: 0) was not, and
   * the records it had not read were gone untold, and a replay whose target lay past the new end
   * never went live, its slot held (outside chaos tester: 7,058 records of a partition not yet read,
   * 3 of 3 runs). Those are reset here, each with a log_reset gap, in turn behind what was read.
   */
  watermarksNow(topic: string, marks: Watermark[]): void {
    const offsets = this.positions.get(topic);
    if (this.closed || this.options.group || !offsets || this.lettingGo.has(topic)) return;
    const target = this.options.target?.get(topic);
    let highs = this.highs.get(topic);
    if (!highs) this.highs.set(topic, (highs = []));
    const reset: number[] = [];
    let suspect = false;
    for (let p = 0; p < Math.min(marks.length, offsets.length); p++) {
      const high = marks[p]!.high;
      const known = Math.max(highs[p] ?? 0, target?.[p] ?? 0);
      if (high >= known) highs[p] = high;
      else if (offsets[p]! <= high && offsets[p]! < known) {
        // Twice running, as a deletion: a leader just elected may answer an end behind its
        // predecessor's for a moment, and that is no reset.
        suspect = true;
        if (this.resetSuspects.has(topic)) {
          reset.push(p);
          highs[p] = high;
        }
      } else highs[p] = high; // read past the new end: its reader reports it (readOnPast)
    }
    if (suspect && reset.length === 0) this.resetSuspects.add(topic);
    else this.resetSuspects.delete(topic);
    if (reset.length === 0) return;
    this.waiting.push({ replaced: { topic, marks, only: reset, told: this.resetsTold, id: this.explainedBy(topic, reset[0]!) } });
    this.pump();
  }

  /** Each topic's partitions' log ids (FeedOptions.ids): undefined where not known yet. */
  private readonly logIds = new Map<string, Array<string | undefined>>();
  /** Each topic's id at the last check that saw one (topicIdNow). */
  private readonly idSeen = new Map<string, string>();
  /** Topics with a reset for a new id queued and not yet done (topicIdNow). */
  private readonly idResets = new Set<string>();
  /**
   * Times partitions' ids were cleared (a reset with no id known, logs of another cluster): an id
   * asked before that may name the old log, and is not taken for them (topicIdNow).
   */
  idClears = 0;

  private tagsOf(topic: string): Array<string | undefined> {
    let tags = this.logIds.get(topic);
    if (!tags) this.logIds.set(topic, (tags = []));
    return tags;
  }

  /** The id of the log every partition of `topic` is read in, if one is known for them all (resume tokens name it). */
  logIdOf(topic: string): string | undefined {
    const tags = this.logIds.get(topic);
    const offsets = this.positions.get(topic);
    if (!tags || !offsets || tags.length < offsets.length) return undefined;
    const id = tags[0];
    for (let p = 1; p < offsets.length; p++) if (tags[p] !== id) return undefined;
    return id;
  }

  /** Whether some partition of `topic` is read at offsets of a log other than `id`'s. */
  readsOtherLog(topic: string, id: string): boolean {
    const offsets = this.positions.get(topic);
    if (this.closed || this.options.group || !offsets) return false;
    return this.tagsOf(topic).some((tag, p) => p < offsets.length && tag !== undefined && tag !== id);
  }

  /**
   * `topic`'s id now (a partition check). A topic deleted and made again has another: the partitions
   * read at offsets of the old log are read again from the new log's start, each with a log_reset gap
   * (resetTopic), behind what was read, and those found since with the new id read on. Before, a
   * topic whose every new log had outgrown the old positions before any check was read on from them,
   * the new logs' records below skipped in silence; and partitions added to the new topic, read from
   * their start, were read again with a gap from where they stood (CI: the gateway's own producer
   * made the topic again with three partitions, and two were told log_reset gaps from 490 and 463).
   * `marks` are the watermarks now, asked when readsOtherLog said so (null: the question failed).
   * `clears`: idClears when the id was asked. A new id counts at once (a deletion counts at two checks
   * running): until it is seen, the feed reads the new logs from the old positions, and what it reads
   * there comes again after the gap; a second check would double that.
   */
  topicIdNow(topic: string, id: string, marks: Watermark[] | null, clears: number): void {
    const offsets = this.positions.get(topic);
    if (this.closed || this.options.group || !offsets || this.lettingGo.has(topic)) return;
    this.idSeen.set(topic, id);
    const tags = this.tagsOf(topic);
    // Ids cleared since it was asked (a reset its reader found, with no id known then): the answer
    // may be the old log's, and taken for them it would reset them again at the next check.
    const take = clears === this.idClears;
    const stale: number[] = [];
    for (let p = 0; p < offsets.length; p++) {
      if (tags[p] === undefined) {
        if (take) tags[p] = id;
      } else if (tags[p] !== id) stale.push(p);
    }
    if (stale.length === 0 || !marks || this.idResets.has(topic)) return;
    this.idResets.add(topic);
    this.waiting.push({ replaced: { topic, marks, only: stale, told: this.resetsTold, id } });
    this.pump();
  }

  /**
   * The id of the log a reset found on `partition` of `topic` went to, when a check has seen it
   * already: the partition is of another log than the id seen, so the reset is that one's.
   */
  private explainedBy(topic: string, partition: number): string | undefined {
    const seen = this.idSeen.get(topic);
    const tag = this.logIds.get(topic)?.[partition];
    return seen !== undefined && tag !== undefined && tag !== seen ? seen : undefined;
  }

  /** log_reset gaps told so far, and the count when each partition's last was ("p:topic"). */
  private resetsTold = 0;
  private readonly lastResetTold = new Map<string, number>();

  /** Each partition's highest end seen (watermarksNow), by topic. */
  private readonly highs = new Map<string, number[]>();
  /** Topics whose end was found behind the highest seen at the last look (watermarksNow). */
  private readonly resetSuspects = new Set<string>();

  /**
   * `only`'s logs were reset where their positions still lie within the new logs (watermarksNow): the
   * topic was made again, all of it (resetTopic). Told once: its reader may have found the same reset
   * first (out of range, queued ahead of this check); CI once saw a replay told twice, the second gap
   * from the new log's start to itself.
   */
  private resetWithin(topic: string, offsets: number[], marks: Watermark[], only: number[], told: number, id: string | undefined): void {
    if (id !== undefined) this.idResets.delete(topic);
    if (only.some((p) => (this.lastResetTold.get(`${p}:${topic}`) ?? -1) > told)) return;
    this.resetTopic(topic, offsets, marks, id);
  }

  /**
   * `topic`'s log was found reset on a partition: the topic was deleted and made again (or a leader
   * elected uncleanly cut a log short, which reads the same and is read again, at least once). A topic
   * is made again whole, so every partition it has is read again from its new log's start by a new
   * reader (readAgainFrom), each with a log_reset gap; those it no longer has are let go (letGo). All
   * move before any gap is told, so that every gap's token names the new logs only. Before, each
   * partition waited for its own report: one whose new log had grown past its old position before its
   * reader fetched again was never reported, and read on from the old offset, the new log's records
   * below it skipped in silence (outside probe: 644 and 700 records of p0, no gap); and the token of
   * one partition's gap, resumed once the others' new logs had passed their old offsets, skipped
   * theirs (every run). With `id`, the topic's id now, partitions known to be of its log already (found
   * since, or read again for it before) read on: they are the new log's.
   */
  private resetTopic(topic: string, offsets: number[], marks: Watermark[], id?: string): void {
    const keep = Math.min(offsets.length, marks.length);
    const gaps: Gap[] = [];
    const places: Assignment[] = [];
    const target = this.options.target?.get(topic);
    const tags = this.tagsOf(topic);
    for (let p = 0; p < keep; p++) {
      if (id !== undefined && tags[p] === id) continue;
      // Of the log `id` names once read again; not known without one (the next check's id is taken).
      if (id === undefined && tags[p] !== undefined) this.idClears++;
      tags[p] = id;
      const m = marks[p]!;
      const from = offsets[p]!;
      // Where nothing was read, nothing is said (as of a resumed token's reset, SubscriptionManager): an
      // empty partition of a live feed, or one added since and read from 0, its records the new log's.
      // A replay's that had yet to reach its target had records it will never get.
      if (from !== m.low || (target?.[p] ?? 0) > from) gaps.push({ topic, partition: p, from, to: m.low, reason: "log_reset" });
      offsets[p] = m.low;
      places.push({ topic, partition: p, offset: m.low });
      // A new log ends before the old end a replay was to reach: its new end is the target.
      if (target && (target[p] ?? 0) > m.high) target[p] = m.high;
    }
    if (places.length > 0) this.readAgainFrom(places);
    if (offsets.length > keep) this.letGo(topic, offsets, keep, gaps);
    else for (const gap of gaps) this.tell(gap);
  }

  /**
   * Reads `places` again from offsets below where their reader is: by a new reader, whose reports of
   * them alone count from here on. Moved in place (unassigned and assigned again), a partition's
   * reader was still handing over what it had read from the old place, records of the new log past
   * the move: delivered after it, they put the position past the new log's records below them, and
   * those were skipped as read already when read again (second review). The reader's handing over
   * has no mark of where a move took effect; a new reader's identity is one. Resets are rare.
   */
  private readAgainFrom(places: Assignment[]): void {
    // A reader opening meanwhile is assigned the positions once ready, these with them: its reports count.
    const reading = this.reader !== null && this.assigned === this.reader;
    for (const { topic, partition } of places) this.fences.set(`${partition}:${topic}`, reading ? this.opens + 1 : this.opens);
    if (!reading) return;
    // open() closes the reader it replaces. Its worker may be gone already, its loss not yet told
    // (the pool tells it once a replacement is ready): closed, it never is (second review).
    this.assigned = null;
    void this.reopen(`partitions ${places.map((p) => `${p.topic}[${p.partition}]`).join(", ")} were reset within their new log: read again from its start`);
  }

  /** Whether what the reader of `opening` reported of this partition comes from before it was read again (readAgainFrom). */
  private fenced(opening: number, topic: string, partition: number): boolean {
    return opening < (this.fences.get(`${partition}:${topic}`) ?? 0);
  }

  /**
   * Partitions from `keep` on are gone from the log, and what was not read of them with it: each
   * that had been read into is told with a log_reset gap, and they leave the positions (read from
   * their start if made again, partitionsNow). The reader lets them go: it would wait at their old
   * offsets for good, or, were they made again, read on from there.
   */
  private letGo(topic: string, offsets: number[], keep: number, told: Gap[] = []): void {
    if (this.lettingGo.get(topic) === keep) this.lettingGo.delete(topic);
    const gone: Assignment[] = [];
    for (let partition = keep; partition < offsets.length; partition++) gone.push({ topic, partition, offset: 0 });
    if (this.reader && this.assigned === this.reader) this.reader.unassign(gone);
    const gaps: Gap[] = told;
    // Every partition, read into or not: one still at 0 may have held records never read (partitions
    // added under a replay still reading the others' history lost 1,735 records untold).
    for (const { partition } of gone) gaps.push({ topic, partition, from: offsets[partition]!, to: 0, reason: "log_reset" });
    offsets.length = Math.min(offsets.length, keep);
    const tags = this.tagsOf(topic);
    tags.length = Math.min(tags.length, keep);
    // Deleted: the id of a topic made again is taken when found (topicIdNow, partitionsNow).
    if (keep === 0) this.idSeen.delete(topic);
    // A replay goes live without them.
    const target = this.options.target?.get(topic);
    if (target && target.length > keep) target.length = keep;
    for (const gap of gaps) this.tell(gap);
  }

  /**
   * The first open of a feed whose subscription is announced already: if the reader cannot be opened
   * (its worker lost before it was ready), it is retried as a lost reader is. The subscriber has its
   * `subscribed` and will get its events; a second answer to its request would be a lie.
   */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (e) {
      if (!this.closed) void this.reopen(`the first open failed: ${String((e as Error)?.message ?? e)}`);
    }
  }

  close(): void {
    // Once: a denied feed is closed by its refusal and again by its last subscriber leaving, and the
    // group's offsets are stored once.
    if (this.closed) return;
    this.closed = true;
    if (this.paceTimer) clearTimeout(this.paceTimer);
    if (this.paceQueued) this.options.addressPace?.cancel(this.paceGrant);
    this.paceQueued = false;
    this.options.turns.cancel(this.resumeTurn);
    this.waitingTurn = false;
    if (this.redealTimer) clearTimeout(this.redealTimer);
    // Records still waiting stay outstanding: the group's commit stays before them, and the
    // partition's next owner reads them again.
    this.redeal.length = 0;
    this.paceTimer = null;
    for (const w of this.waiting.splice(0)) if ("done" in w) w.done();
    // Last: what the members were handed, which the group commits as the reader leaves it.
    this.storeOffsets();
    this.reader?.close();
  }

  done(records: readonly DecodedRecord[]): void {
    this.ledger?.done(records);
    this.scheduleStore();
  }

  /**
   * A member ended with these still queued: they go to another member (a later turn: the member is
   * leaving the index meanwhile). With none left, they stay uncommitted, and the partition's next
   * owner in the group reads them again.
   */
  undelivered(records: readonly DecodedRecord[]): void {
    setImmediate(() => {
      if (this.closed) return;
      // Older than any record waiting already: first in line.
      this.redeal.unshift(...records);
      this.drainRedeal();
      this.pump();
    });
  }

  /**
   * Deals the waiting records in order, up to the first no member has room for. True when none is
   * left; otherwise it tries again shortly (members' queues drain as their sockets take frames).
   */
  private drainRedeal(): boolean {
    if (this.closed) return true;
    const q = this.redeal;
    let n = 0;
    for (; n < q.length; n++) {
      const dealt = this.dealToOne(q[n]!, false);
      if (dealt === "full") break;
      if (dealt === "none") this.ledger?.done([q[n]!]);
    }
    q.splice(0, n);
    this.endTouched();
    this.scheduleStore();
    if (q.length === 0) return true;
    this.retryRedeal();
    return false;
  }

  /**
   * Looks for room again shortly. Armed whenever records wait to be dealt, however they came to: the
   * last batch read while every member was full left its records waiting with nothing else to look
   * at them again but the next batch read, and on a topic nobody writes to that never comes (the
   * chaos tester: the last few hundred records of each partition, held while the members read).
   */
  private retryRedeal(): void {
    this.redealTimer ??= setTimeout(() => {
      this.redealTimer = null;
      if (this.drainRedeal()) this.pump();
    }, REDEAL_RETRY_MS);
  }

  private scheduleStore(): void {
    if (this.storeTimer || this.closed) return;
    this.storeTimer = setTimeout(() => {
      this.storeTimer = null;
      this.storeOffsets();
    }, STORE_INTERVAL_MS);
    this.storeTimer.unref();
  }

  private storeOffsets(): void {
    if (this.storeTimer) clearTimeout(this.storeTimer);
    this.storeTimer = null;
    const list = this.ledger?.take();
    if (list && list.length > 0) this.reader?.storeOffsets(list);
  }

  /**
   * Batches are delivered strictly in the order the reader handed them over: one queue, one consumer.
   * While replaying, the head of the queue waits for its slot in a schedule of REPLAY_RATE_LIMIT
   * events/s (pacing each batch with its own timer would let a later batch overtake a waiting one,
   * and the positions, tokens and `live` with it). Waiting batches are bounded by the reader's credits.
   */
  private onRecords(records: ConsumedRecord[], done: () => void, opening: number): void {
    if (this.closed) return done();
    this.waiting.push({ records, done, at: 0, opening });
    this.pump();
  }

  private onDenied(topic: string, message: string): void {
    if (this.closed) return;
    const what = topic !== "" ? `topic "${topic}"` : this.options.group ? `the share group "${this.options.group.id}"` : `one of ${this.topics.map((t) => `"${t}"`).join(", ")}`;
    this.options.onDenied?.(this, `Kafka's ACLs refuse the gateway's own principal ${what} (${message}); an operator must grant it Read there`);
  }

  /** A partition's end past the last record read: in the queue too, behind the batches before it (reachedEnd). */
  private onEnd(topic: string, partition: number, offset: number, opening: number): void {
    if (this.closed || this.live) return;
    this.waiting.push({ end: { topic, partition, offset, opening } });
    this.pump();
  }

  /**
   * The reader lost its place in a partition: it goes in the queue behind the batches before it, and is
   * dealt with (watermarks asked meanwhile) in its turn, so the subscribers' view stays in log order.
   */
  private onOutOfRange(topic: string, partition: number, offset: number, opening: number): void {
    if (this.closed || this.ledger) return;
    const gone: Gone = { topic, partition, offset, opening };
    this.waiting.push({ gone });
    this.log.watermarks(topic).then(
      (marks) => void (gone.marks = marks),
      () => void (gone.marks = null),
    ).finally(() => this.pump());
  }

  private pump(): void {
    if (this.pumping || this.paceTimer || this.paceQueued || this.held || this.waitingTurn || this.closed || this.waiting.length === 0) return;
    const turns = this.options.turns;
    if (turns.leftMs <= 0) return this.waitTurn();
    this.pumping = true;
    const started = performance.now();
    const until = started + turns.leftMs;
    try {
      while (this.waiting.length > 0) {
        const head = this.waiting[0]!;
        if (this.ledger && this.redeal.length > 0 && !this.drainRedeal()) return; // pumped again once dealt
        // A notice taken off the queue may have been its last entry, and the one a replay's `live`
        // waited behind, whether or not it moved a position (a stale one moves none): checked here
        // after each, not in the handlers. A replay whose last entry was a stale report never went
        // live, its slot held.
        if ("replaced" in head) {
          this.waiting.shift();
          this.readNewLog(head.replaced);
          this.liveIfCaughtUp();
          continue;
        }
        if ("end" in head) {
          this.waiting.shift();
          this.reachedEnd(head.end);
          this.liveIfCaughtUp();
          continue;
        }
        if ("gone" in head) {
          if (head.gone.marks === undefined) return; // pumped again once the watermarks are known
          this.waiting.shift();
          this.readOnPast(head.gone);
          this.liveIfCaughtUp();
          continue;
        }
        if (!this.live && this.holdForReaders()) return;
        const rate = this.options.replayRate;
        if (!this.live && rate && head.at === 0) {
          const now = performance.now();
          if (!this.paceGranted) {
            if (this.paceAt > now) {
              this.paceTimer = setTimeout(() => {
                this.paceTimer = null;
                this.pump();
              }, this.paceAt - now);
              return;
            }
            if (this.options.addressPace?.claim(head.records.length, this.paceGrant) === false) {
              this.paceQueued = true;
              return;
            }
          }
          this.paceGranted = false;
          this.paceAt = Math.max(now, this.paceAt) + (head.records.length / rate) * 1000;
        }
        let whole = true;
        try {
          whole = this.deliver(head, until);
        } catch (e) {
          // A fault here must not keep the reader's credit: that would stall every subscriber of the feed.
          this.logger.error("delivering a read batch failed", { topics: this.topics, error: String((e as Error)?.stack ?? e) });
        }
        if (!whole || performance.now() > until) {
          // The rest on a later turn, in order (the batch stays at the head): other clients go first.
          if (whole) this.delivered(head);
          this.waitTurn();
          return;
        }
        this.delivered(head);
      }
    } finally {
      this.pumping = false;
      turns.spend(performance.now() - started);
    }
  }

  private waitTurn(): void {
    this.waitingTurn = true;
    this.options.turns.wait(this.resumeTurn);
  }

  private readonly resumeTurn = (): void => {
    this.waitingTurn = false;
    this.pump();
  };

  /**
   * Where a partition goes on once its next offset is gone, and what its subscribers are told:
   * - below the log's start: retention deleted what was not read yet; read on from the start, and a
   *   `retention` gap names what was skipped;
   * - past the log's end: the log was reset (the topic created again), and its offsets start over;
   *   every partition of the topic is read again from its new log's start, each with a `log_reset`
   *   gap (resetTopic). Records of a log that was only cut short may come again: at least once.
   * - within the log (the question raced a leader moving): read on from the same place a little later.
   */
  private readOnPast(g: Gone): void {
    const offsets = this.positions.get(g.topic);
    // A partition no longer read: its topic deleted (readNewLog let its partitions go, told their
    // gaps, and reads them again from the new log's start once they exist). The reader's report of
    // its old offset, out of range in the new log, came after, and told each gap a second time.
    if (this.closed || !offsets || offsets[g.partition] === undefined || this.fenced(g.opening, g.topic, g.partition)) return;
    const at = offsets[g.partition]!;
    const m = g.marks?.[g.partition];
    let next = at;
    let gap: Gap | null = null;
    if (m && at < m.low) gap = { topic: g.topic, partition: g.partition, from: at, to: (next = m.low), reason: "retention" };
    else if (m && at > m.high) return this.resetTopic(g.topic, offsets, g.marks!, this.explainedBy(g.topic, g.partition));
    const place = [{ topic: g.topic, partition: g.partition, offset: next }];
    // A log whose end is behind the one the replay was to reach as well (cut short there too): its end is the target.
    const target = this.options.target?.get(g.topic);
    if (target && m && (target[g.partition] ?? 0) > m.high && gap) target[g.partition] = m.high;
    if (!gap) {
      const timer = setTimeout(() => {
        // Let go meanwhile (its topic deleted), or moved by a later report: nothing to read on.
        if (this.positions.get(g.topic)?.[g.partition] === at) this.moveTo(place);
      }, RECHECK_MS);
      timer.unref();
      return;
    }
    offsets[g.partition] = next;
    this.tell(gap);
    this.moveTo(place);
  }

  /**
   * Reads these partitions on from these offsets. A reader still opening (its worker restarted) is
   * left alone: it is assigned every position, these with them, once ready.
   */
  private moveTo(place: Assignment[]): void {
    if (this.closed || !this.reader || this.assigned !== this.reader) return;
    this.reader.unassign(place);
    this.reader.assign(place);
  }

  /**
   * Past the last record read there lie offsets that hold no record for us (a transaction's marker,
   * aborted records): the position moves to the end, or a replay whose target is that end never
   * goes live. In the queue's order, so the position never moves back to a record before it.
   */
  private reachedEnd({ topic, partition, offset, opening }: End): void {
    const offsets = this.positions.get(topic);
    if (this.closed || this.ledger || !offsets || offset <= (offsets[partition] ?? 0) || this.fenced(opening, topic, partition)) return;
    offsets[partition] = offset;
  }

  private tell(gap: Gap): void {
    // A reset told: the ends seen of the old log say nothing of the new one (watermarksNow).
    if (gap.reason === "log_reset") {
      const highs = this.highs.get(gap.topic);
      if (highs) highs[gap.partition] = gap.to;
      this.resetSuspects.delete(gap.topic);
      this.lastResetTold.set(`${gap.partition}:${gap.topic}`, ++this.resetsTold);
    }
    this.logger.warn("a feed's next offset is gone from the log; subscribers are told", { ...gap, subscriptions: this.subs.size });
    this.metrics.subscriptionGaps.inc({ reason: gap.reason });
    for (const sub of this.subs) sub.gap(gap);
  }

  private holdForReaders(): boolean {
    for (const sub of this.subs) {
      if (sub.holdsReplay(this.resumeHeld)) {
        this.held = true;
        return true;
      }
    }
    return false;
  }

  private readonly resumeHeld = (): void => {
    this.held = false;
    this.pump();
  };

  /** The head batch is delivered: off the queue (live may come now), and its credit back to the reader. */
  private delivered(head: { done: () => void }): void {
    this.waiting.shift();
    this.liveIfCaughtUp();
    head.done();
  }

  /** Delivers the batch from where it stopped; false if `until` came first (the rest is for a later turn). */
  private deliver(batch: { records: ConsumedRecord[]; at: number; opening: number }, until: number): boolean {
    if (this.closed) return true;
    const started = performance.now();
    const records = batch.records;
    for (; batch.at < records.length; ) {
      // Every record: one can cost milliseconds (matched and encoded for a thousand subscriptions).
      if (batch.at > 0 && performance.now() > until) break;
      const r = records[batch.at++]!;
      this.recordsRead++;
      const offsets = this.positions.get(r.topic);
      if (offsets) {
        // Read already: a batch the lost reader had handed over before the new one, reopened at
        // these positions, read it again. Not in a share group: there a record read again comes from
        // the group's commit, which is before it only when no member was handed it.
        if (!this.ledger && r.offset < (offsets[r.partition] ?? -1)) continue;
        // Of a partition no longer read (its topic deleted, topicDeleted): sent before the reader let it go.
        if (!this.ledger && r.partition >= offsets.length) continue;
        // Read by a reader from before the partition was read again from its new log (readAgainFrom).
        if (this.fences.size > 0 && this.fenced(batch.opening, r.topic, r.partition)) continue;
        offsets[r.partition] = r.offset + 1;
      }
      // One record's fault costs that record only, never the rest of the batch or going live.
      try {
        const rec = new DecodedRecord(r, this.options.payload);
        if (this.ledger) {
          this.ledger.read(rec);
          // Behind records waiting for room, in order; a record no member has room for waits too.
          if (this.redeal.length > 0 || this.dealToOne(rec) === "full") {
            this.ledger.dealt(rec);
            this.redeal.push(rec);
          }
        } else this.index.match(rec, this.collectInto(rec));
      } catch (e) {
        this.logger.error("a read record could not be matched; skipped", { topic: r.topic, partition: r.partition, offset: r.offset, error: String((e as Error)?.message ?? e) });
      }
    }
    // Each touched subscription's frame is encoded once the batch is matched (one frame per batch, as
    // many tokens; ended per slice instead, frames and tokens multiplied, and the garbage with them):
    // for a thousand subscriptions that alone is tens of milliseconds, so it stops at `until` too.
    const flushed = batch.at === records.length && this.flushTouched(until);
    if (this.ledger) this.scheduleStore();
    if (this.redeal.length > 0) this.retryRedeal();
    this.metrics.filterSeconds.observe((performance.now() - started) / 1000);
    return flushed;
  }

  /** Ends the batch of touched subscriptions until `until`; true when none is left (the rest go on a later turn, their events kept in order). */
  private flushTouched(until: number): boolean {
    for (const sub of this.touched) {
      this.touched.delete(sub);
      try {
        sub.endBatch();
      } catch (e) {
        this.logger.error("a subscription's batch could not be delivered", { sub: sub.id, topics: this.topics, error: String((e as Error)?.message ?? e) });
      }
      if (performance.now() > until) break;
    }
    return this.touched.size === 0;
  }

  private endTouched(): void {
    for (const sub of this.touched) {
      try {
        sub.endBatch();
      } catch (e) {
        this.logger.error("a subscription's batch could not be delivered", { sub: sub.id, topics: this.topics, error: String((e as Error)?.message ?? e) });
      }
    }
    this.touched.clear();
  }

  private collectInto(rec: DecodedRecord): (sub: Subscription) => void {
    return (sub) => {
      this.touched.add(sub);
      sub.collect(rec);
    };
  }

  /**
   * Work-queue delivery: one matching member gets the record. A key always goes to the same member
   * while membership holds and it has room, so per-key order survives the split; a member that is
   * full (SUBSCRIBER_BUFFER_BYTES queued) is passed over for the next one, rather than dropping what
   * it cannot take (the group would lose it). `fresh`: read just now, rather than dealt again (the
   * ledger has it already).
   */
  private dealToOne(rec: DecodedRecord, fresh = true): Dealt {
    const c = this.candidates;
    c.length = 0;
    this.index.match(rec, (sub) => void (sub.closed || c.push(sub)));
    if (c.length === 0) return "none";
    const first = (rec.record.key ? murmur2(rec.record.key) & 0x7fffffff : this.roundRobin++) % c.length;
    let pick: Subscription | null = null;
    for (let i = 0; i < c.length && pick === null; i++) if (c[(first + i) % c.length]!.hasRoom()) pick = c[(first + i) % c.length]!;
    if (pick === null) return "full";
    if (fresh) this.ledger?.dealt(rec);
    this.touched.add(pick);
    pick.collect(rec);
    return "member";
  }


  /**
   * Live once history is read and nothing read ahead is still waiting. What was written during the
   * replay and read ahead (up to the reader's credits) is delivered at the subscriber's pace first:
   * let through at once as live events, it went past SUBSCRIBER_BUFFER_BYTES and a subscriber that
   * was keeping up was dropped 500 events (`lagged`) at the moment it caught up.
   */
  private liveIfCaughtUp(): void {
    if (this.live || this.waiting.length > 0 || !this.caughtUp()) return;
    this.live = true;
    for (const sub of this.subs) sub.goLive();
  }

  private caughtUp(): boolean {
    for (const [topic, target] of this.options.target ?? []) {
      const at = this.positions.get(topic)!;
      for (let p = 0; p < target.length; p++) if ((at[p] ?? 0) < target[p]!) return false;
    }
    return true;
  }

  /**
   * The worker holding our reader died: read on from exactly where we were. The log calls this once
   * (when a replacement worker is ready); an open that fails anyway (no worker ready, or lost again
   * before it was ready) is retried with capped backoff, never in a loop.
   */
  private async reopen(reason: string): Promise<void> {
    this.logger.warn("feed reader lost or let go; reopening at its positions", { topics: this.topics, reason });
    for (let delayMs = 250; !this.closed; delayMs = Math.min(delayMs * 2, 10_000)) {
      // The opening open() is about to number. A later open takes over from this one (it closes this
      // one's reader): this loop then ends, or two would each close the other's reader in turn.
      const mine = this.opens + 1;
      try {
        return await this.open();
      } catch (e) {
        if (this.opens !== mine) return;
        this.logger.warn("feed reader could not reopen yet; retrying", { topics: this.topics, error: String(e), retryInMs: delayMs });
      }
      await Bun.sleep(delayMs);
      if (this.opens !== mine) return;
    }
  }
}
