import type { Config } from "../config/schema";
import { KeyCounts } from "../limits/key-counts";
import type { EventLog, Watermark } from "../log/event-log";
import type { Logger } from "../observability/logger";
import type { Metrics } from "../observability/metrics";
import { type CodecName, encodeFrame } from "../protocol/codec";
import { GatewayError, shuttingDown, toWireError } from "../protocol/errors";
import { FrameType, type Gap, type Start, type SubscribeFrame } from "../protocol/frames";
import { type DeliveryRow, RecentlyEnded, lagOf, rowOf } from "./delivery-report";
import { AddressFeeds } from "./address-feeds";
import { ReplayPaces } from "./replay-paces";
import { TurnBudget } from "../limits/turn-budget";
import { type PayloadLimits, payloadLimits } from "./decoded-record";
import { Feed } from "./feed";
import { type CompiledFilter, compileFilter } from "./filter";
import { type Positions, decodeToken, filterTag, idTag, originTag } from "./position";
import type { SubscriberSocket } from "./queued-frame";
import { QueueLimits, type SlowPolicy, Subscription } from "./subscription";
import { topicAllowPattern } from "../config/topic-allow";

/**
 * Delivery work (matching, encoding, queueing frames) done in one event-loop turn by all feeds
 * together, before the rest of the gateway (publishes, acks, /health) has its turn.
 */
const DELIVERY_TURN_MS = 5;
/** The retry hint of a request refused for the queue of requests waiting behind others (see `queued`). */
const QUEUED_RETRY_MS = 100;

/** Who holds a subscription, as the delivery-health view shows it. */
export interface SubscriberInfo {
  /** The WebSocket session id, or the SSE stream's. */
  connection: string;
  /** The client's address. */
  peer: string;
  transport: "ws" | "sse";
  /** The token's subject ("anonymous" without one); read when asked, as a refresh may change it. */
  principal(): string;
}

/** The per-connection part of subscribing: the socket and its subscriptions by id. */
export interface SubscriberConnection extends SubscriberSocket {
  subscriptions: Map<string, Subscription>;
  info?: SubscriberInfo;
  /**
   * Whether the connection may still read `topics`, asked as a subscription registers: its grants
   * may have narrowed (a refresh) while the subscribe waited on the log. A refusal, or undefined.
   */
  mayRead?(topics: readonly string[]): GatewayError | undefined;
  /**
   * The gateway ended one of its subscriptions (its `unsubscribed` notice is sent): a transport that
   * exists for its subscriptions (a server-sent-events stream) ends once none is left.
   */
  ended?(): void;
}

/**
 * Whether a subscribe reads history: a start in the past (earliest, a time, a token) outside a share
 * group, which opens a reader of its own rather than joining a topic's live feed.
 */
export function readsHistory(f: Pick<SubscribeFrame, "share" | "start">): boolean {
  return !f.share && (f.start ?? "latest") !== "latest";
}

export interface SubscriptionStats {
  subscriptions: number;
  liveFeeds: number;
  replayFeeds: number;
  sharedFeeds: number;
}

// The last instant a Date holds (+275760-09-13).
const MAX_TIME_MS = 8.64e15;
// Topics whose watermarks one delivery-health request asks for: a bound on the queries it costs.
const MAX_LAG_TOPICS = 100;

/**
 * Resolves once the promise reactions pending now have all run, and with them the replies their
 * callers send: the caller of subscribe() sends a refusal in a chain of reactions, with no await on
 * anything else (ws/connection.ts answerLater). A refusal that came to wait on I/O (an async audit, a
 * delay) would need the queue to wait on its sending instead.
 */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Subscriptions of every connection. A subscription from `latest` joins its topic's shared live feed
 * (one reader per topic for the whole gateway). One that starts in the past gets its own feed,
 * replaying at REPLAY_RATE_LIMIT until it has caught up: the one reader reads history and live alike,
 * so there is no seam to lose or repeat events at. Once caught up, it is moved onto its topic's live
 * feed at a moment when both have handed over exactly the same offsets and hold nothing more
 * (handOver), its own reader closed: there is still no seam, and a crowd resuming after a restart
 * does not keep a Kafka reader each for good.
 */
export class SubscriptionManager {
  private readonly liveFeeds = new Map<string, Promise<Feed>>();
  /** originTag of log.origin, kept per origin: every token a frame carries names it. */
  private origin: { of: string | null; tag: string | undefined } = { of: null, tag: undefined };
  private readonly originTag = (): string | undefined => {
    const now = this.log.origin;
    if (now !== this.origin.of) this.origin = { of: now, tag: now === null ? undefined : originTag(now) };
    return this.origin.tag;
  };
  /** Live feeds with no subscriber left, and the timer that will close them. */
  private readonly idleFeeds = new Map<string, Timer>();
  /** Partitions each live feed has lag series for, so closing it removes exactly those. */
  private readonly lagSeries = new Map<string, number>();
  private subscriptionCount = 0;
  /** Every subscription on this instance and its connection: what the delivery-health view lists. */
  private readonly holders = new Map<Subscription, SubscriberConnection>();
  private readonly recentlyEnded = new RecentlyEnded();
  /** Each replaying subscription's own feed, and the client address whose pace it shares. */
  private readonly replayFeeds = new Map<Subscription, ReplayFeed>();
  private readonly handOverTimer: Timer;
  /** REPLAY_RATE_LIMIT_PER_ADDRESS: the schedule each client address's replays share. */
  private readonly replayPaces: ReplayPaces;
  private readonly sharedFeeds = new Map<string, Promise<Feed>>();
  /** Share group names joined since the start (each a consumer group Kafka keeps): MAX_SHARE_GROUPS. */
  private readonly shareGroupsJoined = new Set<string>();
  /** New share group names each client address introduced (MAX_SHARE_GROUPS_PER_ADDRESS); at most MAX_SHARE_GROUPS in all. */
  private readonly shareGroupsIntroduced = new KeyCounts<string>();
  /** The same by principal, with authentication on: "anonymous" is every client, and is not counted here. */
  private readonly shareGroupsByPrincipal = new KeyCounts<string>();
  /** What every subscription's queued frames may hold, alone, per connection and together. */
  private readonly queueLimits: QueueLimits;
  private readonly topicAllow: RegExp;
  private readonly lagTimer: Timer;
  private readonly partitionTimer: Timer;
  /** Topics read by feeds that the log said it lacks, with how many checks running it has (checkPartitions). */
  private readonly missingTopics = new Map<string, number>();
  private checkingPartitions = false;
  /** Subscribes of each connection still starting, by id, settled (either way) once started. */
  private readonly starting = new WeakMap<SubscriberConnection, Map<string, Promise<void>>>();
  /** Connections gone: a subscribe that finishes starting after its socket closed leaves nothing. */
  private readonly closed = new WeakSet<SubscriberConnection>();
  /** drain() was called: the gateway is shutting down. */
  private draining = false;
  /**
   * Per connection, per subscription id: the last subscribe or unsubscribe waiting its turn (an
   * unsubscribe waits for its subscribe to start). Later requests for that id queue behind it, so
   * each is answered as if those before it had completed: unsubscribe then subscribe one id (a
   * client changing its filter) was refused SUBSCRIPTION_EXISTS while the first still started.
   */
  private readonly waiting = new WeakMap<SubscriberConnection, Map<string, Promise<unknown>>>();
  /**
   * Requests of each connection queued in `waiting`, at most MAX_SUBSCRIPTIONS_PER_CONNECTION: a
   * client pipelining unsubscribes behind a replay still starting held one closure per frame.
   */
  private readonly queued = new WeakMap<SubscriberConnection, number>();
  /** Replays counted against MAX_REPLAY_SUBSCRIPTIONS and MAX_FEEDS before their reader exists. */
  private replaysStarting = 0;
  /** MAX_FEEDS_PER_ADDRESS: the feeds each client address's subscriptions hold. */
  private readonly addressFeeds: AddressFeeds;
  /** What delivering read records may take of one event-loop turn, over all feeds. */
  private readonly turns: TurnBudget;
  /** A record's payload is decoded for subscribers within what a client's event may hold. */
  private readonly payload: PayloadLimits;
  /** What each subscription (starting or started) is charged in addressFeeds, by connection and id. */
  private readonly feedCharges = new WeakMap<SubscriberConnection, Map<string, { address: string; feeds: string[]; chars: number }>>();
  private replayCharges = 0;
  /** Replays still starting, per client address (MAX_REPLAYS_PER_ADDRESS). */
  private readonly addressReplaysStarting = new KeyCounts<string>();

  constructor(
    private readonly log: EventLog,
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    /**
     * Told of the time delivering takes. Delivering an event costs the gateway as taking it did, and
     * more when its subscribers' codec is not its publisher's (60 ms for 60,000 uint64 values
     * written out as JSON): unmetered, four publishers each within their handling budget put other
     * clients' p99 near a second (outside tester). Charged to the total the busy clients share
     * (RATE_LIMIT_HANDLING_TOTAL_MS), the publishers making the work slow down with it.
     */
    deliveryWork: (ms: number) => void = () => {},
  ) {
    this.turns = new TurnBudget(DELIVERY_TURN_MS, deliveryWork);
    this.topicAllow = topicAllowPattern(config.TOPIC_ALLOW, config.TOPIC_DENY);
    this.queueLimits = new QueueLimits(config.SUBSCRIBER_BUFFER_BYTES, config.SUBSCRIBER_CONNECTION_BUFFER_BYTES, config.SUBSCRIBER_ADDRESS_BUFFER_BYTES, config.SUBSCRIBER_TOTAL_BUFFER_BYTES);
    this.addressFeeds = new AddressFeeds(config.MAX_FEEDS_PER_ADDRESS, config.MAX_SUBSCRIPTIONS_PER_ADDRESS, config.MAX_FILTER_CHARS_PER_ADDRESS, config.MAX_FILTER_CHARS);
    this.replayPaces = new ReplayPaces(config.REPLAY_RATE_LIMIT_PER_ADDRESS);
    this.payload = payloadLimits(config.MAX_EVENT_VALUES);
    this.lagTimer = setInterval(() => void this.sampleLag(), 5000);
    this.lagTimer.unref();
    this.partitionTimer = setInterval(() => void this.checkPartitions(), config.PARTITION_CHECK_MS);
    this.handOverTimer = setInterval(() => this.handOverCaughtUp(), HAND_OVER_CHECK_MS);
    this.handOverTimer.unref();
    this.partitionTimer.unref();
  }

  /**
   * Asks the partition counts of every topic a feed reads by hand, and hands them to the feeds, which
   * read partitions added meanwhile; a topic the log has lacked at two checks running was deleted
   * (Feed.topicDeleted).
   */
  private async checkPartitions(): Promise<void> {
    if (this.checkingPartitions) return;
    this.checkingPartitions = true;
    try {
      // Feeds still opening are left for the next round: one that never opens must not stop the rest.
      const opening = Bun.sleep(1000).then(() => null);
      const live = await Promise.all([...this.liveFeeds.values()].map((p) => Promise.race([p.catch(() => null), opening])));
      const feeds: Feed[] = [...[...this.replayFeeds.values()].map((r) => r.feed), ...live.filter((f): f is Feed => f !== null)];
      const topics = new Set(feeds.flatMap((f) => f.topics));
      const counts = new Map<string, number>();
      const deleted: string[] = [];
      await Promise.all(
        [...topics].map(async (t) => {
          try {
            counts.set(t, await this.log.partitionCount(t));
            this.missingTopics.delete(t);
          } catch (e) {
            if (!(e instanceof GatewayError && e.code === "UNKNOWN_TOPIC")) return;
            // Twice running, so that one answer from a broker that has not heard of the topic yet is not taken for a deletion.
            const misses = (this.missingTopics.get(t) ?? 0) + 1;
            this.missingTopics.set(t, misses);
            if (misses >= 2) deleted.push(t);
          }
        }),
      );
      for (const t of this.missingTopics.keys()) if (!topics.has(t)) this.missingTopics.delete(t);
      // Asked after the counts: partitions a count shows are of the log this id names, or of a later one.
      const clears = new Map(feeds.map((f) => [f, f.idClears]));
      const ids = await this.idsOf([...counts.keys()]);
      // A replay's target is an end its log once had: a log now ending before it was reset (watermarksNow).
      const replays = [...this.replayFeeds.values()].map((r) => r.feed);
      const replayTopics = [...new Set(replays.flatMap((f) => f.topics))].filter((t) => counts.has(t));
      // A topic made again (another id) is read again from its new logs' start: their watermarks.
      const madeAgain = [...ids].filter(([t, id]) => id !== null && feeds.some((f) => f.readsOtherLog(t, id))).map(([t]) => t);
      const marks = new Map(await Promise.all([...new Set([...replayTopics, ...madeAgain])].map(async (t) => [t, await this.log.watermarks(t).catch(() => null)] as const)));
      for (const feed of feeds) {
        // The id first: partitions the counts add are of the log it names.
        for (const t of feed.topics) {
          const id = ids.get(t);
          if (id) feed.topicIdNow(t, id, marks.get(t) ?? null, clears.get(feed)!);
        }
        feed.partitionsNow(counts);
        for (const t of deleted) if (feed.topics.includes(t)) feed.topicDeleted(t);
      }
      for (const feed of replays) for (const t of feed.topics) {
        const m = marks.get(t);
        if (m) feed.watermarksNow(t, m);
      }
    } catch (e) {
      this.logger.warn("the partition counts of the topics read could not be asked; asking again later", { error: String(e) });
    } finally {
      this.checkingPartitions = false;
    }
  }

  /**
   * The gateway drains: every subscribe from now on is refused SHUTTING_DOWN, and one still starting
   * that fails for the log closing under it is too (not UNAVAILABLE, "the log is not connected": the
   * client is to reconnect, to another instance if there is one, not to wait for this one's log).
   */
  drain(): void {
    this.draining = true;
  }

  /** Stops every feed (at shutdown); subscriptions end with their sockets. */
  close(): void {
    clearInterval(this.lagTimer);
    clearInterval(this.partitionTimer);
    clearInterval(this.handOverTimer);
    for (const timer of this.idleFeeds.values()) clearTimeout(timer);
    this.idleFeeds.clear();
    for (const feeds of [this.liveFeeds, this.sharedFeeds]) {
      for (const pending of feeds.values()) void pending.then((f) => f.close(), () => {});
      feeds.clear();
    }
    for (const { feed } of this.replayFeeds.values()) feed.close();
    this.replayFeeds.clear();
  }

  stats(): SubscriptionStats {
    return { subscriptions: this.subscriptionCount, liveFeeds: this.liveFeeds.size, replayFeeds: this.replayFeeds.size, sharedFeeds: this.sharedFeeds.size };
  }

  /**
   * The delivery-health view: the `limit` worst subscriptions (most queued, then most dropped) with
   * their lag against the partitions' high watermarks, asked once per topic shown, and those that
   * recently ended after losing events. Counting and sorting read plain fields; rows are built only
   * for what is shown.
   */
  async delivery(limit: number): Promise<{ total: number; rows: DeliveryRow[]; ended: DeliveryRow[] }> {
    const worst = [...this.holders].sort(([a], [b]) => b.bytesQueued - a.bytesQueued || b.dropped - a.dropped || b.laggedNotices - a.laggedNotices || a.since - b.since).slice(0, limit);
    const topics = [...new Set(worst.flatMap(([sub]) => (sub.shared ? [] : sub.topics)))].slice(0, MAX_LAG_TOPICS);
    const marks = new Map<string, Watermark[]>();
    if (this.log.isReady()) {
      await Promise.all(topics.map((t) => this.log.watermarks(t).then((m) => void marks.set(t, m), () => {})));
    }
    const rows = worst.map(([sub, conn]) => ({ ...rowOf(sub, conn), lag: lagOf(sub, marks) }));
    return { total: this.holders.size, rows, ended: this.recentlyEnded.list() };
  }

  private get feedCount(): number {
    return this.liveFeeds.size + this.replayFeeds.size + this.replaysStarting + this.sharedFeeds.size;
  }

  /** Consumer lag of each shared live feed: records between where it has read and the partition's end. */
  private async sampleLag(): Promise<void> {
    if (!this.log.isReady()) return;
    for (const [topic, pending] of this.liveFeeds) {
      try {
        const feed = await pending;
        const marks = await this.log.watermarks(topic);
        if (this.liveFeeds.get(topic) !== pending) continue; // closed while we asked
        feed.watermarksNow(topic, marks);
        const at = feed.positions.get(topic)!;
        marks.forEach((m, p) => this.metrics.feedLag.set({ topic, partition: String(p) }, Math.max(0, m.high - (at[p] ?? m.high))));
        // Partitions the topic no longer has (made again with fewer): their series go.
        for (let p = marks.length; p < (this.lagSeries.get(topic) ?? 0); p++) this.metrics.feedLag.remove({ topic, partition: String(p) });
        this.lagSeries.set(topic, marks.length);
      } catch {
        // a lag sample is best effort; the next one comes in five seconds
      }
    }
  }

  /**
   * Checks every limit at once, counting the subscribes still starting, then starts the subscription.
   * A subscribe waits on the log (watermarks, a time index, a reader opening) and its client need not
   * wait for the reply: an unsubscribe sent meanwhile runs once it has started, and a socket closed
   * meanwhile leaves nothing behind.
   */
  subscribe(conn: SubscriberConnection, codec: CodecName, f: SubscribeFrame, itsTurn = false): Promise<void> {
    // Behind a request for the same id still waiting, or a subscribe of it still starting (refused
    // SUBSCRIPTION_EXISTS after that one's `subscribed`, not before).
    const ahead = itsTurn || f.sub === undefined ? undefined : (this.waiting.get(conn)?.get(f.sub) ?? this.starting.get(conn)?.get(f.sub));
    if (ahead) return this.after(conn, f.sub!, ahead, () => this.subscribe(conn, codec, f, true));
    if (itsTurn && this.closed.has(conn)) return Promise.resolve();
    if (this.draining) throw shuttingDown();
    const topics = [...new Set(f.topics ?? [f.topic!])];
    for (const t of topics) if (!this.topicAllow.test(t)) throw new GatewayError("INVALID_TOPIC", `subscribing to topic "${t}" is not allowed here`);
    const filter = compileFilter(f.filter ?? {});
    const id = f.sub ?? crypto.randomUUID();
    let starting = this.starting.get(conn);
    if (!starting) this.starting.set(conn, (starting = new Map()));
    if (conn.subscriptions.has(id) || starting.has(id)) throw new GatewayError("SUBSCRIPTION_EXISTS", `this connection already has a subscription "${id}"`);
    // A subscription registers (and is answered) before its start settles: until then it is in both.
    let startingOnly = 0;
    for (const sid of starting.keys()) if (!conn.subscriptions.has(sid)) startingOnly++;
    if (conn.subscriptions.size + startingOnly >= this.config.MAX_SUBSCRIPTIONS_PER_CONNECTION) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `at most ${this.config.MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection`);
    }
    if (!this.log.isReady()) throw new GatewayError("UNAVAILABLE", "the log is not connected");
    const start: Start = f.start ?? "latest";
    const replay = readsHistory(f);
    const newFeeds = f.share ? (this.sharedFeeds.has(shareKey(f.share, topics)) ? 0 : 1) : replay ? 1 : topics.filter((t) => !this.liveFeeds.has(t)).length;
    // Live feeds nobody reads any more wait FEED_IDLE_CLOSE_MS for a resubscribe; a subscribe that
    // needs their room takes it, or one address subscribing and leaving in a loop holds every feed.
    if (newFeeds > 0) this.closeIdleFeeds(this.feedCount + newFeeds - this.config.MAX_FEEDS, topics);
    if (newFeeds > 0 && this.feedCount + newFeeds > this.config.MAX_FEEDS) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `this instance reads ${this.feedCount} feeds, its maximum is ${this.config.MAX_FEEDS}; retry later or subscribe to topics already read`);
    }
    const address = conn.info?.peer ?? "";
    if (replay) {
      const replaying = this.replaying();
      if (replaying >= this.config.MAX_REPLAY_SUBSCRIPTIONS) throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `${replaying} subscriptions are replaying history already; retry later or start from latest`);
      const mine = this.replaying(address);
      if (mine >= this.config.MAX_REPLAYS_PER_ADDRESS) throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `${mine} subscriptions from this client address are replaying history already, at most ${this.config.MAX_REPLAYS_PER_ADDRESS}; retry later or start from latest`);
    }
    // Each new share name is a consumer group in the cluster, committed at once (startGroupAtEnd) and
    // kept by Kafka for offsets.retention.minutes: one client churning names made 22 a second. The
    // embedded log keeps a group's commits in memory until the process ends: bounded alike.
    const newGroup = f.share !== undefined && !this.shareGroupsJoined.has(f.share);
    if (newGroup && this.shareGroupsJoined.size >= this.config.MAX_SHARE_GROUPS) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `this instance has joined ${this.shareGroupsJoined.size} share groups since it started, its maximum (MAX_SHARE_GROUPS); each is a consumer group the cluster keeps. Join one of those`);
    }
    // Without a bound per address, one client churning names used the instance's up: a new name was
    // then refused to everyone until a restart (hostile tester, 1,000 names in 46 s).
    const introduced = this.shareGroupsIntroduced.get(address);
    if (newGroup && introduced >= this.config.MAX_SHARE_GROUPS_PER_ADDRESS) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `this client address has introduced ${introduced} new share group names, its maximum (MAX_SHARE_GROUPS_PER_ADDRESS); join one of those or a name already in use`);
    }
    // And per principal: twenty addresses (cheap over IPv6) of one principal used the instance's names
    // up until a restart (outside security tester). A token is issued; an address is not.
    const principal = conn.info?.principal() ?? "anonymous";
    const byPrincipal = principal === "anonymous" ? 0 : this.shareGroupsByPrincipal.get(principal);
    if (newGroup && byPrincipal >= this.config.MAX_SHARE_GROUPS_PER_ADDRESS) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `this principal has introduced ${byPrincipal} new share group names, its maximum (MAX_SHARE_GROUPS_PER_ADDRESS, per principal too); join one of those or a name already in use`);
    }
    // Last of the checks: it is the one that charges.
    const charge = { address, feeds: f.share ? [`share:${shareKey(f.share, topics)}`] : replay ? [`replay:${++this.replayCharges}`] : topics.map((t) => `topic:${t}`), chars: filter.footprint * topics.length };
    this.addressFeeds.take(charge.address, charge.feeds, charge.chars);
    this.metrics.filterChars.set(this.addressFeeds.filterCharsHeld);
    if (newGroup) {
      this.shareGroupsJoined.add(f.share!);
      this.shareGroupsIntroduced.add(address);
      if (principal !== "anonymous") this.shareGroupsByPrincipal.add(principal);
    }
    let charges = this.feedCharges.get(conn);
    if (!charges) this.feedCharges.set(conn, (charges = new Map()));
    charges.set(id, charge);
    // A replay counts as starting until its feed is made, then as that feed: never as both, or the
    // replays answered but not yet reading took two slots each.
    let countedStarting = replay;
    const startingCounted = () => {
      if (!countedStarting) return;
      countedStarting = false;
      this.replaysStarting--;
      this.addressReplaysStarting.remove(address);
    };
    if (replay) {
      this.replaysStarting++;
      this.addressReplaysStarting.add(address);
    }
    const done = this.start(conn, codec, f, id, topics, filter, start, startingCounted);
    const startingNow = starting;
    startingNow.set(
      id,
      done.then(
        () => {},
        () => {},
      ),
    );
    // A refused subscribe (an unknown topic, say) made no group: its new name costs nothing.
    if (newGroup) done.catch(() => this.sharedFeeds.has(shareKey(f.share!, topics)) || this.forgetShareGroup(f.share!, address, principal));
    return done.finally(() => {
      startingNow.delete(id);
      startingCounted();
      // Refused, or its socket closed while it started: it holds no feed.
      if (!conn.subscriptions.has(id)) this.releaseFeeds(conn, id);
    }).catch((e: unknown) => {
      throw this.draining && e instanceof GatewayError && e.code === "UNAVAILABLE" ? shuttingDown() : e;
    });
  }

  /** Runs `request` for subscription `id` once `ahead` has settled, and makes it what later requests for `id` wait on. */
  private after<T>(conn: SubscriberConnection, id: string, ahead: Promise<unknown>, request: () => T | Promise<T>): Promise<T> {
    const queued = this.queued.get(conn) ?? 0;
    if (queued >= this.config.MAX_SUBSCRIPTIONS_PER_CONNECTION) {
      throw new GatewayError("RATE_LIMITED", `${queued} subscribes and unsubscribes already wait for the ones before them on this connection; retry once those are answered`, { retryAfterMs: QUEUED_RETRY_MS, scope: "connection" });
    }
    this.queued.set(conn, queued + 1);
    let queue = this.waiting.get(conn);
    if (!queue) this.waiting.set(conn, (queue = new Map()));
    // Its turn comes a macrotask after the one ahead settles: a refusal of that one is sent by its
    // caller a few promise reactions later, and this one's reply (an unsubscribe's
    // UNKNOWN_SUBSCRIPTION, at once) came before it (outside probe X).
    const turn = ahead.then(nextTurn, nextTurn);
    const done = turn.then(request);
    const settled = done.then(
      () => {},
      () => {},
    );
    queue.set(id, settled);
    void settled.then(() => {
      this.queued.set(conn, (this.queued.get(conn) ?? 1) - 1);
      if (queue.get(id) === settled) queue.delete(id);
    });
    return done;
  }

  /** A share group name counted as new (MAX_SHARE_GROUPS, MAX_SHARE_GROUPS_PER_ADDRESS) whose subscribe was refused. */
  private forgetShareGroup(name: string, address: string, principal: string): void {
    if (!this.shareGroupsJoined.delete(name)) return;
    this.shareGroupsIntroduced.remove(address);
    if (principal !== "anonymous") this.shareGroupsByPrincipal.remove(principal);
  }

  /**
   * Subscriptions still reading history (those starting included). One that has caught up keeps its
   * own reader, counted by MAX_FEEDS, but no longer replays: were it counted here, every client
   * resuming from a token after a failover past the first MAX_REPLAY_SUBSCRIPTIONS would be refused
   * for as long as those stay subscribed.
   */
  private replaying(address?: string): number {
    if (address === undefined) {
      let n = this.replaysStarting;
      for (const { feed } of this.replayFeeds.values()) if (!feed.isLive) n++;
      return n;
    }
    let n = this.addressReplaysStarting.get(address);
    for (const r of this.replayFeeds.values()) if (!r.feed.isLive && r.address === address) n++;
    return n;
  }

  /** Closes up to `n` live feeds that wait idle for a resubscribe, oldest first (none of `keep`). */
  private closeIdleFeeds(n: number, keep: string[]): void {
    for (const [topic, timer] of this.idleFeeds) {
      if (n <= 0) return;
      if (keep.includes(topic)) continue;
      const pending = this.liveFeeds.get(topic);
      clearTimeout(timer);
      this.idleFeeds.delete(topic);
      if (!pending) continue;
      this.liveFeeds.delete(topic);
      n--;
      void pending.then((feed) => (feed.subs.size === 0 ? this.retire(topic, feed) : undefined));
    }
  }

  /** The part of subscribe that waits on the log; live and shared feeds are asked for before its first await. */
  private async start(conn: SubscriberConnection, codec: CodecName, f: SubscribeFrame, id: string, topics: string[], filter: CompiledFilter, start: Start, feedMade: () => void): Promise<void> {
    const policy: SlowPolicy = f.policy ?? "drop-oldest";
    const make = (positions: Positions, shareGroup?: string) =>
      new Subscription(id, topics, filter, policy, codec, conn, this.queueLimits, this.metrics, positions, this.originTag, shareGroup, conn.info?.peer);

    if (f.share) {
      const key = shareKey(f.share, topics);
      let feed = await this.sharedFeed(f.share, topics);
      // A feed closed while we waited for it (Kafka's ACLs refused it): take the one opened in its place.
      while (feed.isClosed) feed = await this.sharedFeed(f.share, topics);
      if (this.closed.has(conn)) return this.leaveShared(key, feed);
      const denied = conn.mayRead?.(topics) ?? this.overFilterTerms(feed, filter, topics, conn.info?.peer ?? "");
      if (denied) {
        this.leaveShared(key, feed);
        throw denied;
      }
      const sub = make(new Map(), f.share);
      this.register(conn, sub, f.cid, { live: true });
      feed.add(sub);
      return;
    }

    if (start === "latest") {
      let pending = topics.map((t) => this.liveFeed(t));
      let feeds = await this.liveFeedsOf(topics, pending);
      // A feed closed for idleness while we waited for it: take the one opened in its place.
      while (feeds.some((feed) => feed.isClosed)) feeds = await this.liveFeedsOf(topics, (pending = topics.map((t) => this.liveFeed(t))));
      const denied = this.closed.has(conn) ? undefined : (conn.mayRead?.(topics) ?? feeds.map((feed, i) => this.overFilterTerms(feed, filter, [topics[i]!], conn.info?.peer ?? "")).find((e) => e !== undefined));
      if (this.closed.has(conn) || denied) {
        topics.forEach((t, i) => this.leaveLive(t, pending[i]!, feeds[i]!));
        if (denied) throw denied;
        return;
      }
      // The feeds' own arrays: the subscription's token follows everything its feeds have read.
      const positions: Positions = new Map(feeds.map((feed, i) => [topics[i]!, feed.positions.get(topics[i]!)!]));
      const sub = make(positions);
      this.register(conn, sub, f.cid, { live: true });
      for (const feed of feeds) feed.add(sub);
      return;
    }

    // The ids before the positions: a topic made again between the two is read again, never skipped.
    const ids = await this.idsOf(topics);
    const { positions, target, gaps } = await this.resolveStart(topics, start, filterTag(filter.identity), ids);
    if (this.closed.has(conn)) return;
    const denied = conn.mayRead?.(topics);
    if (denied) throw denied;
    const sub = make(positions);
    const address = conn.info?.peer ?? "";
    const addressPace = this.replayPaces.take(address);
    const feed = new Feed(this.log, topics, positions, { turns: this.turns, payload: this.payload, replayRate: this.config.REPLAY_RATE_LIMIT, addressPace, target, onDenied: this.denied, ids }, this.metrics, this.logger);
    this.replayFeeds.set(sub, { feed, address });
    feedMade();
    this.register(conn, sub, f.cid, { live: feed.isLive, gaps });
    feed.add(sub);
    await feed.start();
  }

  /** TOO_MANY_SUBSCRIPTIONS if `filter` would take `feed`'s distinct filters past MAX_FILTER_TERMS_PER_TOPIC, or its address's past MAX_FILTER_TERMS_PER_ADDRESS. */
  private overFilterTerms(feed: Feed, filter: CompiledFilter, topics: readonly string[], address: string): GatewayError | undefined {
    const own = feed.addressTermsWith(address, filter);
    if (own > this.config.MAX_FILTER_TERMS_PER_ADDRESS) {
      return new GatewayError("TOO_MANY_SUBSCRIPTIONS", `the subscriptions of this client address to ${topics.map((t) => `"${t}"`).join(", ")} hold ${own - filter.terms} terms of filters, and this one's ${filter.terms} would pass MAX_FILTER_TERMS_PER_ADDRESS (${this.config.MAX_FILTER_TERMS_PER_ADDRESS}). Use a filter you already use, or a smaller one`);
    }
    const terms = feed.filterTermsWith(filter);
    if (terms <= this.config.MAX_FILTER_TERMS_PER_TOPIC) return undefined;
    return new GatewayError("TOO_MANY_SUBSCRIPTIONS", `the subscribers of ${topics.map((t) => `"${t}"`).join(", ")} on this instance hold ${terms - filter.terms} terms of filters, and this one's ${filter.terms} would pass MAX_FILTER_TERMS_PER_TOPIC (${this.config.MAX_FILTER_TERMS_PER_TOPIC}): each event is matched against all of them. Use a filter others use, or a smaller one`);
  }

  /** Ends a subscription; one still starting is ended once started (the promise), or refused if it fails to. */
  unsubscribe(conn: SubscriberConnection, codec: CodecName, cid: number, id: string, itsTurn = false): Promise<unknown> | undefined {
    const ahead = itsTurn ? undefined : this.waiting.get(conn)?.get(id);
    if (ahead) return this.after(conn, id, ahead, () => this.unsubscribe(conn, codec, cid, id, true));
    const sub = conn.subscriptions.get(id);
    if (!sub) {
      const starting = this.starting.get(conn)?.get(id);
      if (starting) return this.after(conn, id, starting, () => this.unsubscribe(conn, codec, cid, id, true));
      throw new GatewayError("UNKNOWN_SUBSCRIPTION", `this connection has no subscription "${id}"`);
    }
    const token = sub.end();
    // In the request's encoding: a client may mix JSON and msgpack on one socket.
    conn.reply(encodeFrame({ t: FrameType.UNSUBSCRIBED, cid, sub: id, ...(token ? { token } : {}) }, codec));
    this.drop(conn, sub);
    return undefined;
  }

  /**
   * Ends a subscription the connection may no longer hold (its refreshed token no longer grants the
   * topic): an `unsubscribed` notice without a cid, carrying the reason's code and the resume token.
   */
  revoke(conn: SubscriberConnection, id: string, reason: GatewayError): void {
    const sub = conn.subscriptions.get(id);
    if (!sub) return;
    const token = sub.end();
    conn.reply(encodeFrame({ t: FrameType.UNSUBSCRIBED, sub: id, ...(token ? { token } : {}), ...toWireError(reason.code, reason.message) }, sub.codec));
    this.drop(conn, sub);
    conn.ended?.();
  }

  onClose(conn: SubscriberConnection): void {
    this.closed.add(conn);
    for (const sub of [...conn.subscriptions.values()]) this.drop(conn, sub);
    // Subscriptions still starting never register once their connection is closed: their feeds are
    // the address's again now, not when each start's questions to the log come back.
    const charges = this.feedCharges.get(conn);
    if (charges) for (const id of [...charges.keys()]) this.releaseFeeds(conn, id);
    this.feedCharges.delete(conn);
  }


  private register(conn: SubscriberConnection, sub: Subscription, cid: number, extra: { live: boolean; gaps?: Gap[] }): void {
    conn.subscriptions.set(sub.id, sub);
    this.holders.set(sub, conn);
    this.subscriptionCount++;
    this.metrics.subscriptionsActive.inc();
    sub.reply({
      t: FrameType.SUBSCRIBED,
      cid,
      sub: sub.id,
      topics: sub.topics,
      // A share member has no position of its own (its group's is Kafka's), so nothing to resume from.
      ...(sub.shared ? {} : { start: Object.fromEntries(sub.positions), token: sub.token() }),
      live: extra.live,
      ...(extra.gaps?.length ? { gaps: extra.gaps } : {}),
    });
  }

  private releaseFeeds(conn: SubscriberConnection, id: string): void {
    const charges = this.feedCharges.get(conn);
    const charge = charges?.get(id);
    if (!charge) return;
    charges!.delete(id);
    this.addressFeeds.release(charge.address, charge.feeds, charge.chars);
    this.metrics.filterChars.set(this.addressFeeds.filterCharsHeld);
  }

  private drop(conn: SubscriberConnection, sub: Subscription): void {
    conn.subscriptions.delete(sub.id);
    this.releaseFeeds(conn, sub.id);
    this.holders.delete(sub);
    this.recentlyEnded.note(sub, conn);
    sub.close();
    this.subscriptionCount--;
    this.metrics.subscriptionsActive.dec();
    const replay = this.replayFeeds.get(sub);
    if (replay) return this.endReplay(sub, replay);
    if (sub.shared) {
      const key = shareKey(sub.shareGroup!, sub.topics);
      void this.sharedFeeds.get(key)?.then((feed) => {
        feed.remove(sub);
        this.leaveShared(key, feed);
      });
      return;
    }
    for (const topic of sub.topics) {
      const pending = this.liveFeeds.get(topic);
      void pending?.then((feed) => {
        feed.remove(sub);
        this.leaveLive(topic, pending, feed);
      });
    }
  }

  /**
   * Leaves a share group's feed once no member is left here, so Kafka gives our partitions to
   * instances that still have members instead of us reading and dropping them.
   */
  private leaveShared(key: string, feed: Feed): void {
    if (feed.subs.size > 0) return;
    const pending = this.sharedFeeds.get(key);
    if (!pending) return feed.close();
    // The key may name a feed opened since in this one's place (one Kafka's ACLs refused): leave that be.
    void pending.then(
      (current) => {
        if (feed.subs.size > 0) return;
        if (current === feed && this.sharedFeeds.get(key) === pending) this.sharedFeeds.delete(key);
        feed.close();
      },
      () => feed.close(),
    );
  }

  /**
   * A feed Kafka's ACLs refuse (FeedOptions.onDenied) would deliver nothing, ever, while librdkafka
   * asks again: its subscriptions end with an `unsubscribed` notice carrying KAFKA_DENIED and their
   * resume tokens, and it is closed and leaves its map, so a subscribe after an operator grants Read
   * opens a new reader rather than joining this one.
   */
  private readonly denied = (feed: Feed, reason: string): void => {
    if (feed.isClosed) return;
    this.logger.warn("subscriptions ended KAFKA_DENIED: Kafka refuses the gateway's principal", { topics: feed.topics, subscriptions: feed.subs.size, reason });
    feed.close();
    for (const [map, live] of [[this.liveFeeds, true], [this.sharedFeeds, false]] as const) {
      for (const [key, pending] of map) {
        void pending.then(
          (f) => {
            if (f !== feed || map.get(key) !== pending) return;
            map.delete(key);
            if (!live) return;
            const idle = this.idleFeeds.get(key);
            if (idle) clearTimeout(idle);
            this.idleFeeds.delete(key);
            this.retire(key, feed);
          },
          () => {},
        );
      }
    }
    const error = new GatewayError("KAFKA_DENIED", reason);
    for (const sub of [...feed.subs]) {
      const conn = this.holders.get(sub);
      if (conn) this.revoke(conn, sub.id, error);
    }
  };

  /**
   * The live feeds of `topics` once all are open. When one cannot be (a missing topic), the others,
   * opened or taken back from idleness for this subscribe, are left to close when idle: before, they
   * read their topics with no subscriber and counted toward MAX_FEEDS for good.
   */
  private async liveFeedsOf(topics: string[], pending: Promise<Feed>[]): Promise<Feed[]> {
    const settled = await Promise.allSettled(pending);
    const failed = settled.find((r) => r.status === "rejected");
    if (!failed) return settled.map((r) => (r as PromiseFulfilledResult<Feed>).value);
    settled.forEach((r, i) => r.status === "fulfilled" && this.leaveLive(topics[i]!, pending[i]!, r.value));
    throw failed.reason;
  }

  /** A live feed no subscription is left on closes when idle (closeWhenIdle), unless replaced meanwhile. */
  private leaveLive(topic: string, pending: Promise<Feed>, feed: Feed): void {
    if (feed.subs.size === 0 && this.liveFeeds.get(topic) === pending) this.closeWhenIdle(topic, pending, feed);
  }

  /**
   * A live feed whose last subscriber left is closed after FEED_IDLE_CLOSE_MS, unless one comes back:
   * reopening costs a Kafka consumer, and clients often resubscribe right away (reconnects).
   */
  private closeWhenIdle(topic: string, pending: Promise<Feed>, feed: Feed): void {
    if (this.idleFeeds.has(topic)) return;
    const timer = setTimeout(() => {
      this.idleFeeds.delete(topic);
      if (feed.subs.size > 0 || this.liveFeeds.get(topic) !== pending) return;
      this.liveFeeds.delete(topic);
      this.retire(topic, feed);
    }, this.config.FEED_IDLE_CLOSE_MS);
    timer.unref();
    this.idleFeeds.set(topic, timer);
  }

  /** Closes a live feed no longer in liveFeeds, and its lag series. */
  private retire(topic: string, feed: Feed): void {
    feed.close();
    const partitions = this.lagSeries.get(topic) ?? 0;
    this.lagSeries.delete(topic);
    for (let p = 0; p < partitions; p++) this.metrics.feedLag.remove({ topic, partition: String(p) });
  }

  /** One group reader per share group and topic set on this instance, in Kafka group kgw-share-<name>. */
  private sharedFeed(group: string, topics: string[]): Promise<Feed> {
    const groupReader = { id: `kgw-share-${group}`, topics, metadataRefreshMs: this.config.PARTITION_CHECK_MS };
    return openOnce(this.sharedFeeds, shareKey(group, topics), async () => {
      // A group reader would wait on a missing topic forever: refuse it (UNKNOWN_TOPIC) as the others are.
      await Promise.all(topics.map((t) => this.log.partitionCount(t)));
      // A new group starts at the end as of this subscribe, not as of its reader joining the group
      // seconds later: what is written after `subscribed` reaches a member. Without it a new group
      // would start at the log's start (the readers' reset for a lost commit): refused, to be retried.
      const fromStart = await this.log.startGroupAtEnd(groupReader).catch((e) => {
        if (e instanceof GatewayError && e.code === "KAFKA_DENIED") throw new GatewayError("KAFKA_DENIED", `the share group "${group}" cannot be used: ${e.message}; committing its start needs the gateway's principal granted Read on group kgw-share-${group} and on ${topics.map((t) => `topic "${t}"`).join(", ")}`);
        throw new GatewayError("UNAVAILABLE", `the share group's start could not be set: ${String((e as Error)?.message ?? e)}`);
      });
      if (fromStart > 0) this.logger.warn("share group in use: its partitions new to it start at the log's start (docs/subscriptions.md)", { group, topics, partitions: fromStart });
      return new Feed(this.log, topics, new Map(topics.map((t) => [t, []])), { turns: this.turns, payload: this.payload, group: groupReader, onDenied: this.denied }, this.metrics, this.logger);
    });
  }

  /** Each topic's id (EventLog.topicId), asked together. */
  private async idsOf(topics: string[]): Promise<Map<string, string | null>> {
    const ids = await Promise.all(topics.map((t) => this.log.topicId(t)));
    return new Map(topics.map((t, i) => [t, ids[i] ?? null]));
  }

  /**
   * Moves each caught-up replay of one topic onto the topic's live feed, opening that feed at the
   * first one's positions when the topic has none. A replay kept its own reader for good once live:
   * after a restart every resumed subscription held one (a Kafka consumer each), and past MAX_FEEDS
   * the next resumes were refused until others left.
   */
  private handOverCaughtUp(): void {
    const byTopic = new Map<string, Array<[Subscription, ReplayFeed]>>();
    for (const [sub, replay] of this.replayFeeds) {
      if (sub.closed || sub.topics.length !== 1 || !replay.feed.settled) continue;
      const topic = sub.topics[0]!;
      const list = byTopic.get(topic);
      if (list) list.push([sub, replay]);
      else byTopic.set(topic, [[sub, replay]]);
    }
    for (const [topic, replays] of byTopic) {
      const opened = !this.liveFeeds.has(topic);
      // One feed past MAX_FEEDS at most, and for a moment: the replays it takes are as many fewer. At
      // the bound itself it must be let open, or caught-up replays that fill it would hold it for good.
      if (opened && this.feedCount > this.config.MAX_FEEDS) continue;
      const pending = this.liveFeed(topic, replays[0]![1].feed.positions.get(topic));
      pending.then(
        (live) => {
          for (const [sub, replay] of replays) this.handOver(sub, replay, topic, pending, live);
          // Opened for them and taken by none (they read on meanwhile): it idles out as any live feed.
          if (opened || live.subs.size === 0) this.leaveLive(topic, pending, live);
        },
        () => {},
      );
    }
  }

  /**
   * Moves `sub` off its replay onto `live` when both have handed their subscriptions exactly the same
   * offsets of every partition, in the same logs, and hold nothing more (Feed.settled): `live` then
   * hands it what follows, and nothing before. Checked and done in one go, with nothing between.
   * Otherwise it stays where it is, and is tried again at the next check.
   */
  private handOver(sub: Subscription, replay: ReplayFeed, topic: string, pending: Promise<Feed>, live: Feed): void {
    if (sub.closed || this.replayFeeds.get(sub) !== replay || live.isClosed || this.liveFeeds.get(topic) !== pending) return;
    if (!replay.feed.settled || !live.settled || !replay.feed.samePlace(live, topic)) return;
    if (this.overFilterTerms(live, sub.filter, [topic], replay.address)) return;
    const conn = this.holders.get(sub);
    const charge = conn ? this.feedCharges.get(conn)?.get(sub.id) : undefined;
    this.endReplay(sub, replay);
    // The address now holds the topic's feed (shared with its other subscriptions of it), not a replay of its own.
    if (charge) {
      this.addressFeeds.swap(charge.address, charge.feeds, [`topic:${topic}`]);
      charge.feeds = [`topic:${topic}`];
    }
    sub.movedFrom(replay.feed, topic, live.positions.get(topic)!);
    live.add(sub);
    this.metrics.replaysHandedOver.inc();
  }

  /** Closes `sub`'s own reader and gives back its replay's place in its address's pace: it ended, or was moved onto the live feed. */
  private endReplay(sub: Subscription, replay: ReplayFeed): void {
    this.replayFeeds.delete(sub);
    replay.feed.close();
    this.replayPaces.release(replay.address);
  }

  /** The shared feed of a topic, opened at the end of every partition on first use (or `at`, a caught-up replay's positions: handOverCaughtUp). */
  private liveFeed(topic: string, at?: readonly number[]): Promise<Feed> {
    const idle = this.idleFeeds.get(topic);
    if (idle) {
      clearTimeout(idle);
      this.idleFeeds.delete(topic);
    }
    return openOnce(this.liveFeeds, topic, async () => {
      // The id before the ends: a topic made again between the two is read again, never skipped.
      const ids = await this.idsOf([topic]);
      const marks = await this.log.watermarks(topic);
      // A replay's positions only where each lies within its partition as the log stands now.
      const start = at && at.length === marks.length && at.every((o, p) => o >= marks[p]!.low && o <= marks[p]!.high) ? [...at] : marks.map((m) => m.high);
      return new Feed(this.log, [topic], new Map([[topic, start]]), { turns: this.turns, payload: this.payload, onDenied: this.denied, ids }, this.metrics, this.logger);
    });
  }

  /**
   * Start offsets per topic and partition, the live target, and any gap retention has opened. `ids`:
   * each topic's id, asked before (EventLog.topicId): a token from a log of another id is of a topic
   * since made again.
   */
  private async resolveStart(topics: string[], start: Exclude<Start, "latest">, tag: string, ids: ReadonlyMap<string, string | null>) {
    const positions: Positions = new Map();
    const target: Positions = new Map();
    const gaps: Gap[] = [];
    const oldest = Date.now() - this.config.REPLAY_MAX_DURATION;
    const token = typeof start === "object" && "token" in start ? decodeToken(start.token) : undefined;
    if (token) {
      if (token.filter !== tag) throw new GatewayError("INVALID_POSITION", "the resume token was issued for a different filter; resume with the same filter");
      const same = token.positions.size === topics.length && topics.every((t) => token.positions.has(t));
      if (!same) throw new GatewayError("INVALID_POSITION", `the resume token is for topics ${[...token.positions.keys()].join(", ")}`);
    }
    // A token from other logs (another cluster at the brokers' address, or an embedded log that ended
    // with its process): its offsets name nothing here, and read as ours they would skip records.
    const here = this.originTag();
    const elsewhere = token?.origin !== undefined && here !== undefined && token.origin !== here;
    // The request's own limits first: a start too far back is refused whatever the topic (existing or not).
    const asked = typeof start === "object" && "time" in start ? (start.time instanceof Date ? start.time.getTime() : typeof start.time === "number" ? start.time : typeof start.time === "bigint" ? Number(start.time) : Date.parse(start.time)) : undefined;
    // Past the last time a Date can hold is simply the future: no log is asked about 2^70 ms.
    const startMs = asked === undefined ? undefined : Math.min(asked, MAX_TIME_MS);
    if (startMs !== undefined && startMs < oldest) {
      throw new GatewayError("REPLAY_OUT_OF_RANGE", `replay reaches back at most ${this.config.REPLAY_MAX_DURATION} ms, to ${new Date(oldest).toISOString()}`);
    }
    for (const topic of topics) {
      const marks = await this.log.watermarks(topic);
      target.set(topic, marks.map((m) => m.high));
      let offsets: number[];
      if (start === "earliest") {
        // The first record whose timestamp is within the bound. Timestamps are the producers' and need
        // not grow with offsets: what lies before it at the head is skipped, and said to be.
        const floor = await this.log.offsetsForTime(topic, oldest);
        // Offsets below the floor need not hold records: compaction leaves the head of a log without
        // them, and offsets with no record are not records skipped (a compacted topic whose records
        // were all seconds old said 592 were). The first record is the first of any time from 0 on;
        // asked only where the floor is above the log's start. A record with Kafka's "no timestamp"
        // (-1), which no producer of today writes, is not found this way.
        // (By the watermarks' partitions: one added between the queries is in floor and not in marks.)
        const first = marks.some((m, p) => (floor[p] ?? m.low) > m.low) ? await this.log.offsetsForTime(topic, 0) : floor;
        offsets = marks.map((m, p) => {
          const from = Math.min(Math.max(m.low, floor[p] ?? m.low), m.high);
          const head = Math.max(m.low, first[p] ?? m.low);
          if (from > head) gaps.push({ topic, partition: p, from: head, to: from, reason: "replay_max_duration" });
          return from;
        });
      } else if (startMs !== undefined) {
        offsets = await this.log.offsetsForTime(topic, startMs);
      } else {
        const saved = token!.positions.get(topic)!;
        // Partitions the token read that the log no longer has (another cluster, or the topic made
        // again with fewer, since Kafka never removes one): a reset log; one added later is new, and
        // read from its start.
        for (let p = marks.length; p < saved.length; p++) if (saved[p]! !== 0) gaps.push({ topic, partition: p, from: saved[p]!, to: 0, reason: "log_reset" });
        // A topic is made again whole: where the token proves it on one partition (past the new end,
        // or one the topic no longer has), every partition's log is new. Read from the token's offset,
        // a partition whose new log had outgrown it had the records below it skipped in silence
        // (outside probe). A log only cut short (an unclean leader election) reads as made again
        // too, and its topic is read again from the start: at least once.
        // Its topic's id says so outright, where the token and the log both name one.
        const savedId = token!.ids.get(topic);
        const id = ids.get(topic);
        const otherId = savedId !== undefined && id != null && idTag(id) !== savedId;
        const madeAgain = elsewhere || otherId || saved.some((at, p) => (p < marks.length ? at > marks[p]!.high : at !== 0));
        offsets = marks.map((m, p) => {
          if (madeAgain) {
            // As a live feed says of a replaced log (Feed.readOnPast): where nothing was read, nothing is said.
            if ((saved[p] ?? m.low) !== m.low) gaps.push({ topic, partition: p, from: saved[p]!, to: m.low, reason: "log_reset" });
            return m.low;
          }
          const want = saved[p] ?? m.low; // a partition added since the token: all of it is new
          if (want < m.low) gaps.push({ topic, partition: p, from: want, to: m.low, reason: "retention" });
          // Past the end: this gateway signed the token, so the partition's log was reset since (its
          // offsets start over), and all of the new log is new to the subscriber.
          if (want > m.high) {
            gaps.push({ topic, partition: p, from: want, to: m.low, reason: "log_reset" });
            return m.low;
          }
          return Math.max(want, m.low);
        });
      }
      positions.set(topic, offsets);
    }
    return { positions, target, gaps };
  }
}

/** One group reader per share group and topic set on an instance. */
function shareKey(group: string, topics: string[]): string {
  return `${group}\0${[...topics].sort().join(",")}`;
}

/**
 * The feed under `key`, made and opened on first use. Concurrent first subscribers share one opening;
 * a failed opening is forgotten, so the next subscriber tries again.
 */
/** A replaying subscription's own feed, and the client address whose pace it shares. */
interface ReplayFeed {
  feed: Feed;
  address: string;
}

// How often caught-up replays are looked at for a move onto their topic's live feed (handOverCaughtUp).
const HAND_OVER_CHECK_MS = 1000;

function openOnce(feeds: Map<string, Promise<Feed>>, key: string, make: () => Promise<Feed>): Promise<Feed> {
  let feed = feeds.get(key);
  if (!feed) {
    feed = make().then(async (f) => {
      await f.open();
      return f;
    });
    feeds.set(key, feed);
    feed.catch(() => feeds.delete(key));
  }
  return feed;
}
