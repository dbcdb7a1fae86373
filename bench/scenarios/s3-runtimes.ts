import { readFileSync } from "node:fs";
import { parseBenchArgs } from "../harness/options";
import { machine, type RunReport } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";
import { measureGateway } from "./s3-pipeline";

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * A gateway without the KAFKA_WORKER_RUNTIME switch ignores it and runs Node workers both times:
 * check what the workers really run, rather than report node against node as a comparison.
 */
function assertRuntime(stack: Stack, runtime: "node" | "bun"): void {
  const pids = stack.groups().workers?.() ?? [];
  if (pids.length === 0) throw new Error("s3-runtimes needs a gateway started here (no --url)");
  for (const pid of pids) {
    const bun = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").some((a) => a.endsWith("worker-bun.ts"));
    if (bun !== (runtime === "bun")) throw new Error(`KAFKA_WORKER_RUNTIME=${runtime} asked, but worker ${pid} runs ${bun ? "bun" : "node"}: this gateway does not have the switch`);
  }
}
type Runtime = "node" | "bun";

/**
 * S3 (WebSocket → gateway → real Kafka, max rate) with the Kafka workers on Node (the addon) and on
 * Bun (librdkafka through bun:ffi), A-B-B-A on one broker; the gateway is restarted for each run.
 */
export const s3runtimes: Scenario = {
  name: "s3-runtimes",
  title: "full pipeline at max rate with KAFKA_WORKER_RUNTIME=node against =bun",
  async run(argv) {
    const { common: o } = parseBenchArgs(argv, "bun run bench -- s3-runtimes [options]", {}, { connections: "4", duration: "8", window: "10000" });
    const stack = await Stack.create({ brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const rate: Record<Runtime, number[]> = { node: [], bun: [] };
    const workerCpu: Record<Runtime, number[]> = { node: [], bun: [] };
    try {
      for (const runtime of ["bun", "node", "node", "bun"] as const) {
        const url = await stack.startGateway({ KAFKA_WORKERS: String(o.workers), KAFKA_WORKER_RUNTIME: runtime, PUBLISH_WINDOW: String(Math.max(o.window, o.batch)) });
        assertRuntime(stack, runtime);
        const m = await measureGateway(stack, o, url, 0, `s3 max, ${o.workers} ${runtime} workers`);
        rate[runtime].push(m.r.eventsPerSec);
        // CPU µs per event of the worker processes (librdkafka's threads included).
        workerCpu[runtime].push(((m.run.cpu?.workers ?? 0) / 100) * 1e6 / Math.max(1, m.r.eventsPerSec));
        runs.push(m.run);
      }
    } finally {
      await stack.stop();
    }
    return {
      scenario: "s3-runtimes",
      title: s3runtimes.title,
      machine: machine(),
      startedAt,
      figures: {
        "S3 events/s, bun workers (mean of 2)": Math.round(mean(rate.bun)),
        "S3 events/s, node workers (mean of 2)": Math.round(mean(rate.node)),
        "bun / node": Number((mean(rate.bun) / mean(rate.node)).toFixed(2)),
        "worker CPU µs/event, bun": Number(mean(workerCpu.bun).toFixed(2)),
        "worker CPU µs/event, node": Number(mean(workerCpu.node).toFixed(2)),
      },
      runs,
      notes: [
        `${o.connections} connections, ${o.batch} events per frame, ${o.payload}-byte payloads, ${o.keys} keys, window ${o.window}, ${o.workers} workers, ${o.duration} s per run, order bun-node-node-bun.`,
        "Broker, gateway, Kafka workers and the load client share the machine; cpu% is per process group, 100 = one core.",
      ],
    };
  },
};
