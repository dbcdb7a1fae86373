import { expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "prom-client";
import { LatencyHistogram, Tally } from "../../src/observability/metrics";

/** The gateway's cheap per-frame metrics read exactly as prom-client's own would, for the same observations. */
test("LatencyHistogram and Tally export what prom-client's Histogram and Counter export", async () => {
  const buckets = [0.001, 0.01, 0.1, 1];
  const theirs = new Registry();
  const ours = new Registry();
  const h = new Histogram({ name: "x_seconds", help: "h", labelNames: ["transport"], buckets, registers: [theirs] });
  const c = new Counter({ name: "y_total", help: "c", labelNames: ["transport"], registers: [theirs] });
  const mine = new LatencyHistogram("x_seconds", "h", buckets, ours);
  const ws = mine.child({ transport: "ws" });
  mine.child({ transport: "http" }); // never observed: no lines, as prom-client has none
  const tallies: Tally[] = [];
  const counter = new Counter({ name: "y_total", help: "c", labelNames: ["transport"], registers: [ours], collect: () => tallies.forEach((t) => t.fold()) });
  const tally = new Tally(counter, { transport: "ws" });
  tallies.push(tally);
  for (const v of [0.0005, 0.001, 0.004, 0.05, 0.5, 2, 30, 0.0001]) {
    h.observe({ transport: "ws" }, v);
    ws.observe(v);
    c.inc({ transport: "ws" }, 3);
    tally.inc(3);
  }
  expect(await ours.metrics()).toBe(await theirs.metrics());
  // A second read counts nothing twice.
  expect(await ours.metrics()).toBe(await theirs.metrics());
});
