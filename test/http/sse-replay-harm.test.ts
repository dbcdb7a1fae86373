import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { connect } from "../../src/client";
import { underControl } from "../ingest/control";
import { gatewayForBlock } from "../support/gateway";

/**
 * One address opens as many replays as it may (MAX_REPLAYS_PER_ADDRESS, 16), as SSE streams from the
 * earliest record of 40 MB of history, and reads them as fast as they come. Each feed delivered up to
 * 5 ms per event-loop turn of its own, so sixteen busy feeds held every other client about 80 ms a
 * turn: the hostile tester's control publish had p50 1 ms but p99 330 ms. Feeds now share one
 * delivery budget per turn (src/limits/turn-budget.ts).
 * Measured side by side here: control p99 142 and 192 ms before, 27–38 ms after, the replays read as
 * fast as before (805 MB in 10 s).
 */
const block = gatewayForBlock({ KAFKA_BROKERS: "", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });

test("sixteen SSE replays of 40 MB from one address, read as fast as they come: other clients keep their latency", async () => {
  const gw = block.gw;
  const topic = "replayed";
  const c = await connect({ url: gw.wsUrl });
  const pad = "x".repeat(1000);
  for (let i = 0; i < 40; i++) {
    const acks = await c.publishBatch(Array.from({ length: 1000 }, (_, j) => ({ type: "history", key: `k${j % 50}`, data: { i: i * 1000 + j, pad } })), { topic });
    expect(acks.filter((a) => a.status !== "fulfilled")).toEqual([]);
  }
  c.close();
  const result = await underControl(
    gw,
    "16 SSE replays of 40 MB from one address",
    async () => {
      const readers = Bun.spawn([process.execPath, resolve(import.meta.dir, "../support/sse-drain.ts"), `${gw.url}/api/v1/stream?topic=${topic}&start=earliest`, "16", "10"], { stdout: "pipe", stderr: "inherit" });
      return JSON.parse(await new Response(readers.stdout).text()) as { bytes: number; streams: number };
    },
    // 27-38 ms when the shared budget landed; 69-97 ms on this machine kind on 12-01 evening, with
    // this tree and the one before it alike (four alternating runs each), and 101 once in CI. Before
    // the shared budget: 142 and 192 ms on a faster day.
    { p99UnderMs: 125 },
  );
  console.log(`16 SSE replays: ${(result.bytes / 1e6).toFixed(0)} MB read in 10 s over ${result.streams} streams`);
  expect(result.streams).toBe(16);
  // The replays were served, not starved: at least the whole history once over all streams.
  expect(result.bytes).toBeGreaterThan(40e6);
}, 120_000);
