/**
 * A heavy but well-behaved publisher: the SDK keeps its window full of 100-event batches for as long
 * as it runs, never exceeding it. In a process of its own, so its CPU is not the test's.
 *   bun test/support/heavy-publisher.ts WS_URL TOPIC SECONDS
 * Prints one JSON line at the end: events acked and failed, the seconds it ran, and the window.
 */
import { connect } from "../../src/client";

const [url, topic, seconds] = process.argv.slice(2);
const gw = await connect({ url: url! });
const events = Array.from({ length: 100 }, (_, i) => ({ type: "heavy", key: `k${i % 16}`, data: { i, pad: "x".repeat(100) } }));
let acked = 0;
let failed = 0;
const started = performance.now();
const until = started + Number(seconds) * 1000;
const inFlight = new Set<Promise<void>>();
// Enough batches queued in the client (60,000 events) that its window (the gateway's PUBLISH_WINDOW) stays full.
while (performance.now() < until) {
  while (inFlight.size < 600) {
    const p: Promise<void> = gw.publishBatch(events, { topic }).then((rs) => {
      for (const r of rs) r.status === "fulfilled" ? acked++ : failed++;
      inFlight.delete(p);
    });
    inFlight.add(p);
  }
  await Promise.race(inFlight);
}
const ranSeconds = (performance.now() - started) / 1000;
await Promise.all(inFlight);
console.log(JSON.stringify({ acked, failed, seconds: ranSeconds, window: gw.limits.window }));
gw.close();
process.exit(0);
