import { parseKafkaProperties } from "../config/load";
import type { Config } from "../config/schema";
import type { PoolOptions } from "./pool";

const DELIVERY_MARGIN_MS = 5000;
const QUERY_TIMEOUT_MS = 10_000;
const READER_FETCH_BYTES = 256 * 1024;

/** A reader's message.max.bytes: its fetch size (as set, KAFKA_PROPERTIES may change it), at most our own. */
function readersOwn(props: Record<string, string | number | boolean>): Record<string, string | number | boolean> {
  const fetch = Number(props["fetch.max.bytes"]);
  return { ...props, "message.max.bytes": Number.isSafeInteger(fetch) && fetch > 0 ? Math.min(fetch, READER_FETCH_BYTES) : READER_FETCH_BYTES };
}

/** The Kafka adapter's options from the validated configuration: the pool's limits and librdkafka's properties. */
export function kafkaLogOptions(config: Config): PoolOptions {
  const properties = parseKafkaProperties(config.KAFKA_PROPERTIES);
  // message.max.bytes is the bound on one event's record (docs/protocol.md, Limits), the producer's.
  // librdkafka refuses a consumer whose fetch.max.bytes is below it, so raised as the docs say, it
  // made every reader fail to open while publishes were acked: subscriptions answered and never
  // delivered. A consumer sends no records; its own stays within its fetch size (readersOwn).
  const { "message.max.bytes": _producers, ...forReaders } = properties;
  return {
    workers: config.KAFKA_WORKERS,
    maxInflightPerWorker: config.KAFKA_MAX_INFLIGHT_PER_WORKER,
    flushBytes: 256 * 1024,
    restartBackoffMinMs: 100,
    restartBackoffMaxMs: 5000,
    connectTimeoutMs: config.KAFKA_CONNECT_TIMEOUT_MS,
    // librdkafka reports a timed-out event a little after its message timeout; past the margin the
    // gateway answers for it (docs/protocol.md, "Deadlines").
    deliveryDeadlineMs: config.KAFKA_MESSAGE_TIMEOUT_MS + DELIVERY_MARGIN_MS,
    pingTimeoutMs: config.KAFKA_WORKER_PING_TIMEOUT_MS,
    brokerProbeTimeoutMs: config.KAFKA_BROKER_PROBE_TIMEOUT_MS,
    queryTimeoutMs: QUERY_TIMEOUT_MS,
    producer: {
      "bootstrap.servers": config.KAFKA_BROKERS,
      "client.id": config.KAFKA_CLIENT_ID,
      acks: config.KAFKA_ACKS,
      "enable.idempotence": config.KAFKA_ACKS === "all" || config.KAFKA_ACKS === "-1",
      "linger.ms": config.KAFKA_LINGER_MS,
      "compression.type": config.KAFKA_COMPRESSION,
      "message.timeout.ms": config.KAFKA_MESSAGE_TIMEOUT_MS,
      // The Java client's hash, so keys land where Java producers would put them.
      partitioner: "murmur2_random",
      // The pool caps what each worker holds (KAFKA_MAX_INFLIGHT_PER_WORKER); librdkafka's queue
      // is sized above it so queue-full stays the exception it is meant to be.
      "queue.buffering.max.messages": Math.max(100_000, config.KAFKA_MAX_INFLIGHT_PER_WORKER * 2),
      ...properties,
    },
    consumer: readersOwn({
      "bootstrap.servers": config.KAFKA_BROKERS,
      "client.id": config.KAFKA_CLIENT_ID,
      // What each reader fetches ahead of its subscribers: librdkafka's default is 64 MB per consumer,
      // and every replay and live feed is a consumer (64 held-back replays could pin 4 GB in a worker).
      // 4 MB is several fetches ahead at the replay rate. A fetch is sized in compressed bytes, and
      // one is taken whole before the queue's bound is checked: records that compress 250:1 made a
      // 1 MB fetch 250 MB. Fetches of 256 KB (32 KB per partition; message.max.bytes caps
      // fetch.max.bytes from below) keep that in bounds; a batch larger than a fetch still comes
      // whole (Kafka returns the first one regardless). Replays ran at the same rate with 128 KB,
      // 32 KB and 16 KB per partition here (about 35,000 events/s, bound elsewhere); a broker far
      // away reads 32 KB per partition per round trip. KAFKA_PROPERTIES may raise any of them.
      "queued.max.messages.kbytes": 4096,
      // That bound counts payload bytes only, and each record costs librdkafka several hundred bytes
      // of its own besides: with the default 100,000 records per partition, replays of small records
      // that nobody read grew the workers to 1.4 GB each (32 of them here: 824 MiB, a control's p99
      // 2 s; outside security tester). 2,000 a partition is still several fetches ahead.
      "queued.min.messages": 2000,
      "fetch.max.bytes": READER_FETCH_BYTES,
      "max.partition.fetch.bytes": 32 * 1024,
      // Past queued.max.messages.kbytes librdkafka postpones the partition's next fetch by this much:
      // 1 s by default, which with the small queue above made a reader that fell behind stay behind,
      // fetching 4 MB a second. One live subscriber of a topic written at 40 MB/s (2 KB events)
      // then lagged 7-17 s behind in half the runs, with every process under 20% CPU (bench/RESULTS.md).
      "fetch.queue.backoff.ms": 20,
      ...forReaders,
    }),
    // The idempotence ids reader (ReaderOptions.bulk) takes what it fetches at once, and the first
    // publish with an id to a topic waits (at most 3 s) for it to read the topic's last ids. With the
    // fetches above, 32 KB a partition, reading 40,000 records took over 3 s on a busy box: the
    // chaos tester's re-sends after a failover were then written a second time (10 per run). What one
    // fetch of records that compress 250:1 can take decompressed is 250 x fetch.max.bytes, for the
    // moment it is handed on.
    bulkConsumer: {
      "max.partition.fetch.bytes": 256 * 1024,
      "fetch.max.bytes": 1024 * 1024,
      ...forReaders,
    },
  };
}
