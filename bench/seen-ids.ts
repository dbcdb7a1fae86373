/**
 * Micro-bench of SeenIds, the ids idempotent publish remembers: what a publish with an id costs it
 * (a lookup, then the id added at its ack) at the default bound of 500,000 ids, once the bound is
 * reached and every new id forgets the oldest, and the longest single call: the event loop stalls
 * for that long. Beside it, in the same run, one Map per topic (what SeenIds was before it spread
 * each topic over shards), churned the same way.
 *
 *   bun bench/seen-ids.ts [--ids 2000000] [--max-ids 500000] [--rounds 3]
 */
import { parseArgs } from "node:util";
import { eventIdentity } from "../src/ingest/event-identity";
import { SeenIds } from "../src/ingest/seen-ids";

const { values: o } = parseArgs({
  args: process.argv.slice(2),
  options: { ids: { type: "string", default: "2000000" }, "max-ids": { type: "string", default: "500000" }, rounds: { type: "string", default: "3" } },
});
const total = Number(o.ids);
const maxIds = Number(o["max-ids"]);

interface Store {
  get(id: string, now: number): unknown;
  add(id: string, seq: number, now: number): void;
}

/** One Map for the topic, an object per id, and a FIFO of them: SeenIds as it was before 394acc5. */
function oneMap(): Store {
  const m = new Map<string, { partition: number; offset: number; at: number; id: string }>();
  let fifo: Array<{ id: string }> = [];
  let head = 0;
  return {
    get: (id) => m.get(id),
    add(id, seq, now) {
      if (m.has(id)) return;
      const e = { partition: 0, offset: seq, at: now, id };
      m.set(id, e);
      fifo.push(e);
      while (fifo.length - head > maxIds) m.delete(fifo[head++]!.id);
      if (head > 4096 && head * 2 > fifo.length) {
        fifo = fifo.slice(head);
        head = 0;
      }
    },
  };
}

function seenIds(): Store {
  const s = new SeenIds({ windowMs: 3_600_000, maxIds });
  return { get: (id, now) => s.get("t", id, now), add: (id, seq, now) => s.add("t", id, 0, seq, now) };
}

// The ids are made before the clock starts: a client's UUIDs, as the SDK sends them.
const ids = Array.from({ length: total }, () => eventIdentity(undefined, crypto.randomUUID()));

function run(name: string, store: Store): { name: string; usPerId: number; worstMs: number; over10ms: number } {
  const now = Date.now();
  let worst = 0;
  let over10 = 0;
  let busy = 0;
  let measured = 0;
  for (let i = 0; i < total; i++) {
    const t0 = performance.now();
    store.get(ids[i]!, now);
    store.add(ids[i]!, i, now);
    const took = performance.now() - t0;
    if (i < maxIds) continue; // filling up: the steady state is what a busy instance lives in
    busy += took;
    measured++;
    if (took > worst) worst = took;
    if (took > 10) over10++;
  }
  return { name, usPerId: (busy * 1000) / measured, worstMs: worst, over10ms: over10 };
}

console.log(`${total.toLocaleString()} ids, bound ${maxIds.toLocaleString()}; figures over the ids past the bound`);
for (let r = 0; r < Number(o.rounds); r++) {
  for (const [name, make] of [["SeenIds", seenIds], ["one Map", oneMap]] as const) {
    const x = run(name, make());
    console.log(`  round ${r + 1}  ${x.name.padEnd(8)} ${x.usPerId.toFixed(2)} µs per id (get + add)   longest call ${x.worstMs.toFixed(1)} ms   calls over 10 ms: ${x.over10ms}`);
  }
}
