/**
 * The Bun Kafka worker's metadata thread (a Web Worker inside the worker process). Metadata calls
 * block until the broker answers; asked on the worker's main thread they would stall producing,
 * delivery reports and readers for that long. Here they block only this thread. They go through the
 * worker's own producer handle (librdkafka's API is thread-safe), which outlives this thread: the
 * process exits without destroying it.
 *
 * Messages in: { reqId, rk, query: Query | { kind: "connect" } }; out: { reqId, result } or
 * { reqId, error }.
 */
import type { Query } from "./ipc";
import { MetadataQueries } from "./librdkafka";

declare const self: Worker;

/** Kept short: a question waits behind the one before it. */
const TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 2000;

let queries: MetadataQueries | null = null;

self.onmessage = (e: MessageEvent<{ reqId: number; rk: number; query: Query | { kind: "connect" } }>) => {
  const { reqId, rk, query } = e.data;
  try {
    if (!queries || queries.rk !== rk) queries = new MetadataQueries(rk);
    self.postMessage({ reqId, result: answer(queries, query) });
  } catch (err) {
    self.postMessage({ reqId, error: String((err as Error)?.message ?? err) });
  }
};

function answer(q: MetadataQueries, query: Query | { kind: "connect" }): unknown {
  switch (query.kind) {
    case "connect":
      q.ping(CONNECT_TIMEOUT_MS);
      return true;
    case "partitions":
      return q.partitionCount(query.topic, TIMEOUT_MS);
    case "watermarks":
      return Array.from({ length: query.partitions }, (_, p) => q.watermarks(query.topic, p, TIMEOUT_MS));
    case "offsetsForTime":
      return q.offsetsForTimes(query.topic, query.partitions, query.timestampMs, TIMEOUT_MS);
  }
}
