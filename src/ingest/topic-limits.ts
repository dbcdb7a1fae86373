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

const NO_BOUNDS = { maxBatchBytes: NO_BOUND, timestampAfterMs: NO_BOUND, timestampBeforeMs: NO_BOUND, keyRequired: false };

interface Known {
  limits: TopicRecordLimits | null;
  /** Date.now() when it was answered, and after which it is asked again. */
  answeredAt: number;
  staleAt: number;
  /** Missing when asked, and its events were refused as of a topic Kafka does not have since (absent()). */
  absent?: boolean;
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
   * Whether Kafka did not have `topic` when last asked and no write to it has been acknowledged
   * since: its records may wait out the message timeout (brokers that do not auto-create, a create
   * policy, a twin another instance is making), so the publisher bounds what is in flight to such
   * topics together (KAFKA_NEW_TOPIC_MAX_INFLIGHT).
   */
  unconfirmed(topic: string): boolean {
    return this.known.get(topic)?.limits?.missing === true;
  }

  /** A write to `topic` was acknowledged: Kafka has it now; its own bounds are asked for at the next publish. */
  confirmed(topic: string): void {
    const k = this.known.get(topic);
    if (k?.limits?.missing !== true) return;
    k.limits = { ...k.limits, missing: false };
    k.staleAt = Math.min(k.staleAt, Date.now());
  }

  /**
   * Kafka lacked `topic` when asked, and its events were since refused as of an unknown topic (or
   * timed out before the worker ever learned it): Kafka will not make it. Its next events are refused
   * at once, not held for the message timeout each, until an answer says Kafka has it (asked again
   * every RETRY_MS while publishes name it).
   */
  markAbsent(topic: string): void {
    const k = this.known.get(topic);
    if (k?.limits?.missing === true) k.absent = true;
  }

  /** Whether `topic` is absent (see markAbsent()). */
  absent(topic: string): boolean {
    return this.known.get(topic)?.absent === true;
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
    p = this.ask(topic).then(
      (found) => {
        const now = Date.now();
        const limits = found?.missing === true && found.collidesWith === undefined ? (this.twinOf(topic) ?? found) : found;
        const k: Known = { limits, answeredAt: now, staleAt: now + (limits && limits.missing !== true ? REFRESH_MS : RETRY_MS) };
        // Still missing: still absent, if it was.
        if (limits?.missing === true && this.known.get(topic)?.absent === true) k.absent = true;
        this.known.set(topic, k);
      },
      (e) => {
        this.failed(topic, e);
        // What was known is kept; a topic never answered for goes on the gateway's limits for now.
        const before = this.known.get(topic);
        const now = Date.now();
        this.known.set(topic, { limits: before?.limits ?? null, answeredAt: now, staleAt: now + REFRESH_MS });
      },
    );
    p = p.finally(() => this.asking.delete(topic));
    this.asking.set(topic, p);
    return p;
  }
}
