/**
 * A stand-in for queries.ts in test/kafka/query-thread: it answers `{ kind: "sleep", ms }` after
 * blocking for `ms`, as a thread stuck in rd_kafka_new() or a metadata call would, with its reqId.
 */
declare const self: Worker;

self.onmessage = (e: MessageEvent<{ reqId: number; query: { ms: number } }>) => {
  Bun.sleepSync(e.data.query.ms);
  self.postMessage({ reqId: e.data.reqId, result: e.data.reqId });
};
