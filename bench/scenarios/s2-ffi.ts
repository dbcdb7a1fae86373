import { parseBenchArgs } from "../harness/options";
import { measureRaw, type RawRuntime } from "../harness/raw-producer";
import { machine, type RunReport } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * S2 raw-ffi against S2 raw-node: the same producer (the gateway's records with the five
 * CloudEvents headers, its settings) through bun:ffi and through the Node addon, in A-B-B-A order
 * on one broker, so that a drift of the machine's speed weighs on both alike.
 */
export const s2ffi: Scenario = {
  name: "s2-ffi",
  title: "physical limit, raw librdkafka through bun:ffi (raw-ffi) against the Node binding (raw-node)",
  async run(argv) {
    const { common: o } = parseBenchArgs(argv, "bun run bench -- s2-ffi [options]  (--workers = producer processes per run)", {}, { duration: "8" });
    const stack = await Stack.create({ brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const rate: Record<RawRuntime, number[]> = { ffi: [], node: [] };
    const cpu: Record<RawRuntime, number[]> = { ffi: [], node: [] };
    try {
      for (const runtime of ["ffi", "node", "node", "ffi"] as const) {
        const { raw, run } = await measureRaw(stack, o, o.workers, runtime);
        rate[runtime].push(raw.eventsPerSec);
        cpu[runtime].push(raw.cpuMicrosPerRecord);
        runs.push(run);
      }
    } finally {
      await stack.stop();
    }
    const figures: Record<string, number | string> = {
      "raw-ffi records/s (mean of 2)": Math.round(mean(rate.ffi)),
      "raw-node records/s (mean of 2)": Math.round(mean(rate.node)),
      "raw-ffi / raw-node records/s": Number((mean(rate.ffi) / mean(rate.node)).toFixed(2)),
      "raw-ffi CPU µs/record (mean of 2)": Number(mean(cpu.ffi).toFixed(2)),
      "raw-node CPU µs/record (mean of 2)": Number(mean(cpu.node).toFixed(2)),
    };
    return {
      scenario: "s2-ffi",
      title: s2ffi.title,
      machine: machine(),
      startedAt,
      figures,
      runs,
      notes: [
        `${o.workers} producer processes per run, ${o.payload}-byte values, ${o.keys} keys, five CloudEvents headers per record, ${o.duration} s per run, order ffi-node-node-ffi.`,
        "Settings on both sides: acks=all, enable.idempotence, linger.ms=5, lz4, murmur2_random.",
        "CPU µs/record: the producer processes' own CPU (librdkafka's threads included) over delivered records; the broker's CPU is shown separately.",
      ],
    };
  },
};
