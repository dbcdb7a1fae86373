/**
 * Splits the test files for scripts/test: those that time something run one at a time, alone on the
 * machine, and the rest in N processes side by side (argv[2], default 3; each with its own broker),
 * balanced by how long each file took (test/seconds.json; a file not in it counts as 10 s).
 *
 * A file times something when it asserts a latency or a duration from above: a control's p99 (the
 * `p99UnderMs` of underControl), a reply within N ms, a stall's length. Run beside another file's
 * load on 2 cores, those bounds measure the neighbour. A control with no such bound asserts only
 * that every request was answered, which load does not change. A file says so itself with
 * `test-plan: alone` when no pattern finds it.
 * And a file whose every such bound is far from anything load makes (an answer "at once" against a
 * deadline many times longer; a limit's own hint, not a time measured) says `test-plan: shards`.
 *
 * Prints 1 + N lines: the alone files, then each shard's, space-separated.
 */
import { readFileSync } from "node:fs";
import { Glob } from "bun";

const TIMES = /test-plan: alone|UnderMs|expect\([^;]*(p50|p99|p999|median|[lL]atenc|[mM]s\b|Ms\b|took|elapsed|waited|Date\.now|performance\.now)[^;]*\)\.toBeLessThan/;
const UNKNOWN_SECONDS = 10;

const seconds: Record<string, number> = JSON.parse(readFileSync("test/seconds.json", "utf8"));
const files = [...new Glob("test/**/*.test.ts").scanSync(".")].sort();
const alone = files.filter((f) => {
  const text = readFileSync(f, "utf8");
  return TIMES.test(text) && !text.includes("test-plan: shards");
});
const rest = files.filter((f) => !alone.includes(f)).sort((a, b) => (seconds[b] ?? UNKNOWN_SECONDS) - (seconds[a] ?? UNKNOWN_SECONDS));
const count = Number(process.argv[2] ?? 3);
if (!Number.isInteger(count) || count < 1) throw new Error(`shards: a whole number of at least 1, not ${process.argv[2]}`);
const shards = Array.from({ length: count }, () => ({ files: [] as string[], total: 0 }));
for (const f of rest) {
  const lighter = shards.reduce((a, b) => (b.total < a.total ? b : a));
  lighter.files.push(f);
  lighter.total += seconds[f] ?? UNKNOWN_SECONDS;
}
console.log(alone.join(" "));
for (const s of shards) console.log(s.files.sort().join(" "));
