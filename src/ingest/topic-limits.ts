import { NO_BOUND, type TopicRecordLimits, topicNamesCollide } from "../log/event-log";

// How long a topic's answer (or a failure to get one: a cluster whose ACLs do not let the gateway
// describe topics fails every time, and says so once a minute) is used before it is asked again, in
// the background (publishes go on with what is known); and for a topic Kafka did not have yet, how
// soon (its first publish makes it).
const REFRESH_MS = 60_000;
const RETRY_MS = 5_000;
// Kafka refusing a topic's records says its settings may have changed: asked again at once, but no
// more often than this, however many refusals follow.
const DOUBT_MIN_MS = 1_000;
// How long a topic Kafka refused as unknown is refused at once (markAbsent); then publishes go to
// Kafka again, so brokers that make topics (auto-create turned on, a create policy changed) can.
const ABSENT_MS = 10_000;

const NO_BOUNDS = { maxBatchBytes: NO_BOUND, timestampAfterMs: NO_BOUND, timestampBeforeMs: NO_BOUND, keyRequired: false };

interface Known {
  limits: TopicRecordLimits | null;
  /** Date.now() when it was answered, and after which it is asked again. */
  answeredAt: number;
  staleAt: number;
  /** Asking failed and no answer came before it: whether Kafka has the topic is not known. */
  unknown?: boolean;
  /** Date.now() of the last acknowledged write to it since it was last found missing (confirmed()). */
  confirmedAt?: number;
  /** Until when its events are refused at once (markAbsent()). */
  absentUntil?: number;
}

/**
 * Each topic's own record bounds (EventLog.topicRecordLimits: on Kafka its max.message.bytes and
 * timestamp bounds), kept so that a publish checks its events against them without a request of
 * its own. A publish naming a topic for the first time waits for the answer (once per topic and
 * instance); after that the answer is used as it is and refreshed in the background, so a topic's
 * settings changed under the gateway are seen within REFRESH_MS, or within DOUBT_MIN_MS of Kafka
 * refusing the topic's records (doubt()). Its size is bounded by the topics
 * the publisher takes (MAX_TOPICS).
 */
export class TopicLimits {
  private readonly known = new Map<string, Known>();
  private readonly asking = new Map<string, Promise<void>>();

  constructor(
    private readonly ask: (topic: string) => Promise<TopicRecordLimits | null>,
    /** Told when asking failed: the gateway's own limits stand meanwhile. */
    private readonly failed: (topic: string, e: unknown) => void = () => {},
  ) {}

  /**
   * The bounds known for `topic` (null: none beyond the gateway's), asking again in the background
   * when they are stale; undefined when it was never asked (see learn()).
   */
  get(topic: string, now = Date.now()): TopicRecordLimits | null | undefined {
    const k = this.known.get(topic);
    if (k && now >= k.staleAt && !this.asking.has(topic)) void this.learn(topic);
    return k?.limits;
  }

  /** Undefined when `topic` was asked already, else the asking, to wait for (it never rejects). */
  learning(topic: string): Promise<void> | undefined {
    return this.known.has(topic) ? undefined : this.learn(topic);
  }

  /**
   * Kafka refused records of `topic` that its known bounds let through: those bounds may be stale
   * (its max.message.bytes lowered, switched to compact), and each refused batch takes other
   * clients' events with it. The next publish asks again, if the answer is older than DOUBT_MIN_MS.
   */
  doubt(topic: string): void {
    const k = this.known.get(topic);
    if (k) k.staleAt = Math.min(k.staleAt, k.answeredAt + DOUBT_MIN_MS);
  }

  /**
   * Whether Kafka did not have `topic` when last asked (or could not say: a gateway whose ACLs do
   * not let it describe topics) and no write to it has been acknowledged since: its records may
   * wait out the message timeout (brokers that do not auto-create, a create policy, a twin another
   * instance is making), so the publisher bounds what is in flight to such topics together
   * (KAFKA_NEW_TOPIC_MAX_INFLIGHT).
   */
  unconfirmed(topic: string): boolean {
    const k = this.known.get(topic);
    return k !== undefined && k.confirmedAt === undefined && (k.limits?.missing === true || k.unknown === true);
  }

  /** A write to `topic` was acknowledged: Kafka has it now; its own bounds are asked for at the next publish. */
  confirmed(topic: string): void {
    const k = this.known.get(topic);
    if (!k || !this.unconfirmed(topic)) return;
    const now = Date.now();
    k.confirmedAt = now;
    k.absentUntil = undefined;
    k.unknown = false;
    if (k.limits?.missing === true) k.limits = { ...k.limits, missing: false };
    k.staleAt = Math.min(k.staleAt, now);
  }

  /**
   * Kafka refused events of an unconfirmed `topic` as of one it does not have (UNKNOWN_TOPIC, or a
   * message timeout through which the brokers answered and never had it). Its next events are
   * refused at once rather than each held for the message timeout, for ABSENT_MS or until an answer
   * says Kafka has it (asked again every RETRY_MS while publishes name it); after ABSENT_MS they go
   * to Kafka again, which makes the topic if its brokers now do.
   */
  markAbsent(topic: string, now = Date.now()): void {
    const k = this.known.get(topic);
    if (k && this.unconfirmed(topic)) k.absentUntil = now + ABSENT_MS;
  }

  /** Whether `topic`'s events are refused at once (see markAbsent()). */
  absent(topic: string, now = Date.now()): boolean {
    const until = this.known.get(topic)?.absentUntil;
    return until !== undefined && now < until;
  }

  /** Drops what is known of `topic` (an answer still coming is kept when it comes). */
  forget(topic: string): void {
    this.known.delete(topic);
  }

  /**
   * For a topic Kafka does not have: the bounds that refuse it when this instance already names its
   * twin (`.` for `_`, which Kafka takes for the same name), known or being asked about. Kafka had
   * neither when asked, so both were taken, and the one Kafka did not make waited out the message
   * timeout, its records holding the workers' capacity (an address sending 1,000-event batches to it
   * had every other client of the instance refused OVERLOADED for 25 s: outside tester).
   */
  private twinOf(topic: string): TopicRecordLimits | null {
    if (!topic.includes(".") && !topic.includes("_")) return null;
    const isTwin = (name: string) => topicNamesCollide(name, topic);
    for (const [name, k] of this.known) {
      if (isTwin(name) && k.limits?.collidesWith !== topic) return { ...NO_BOUNDS, missing: true, collidesWith: name };
    }
    // Asked about together: the one asked first is taken (a Map keeps the order of asking).
    for (const name of this.asking.keys()) {
      if (name === topic) break;
      if (isTwin(name)) return { ...NO_BOUNDS, missing: true, collidesWith: name };
    }
    return null;
  }

  private learn(topic: string): Promise<void> {
    let p = this.asking.get(topic);
    if (p) return p;
    const askedAt = Date.now();
    p = this.ask(topic).then(
      (found) => {
        const now = Date.now();
        const before = this.known.get(topic);
        let limits = found?.missing === true && found.collidesWith === undefined ? (this.twinOf(topic) ?? found) : found;
        const k: Known = { limits, answeredAt: now, staleAt: 0 };
        if (limits?.missing === true && before?.confirmedAt !== undefined) {
          // Asked before a write to it was acknowledged (or of a broker whose metadata lags): Kafka has it.
          if (before.confirmedAt >= askedAt) k.limits = limits = { ...limits, missing: false };
        } else if (limits?.missing === true && before?.absentUntil !== undefined) k.absentUntil = before.absentUntil;
        if (limits?.missing !== true && before?.confirmedAt !== undefined) k.confirmedAt = before.confirmedAt;
        k.staleAt = now + (limits && limits.missing !== true ? REFRESH_MS : RETRY_MS);
        this.known.set(topic, k);
      },
      (e) => {
        this.failed(topic, e);
        // What was known is kept; a topic never answered for goes on the gateway's limits for now,
        // and counts as unconfirmed until a write to it is acknowledged.
        const before = this.known.get(topic);
        const now = Date.now();
        this.known.set(topic, { ...before, limits: before?.limits ?? null, unknown: before === undefined || before.unknown === true, answeredAt: now, staleAt: now + REFRESH_MS });
      },
    );
    p = p.finally(() => this.asking.delete(topic));
    this.asking.set(topic, p);
    return p;
  }
}
