/**
 * Micro-bench of FilterIndex.match: what indexing buys. 1,000 subscribers with distinct exact types
 * (one Map lookup per event) against 1,000 subscribers with `where`-only filters (all in the scan
 * list, every one evaluated per event), plus 1,000 distinct type prefixes for the middle ground.
 *
 *   bun bench/filter-index.ts [--subscribers 1000] [--seconds 1]
 */
import { parseArgs } from "node:util";
import { type CompiledFilter, type FilterableEvent, compileFilter } from "../src/subscribe/filter";
import { FilterIndex } from "../src/subscribe/filter-index";

const { values: o } = parseArgs({
  args: process.argv.slice(2),
  options: { subscribers: { type: "string", default: "1000" }, seconds: { type: "string", default: "1" } },
});
const n = Number(o.subscribers);
const seconds = Number(o.seconds);

// Events spread over the same n types, with a payload so `where` filters have something to read.
const events: FilterableEvent[] = Array.from({ length: 4096 }, (_, i) => ({
  type: `order.t${i % n}.created`,
  key: `k${i % 97}`,
  headers: {},
  data: { n: i % n, amount: i },
}));

function run(name: string, filter: (i: number) => CompiledFilter): number {
  const index = new FilterIndex<number>();
  for (let i = 0; i < n; i++) index.add(i, filter(i));
  let delivered = 0;
  const onMatch = () => void delivered++;
  for (let i = 0; i < 20_000; i++) index.match(events[i & 4095]!, onMatch); // warm up the JIT
  let count = 0;
  let evaluated = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < 1024; i++) evaluated += index.match(events[(count + i) & 4095]!, onMatch);
    count += 1024;
  }
  const rate = count / ((performance.now() - started) / 1000);
  console.log(`${name.padEnd(34)} ${Math.round(rate).toLocaleString("en").padStart(12)} events/s   ${(evaluated / count).toFixed(1).padStart(6)} groups evaluated/event`);
  return rate;
}

console.log(`FilterIndex.match, ${n} subscribers, each with its own filter; every event matches exactly one\n`);
const exact = run("distinct exact types", (i) => compileFilter({ types: [`order.t${i}.created`] }));
run("distinct type prefixes", (i) => compileFilter({ types: [`order.t${i}.*`] }));
const scan = run("where-only (scan list)", (i) => compileFilter({ where: `data.n == ${i}` }));
console.log(`\nexact types / scan list: ${(exact / scan).toFixed(0)}×`);
