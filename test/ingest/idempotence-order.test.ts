import { expect, test } from "bun:test";
import type { AppendResults, LogRecord } from "../../src/log/event-log";
import { failedResults } from "../../src/log/event-log";
import { MemoryLog } from "../../src/log/memory-log";
import { Idempotence } from "../../src/ingest/idempotence";
import { createLogger } from "../../src/observability/logger";
import { createMetrics } from "../../src/observability/metrics";
import { GatewayError } from "../../src/protocol/errors";
import { gatewayForBlock } from "../support/gateway";
import { openJsonWs } from "../support/json-ws";

/**
 * Appends of one topic are written in the order they were asked for, whatever each had to wait for
 * first. The chaos tester saw a client's re-sends, the first frames it sent after failing over, written
 * after ~8,000 later events of their own keys: that instance still counted ids in doubt from an
 * earlier fault (another topic, expired). The first append to look at them forgot them, which cost it
 * an await that the appends behind it, finding none left, no longer paid: they all went first.
 */
const rec = (i: number): LogRecord => ({ topic: "orders", key: Buffer.from("k"), value: Buffer.from(`${i}`), headers: [], timestamp: Date.now() });

test("appends with client ids keep their order when the first of them is the one to forget expired doubts", async () => {
  const log = new MemoryLog({ partitions: 1, retentionRecords: 10_000, retentionBytes: 1 << 30 });
  let failNext = true;
  // An earlier write on another topic ended in doubt (WORKER_LOST may have been persisted).
  const appender = {
    append: (records: LogRecord[], source: string): Promise<AppendResults> =>
      failNext ? ((failNext = false), Promise.resolve(failedResults(records.length, new GatewayError("WORKER_LOST", "the worker exited")))) : log.append(records, source),
  };
  const idem = new Idempotence(log, { windowMs: 50, maxIds: 1000, warmupTimeoutMs: 1000, partitionCheckMs: 60_000 }, createMetrics(), createLogger("error"), appender);
  idem.start();
  await idem.append([{ ...rec(0), topic: "elsewhere" }], ["s\0doubted"], "c");
  await Bun.sleep(100); // the doubt is past the window, still counted until someone looks
  const appends = Array.from({ length: 5 }, (_, i) => idem.append([rec(i)], [`s\0id-${i}`], "c"));
  const results = await Promise.all(appends);
  expect(results.map((r) => r.offsets[0])).toEqual([0, 1, 2, 3, 4]);
  idem.close();
});

const block = gatewayForBlock({ KAFKA_BROKERS: "" });

test("over a socket, an event without an id sent right behind one with an id is written after it", async () => {
  const { ws, req } = await openJsonWs(block.gw.wsUrl);
  // One event with an id (the idempotence path) and one without, same key, sent together, five times.
  const acks = await Promise.all(
    Array.from({ length: 10 }, (_, i) => req({ t: 10, topic: "mixed", event: { type: "a", key: "k", ...(i % 2 === 0 ? { id: `with-id-${i}` } : {}) } })),
  );
  expect(acks.map((a) => a.t)).toEqual(Array(10).fill(20));
  const offsets = acks.map((a) => a.offset as number);
  expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
  ws.close();
});
