import { resolve } from "node:path";
import { resolveNodeBinary } from "../../src/kafka/node-runtime";
import type { CommonArgs } from "./options";
import { CpuMeter } from "./processes";
import type { RunReport } from "./report";
import type { Stack } from "./stack";

const root = resolve(import.meta.dir, "../..");

export interface RawResult {
  processes: number;
  eventsPerSec: number;
  failed: number;
  /** CPU of all producer processes together, % of one core, as each measured itself. */
  cpuPercent: number;
}

/**
 * S2, the ceiling: `processes` Node producers (as many as the gateway has Kafka workers) writing
 * the gateway's records with its settings, started together, for `seconds`.
 */
export async function runRawProducers(o: { brokers: string; topic: string; seconds: number; payloadBytes: number; keys: number; processes: number }): Promise<RawResult> {
  const startAt = Date.now() + 3000; // time for every process to connect and warm up
  const procs = Array.from({ length: o.processes }, () =>
    Bun.spawn([resolveNodeBinary(), `${root}/bench/raw-producer.cjs`, o.brokers, o.topic, String(o.seconds), String(o.payloadBytes), String(o.keys), String(startAt)], {
      env: { ...process.env, NODE_PATH: `${root}/node_modules` },
      stdout: "pipe",
      stderr: "inherit",
    }),
  );
  const outs = await Promise.all(
    procs.map(async (p) => {
      const out = await new Response(p.stdout).text();
      if ((await p.exited) !== 0) throw new Error(`raw producer failed: ${out}`);
      return JSON.parse(out.trim().split("\n").at(-1)!) as { eventsPerSec: number; failed: number; cpuPercent: number };
    }),
  );
  return { processes: o.processes, eventsPerSec: outs.reduce((a, r) => a + r.eventsPerSec, 0), failed: outs.reduce((a, r) => a + r.failed, 0), cpuPercent: outs.reduce((a, r) => a + r.cpuPercent, 0) };
}

/** S2 on a scenario's broker: the ceiling, with the broker's CPU, as one run of its report. */
export async function measureRaw(stack: Stack, o: Pick<CommonArgs, "duration" | "payload" | "keys">, processes: number): Promise<{ raw: RawResult; run: RunReport }> {
  const broker = stack.broker;
  const cpu = new CpuMeter(broker ? { broker: () => [broker.pid] } : {});
  // The producers connect and warm up for 3 s, then start together: measure the broker from then.
  const timer = setTimeout(() => cpu.start(), 3000);
  const raw = await runRawProducers({ brokers: stack.brokersAddr!, topic: `s2-${Date.now()}`, seconds: o.duration, payloadBytes: o.payload, keys: o.keys, processes });
  clearTimeout(timer);
  return { raw, run: { label: `s2 raw librdkafka ×${processes}`, figures: { eventsPerSec: raw.eventsPerSec, failed: raw.failed }, cpu: { producers: raw.cpuPercent, ...cpu.stop() } } };
}
