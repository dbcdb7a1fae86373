/**
 * The Bun Kafka worker's metadata thread (a Web Worker inside the worker process). Metadata calls
 * block until the broker answers; asked on the worker's main thread they would stall producing,
 * delivery reports and readers for that long. Here they block only this thread. They go through the
 * worker's own producer handle (librdkafka's API is thread-safe), which outlives this thread: the
 * process exits without destroying it.
 *
 * Messages in: { reqId, rk, query: ThreadQuery, deadline? }; out: { reqId, result } or { reqId, error }.
 * A question whose deadline (ms since the epoch) has passed when its turn comes is not asked: its
 * caller has had its error already, and asking anyway would keep the questions behind it waiting.
 * The worker runs three of these threads (query-thread.ts): one for the gateway's questions, one for
 * its broker probe (broker-probe.ts), so a probe never waits behind a slow question and reads as an
 * outage, and one that makes its readers' consumers. rd_kafka_new() blocks until librdkafka's own
 * threads have started, 4-27 ms a consumer on this machine kind; made on the worker's loop, sixteen
 * replays opened at once held its delivery reports, and so other clients' publish acks, for up to
 * 270 ms. A handle made here is used from the loop afterwards (a handle belongs to no thread).
 */
import type { Query } from "../wire/ipc";
import { NO_BOUND, type TopicRecordLimits } from "../../log/event-log";
import { Consumer, Err, KafkaError, MetadataQueries, type TopicConfigAnswer, describeTopicConfigs, describeTopicIds, destroyHandle, newConsumerHandle } from "../librdkafka";

declare const self: Worker;

/** Kept short: a question waits behind the one before it. */
const TIMEOUT_MS = 5000;
// A topic that the partitions question just auto-created has no leader for a moment: its
// watermarks and offsets answer UNKNOWN_TOPIC_OR_PART (3), LEADER_NOT_AVAILABLE (5),
// NOT_LEADER_OR_FOLLOWER (6), or librdkafka's own _UNKNOWN_TOPIC (-188) / _UNKNOWN_PARTITION (-190)
// while its metadata cache catches up. (The Node binding's calls were slow enough to hide this.)
// A group's coordinator moving or still loading answers COORDINATOR_LOAD_IN_PROGRESS (14),
// COORDINATOR_NOT_AVAILABLE (15) or NOT_COORDINATOR (16): a share group's first subscribe on a
// freshly started broker was refused UNAVAILABLE for it.
const TRANSIENT = new Set([3, 5, 6, 14, 15, 16, -188, -190]);
const RETRY_MS = 50;
// A commit with no generation refused because the group has members: ILLEGAL_GENERATION (22),
// UNKNOWN_MEMBER_ID (25), REBALANCE_IN_PROGRESS (27).
const GROUP_IN_USE = new Set([22, 25, 27]);
// Kafka's ACLs refusing the gateway's principal a topic or a group: told to the caller as KAFKA_DENIED.
const DENIED = new Set<number>([Err.TOPIC_AUTHORIZATION_FAILED, Err.GROUP_AUTHORIZATION_FAILED]);
const CONNECT_TIMEOUT_MS = 2000;

let queries: MetadataQueries | null = null;
let context: ThreadContext = { consumer: {} };

/**
 * The gateway's questions, plus the worker's own: connect (READY), probe (HEALTH), and a reader's
 * consumer made (its handle's address the answer) or, made for nobody, destroyed.
 */
export type ThreadQuery =
  | Query
  | { kind: "connect" }
  | { kind: "probe"; timeoutMs: number }
  | { kind: "freshProbe"; timeoutMs: number }
  | { kind: "openConsumer"; props: Record<string, string | number | boolean> }
  | { kind: "destroyConsumer"; rk: number };

/** What a question needs besides the producer's handle: the readers' properties, for a group's own consumer. */
export interface ThreadContext {
  consumer: Record<string, string | number | boolean>;
}

self.onmessage = (e: MessageEvent<{ reqId: number; rk: number; query: ThreadQuery; deadline?: number; context: ThreadContext }>) => {
  const { reqId, rk, query, deadline } = e.data;
  context = e.data.context;
  if (deadline !== undefined && Date.now() >= deadline) return void self.postMessage({ reqId, error: "not asked: its deadline passed while it waited" });
  try {
    if (!queries || queries.rk !== rk) queries = new MetadataQueries(rk);
    self.postMessage({ reqId, result: answer(queries, query) });
  } catch (err) {
    const denied = err instanceof KafkaError && DENIED.has(err.code);
    self.postMessage({ reqId, error: String((err as Error)?.message ?? err), ...(denied ? { denied } : {}) });
  }
};

function answer(q: MetadataQueries, query: ThreadQuery): unknown {
  switch (query.kind) {
    case "connect":
      q.ping(CONNECT_TIMEOUT_MS);
      return q.clusterId();
    case "probe":
      q.ping(query.timeoutMs);
      return q.clusterId();
    case "freshProbe":
      return freshProbe(query.timeoutMs);
    case "partitions":
      return q.partitionCounts(query.topics, TIMEOUT_MS);
    case "watermarks":
      return retrying((left) => Array.from({ length: query.partitions }, (_, p) => q.watermarks(query.topic, p, left)));
    case "offsetsForTime":
      return retrying((left) => q.offsetsForTimes(query.topic, query.partitions, query.timestampMs, left));
    case "startGroupAtEnd":
      return startGroupAtEnd(q, query.group, query.topics);
    case "recordLimits":
      return describeTopicConfigs(q.rk, query.topics, TIMEOUT_MS).map((a, i) => recordLimits(a, () => q.collidingTopic(query.topics[i]!, TIMEOUT_MS)));
    case "topicIds":
      return describeTopicIds(q.rk, query.topics, TIMEOUT_MS).map((a) => ("id" in a ? a.id : null));
    case "openConsumer":
      return newConsumerHandle(query.props).rk;
    case "destroyConsumer":
      return void destroyHandle(query.rk);
  }
}

/**
 * What a topic's configuration makes the broker refuse. With LogAppendTime the broker stamps each
 * record itself and no timestamp of a producer's is refused. A topic Kafka does not have has none
 * (it will be made with the broker's defaults, if the brokers make it) and is marked missing, unless its name collides with one the cluster has
 * (`.` for `_`): the broker refuses to make it, and its records waited out the message timeout
 * (outside security tester: 30 s, then PUBLISH_TIMEOUT, which says retry). Any other error is
 * thrown, so the gateway asks again.
 */
function recordLimits(a: TopicConfigAnswer, colliding: () => string | null): TopicRecordLimits | null {
  if (!("configs" in a)) {
    if (a.missing) {
      const other = colliding();
      const missing = { maxBatchBytes: NO_BOUND, timestampAfterMs: NO_BOUND, timestampBeforeMs: NO_BOUND, keyRequired: false, missing: true };
      return other === null ? missing : { ...missing, collidesWith: other };
    }
    throw new KafkaError(a.error, `describing a topic's configuration failed: error ${a.error}`);
  }
  const c = a.configs;
  const ms = (name: string) => {
    const v = Number(c[name]);
    // Long.MAX_VALUE (the default "before" bound) reads as 9.2e18: as good as none.
    return Number.isFinite(v) && v >= 0 && v < NO_BOUND ? v : NO_BOUND;
  };
  const appendTime = c["message.timestamp.type"] === "LogAppendTime";
  // Kafka before 3.6 has only message.timestamp.difference.max.ms, which bounds both ways.
  const difference = ms("message.timestamp.difference.max.ms");
  const bytes = Number(c["max.message.bytes"]);
  return {
    maxBatchBytes: Number.isSafeInteger(bytes) && bytes > 0 ? bytes : NO_BOUND,
    timestampAfterMs: appendTime ? NO_BOUND : Math.min(ms("message.timestamp.after.max.ms"), difference),
    timestampBeforeMs: appendTime ? NO_BOUND : Math.min(ms("message.timestamp.before.max.ms"), difference),
    keyRequired: (c["cleanup.policy"] ?? "").split(",").some((p) => p.trim() === "compact"),
  };
}

/**
 * A new group (nothing committed) would start where the log ends when its reader has joined and been
 * assigned: seconds after its first member was told `subscribed`, and what was written meanwhile would
 * go to no member. So the end is committed for it now, from a consumer of the group that never joins
 * it. Partitions the group has committed keep their commits; one that commits meanwhile wins.
 * A group that has members refuses a commit with no generation (a topic new to a group in use, or
 * members of a moment ago still within their session). Nothing can set where such partitions start
 * without risking records written after `subscribed` (a start held by this instance alone is lost
 * with the member that held it), so they are left to the readers' reset, the log's start: at least
 * once. Returns how many partitions were so left (0 when every fresh one was started at its end).
 */
function startGroupAtEnd(q: MetadataQueries, group: string, topics: string[]): number {
  const counts = q.partitionCounts(topics, TIMEOUT_MS);
  const all = topics.flatMap((topic, t) => Array.from({ length: counts[t]! }, (_, partition) => ({ topic, partition })));
  if (all.length === 0) return 0;
  const consumer = new Consumer({ ...context.consumer, "group.id": group, "enable.auto.commit": false, "enable.auto.offset.store": false });
  try {
    const committed = retrying((left) => consumer.committed(all, left));
    const fresh = all.filter((_, i) => committed[i]! < 0).map((tp) => ({ ...tp, offset: retrying((left) => q.watermarks(tp.topic, tp.partition, left)).high }));
    if (fresh.length === 0) return 0;
    try {
      retrying(() => consumer.commitSync(fresh));
      return 0;
    } catch (e) {
      if (e instanceof KafkaError && GROUP_IN_USE.has(e.code)) return fresh.length;
      throw e;
    }
  } finally {
    consumer.destroy();
  }
}

/**
 * The probe's question from a client of its own, made with the readers' settings and destroyed after:
 * whether the cluster answers a new handle when the worker's own gets no answer (broker-probe.ts).
 * A consumer, since one needs no producer state; it never joins its group.
 */
function freshProbe(timeoutMs: number): string | null {
  const client = new Consumer({ ...context.consumer, "group.id": "kgw-fresh-probe" });
  try {
    const q = new MetadataQueries(client.rk);
    q.ping(timeoutMs);
    return q.clusterId();
  } finally {
    client.destroy();
  }
}

/** Calls `f` with the time left, again after a transient leadership error, within TIMEOUT_MS. */
function retrying<T>(f: (timeoutMs: number) => T): T {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    try {
      return f(Math.max(1, deadline - Date.now()));
    } catch (e) {
      if (!(e instanceof KafkaError && TRANSIENT.has(e.code)) || Date.now() + RETRY_MS >= deadline) throw e;
      Bun.sleepSync(RETRY_MS); // this thread exists to block
    }
  }
}
