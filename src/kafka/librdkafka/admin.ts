/**
 * Admin requests about topics:
 * - DescribeConfigs: what a topic's own settings make the broker refuse (a record batch past
 *   `max.message.bytes`, a timestamp past `message.timestamp.after.max.ms`), so that the gateway
 *   can refuse the one event first instead of Kafka refusing the whole batch it travels in;
 * - DescribeTopics: a topic's id, which a topic deleted and made again under the same name changes.
 *
 * Blocks the calling thread until the broker answers or `timeoutMs` passes, as the metadata calls
 * do (client.ts): asked on a Kafka worker's query thread, never on a producing or serving one.
 */
import { KafkaError } from "./errors";
import { Err, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT, RD_KAFKA_RESOURCE_TOPIC } from "./layout";
import { addressOf, cstr, read, readString, write64 } from "./memory";
import { rdk } from "./symbols";

/** One topic's answer: its configuration entries (name → value; a sensitive or unset value is absent), or why none. */
export type TopicConfigAnswer = { configs: Record<string, string> } | { error: number; missing: boolean };

/**
 * The configuration of each of `topics`, with the broker's defaults filled in (DescribeConfigs gives
 * every entry's effective value), through handle `rk`. Throws KafkaError when the request as a whole
 * failed (no broker answered in time).
 */
export function describeTopicConfigs(rk: number, topics: readonly string[], timeoutMs: number): TopicConfigAnswer[] {
  const lib = rdk();
  const resources: number[] = [];
  let event = 0;
  try {
    // An array of `rd_kafka_ConfigResource_t *`, in JS memory for the call only: the call copies the
    // resources (rdkafka.h, "Admin API"), which are destroyed below.
    const array = new Uint32Array(Math.max(2, topics.length * 2));
    for (const [i, topic] of topics.entries()) {
      const r = lib.rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, cstr(topic)) as number | null;
      if (!r) throw new KafkaError(Err.INVALID_ARG, `cannot describe topic "${topic}"`);
      resources.push(r);
      write64(array, i * 2, r);
    }
    event = askAdmin(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, "DescribeConfigs", timeoutMs, (options, queue) =>
      lib.rd_kafka_DescribeConfigs(rk as never, addressOf(array) as never, topics.length, options as never, queue as never),
    );
    const result = lib.rd_kafka_event_DescribeConfigs_result(event as never) as number;
    const byName = new Map<string, TopicConfigAnswer>();
    for (const res of listed((count) => lib.rd_kafka_DescribeConfigs_result_resources(result as never, count as never) as number)) {
      const name = readString(lib.rd_kafka_ConfigResource_name(res as never) as number);
      const rerr = lib.rd_kafka_ConfigResource_error(res as never);
      if (rerr !== 0) {
        byName.set(name, { error: rerr, missing: rerr === Err.UNKNOWN_TOPIC_OR_PART });
        continue;
      }
      const configs: Record<string, string> = {};
      for (const entry of listed((count) => lib.rd_kafka_ConfigResource_configs(res as never, count as never) as number)) {
        const value = lib.rd_kafka_ConfigEntry_value(entry as never) as number | null;
        if (value) configs[readString(lib.rd_kafka_ConfigEntry_name(entry as never) as number)] = readString(value);
      }
      byName.set(name, { configs });
    }
    return topics.map((t) => byName.get(t) ?? { error: Err.STATE, missing: false });
  } finally {
    if (event) lib.rd_kafka_event_destroy(event as never);
    for (const r of resources) lib.rd_kafka_ConfigResource_destroy(r as never);
  }
}

/** Kafka's Uuid.ZERO_UUID in base64: what a broker that has no topic ids answers. */
const ZERO_UUID = "AAAAAAAAAAAAAAAAAAAAAA";

/** One topic's id (Kafka's Uuid in base64, librdkafka's standard alphabet), or why none. */
export type TopicIdAnswer = { id: string } | { error: number; missing: boolean };

/**
 * The id of each of `topics` (DescribeTopics, which asks the cluster's metadata without creating a
 * topic), through handle `rk`. Throws KafkaError when the request as a whole failed.
 */
export function describeTopicIds(rk: number, topics: readonly string[], timeoutMs: number): TopicIdAnswer[] {
  const lib = rdk();
  let event = 0;
  // `const char **`: the collection copies the names (rdkafka_admin.c strdups each), destroyed below.
  const names = topics.map(cstr);
  const array = new Uint32Array(Math.max(2, topics.length * 2));
  names.forEach((name, i) => write64(array, i * 2, addressOf(name)));
  const collection = lib.rd_kafka_TopicCollection_of_topic_names(addressOf(array) as never, topics.length) as number;
  try {
    event = askAdmin(rk, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT, "DescribeTopics", timeoutMs, (options, queue) =>
      lib.rd_kafka_DescribeTopics(rk as never, collection as never, options as never, queue as never),
    );
    const result = lib.rd_kafka_event_DescribeTopics_result(event as never) as number;
    const byName = new Map<string, TopicIdAnswer>();
    for (const desc of listed((count) => lib.rd_kafka_DescribeTopics_result_topics(result as never, count as never) as number)) {
      const name = readString(lib.rd_kafka_TopicDescription_name(desc as never) as number);
      const error = lib.rd_kafka_TopicDescription_error(desc as never) as number | null;
      const code = error ? lib.rd_kafka_error_code(error as never) : 0;
      if (code !== 0) {
        byName.set(name, { error: code, missing: code === Err.UNKNOWN_TOPIC_OR_PART });
        continue;
      }
      const uuid = lib.rd_kafka_TopicDescription_topic_id(desc as never) as number | null;
      const id = uuid ? readString(lib.rd_kafka_Uuid_base64str(uuid as never) as number) : "";
      // All zeros: no id (brokers before Kafka 2.8's, or whose metadata answer is older than v10).
      byName.set(name, id !== "" && id !== ZERO_UUID ? { id } : { error: Err.STATE, missing: false });
    }
    return topics.map((t) => byName.get(t) ?? { error: Err.STATE, missing: false });
  } finally {
    if (event) lib.rd_kafka_event_destroy(event as never);
    lib.rd_kafka_TopicCollection_destroy(collection as never);
  }
}

/**
 * The pointers of an array librdkafka answers with (`T **`), which `get` returns given where to write
 * its length (`size_t *cntp`). The array lives as long as the result it came from.
 */
function listed(get: (countAddress: number) => number): number[] {
  const count = new Uint32Array(2);
  const list = get(addressOf(count));
  return Array.from({ length: count[0]! }, (_, i) => read.ptr(list, i * 8));
}

/**
 * Sends one admin request (`send`, given its options and the queue to answer on) and waits for its
 * answer, an event of `type` the caller destroys. Throws KafkaError if the request failed as a whole.
 */
function askAdmin(rk: number, op: number, type: number, what: string, timeoutMs: number, send: (options: number, queue: number) => void): number {
  const lib = rdk();
  const queue = lib.rd_kafka_queue_new(rk as never) as number;
  const options = lib.rd_kafka_AdminOptions_new(rk as never, op) as number;
  let event = 0;
  try {
    const errstr = Buffer.alloc(256);
    lib.rd_kafka_AdminOptions_set_request_timeout(options as never, timeoutMs, errstr, errstr.length);
    send(options, queue);
    // The answer comes as one event; a little past the request's own timeout, by which librdkafka answers.
    event = (lib.rd_kafka_queue_poll(queue as never, timeoutMs + 1000) as number | null) ?? 0;
    if (!event) throw new KafkaError(Err.TIMED_OUT, `no answer to ${what} within ${timeoutMs} ms`);
    const err = lib.rd_kafka_event_error(event as never);
    if (err !== 0) throw new KafkaError(err, `${what}: ${String(lib.rd_kafka_event_error_string(event as never))}`);
    if (lib.rd_kafka_event_type(event as never) !== type) throw new KafkaError(Err.STATE, `${what} answered with another event`);
    const answer = event;
    event = 0;
    return answer;
  } finally {
    if (event) lib.rd_kafka_event_destroy(event as never);
    lib.rd_kafka_AdminOptions_destroy(options as never);
    lib.rd_kafka_queue_destroy(queue as never);
  }
}
