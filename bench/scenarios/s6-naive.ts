import { resolve } from "node:path";
import type { Subprocess } from "bun";
import { resolveNodeBinary } from "../harness/node-binary";
import { type LoadResult, runLoad } from "../harness/load";
import { numberArg, parseBenchArgs } from "../harness/options";
import { CpuMeter } from "../harness/processes";
import { measureRaw } from "../harness/raw-producer";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";

const root = resolve(import.meta.dir, "../..");

/**
 * S6: the gateway against the bridge users would otherwise write (bench/naive-bridge/server.cjs:
 * ws + KafkaJS, idempotent, one `producer.send()` per frame), on the same broker, under the same
 * load (max rate by default). Then the same pair at one event per frame, shorter (--batch1-seconds)
 * so that the whole scenario, broker start included, stays under two minutes on a 2-core machine:
 * at one event per frame the bridge's full windows take ~15 s to drain after sending stops.
 */
export const s6: Scenario = {
  name: "s6",
  title: "gateway vs a hand-rolled ws + KafkaJS bridge, same broker, same load",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(
      argv,
      "bun run bench -- s6 [options]",
      { "batch1-seconds": { type: "string", default: "5", help: "then compare both at 1 event per frame for this many seconds each (0 = skip)" } },
      { connections: "4", duration: "10", window: "10000" },
    );
    if (o.url) throw new Error("s6 starts both systems itself; --url does not apply");
    const batch1S = numberArg("batch1-seconds", own["batch1-seconds"]);
    const stack = await Stack.create({ brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const notes: string[] = [];
    const figures: Record<string, number | string> = {};
    let bridge: Bridge | undefined;
    try {
      const pair = async (batch: number, durationS: number) => {
        const load = (url: string, label: string) =>
          runLoad({ url, label, connections: o.connections, rate: o.rate, window: o.window, batch, payloadBytes: o.payload, keys: o.keys, durationS, topic: o.topic ?? `s6-${label.replace(/\W+/g, "-")}-${Date.now()}` });

        await stack.gateway?.stop();
        stack.gateway = undefined;
        bridge = await startBridge(stack.brokersAddr!, o.window);
        const b = bridge;
        let cpu = new CpuMeter({ ...stack.groups(), bridge: () => [b.pid] });
        cpu.start();
        const naive = await load(bridge.url, `naive bridge, batch ${batch}`);
        const naiveCpu = cpu.stop();
        runs.push(toRun(naive, naiveCpu));
        await bridge.stop();
        if (b.errors.length > 0) notes.push(`naive bridge, batch ${batch}, its KafkaJS logged: ${summarize(b.errors)}`);
        bridge = undefined;

        const url = await stack.startGateway({ KAFKA_WORKERS: String(o.workers), PUBLISH_WINDOW: String(Math.max(o.window, batch)) });
        cpu = new CpuMeter(stack.groups());
        cpu.start();
        const gw = await load(url, `gateway, batch ${batch}`);
        const gwCpu = cpu.stop();
        runs.push(toRun(gw, gwCpu));
        return { naive, gw, naiveCpu: naiveCpu.bridge ?? 0, gwCpu: (gwCpu.gateway ?? 0) + (gwCpu.workers ?? 0) };
      };

      const main = await pair(o.batch, o.duration);
      const ratio = main.gw.eventsPerSec / Math.max(1, main.naive.eventsPerSec);
      figures[`naive events/s at ${o.batch} per frame`] = main.naive.eventsPerSec;
      figures[`gateway events/s at ${o.batch} per frame`] = main.gw.eventsPerSec;
      figures["gateway over naive"] = Number(ratio.toFixed(1));
      figures["target gateway >= 5x naive"] = ratio >= 5 ? "met" : `not met (${ratio.toFixed(1)}x)`;
      // The physical ceiling on the same broker (S2): what no bridge on this machine can beat.
      const { raw, run: rawRun } = await measureRaw(stack, o, o.workers);
      runs.push(rawRun);
      figures["raw librdkafka (S2) over naive"] = Number((raw.eventsPerSec / Math.max(1, main.naive.eventsPerSec)).toFixed(1));
      figures["gateway / raw librdkafka (S2)"] = Number((main.gw.eventsPerSec / Math.max(1, raw.eventsPerSec)).toFixed(2));
      // Events per second of one core used by the system itself (the broker and the load client excluded).
      const perCore = (eps: number, pct: number) => (pct > 0 ? Math.round(eps / (pct / 100)) : 0);
      figures["naive events per core-second (bridge process)"] = perCore(main.naive.eventsPerSec, main.naiveCpu);
      figures["gateway events per core-second (gateway + workers)"] = perCore(main.gw.eventsPerSec, main.gwCpu);
      if (batch1S > 0) {
        const one = await pair(1, batch1S);
        figures["naive events/s at 1 per frame"] = one.naive.eventsPerSec;
        figures["gateway events/s at 1 per frame"] = one.gw.eventsPerSec;
        figures["gateway over naive at 1 per frame"] = Number((one.gw.eventsPerSec / Math.max(1, one.naive.eventsPerSec)).toFixed(1));
      }
      for (const r of runs) {
        const failed = Number(r.figures.failed);
        if (failed > 0) notes.push(`${r.label}: ${failed} events failed (${r.figures.failures})`);
      }
      notes.push("the bridge sends uncompressed (KafkaJS has no built-in lz4); the gateway compresses with lz4");
      notes.push("KafkaJS 2.2.4 lets an idempotent producer have one produce request in flight per broker, so the bridge sends one frame's events at a time");
      if (o.rate === 0) notes.push(`max rate: every connection keeps ${o.window} events in flight, so latency is mostly in-flight / throughput; compare latencies at a fixed --rate`);
    } finally {
      await bridge?.stop();
      await stack.stop();
    }
    return { scenario: "s6", title: s6.title, machine: machine(), startedAt, figures, runs, notes };
  },
};

function toRun(r: LoadResult, cpu: Record<string, number>): RunReport {
  const failures = Object.entries(r.failures).map(([k, v]) => `${k}:${v}`).join(",");
  return { label: r.label, figures: { eventsPerSec: r.eventsPerSec, framesPerSec: Math.round(r.eventsPerSec / r.batch), failed: r.failed, ...(failures ? { failures } : {}) }, latency: r.latency, curve: r.curve, series: r.series, cpu };
}

interface Bridge {
  url: string;
  pid: number;
  /** Its stderr lines so far (KafkaJS logs). */
  errors: string[];
  stop(): Promise<void>;
}

/** Starts bench/naive-bridge/server.cjs on Node and waits for its "LISTENING <port>" line. */
async function startBridge(brokers: string, window: number): Promise<Bridge> {
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn([resolveNodeBinary(process.env.NODE_BINARY), resolve(import.meta.dir, "../naive-bridge/server.cjs"), brokers, "0", String(window)], {
    cwd: root,
    env: { ...process.env, NODE_PATH: resolve(root, "node_modules"), KAFKAJS_NO_PARTITIONER_WARNING: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  // KafkaJS logs retried errors (the coordinator still loading on a fresh broker, a topic being
  // auto-created) as ERROR lines; kept here and counted in the notes rather than mixed into the progress.
  const errors: string[] = [];
  void (async () => {
    const d = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stderr) {
      buf += d.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        errors.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) errors.push(buf);
  })().catch(() => {});
  const killOnExit = () => proc.kill("SIGKILL");
  process.on("exit", killOnExit);
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let out = "";
  const deadline = Date.now() + 30_000;
  let port = 0;
  while (!port) {
    const next = await Promise.race([reader.read(), Bun.sleep(Math.max(0, deadline - Date.now())).then(() => "timeout" as const)]);
    if (next === "timeout" || next.done) {
      proc.kill("SIGKILL");
      throw new Error(`naive bridge did not print LISTENING (${next === "timeout" ? "30 s timeout" : `exit ${await proc.exited}`}): ${out}\n${errors.join("\n")}`);
    }
    out += decoder.decode(next.value, { stream: true });
    port = Number(/^LISTENING (\d+)$/m.exec(out)?.[1] ?? 0);
  }
  // Keep draining stdout so the bridge never blocks on a full pipe.
  void (async () => {
    while (!(await reader.read()).done);
  })().catch(() => {});
  return {
    url: `ws://127.0.0.1:${port}`,
    pid: proc.pid,
    errors,
    async stop() {
      process.off("exit", killOnExit);
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

/** KafkaJS's JSON log lines, as "N× message: error" per distinct pair. */
function summarize(lines: string[]): string {
  const counts = new Map<string, number>();
  for (const line of lines) {
    let k = line.slice(0, 200);
    try {
      const j = JSON.parse(line);
      k = `${j.message}${j.error ? `: ${j.error}` : ""}`;
    } catch {}
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n}x ${k}`).join("; ");
}
