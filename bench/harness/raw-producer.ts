import { resolve } from "node:path";
import { resolveNodeBinary } from "./node-binary";
import type { CommonArgs } from "./options";
import { CpuMeter } from "./processes";
import type { RunReport } from "./report";
import type { Stack } from "./stack";

const root = resolve(import.meta.dir, "../..");

/** Which client the raw producers use: the Node addon (raw-node) or bun:ffi (raw-ffi). */
export type RawRuntime = "node" | "ffi";

export interface RawResult {
  processes: number;
  eventsPerSec: number;
  failed: number;
  /** CPU of all producer processes together, % of one core, as each measured itself. */
  cpuPercent: number;
  /** CPU of all producer processes (librdkafka's threads included) per delivered record, µs. */
  cpuMicrosPerRecord: number;
  /** The same by thread name (raw-ffi only: its JS thread, librdkafka's, the runtime's). */
  threadMicrosPerRecord: Record<string, number>;
}

/**
 * S2, the ceiling: `processes` producers (as many as the gateway has Kafka workers; the Node addon
 * or bun:ffi, by `runtime`) writing the gateway's records with its settings, started together, for
 * `seconds`.
 */
export async function runRawProducers(o: { brokers: string; topic: string; seconds: number; payloadBytes: number; keys: number; processes: number; runtime?: RawRuntime; ratePerProcess?: number }): Promise<RawResult> {
  const startAt = Date.now() + 3000; // time for every process to connect and warm up
  const args = [o.brokers, o.topic, String(o.seconds), String(o.payloadBytes), String(o.keys), String(startAt)];
  if (o.ratePerProcess) {
    if (o.runtime !== "ffi") throw new Error("a rate limit is implemented by the raw-ffi producer only");
    args.push(String(Math.round(o.ratePerProcess)));
  }
  // raw-ffi runs in Bun (this very binary); raw-node in a real Node, where the addon loads.
  const cmd = o.runtime === "ffi" ? [process.execPath, `${root}/bench/raw-ffi-producer.ts`] : [resolveNodeBinary(), `${root}/bench/raw-producer.cjs`];
  const procs = Array.from({ length: o.processes }, () =>
    Bun.spawn([...cmd, ...args], {
      env: { ...process.env, NODE_PATH: `${root}/node_modules` },
      stdout: "pipe",
      stderr: "inherit",
    }),
  );
  const outs = await Promise.all(
    procs.map(async (p) => {
      const out = await new Response(p.stdout).text();
      if ((await p.exited) !== 0) throw new Error(`raw producer failed: ${out}`);
      return JSON.parse(out.trim().split("\n").at(-1)!) as { eventsPerSec: number; delivered: number; failed: number; cpuPercent: number; cpuSeconds: number; threads?: Record<string, number> };
    }),
  );
  const sum = (f: (r: (typeof outs)[number]) => number) => outs.reduce((a, r) => a + f(r), 0);
  const delivered = Math.max(1, sum((r) => r.delivered));
  const threadMicrosPerRecord: Record<string, number> = {};
  for (const r of outs) for (const [k, v] of Object.entries(r.threads ?? {})) threadMicrosPerRecord[k] = (threadMicrosPerRecord[k] ?? 0) + (v * 1e6) / delivered;
  return {
    processes: o.processes,
    eventsPerSec: sum((r) => r.eventsPerSec),
    failed: sum((r) => r.failed),
    cpuPercent: sum((r) => r.cpuPercent),
    cpuMicrosPerRecord: Number(((sum((r) => r.cpuSeconds) * 1e6) / delivered).toFixed(2)),
    threadMicrosPerRecord,
  };
}

/** S2 on a scenario's broker: the ceiling, with the broker's CPU, as one run of its report. */
export async function measureRaw(stack: Stack, o: Pick<CommonArgs, "duration" | "payload" | "keys">, processes: number, runtime: RawRuntime = "node", totalRate = 0): Promise<{ raw: RawResult; run: RunReport }> {
  const broker = stack.broker;
  const cpu = new CpuMeter(broker ? { broker: () => [broker.pid] } : {});
  // The producers connect and warm up for 3 s, then start together: measure the broker from then.
  const timer = setTimeout(() => cpu.start(), 3000);
  const raw = await runRawProducers({ brokers: stack.brokersAddr!, topic: `s2-${Date.now()}`, seconds: o.duration, payloadBytes: o.payload, keys: o.keys, processes, runtime, ratePerProcess: totalRate / processes });
  clearTimeout(timer);
  const label = (runtime === "ffi" ? `s2 raw-ffi ×${processes}` : `s2 raw librdkafka ×${processes}`) + (totalRate ? ` at ${Math.round(totalRate)}/s` : "");
  return { raw, run: { label, figures: { eventsPerSec: raw.eventsPerSec, failed: raw.failed, cpuMicrosPerRecord: raw.cpuMicrosPerRecord }, cpu: { producers: raw.cpuPercent, ...cpu.stop() } } };
}
