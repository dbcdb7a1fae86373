import type { Config } from "../config/schema";
import type { LogRecord } from "../log/event-log";
import type { Metrics } from "../observability/metrics";
import type { CodecName } from "../protocol/codec";
import { GatewayError, type WireError, isGatewayError, shuttingDown, toWireError } from "../protocol/errors";
import { parseEnvelope } from "../protocol/envelope";
import type { Envelope } from "../protocol/frames";
import { TOPIC_NAME } from "../protocol/frames";
import { type EventLimits, LIMIT_DEFAULTS } from "../protocol/limits";
import { checkEventSize, checkRecordSize, checkTime, checkTopicRecord, eventLimits, eventTimeMs } from "./event-limits";
import { type Transport, defaultSource, eventIdentity } from "./event-identity";
import type { Appender } from "./fair-share";
import type { Idempotence } from "./idempotence";
import type { TopicLimits } from "./topic-limits";
import { toRecord } from "./to-record";
import { topicAllowPattern } from "../config/topic-allow";
import { KeyCounts } from "../limits/key-counts";


/** Outcome of one publish request, by event index. Either `errors[i]` or partitions/offsets. */
export interface PublishOutcome {
  topic: string;
  ids: string[];
  partitions: number[];
  offsets: number[];
  errors: Array<WireError | undefined> | null;
  failed: number;
}

/** Events of one request that passed validation, ready for the log. */
export interface Prepared {
  topic: string;
  ids: string[];
  records: LogRecord[];
  /** For each record, the index of its event in the request. */
  positions: number[];
  /** For each record whose event came with an id, its identity (what a re-send repeats; see event-identity.ts), else undefined. */
  identities: Array<string | undefined>;
  errors: Array<WireError | undefined> | null;
  total: number;
  /** Re-sent after a dropped connection: the topic's log is read to its end before the ids are looked up. */
  resend?: boolean;
}

/**
 * The transport-independent half of ingest: topic checks, envelope validation, record building, the
 * append itself and the bookkeeping of in-flight events. The WebSocket and HTTP edges only decode
 * and encode frames around it.
 */
export class Publisher {
  private readonly topicAllow: RegExp;
  private readonly limits: EventLimits;
  /** Whether decodeFrame's msgpack pre-scan has already held every event to this gateway's value limits. */
  private readonly msgpackCounted: boolean;
  private inflight = 0;
  /** Of those, the events to topics Kafka has not confirmed (TopicLimits.unconfirmed). */
  private newTopicInflight = 0;
  private draining = false;
  /** Every topic this instance has written (or tried to write) an event to: what MAX_TOPICS bounds. */
  private readonly topics = new Set<string>();
  /**
   * Topics not taken yet whose record bounds were asked for (their first request waits for them),
   * oldest first, at most MAX_TOPICS: requests that write nothing (empty, invalid, dry runs) to ever
   * new names would otherwise grow TopicLimits without end.
   */
  private readonly askedOnly = new Set<string>();
  /** Topics each principal took (MAX_TOPICS_PER_PRINCIPAL), with authentication on. */
  private readonly topicsByPrincipal = new KeyCounts<string>();

  constructor(
    /** The log, or the fair share in front of it. */
    private readonly log: Appender,
    private readonly config: Config,
    private readonly metrics: Metrics,
    /** Set unless IDEMPOTENCE_WINDOW_MS is 0: re-sent ids get their original ack. */
    private readonly idempotence: Idempotence | null = null,
    /** Each topic's own record bounds (on Kafka), checked per event; null: the gateway's alone. */
    private readonly topicLimits: TopicLimits | null = null,
  ) {
    this.topicAllow = topicAllowPattern(config.TOPIC_ALLOW, config.TOPIC_DENY);
    this.limits = eventLimits(config);
    // The WebSocket edge may decode with the default limits rather than the configured ones; the
    // pre-scan's count then stands in for ours only when the defaults are at least as strict.
    this.msgpackCounted = config.MAX_EVENT_VALUES >= LIMIT_DEFAULTS.MAX_EVENT_VALUES && config.MAX_MAP_KEYS >= LIMIT_DEFAULTS.MAX_MAP_KEYS;
  }

  get eventsInflight(): number {
    return this.inflight;
  }

  /** From now on every request is refused with SHUTTING_DOWN, so in-flight events can drain. */
  drain(): void {
    this.draining = true;
  }

  /** Resolves the topic of a request, or throws INVALID_TOPIC. */
  topicFor(requested: string | undefined): string {
    const topic = requested ?? this.config.DEFAULT_TOPIC;
    if (!TOPIC_NAME.test(topic)) throw new GatewayError("INVALID_TOPIC", `"${topic}" is not a valid Kafka topic name`);
    if (!this.topicAllow.test(topic)) throw new GatewayError("INVALID_TOPIC", `publishing to topic "${topic}" is not allowed here`);
    return topic;
  }

  /**
   * A topic costs state wherever it goes (see MAX_TOPICS), so a new one is taken only within the
   * bound, and only by a request that writes to it: one refused, empty, all invalid, or a dry run
   * never spends a place. Taken before its events were checked, empty publish_batch frames to 989
   * new names (and 999 dry runs) had one client lock every other out of new topics until the
   * gateway restarted, writing nothing (outside security tester).
   */
  private roomFor(topic: string, principal: string | undefined): void {
    if (this.topics.has(topic)) return;
    if (this.topics.size >= this.config.MAX_TOPICS) {
      throw new GatewayError("TOO_MANY_TOPICS", `this instance already publishes to ${this.topics.size} topics (MAX_TOPICS); "${topic}" would be one more`);
    }
    // One principal's own share: without it, one client writing an event to each of 1,000 new names
    // refused every other client's new topics until a restart (outside hostile and security testers).
    const taken = principal === undefined ? 0 : this.topicsByPrincipal.get(principal);
    if (taken >= this.config.MAX_TOPICS_PER_PRINCIPAL) {
      throw new GatewayError("TOO_MANY_TOPICS", `this principal (or client address, without authentication) has made ${taken} topics new to this instance (MAX_TOPICS_PER_PRINCIPAL); "${topic}" would be one more`);
    }
  }

  private admitTopic(topic: string, principal: string | undefined): void {
    if (this.topics.has(topic)) return;
    this.roomFor(topic, principal);
    this.topics.add(topic);
    if (principal !== undefined) this.topicsByPrincipal.add(principal);
    this.askedOnly.delete(topic);
    // Asked now if no request waited for it (see learning): its bounds are kept while it is taken.
    void this.topicLimits?.learning(topic);
  }

  /**
   * Undefined when `topic`'s own record bounds are known (or none are kept), else the asking, which
   * a request waits for before prepare(): once per topic, the first time it is named. A topic past
   * MAX_TOPICS is not asked about (prepare refuses it).
   */
  learning(topic: string): Promise<void> | undefined {
    if (!this.topicLimits || (!this.topics.has(topic) && this.topics.size >= this.config.MAX_TOPICS)) return undefined;
    if (!this.topics.has(topic) && !this.askedOnly.has(topic)) {
      if (this.askedOnly.size >= this.config.MAX_TOPICS) {
        const oldest = this.askedOnly.values().next().value!;
        this.askedOnly.delete(oldest);
        this.topicLimits.forget(oldest);
      }
      this.askedOnly.add(topic);
    }
    return this.topicLimits.learning(topic);
  }

  /** Validates every event; valid ones become records, invalid ones get an error at their index. */
  /**
   * `dryRun`: nothing is to be written (no topic is taken); `principal`: who takes a share of
   * MAX_TOPICS (the token's subject, or the client's address); `author`: the token's subject, with
   * authentication on only, written with each event and part of its identity (event-identity.ts).
   */
  prepare(events: unknown[], topic: string, codec: CodecName, transport: Transport, opts: { dryRun?: boolean; principal?: string; author?: string; resend?: boolean } = {}): Prepared {
    if (this.draining) throw shuttingDown();
    if (events.length > this.config.MAX_BATCH_EVENTS) {
      throw new GatewayError("BATCH_TOO_LARGE", `${events.length} events in one batch; at most ${this.config.MAX_BATCH_EVENTS}`);
    }
    this.roomFor(topic, opts.principal);
    this.metrics.eventsReceived[transport].inc(events.length);
    const nowMs = Date.now();
    const source = defaultSource(transport);
    const topicBounds = this.topicLimits?.get(topic, nowMs) ?? null;
    if (topicBounds?.collidesWith !== undefined) {
      throw new GatewayError("INVALID_TOPIC", `topic "${topic}" cannot be made: Kafka has "${topicBounds.collidesWith}" (or this gateway is making it), and takes names that differ only in '.' and '_' for the same`);
    }
    const p: Prepared = { topic, ids: new Array(events.length), records: [], positions: [], identities: [], errors: null, total: events.length, resend: opts.resend === true };
    for (let i = 0; i < events.length; i++) {
      // Sizes first: the schema's own walk costs in proportion to them.
      const tooLarge = checkEventSize(events[i], this.limits, !(codec === "msgpack" && this.msgpackCounted));
      const parsed = tooLarge ? null : parseEnvelope(events[i], events.length > 1 ? i : null);
      const refused = tooLarge ?? (parsed!.ok ? checkTime(eventTimeMs(parsed!.envelope.time), nowMs, this.limits) : new GatewayError("INVALID_EVENT", parsed!.message));
      if (refused) {
        // An invalid event still names itself when its id is readable, so the client can match it.
        const id = readableId(events[i]);
        if (id !== undefined) p.ids[i] = id;
        this.reject(p, i, refused, transport);
        continue;
      }
      const ev = (parsed as { envelope: Envelope }).envelope;
      const id = ev.id ?? crypto.randomUUID();
      p.ids[i] = id;
      try {
        const record = toRecord(ev, id, topic, codec, source, nowMs, opts.author);
        const tooBig = checkRecordSize(record, this.limits) ?? (topicBounds && checkTopicRecord(record, topicBounds, ev.time !== undefined, nowMs, this.config.KAFKA_MESSAGE_TIMEOUT_MS, this.limits.maxRecordBytes));
        if (tooBig) {
          this.reject(p, i, tooBig, transport);
          continue;
        }
        p.records.push(record);
        p.positions.push(i);
        p.identities.push(ev.id === undefined ? undefined : eventIdentity(ev.source, ev.id, opts.author));
      } catch (e) {
        this.reject(p, i, isGatewayError(e) ? e : new GatewayError("INTERNAL", "could not build the Kafka record"), transport);
      }
    }
    if (p.records.length > 0 && !opts.dryRun) this.admitTopic(topic, opts.principal);
    return p;
  }

  /** `source` names the connection, so the log can share its work fairly among them. */
  async publish(p: Prepared, transport: Transport, source: string = transport): Promise<PublishOutcome> {
    const n = p.total;
    const out: PublishOutcome = { topic: p.topic, ids: p.ids, partitions: new Array(n).fill(-1), offsets: new Array(n).fill(-1), errors: p.errors, failed: 0 };
    if (p.errors) for (const e of p.errors) if (e) out.failed++;
    if (p.records.length === 0) return out;
    const unconfirmed = this.topicLimits?.unconfirmed(p.topic) === true;
    if (unconfirmed && this.topicLimits!.absent(p.topic)) return this.refuseAll(p, out, transport, topicAbsent(p.topic));
    if (unconfirmed && this.newTopicInflight > 0 && this.newTopicInflight + p.records.length > this.config.KAFKA_NEW_TOPIC_MAX_INFLIGHT) {
      return this.refuseAll(p, out, transport, this.newTopicFull(p.topic));
    }
    const count = p.records.length;
    this.inflight += count;
    this.metrics.eventsInflight.set(this.inflight);
    if (unconfirmed) this.metrics.newTopicEventsInflight.set((this.newTopicInflight += count));
    let results;
    try {
      // Through idempotence whether or not these have ids: it keeps a topic's appends in order.
      results = this.idempotence !== null ? await this.idempotence.append(p.records, p.identities, source, p.resend === true) : await this.log.append(p.records, source);
    } finally {
      this.inflight -= count;
      this.metrics.eventsInflight.set(this.inflight);
      if (unconfirmed) this.metrics.newTopicEventsInflight.set((this.newTopicInflight -= count));
    }
    let published = 0;
    // Refused as of a topic Kafka does not have (UNKNOWN_TOPIC, or a timeout through which the brokers
    // answered and never had it). Judged as of now, not of when they were sent: a topic an ack of this
    // request or of another has confirmed since (made meanwhile) is told retriable, not absent.
    let absence: GatewayError | null | undefined;
    for (let r = 0; r < p.records.length; r++) {
      const i = p.positions[r]!;
      let err = results.errors?.[r];
      if (err?.topicUnknown) err = (absence ??= this.absence(p.topic, results.errors!, p.records.length, err.message)) ?? topicMadeSince(p.topic, err.message);
      if (err) {
        (out.errors ??= new Array(n))[i] = toWireError(err.code, err.message);
        out.failed++;
        this.metrics.eventsFailed.inc({ transport, code: err.code });
        if (err.code === "KAFKA_REJECTED") this.topicLimits?.doubt(p.topic);
      } else {
        out.partitions[i] = results.partitions[r]!;
        out.offsets[i] = results.offsets[r]!;
        published++;
      }
    }
    this.metrics.eventsPublished[transport].inc(published);
    if (published > 0 && unconfirmed) this.topicLimits!.confirmed(p.topic);
    return out;
  }

  /**
   * KAFKA_REJECTED for events refused as of a topic Kafka does not have, marking it absent, when it
   * still counts as one Kafka lacks and no event of the same request was written (`errors` has a
   * hole); null when either is not so.
   */
  private absence(topic: string, errors: readonly (GatewayError | undefined)[], count: number, cause: string): GatewayError | null {
    const limits = this.topicLimits;
    if (!limits) return null;
    // A refusal says the topic's settings may have changed: the next publish asks again.
    limits.doubt(topic);
    let written = false;
    for (let r = 0; r < count && !written; r++) written = errors[r] === undefined;
    if (written || !limits.unconfirmed(topic)) return null;
    limits.markAbsent(topic);
    return topicAbsent(topic, cause);
  }

  private newTopicFull(topic: string): GatewayError {
    return new GatewayError("OVERLOADED", `Kafka did not have topic "${topic}" when this gateway asked, and has acknowledged no write to it yet; ${this.newTopicInflight} events to such topics are in flight (KAFKA_NEW_TOPIC_MAX_INFLIGHT ${this.config.KAFKA_NEW_TOPIC_MAX_INFLIGHT}): retry after the first is acknowledged`);
  }

  /** Every record of `p` refused with `e`, nothing written. */
  private refuseAll(p: Prepared, out: PublishOutcome, transport: Transport, e: GatewayError): PublishOutcome {
    const wire = toWireError(e.code, e.message);
    for (const i of p.positions) (out.errors ??= new Array(p.total))[i] = wire;
    out.failed += p.positions.length;
    this.metrics.eventsFailed.inc({ transport, code: e.code }, p.positions.length);
    return out;
  }

  private reject(p: Prepared, i: number, e: GatewayError, transport: Transport): void {
    (p.errors ??= new Array(p.total))[i] = toWireError(e.code, e.message);
    this.metrics.eventsFailed.inc({ transport, code: e.code });
  }
}

function readableId(event: unknown): string | undefined {
  const id = typeof event === "object" && event !== null ? (event as { id?: unknown }).id : undefined;
  return typeof id === "string" && id.length >= 1 && id.length <= 256 ? id : undefined;
}

export function wireError(e: unknown): WireError {
  if (isGatewayError(e)) return toWireError(e.code, e.message, e);
  return toWireError("INTERNAL", "internal error");
}

/** KAFKA_REJECTED for a topic Kafka did not have when asked, nor made for the events sent to it since. */
function topicAbsent(topic: string, cause?: string): GatewayError {
  return new GatewayError("KAFKA_REJECTED", `Kafka does not have topic "${topic}" and did not create it (auto-create off, a create policy, or a name colliding with another topic's); publish again once it exists${cause ? ` (${cause})` : ""}`);
}

/** For events refused as of a topic Kafka did not have when they were sent, which it had when last asked: retriable, never written. */
function topicMadeSince(topic: string, cause: string): GatewayError {
  return new GatewayError("UNAVAILABLE", `Kafka did not have topic "${topic}" when this event was sent, though it had it when this gateway last asked (made meanwhile, or being deleted): it was not written; send it again (${cause})`);
}
