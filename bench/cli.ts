/**
 * `bun run bench -- <scenario> [options]`: runs a scenario, prints its figures and the ratios
 * measured in the same run, and writes a JSON result and an HTML report into .reports/ (or
 * $BENCH_REPORTS_DIR).
 */
import { printFigures, writeReport } from "./harness/report";
import type { Scenario } from "./harness/scenario";
import { load } from "./scenarios/load";
import { s0 } from "./scenarios/s0-codec";
import { s1 } from "./scenarios/s1-embedded";
import { s2ffi } from "./scenarios/s2-ffi";
import { s2, s3, scaling } from "./scenarios/s3-pipeline";
import { s4 } from "./scenarios/s4-fanout";
import { s5 } from "./scenarios/s5-connections";
import { s6 } from "./scenarios/s6-naive";
import { s7 } from "./scenarios/s7-flood";
import { sdk } from "./scenarios/sdk";
import { workerCpu } from "./scenarios/worker-cpu";

const scenarios: Scenario[] = [s0, s1, s2, s2ffi, s3, scaling, s4, s5, s6, s7, sdk, workerCpu, load];

const [name, ...argv] = process.argv.slice(2);
const chosen = name === "all" ? scenarios.filter((s) => s !== load && s !== workerCpu) : scenarios.filter((s) => s.name === name);
if (!name || chosen.length === 0) {
  console.error(`usage: bun run bench -- <scenario|all> [options]   (--help after a scenario lists its options)\n`);
  for (const s of scenarios) console.error(`  ${s.name.padEnd(10)} ${s.title}`);
  process.exit(2);
}
for (const s of chosen) {
  const started = performance.now();
  const report = await s.run(argv);
  printFigures(report);
  const files = writeReport(report, process.env.BENCH_REPORTS_DIR || undefined);
  console.log(`  took ${((performance.now() - started) / 1000).toFixed(0)} s; report: ${files.html}`);
}
process.exit(0);
