/**
 * Splits the test files for scripts/test: those that time something run one at a time, alone on the
 * machine, and the rest in two processes side by side (each with its own broker), balanced by how
 * long each file took (test/seconds.json; a file not in it counts as 10 s).
 *
 * A file times something when it asserts a latency or a duration from above: a control's p99, a
 * reply within N ms, a stall's length. Run beside another file's load on 2 cores, those bounds
 * measure the neighbour. A file says so itself with `test-plan: alone` when no pattern finds it.
 *
 * Prints three lines: the alone files, then each shard's, space-separated.
 */
import { readFileSync } from "node:fs";
import { Glob } from "bun";

const TIMES =
  /test-plan: alone|underControl|Control\.start|p99|latenc|(Date|performance)\.now\(\) - \w+\)\.toBeLessThan|(Ms|\.ms)\)\.toBeLessThan|maxLatencyMs|pongMs/;
const UNKNOWN_SECONDS = 10;

const seconds: Record<string, number> = JSON.parse(readFileSync("test/seconds.json", "utf8"));
const files = [...new Glob("test/**/*.test.ts").scanSync(".")].sort();
const alone = files.filter((f) => TIMES.test(readFileSync(f, "utf8")));
const rest = files.filter((f) => !alone.includes(f)).sort((a, b) => (seconds[b] ?? UNKNOWN_SECONDS) - (seconds[a] ?? UNKNOWN_SECONDS));
const shards: { files: string[]; total: number }[] = [{ files: [], total: 0 }, { files: [], total: 0 }];
for (const f of rest) {
  const lighter = shards[0]!.total <= shards[1]!.total ? shards[0]! : shards[1]!;
  lighter.files.push(f);
  lighter.total += seconds[f] ?? UNKNOWN_SECONDS;
}
console.log(alone.join(" "));
for (const s of shards) console.log(s.files.sort().join(" "));
