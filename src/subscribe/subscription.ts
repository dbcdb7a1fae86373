import type { Metrics } from "../observability/metrics";
import { type CodecName, encodeFrame } from "../protocol/codec";
import { eventFrame, eventFrameSize } from "../protocol/event-frames";
import { CloseCodes } from "../protocol/codes";
import { FrameType, type Gap } from "../protocol/frames";
import type { DecodedRecord } from "./decoded-record";
import type { CompiledFilter } from "./filter";
import { type Positions, encodeToken, filterTag } from "./position";
import { type FrameOwner, QueuedFrame, type SubscriberSocket } from "./queued-frame";

export type SlowPolicy = "drop-oldest" | "disconnect";

/** What a subscription reads through: its feed, counting the records it has read. */
export interface RecordSource {
  readonly recordsRead: number;
  /** The id of the log every partition of `topic` is read in, when the source knows one (Feed.logIdOf). */
  logIdOf(topic: string): string | undefined;
}

/**
 * What queued event frames may hold: each subscription, each connection's together, and the whole
 * instance's. One per instance; `total` is what all subscriptions hold now. Each bound alone left the
 * sum open: 20 connections that never read, with 100 subscriptions each, held 3.4 GB.
 */
export class QueueLimits {
  total = 0;
  /** Subscriptions with anything queued: what the instance's bound is shared by (Subscription.overLimit). */
  holding = 0;
  /** Queued bytes by client address, over all its connections and SSE streams; none queued, no entry. */
  private readonly byAddress = new Map<string, number>();

  constructor(
    readonly perSubscription: number,
    readonly perConnection: number,
    /** One client address's subscriptions together: its many connections cannot take the instance's bound from the rest. */
    readonly perAddress: number,
    readonly perInstance: number,
  ) {}

  atAddress(address: string): number {
    return this.byAddress.get(address) ?? 0;
  }

  /** @internal Subscription.charge's part. */
  chargeAddress(address: string, bytes: number): void {
    const now = (this.byAddress.get(address) ?? 0) + bytes;
    if (now === 0) this.byAddress.delete(address);
    else this.byAddress.set(address, now);
  }
}

/** A share group's feed, told what became of the records it dealt to this member. */
export interface ShareDealer {
  /** Handed to the socket, or given up by the slow-consumer policy. */
  done(records: readonly DecodedRecord[]): void;
  /** Never handed: the member ended with them queued. Deal them to another member. */
  undelivered(records: readonly DecodedRecord[]): void;
}

/**
 * A share group member's records count as delivered (the group may commit them) once its client has
 * answered a ping sent behind them: it has read them, not merely been handed them. Where the
 * transport cannot tell (SSE), this long after they were handed, and only while the connection has
 * nothing waiting. Handed is not read: a member that stops reading fills the kernel's buffers, then
 * Bun's, and dies with all of them unread. Under a light load the kernel's buffers took all it was
 * dealt, nothing waited in Bun's, and the grace counted them delivered: 387 and 921 of ~13,200
 * events lost to the group (outside chaos tester). Records not counted delivered when the member
 * ends are dealt to another member.
 */
const SHARE_GRACE_MS = 2000;
// How often a member's records waiting to count as delivered are looked at (and a proof asked for).
const SHARE_PROOF_POLL_MS = 200;
// How long a member's ping may go unanswered before it is closed as not reading.
const SHARE_PROOF_TIMEOUT_MS = 30_000;

/**
 * One subscription of one connection: collects the matching events of each read batch and queues
 * them as one frame, carrying the token of the position after the batch, on the connection's one
 * ordered outbound path. It counts what it has queued there and applies its slow-consumer policy
 * past `bufferBytes`, so its memory is bounded whatever the client does.
 *
 * `positions` are the feeds' own arrays (updated in place as they read), so a token taken at any
 * moment between batches names every record read so far, matching or not.
 */
export class Subscription implements FrameOwner {
  readonly tag: string;
  live = false;
  closed = false;
  /**
   * Delivery health (the dashboard's /api/v1/admin/delivery): plain counters, bumped where the work
   * is done anyway, so watching costs nothing per event. `delivered`: events handed to the socket;
   * `matched`: events its filter took; `dropped`: events its policy discarded; `laggedNotices`:
   * `lagged` frames sent; `slowDisconnects`: 1 once the disconnect policy closed its connection;
   * `gaps`: `gap` frames sent; `redealt`: a share member's events given to another member when its
   * queue overflowed (the group loses none, so they are not drops and get no lagged notice).
   */
  delivered = 0;
  matched = 0;
  dropped = 0;
  redealt = 0;
  laggedNotices = 0;
  slowDisconnects = 0;
  /** `gap` frames sent: records gone from the log before it read them. */
  gaps = 0;
  readonly since = Date.now();
  /** The feeds it reads through and how much each had read when it joined: `examined` is the difference. */
  private readonly sources: Array<{ source: RecordSource; base: number }> = [];
  /** Records read by feeds it has since left (movedFrom). */
  private examinedBefore = 0;
  private collected: DecodedRecord[] = [];
  /** Frames of this subscription in the outbound queue, not yet handed to the socket nor dropped. */
  private readonly queued: QueuedFrame[] = [];
  private queuedBytes = 0;
  private droppedSinceNotice = 0;
  /** A share member that overflowed: dealt nothing until its queue is down to half its bound (hasRoom). */
  private refilling = false;
  /** The token of the last frame the socket was handed: what a client that got nothing more can resume from. */
  private lastHandedToken: string;
  /** The feed waiting to deliver more history once this subscription's frames are handed (holdsReplay). */
  private onRoom: (() => void) | null = null;
  /** A share group member's feed (dealtBy). */
  private dealer: ShareDealer | null = null;
  /** A member's records handed to its socket and not yet counted as delivered (SHARE_GRACE_MS). */
  private readonly unsettled: Array<{ at: number; records: readonly DecodedRecord[]; ask?: number; askedAt?: number }> = [];
  private settleTimer: Timer | null = null;

  constructor(
    readonly id: string,
    readonly topics: string[],
    readonly filter: CompiledFilter,
    readonly policy: SlowPolicy,
    readonly codec: CodecName,
    private readonly socket: SubscriberSocket,
    private readonly limits: QueueLimits,
    private readonly metrics: Metrics,
    readonly positions: Positions,
    /** originTag of the logs positions are in, as tokens are made (the log may be replaced meanwhile). */
    private readonly origin: () => string | undefined,
    /** Set for a member of a share group: positions are then the group's, and frames carry no token. */
    readonly shareGroup?: string,
    /** The client address its queued bytes and its filter's terms count under (QueueLimits.perAddress, Feed.addressTermsWith). */
    readonly address = "",
  ) {
    this.tag = filterTag(filter.identity);
    this.lastHandedToken = this.token();
  }

  get shared(): boolean {
    return this.shareGroup !== undefined;
  }

  /** Per topic, the id of the log its positions are in (undefined: not known), as the token names it. */
  private readonly logIds = (topic: string): string | undefined => {
    for (const { source } of this.sources) {
      const id = source.logIdOf(topic);
      if (id !== undefined) return id;
    }
    return undefined;
  };

  /** The resume token; "" for a share member, whose frames then carry none. */
  token(): string {
    return this.shared ? "" : encodeToken(this.tag, this.positions, this.origin(), this.logIds);
  }

  /** A reply that belongs to this subscription's request (subscribed, unsubscribed). */
  /**
   * History is paced by the client's reading, never dropped for it: while replaying, the feed gives
   * this subscription its next batch only once every frame it queued has been handed to the socket
   * (Bun keeps the socket's own buffer full meanwhile). True when the feed must wait; `resume` is
   * then called once, when it may go on. Live events are not held: there the policy applies.
   */
  holdsReplay(resume: () => void): boolean {
    if (this.live || this.closed || this.queuedBytes === 0) return false;
    this.onRoom = resume;
    return true;
  }

  /** A share group's feed deals this member its records, and is told when each is handed. */
  dealtBy(dealer: ShareDealer): void {
    this.dealer = dealer;
  }

  /** Joined a feed: records it reads from now on count as examined for this subscription. */
  readFrom(source: RecordSource): void {
    this.sources.push({ source, base: source.recordsRead });
  }

  /**
   * Moved off `from` onto a feed that has read `topic` exactly as far (SubscriptionManager.handOver):
   * its position is that feed's own array from now on, so its tokens follow what that feed reads.
   */
  movedFrom(from: RecordSource, topic: string, positions: number[]): void {
    const i = this.sources.findIndex((s) => s.source === from);
    if (i >= 0) {
      this.examinedBefore += from.recordsRead - this.sources[i]!.base;
      this.sources.splice(i, 1);
    }
    this.positions.set(topic, positions);
  }

  /** Records its feeds read since it joined them: what its filter was asked about (selectivity = matched / examined). */
  get examined(): number {
    let n = this.examinedBefore;
    for (const s of this.sources) n += s.source.recordsRead - s.base;
    return n;
  }

  /**
   * A share group member may be dealt more: open, below its own bound and its connection's and the
   * instance's, and not refilling after an overflow. Once it overflowed it takes nothing until half
   * its queue is gone: taking again at once, it was dealt back the very records it had given up, and
   * overflowed again, every turn (the reviewer: 100% CPU, and its keys never went to the others).
   */
  hasRoom(): boolean {
    const l = this.limits;
    return !this.closed && !this.refilling && this.queuedBytes < l.perSubscription && this.socket.queuedEventBytes < l.perConnection && l.atAddress(this.address) < l.perAddress && l.total < l.perInstance;
  }

  /** Event bytes queued on its connection's outbound path, not yet handed to the socket. */
  get bytesQueued(): number {
    return this.queuedBytes;
  }

  reply(frame: object): void {
    if (!this.closed) this.socket.reply(encodeFrame(frame, this.codec));
  }

  collect(rec: DecodedRecord): void {
    this.matched++;
    this.collected.push(rec);
  }

  /** Ends a read batch: its matching events become one frame, with the token of the position after it. */
  endBatch(): void {
    const events = this.collected;
    if (events.length === 0) return;
    this.collected = [];
    if (this.closed) return;
    const token = this.shared ? undefined : this.token();
    // Each record's entry is encoded once for all the subscriptions it goes to (protocol/event-frames.ts),
    // and the frame around them is built when the socket takes it (QueuedFrame).
    const entries = events.map((e) => e.entry(this.codec));
    const codec = this.codec;
    const id = this.id;
    const queued = new QueuedFrame(this, () => eventFrame(codec, id, entries, token), eventFrameSize(codec, id, entries, token), events.length, token, this.dealer ? events : undefined);
    this.queued.push(queued);
    this.charge(queued.size);
    this.socket.frame(queued);
    if (this.overLimit()) this.overflow();
  }

  /** History is delivered: `live` goes out behind the last historical frame, before any live one. */
  goLive(): void {
    if (this.live) return;
    this.live = true;
    if (this.closed) return;
    const token = this.token();
    const f = new QueuedFrame(this, encodeFrame({ t: FrameType.LIVE, sub: this.id, ...(token ? { token } : {}) }, this.codec), 0, 0, token);
    this.queued.push(f);
    this.socket.frame(f);
  }

  /**
   * Records of a partition this subscription will never get (the feed found them gone from the log):
   * a `gap` frame in order behind what was read before, with the token of the position past it.
   */
  gap(g: Gap): void {
    this.endBatch();
    if (this.closed) return;
    this.gaps++;
    const token = this.token() || undefined;
    const f = new QueuedFrame(this, encodeFrame({ t: FrameType.GAP, sub: this.id, gaps: [g], ...(token ? { token } : {}) }, this.codec), 0, 0, token);
    this.queued.push(f);
    this.socket.frame(f);
  }

  /**
   * Ends the subscription; returns the token to resume from. Frames still queued are dropped, not
   * sent, so the token is then the last one the client was handed; with nothing dropped it is the
   * position after everything read, which the client has seen all matches of.
   */
  end(): string {
    // Collected and not yet framed (a feed spreads a batch over turns, its positions past them already):
    // as good as queued, they are dropped with the rest.
    const skipped = this.queued.some((f) => f.events > 0) || this.droppedSinceNotice > 0 || this.collected.length > 0;
    const token = skipped ? this.lastHandedToken : this.token();
    this.close();
    return token;
  }

  close(): void {
    this.closed = true;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    for (const u of this.unsettled.splice(0)) this.dealer?.undelivered(u.records);
    // A share member's records dealt and not yet framed go back to the group like queued ones.
    const collected = this.collected.splice(0);
    if (collected.length > 0) this.dealer?.undelivered(collected);
    for (const f of this.queued) {
      this.socket.discard(f);
      if (f.records) this.dealer?.undelivered(f.records);
    }
    this.queued.length = 0;
    this.charge(-this.queuedBytes);
    this.droppedSinceNotice = 0;
    this.roomMaybe();
  }

  noticeBeforeNext(): Uint8Array | string | null {
    if (this.droppedSinceNotice === 0) return null;
    const notice = this.lagged();
    this.droppedSinceNotice = 0;
    return notice;
  }

  handed(f: QueuedFrame): void {
    // Frames leave the queue in order, and dropped ones were taken out of `queued` when dropped.
    if (this.queued[0] === f) this.queued.shift();
    if (f.events > 0) {
      this.charge(-f.size);
      this.delivered += f.events;
      this.metrics.eventsDelivered.inc(f.events);
      if (this.refilling && this.queuedBytes <= this.limits.perSubscription / 2) this.refilling = false;
    }
    if (f.token !== undefined) this.lastHandedToken = f.token;
    if (f.records && this.dealer) {
      this.unsettled.push({ at: Date.now(), records: f.records });
      this.settleLater();
    }
    this.roomMaybe();
  }

  private settleLater(): void {
    if (this.settleTimer || this.unsettled.length === 0) return;
    const socket = this.socket;
    const proven = socket.askRead !== undefined && socket.readAnswered !== undefined;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = null;
      if (this.closed) return;
      let n = 0;
      if (proven) {
        const answered = socket.readAnswered!();
        while (n < this.unsettled.length && this.unsettled[n]!.ask !== undefined && this.unsettled[n]!.ask! <= answered) this.dealer!.done(this.unsettled[n++]!.records);
        this.unsettled.splice(0, n);
        // A client that reads answers within a round trip of reading; one that answers nothing for
        // this long is not reading (or breaks RFC 6455), and would hold its group's commit, and its
        // records here, for as long as it lived: closed, its records go to the other members.
        const oldest = this.unsettled[0];
        if (oldest?.askedAt !== undefined && Date.now() - oldest.askedAt > SHARE_PROOF_TIMEOUT_MS) {
          socket.close(CloseCodes.SLOW_CONSUMER, `share member ${this.id} answered no ping for ${SHARE_PROOF_TIMEOUT_MS / 1000} s: it is not reading`);
          return;
        }
        // One ask covers everything handed before it.
        let ask: number | undefined;
        const now = Date.now();
        for (const u of this.unsettled) {
          if (u.ask !== undefined) continue;
          u.ask = ask ??= socket.askRead!();
          u.askedAt = now;
        }
      } else if (!socket.backlogged()) {
        const before = Date.now() - SHARE_GRACE_MS;
        while (n < this.unsettled.length && this.unsettled[n]!.at <= before) this.dealer!.done(this.unsettled[n++]!.records);
        this.unsettled.splice(0, n);
      }
      this.settleLater();
    }, proven ? SHARE_PROOF_POLL_MS : Math.max(100, this.unsettled[0]!.at + SHARE_GRACE_MS - Date.now()));
    this.settleTimer.unref();
  }

  private roomMaybe(): void {
    if (this.onRoom === null || this.queuedBytes > 0) return;
    const resume = this.onRoom;
    this.onRoom = null;
    // Called from inside the socket's flush: the feed's next batch queues frames on a later turn.
    queueMicrotask(resume);
  }

  /** Queued bytes change here only: this subscription's, its connection's, its address's and the instance's together. */
  private charge(bytes: number): void {
    const held = this.queuedBytes > 0;
    this.queuedBytes += bytes;
    if (held !== this.queuedBytes > 0) this.limits.holding += held ? -1 : 1;
    this.socket.queuedEventBytes += bytes;
    this.limits.chargeAddress(this.address, bytes);
    this.limits.total += bytes;
  }

  /**
   * Past its own bound; or past its connection's, its address's or the instance's while it is itself
   * behind (more than one event frame waiting), so that a client that reads is not made to pay for
   * those that do not.
   */
  private overLimit(): boolean {
    const l = this.limits;
    if (this.queuedBytes > l.perSubscription) return true;
    const overConnection = this.socket.queuedEventBytes > l.perConnection;
    const overAddress = l.atAddress(this.address) > l.perAddress;
    if (!overConnection && !overAddress && l.total <= l.perInstance) return false;
    // Past the instance's bound alone, the subscriptions holding more than their share give way: a
    // reader's second frame queued in passing is no part of it. Before, subscriptions that never
    // read kept the bound passed, and every reader that queued a second frame paid: 770-1,350 events
    // each lost in 25 s, or closed 4001 again and again (outside chaos tester).
    if (!overConnection && !overAddress && this.queuedBytes * Math.max(1, l.holding) < l.total) return false;
    if (this.mayDropNewest()) return true;
    let frames = 0;
    for (const f of this.queued) if (f.events > 0 && ++frames > 1) return true;
    return false;
  }

  /**
   * Past its connection's bound, or the instance's while its connection holds a quarter of its own:
   * its client is not reading, so even its newest frame may go. One kept per subscription whatever
   * the bounds let 100 subscriptions of one connection hold 100 frames of up to 1 MiB each, against
   * the 16 MiB bound (outside tester).
   */
  private mayDropNewest(): boolean {
    const l = this.limits;
    const connection = this.socket.queuedEventBytes;
    return connection > l.perConnection || ((l.total > l.perInstance || l.atAddress(this.address) > l.perAddress) && connection > l.perConnection / 4);
  }

  /**
   * Whether, with `frames` event frames waiting, the subscription is behind its client, for either
   * policy: more than one waiting, or its connection not reading at all (mayDropNewest). One frame is
   * not, however large: a read batch is one frame, and 500 records of 2 KB are past
   * SUBSCRIBER_BUFFER_BYTES alone. Taken for behind, the disconnect policy closed a replay before its
   * first event, and again from the notice's token, every time (outside probe).
   */
  private behind(frames: number): boolean {
    return frames > 1 || (frames === 1 && this.mayDropNewest());
  }

  private overflow(): void {
    let droppable = 0;
    for (const f of this.queued) if (f.events > 0) droppable++;
    if (this.policy === "disconnect") {
      if (!this.behind(droppable)) return;
      // A share group member being disconnected: its records go to another member, not to waste.
      for (const f of this.queued) if (f.events > 0) this.drop(f, true);
      this.queued.length = 0;
      this.charge(-this.queuedBytes);
      const notice = this.lagged();
      this.slowDisconnects++;
      this.close();
      // Whatever was queued before the notice goes first, so the client's view stays a prefix.
      this.socket.reply(notice);
      this.socket.flushAll();
      this.socket.close(CloseCodes.SLOW_CONSUMER, `subscription ${this.id} fell behind`);
      return;
    }
    // drop-oldest: keep the newest event frame at least, so a live subscriber stays live, unless its
    // connection is not reading at all (mayDropNewest).
    for (let i = 0; i < this.queued.length && this.overLimit() && this.behind(droppable); ) {
      const f = this.queued[i]!;
      if (f.events === 0) {
        i++;
        continue;
      }
      this.queued.splice(i, 1);
      this.charge(-f.size);
      droppable--;
      // A share group member's records go to another member: the group must not lose them.
      if (this.dealer) this.refilling = true;
      this.drop(f, this.dealer !== null);
    }
  }

  private drop(f: QueuedFrame, redeal = false): void {
    this.socket.discard(f);
    if (redeal && f.records) {
      this.dealer?.undelivered(f.records);
      this.redealt += f.events;
      this.metrics.eventsRedealt.inc(f.events);
      return;
    }
    if (f.records) this.dealer?.done(f.records);
    this.droppedSinceNotice += f.events;
    this.dropped += f.events;
    this.metrics.eventsDroppedLag.inc(f.events);
  }

  /** The gap, and the token of the last frame before it: re-subscribing with it fills the gap. */
  private lagged(): Uint8Array | string {
    this.laggedNotices++;
    const token = this.lastHandedToken;
    return encodeFrame({ t: FrameType.LAGGED, sub: this.id, dropped: this.droppedSinceNotice, ...(token ? { token } : {}), policy: this.policy }, this.codec);
  }
}
