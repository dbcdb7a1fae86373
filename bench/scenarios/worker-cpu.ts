import { resolve } from "node:path";
import { runLoad } from "../harness/load";
import { numberArg, parseBenchArgs } from "../harness/options";
import { childrenOf, cpuSeconds, threadCpuSeconds } from "../harness/processes";
import { measureRaw } from "../harness/raw-producer";
import { machine, type RunReport } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";
import { median, spread } from "../harness/stats";

/**
 * CPU per record of the Kafka workers (issue 14: ≤ 5 µs with the five CloudEvents headers), measured
 * where it is spent: the S3 shape (100 events per frame, acks=all, 2 workers, real Kafka) through the
 * gateway, with the utime + stime of the worker processes (/proc/<pid>/stat, librdkafka's threads
 * included) and of the gateway over the measured part, divided by the records acked in it. Other
 * agents share the cores, so CPU per record (which contention moves little) is the figure; records/s
 * is shown but is not comparable across runs.
 *
 * The cost per record depends on the rate (librdkafka's broker threads pay per request, and a
 * lower rate fills smaller batches), so `--rate N` drives the gateway open loop at N events/s
 * instead of at its maximum: before and after are then compared at the same load.
 *
 * Beside it, in the same run, raw-ffi: the same records produced by bench/raw-ffi-producer.ts with no
 * gateway, the floor a worker is compared against. With `--before DIR` (a checkout of an older commit,
 * with node_modules), that tree's gateway and worker run too, so before and after are side by side.
 */
const USAGE_DEFAULTS = { connections: "4", duration: "8", window: "10000", workers: "2" } as const;

type Kind = "raw-ffi" | "raw-ffi at now's rate" | "before" | "now";

interface Sample {
  set: number;
  kind: Kind;
  workerUs: number;
  gatewayUs: number;
  eventsPerSec: number;
  /** Workers' CPU µs per record by thread name (the JS thread, librdkafka's, the runtime's). */
  threads: Record<string, number>;
}

export const workerCpu: Scenario = {
  name: "worker-cpu",
  title: "Kafka worker CPU µs per record through the gateway (S3 shape) against raw-ffi",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(
      argv,
      "bun run bench -- worker-cpu [options]",
      {
        sets: { type: "string", default: "3", help: "sets of runs (each: raw-ffi, [before], now, raw-ffi at now's rate, now, [before], raw-ffi)" },
        before: { type: "string", help: "a checkout of another commit (with node_modules) whose gateway and worker run beside this tree's" },
        warmup: { type: "string", default: "3", help: "seconds of unmeasured load after each gateway start (JIT, topic, connections)" },
        profile: { type: "string", help: "write CPU profiles (--cpu-prof-md) of the gateway and its workers into this folder" },
      },
      USAGE_DEFAULTS,
    );
    const sets = numberArg("sets", own.sets, { min: 1, integer: true });
    const warmup = numberArg("warmup", own.warmup);
    const before = typeof own.before === "string" ? resolve(own.before) : undefined;
    const stack = await Stack.create({ brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const samples: Sample[] = [];
    const env: Record<string, string> = { KAFKA_WORKERS: String(o.workers), PUBLISH_WINDOW: String(Math.max(o.window, o.batch)) };
    // The pool starts its workers with the gateway's environment, so BUN_OPTIONS reaches them too.
    if (typeof own.profile === "string") env.BUN_OPTIONS = `--cpu-prof --cpu-prof-md --cpu-prof-dir=${resolve(own.profile)}`;
    try {
      for (let set = 1; set <= sets; set++) {
        // raw-ffi at the rate the gateway just reached: librdkafka's own threads cost more per
        // record at a lower rate (smaller batches per request), which is not the worker's doing.
        const atRate: Kind = "raw-ffi at now's rate";
        const order: Kind[] = before ? ["raw-ffi", "before", "now", atRate, "now", "before", "raw-ffi"] : ["raw-ffi", "now", atRate, "now", "raw-ffi"];
        for (const kind of order) {
          if (kind === "raw-ffi" || kind === atRate) {
            const rate = kind === atRate ? o.rate || samples.filter((s) => s.kind === "now").at(-1)!.eventsPerSec : 0;
            const { raw, run } = await measureRaw(stack, o, o.workers, "ffi", rate);
            run.label = `set ${set} ${kind} ×${o.workers}`;
            runs.push(run);
            const threads = Object.fromEntries(Object.entries(raw.threadMicrosPerRecord).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round2(v)]));
            run.figures.threadsMicrosPerRecord = Object.entries(threads).map(([k, v]) => `${k} ${v}`).join(", ");
            samples.push({ set, kind, workerUs: raw.cpuMicrosPerRecord, gatewayUs: 0, eventsPerSec: raw.eventsPerSec, threads });
            continue;
          }
          const command = kind === "before" ? [process.execPath, `${before}/src/main.ts`] : undefined;
          const url = await stack.startGateway(env, command);
          const gwPid = stack.gateway!.proc.pid;
          const shape = { url, connections: o.connections, rate: o.rate, window: o.window, batch: o.batch, payloadBytes: o.payload, keys: o.keys, topic: o.topic ?? `wcpu-${Date.now()}` };
          if (warmup > 0) await runLoad({ ...shape, label: `set ${set} ${kind} warm-up`, durationS: warmup });
          let workers: number[] = [];
          let w0 = 0;
          let g0 = 0;
          let workerSecs = 0;
          let gatewaySecs = 0;
          let restarted = false;
          let threads0 = new Map<string, number>();
          let threadSecs = new Map<string, number>();
          const label = `set ${set} ${kind}`;
          const r = await runLoad({
            ...shape,
            label,
            durationS: o.duration,
            onMeasure: (phase) => {
              if (phase === "start") {
                workers = childrenOf(gwPid);
                w0 = sum(workers.map(cpuSeconds));
                g0 = cpuSeconds(gwPid);
                threads0 = mergeThreads(workers);
              } else {
                threadSecs = mergeThreads(workers);
                for (const [k, v] of threads0) threadSecs.set(k, (threadSecs.get(k) ?? 0) - v);
                workerSecs = sum(workers.map(cpuSeconds)) - w0;
                gatewaySecs = cpuSeconds(gwPid) - g0;
                restarted = childrenOf(gwPid).join() !== workers.join();
              }
            },
          });
          if (workers.length !== o.workers || restarted) throw new Error(`${label}: expected the same ${o.workers} workers throughout, saw ${workers.join(",")}`);
          const acked = Math.max(1, r.acked);
          const threads = Object.fromEntries([...threadSecs].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round2((v * 1e6) / acked)]));
          const sample: Sample = { set, kind, workerUs: round2((workerSecs * 1e6) / acked), gatewayUs: round2((gatewaySecs * 1e6) / acked), eventsPerSec: r.eventsPerSec, threads };
          samples.push(sample);
          runs.push({
            label,
            figures: { eventsPerSec: r.eventsPerSec, acked: r.acked, failed: r.failed, ...(r.failed ? { failures: Object.entries(r.failures).map(([k, v]) => `${k} ${v}`).join(", ") } : {}), workerCpuMicrosPerRecord: sample.workerUs, gatewayCpuMicrosPerRecord: sample.gatewayUs, workerThreadsMicrosPerRecord: Object.entries(threads).map(([k, v]) => `${k} ${v}`).join(", ") },
            latency: r.latency,
            cpu: { workers: Math.round((workerSecs / r.seconds) * 100), gateway: Math.round((gatewaySecs / r.seconds) * 100) },
          });
          // Profiles are written when a process exits: each gateway run leaves its own.
          await stack.gateway!.stop();
          stack.gateway = undefined;
        }
      }
    } finally {
      await stack.stop();
    }
    return { scenario: "worker-cpu", title: workerCpu.title, machine: machine(), startedAt, figures: summarise(samples, before !== undefined), runs, notes: notes(o, before) };
  },
};

/** Median and range of each figure over the runs, and the ratios taken within each set. */
function summarise(samples: Sample[], withBefore: boolean): Record<string, number | string> {
  const f: Record<string, number | string> = {};
  const kinds: Kind[] = withBefore ? ["now", "before", "raw-ffi", "raw-ffi at now's rate"] : ["now", "raw-ffi", "raw-ffi at now's rate"];
  for (const kind of kinds) {
    const of = samples.filter((s) => s.kind === kind);
    const raw = kind.startsWith("raw-ffi");
    const name = raw ? `${kind}: producers` : `${kind}: workers`;
    f[`${name} CPU µs/record, median [range]`] = spread(of.map((s) => s.workerUs));
    if (!raw) f[`${kind}: gateway CPU µs/record, median [range]`] = spread(of.map((s) => s.gatewayUs));
    {
      const names = [...new Set(of.flatMap((s) => Object.keys(s.threads)))];
      const byThread = names.map((n) => [n, median(of.map((s) => s.threads[n] ?? 0))] as const).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1]);
      f[`${name}' threads, µs/record (medians)`] = byThread.map(([n, v]) => `${n} ${v.toFixed(2)}`).join(", ");
    }
    f[`${kind} records/s, median [range]`] = spread(of.map((s) => s.eventsPerSec), 0);
  }
  // Within a set the machine's state is shared, so the ratios drift less than the figures.
  const perSet = (a: Kind, b: Kind) => {
    const sets = [...new Set(samples.map((s) => s.set))];
    return sets.map((set) => median(samples.filter((s) => s.set === set && s.kind === a).map((s) => s.workerUs)) / median(samples.filter((s) => s.set === set && s.kind === b).map((s) => s.workerUs)));
  };
  f["now workers / raw-ffi, CPU per record, median [range of sets]"] = spread(perSet("now", "raw-ffi"));
  f["now workers / raw-ffi at now's rate, CPU per record, median [range of sets]"] = spread(perSet("now", "raw-ffi at now's rate"));
  if (withBefore) {
    f["now / before workers, CPU per record, median [range of sets]"] = spread(perSet("now", "before"));
    f["before workers / raw-ffi, CPU per record, median [range of sets]"] = spread(perSet("before", "raw-ffi"));
  }
  const now = median(samples.filter((s) => s.kind === "now").map((s) => s.workerUs));
  f["target worker ≤ 5 µs/record"] = now <= 5 ? "met (median)" : "not met (median)";
  return f;
}

function notes(o: { rate: number; connections: number; batch: number; payload: number; keys: number; window: number; duration: number; workers: number }, before?: string): string[] {
  return [
    `${o.rate ? `open loop at ${o.rate} events/s` : "max rate"}, ${o.connections} connections, ${o.batch} events per frame, ${o.payload}-byte payloads, ${o.keys} keys, window ${o.window}, ${o.workers} workers, ${o.duration} s per run; a fresh gateway per run, warmed up first.`,
    "Workers' and gateway's CPU: utime + stime from /proc/<pid>/stat (all threads) over the measured part, over the records acked in it. raw-ffi: the producer processes' own CPU over delivered records.",
    ...(before ? [`before: the gateway and worker of ${before}.`] : []),
  ];
}

/** Thread CPU seconds of several processes, added up by thread name. */
function mergeThreads(pids: number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const pid of pids) for (const [k, v] of threadCpuSeconds(pid)) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const round2 = (x: number) => Math.round(x * 100) / 100;

