import { afterAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { rssMiB } from "../support/proc";

let gw: GatewayProcess | null = null;
afterAll(() => gw?.stop(), 60_000);

/**
 * The embedded log keeps records in memory, so what it keeps is bounded in bytes, all topics together
 * (EMBEDDED_RETENTION_BYTES), not only in records per partition: 100,000 records of 250 KB, or a
 * 1 MiB chunk for each partition of every topic a client names, would otherwise hold the process's
 * memory hostage.
 */
test("the embedded log holds at most EMBEDDED_RETENTION_BYTES however large the events and however many topics", async () => {
  // No rate limits: 600 MB from one connection at the handling budget took 60-113 s, none of it retention.
  gw = await startGateway({ EMBEDDED_RETENTION_BYTES: String(32 * 1024 * 1024), RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_HANDLING_MS: "0" });
  const g = gw;
  const client = await connect({ url: g.wsUrl });
  const big = "x".repeat(250_000);
  // A small event first, then 150 MB over 60 topics, four times: the later 450 MB must cost no more
  // memory than the first 150. Freed chunks wait for the garbage collector, whose timing decides the
  // peaks, so RSS is read once the gateway is idle: the least of 5 s of samples. Even so one idle
  // reading after a round has been 125 MiB above another (an uncollected round); a log that kept what
  // it should drop would be 450 MB above, so the bound is a third of that.
  await client.publish({ type: "first", data: "small" }, { topic: "retention-0" });
  const settled: number[] = [];
  for (const round of [0, 1, 2, 3]) {
    for (let i = 0; i < 60; i++) {
      const acks = await client.publishBatch(Array.from({ length: 10 }, () => ({ type: "big", data: big })), { topic: `retention-${round}-${i}` });
      expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
    }
    settled.push(await idleRssMiB(g.proc.pid));
  }
  const log = (await g.health()).log;
  console.log(`4 × 150 MB over 240 topics into a 32 MiB embedded log: retained ${(log.retainedBytes / 2 ** 20).toFixed(1)} MiB; idle RSS ${settled.map((p) => p.toFixed(0)).join(" then ")} MiB`);
  expect(log.retainedBytes).toBeLessThanOrEqual(32 * 1024 * 1024);
  expect(settled[3]! - settled[0]!).toBeLessThan(150);
  // What was dropped is gone as retention drops it: a replay from earliest starts after it.
  const sub = await client.subscribe("retention-0-0", { start: "earliest" });
  expect(sub.live).toBe(true);
  client.close();
}, 180_000);

async function idleRssMiB(pid: number): Promise<number> {
  let least = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 20; i++) {
    await Bun.sleep(250);
    least = Math.min(least, rssMiB(pid));
  }
  return least;
}
