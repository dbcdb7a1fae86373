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

type BridgeKind = "naive" | "batched";

/**
 * S6: the gateway against the bridges users would otherwise write, on the same broker, under the
 * same client: bench/naive-bridge/server.cjs (ws + KafkaJS, idempotent, one `producer.send()` per
 * frame) and bench/batched-bridge/server.cjs (the same, batching across frames and connections:
 * one send per 5 ms or 500 events). By default one event per frame over 8 connections, at each
 * window of --windows (events in flight per connection). Per window the batched bridge and the
 * gateway alternate order (B-G, then G-B) so that neither always runs on the warmer broker; the
 * naive bridge runs last and shorter (--naive-seconds): at one event per frame its full windows
 * take seconds to drain.
 */
export const s6: Scenario = {
  name: "s6",
  title: "gateway vs hand-rolled ws + KafkaJS bridges (naive and batched), same broker, same client",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(
      argv,
      "bun run bench -- s6 [options]",
      {
        windows: { type: "string", default: "64,1000", help: "events in flight per connection, one comparison per value (overrides --window)" },
        "naive-seconds": { type: "string", default: "5", help: "also run the naive bridge for this many seconds per window (0 = skip)" },
        raw: { type: "boolean", default: false, help: "also measure raw librdkafka (S2) on the same broker" },
      },
      { connections: "8", duration: "10", batch: "1" },
    );
    if (o.url) throw new Error("s6 starts both systems itself; --url does not apply");
    const naiveS = numberArg("naive-seconds", own["naive-seconds"]);
    const windows = String(own.windows).split(",").map((w) => numberArg("windows", w.trim(), { min: 1, integer: true }));
    const stack = await Stack.create({ brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const notes: string[] = [];
    const figures: Record<string, number | string> = {};
    let bridge: Bridge | undefined;
    try {
      const load = (url: string, label: string, window: number, durationS: number) =>
        runLoad({ url, label, connections: o.connections, rate: o.rate, window, batch: o.batch, payloadBytes: o.payload, keys: o.keys, durationS, topic: o.topic ?? `s6-${label.replace(/\W+/g, "-")}-${Date.now()}` });

      const runBridge = async (kind: BridgeKind, window: number, durationS: number) => {
        await stack.gateway?.stop();
        stack.gateway = undefined;
        bridge = await startBridge(kind, stack.brokersAddr!, window);
        const b = bridge;
        const cpu = new CpuMeter({ ...stack.groups(), bridge: () => [b.pid] });
        cpu.start();
        const r = await load(b.url, `${kind} bridge, ${o.batch}/frame, ${o.connections}x${window}`, window, durationS);
        runs.push(toRun(r, cpu.stop()));
        await b.stop();
        if (b.errors.length > 0) notes.push(`${kind} bridge, window ${window}, its KafkaJS logged: ${summarize(b.errors)}`);
        bridge = undefined;
        return r;
      };
      const runGateway = async (window: number, durationS: number) => {
        const url = await stack.startGateway({ KAFKA_WORKERS: String(o.workers), PUBLISH_WINDOW: String(Math.max(window, o.batch)) });
        const cpu = new CpuMeter(stack.groups());
        cpu.start();
        const r = await load(url, `gateway, ${o.batch}/frame, ${o.connections}x${window}`, window, durationS);
        runs.push(toRun(r, cpu.stop()));
        return r;
      };

      const ratio = (a: number, b: number) => Number((a / Math.max(1e-9, b)).toFixed(2));
      for (const [i, window] of windows.entries()) {
        let batched: LoadResult;
        let gw: LoadResult;
        if (i % 2 === 0) {
          batched = await runBridge("batched", window, o.duration);
          gw = await runGateway(window, o.duration);
        } else {
          gw = await runGateway(window, o.duration);
          batched = await runBridge("batched", window, o.duration);
        }
        const naive = naiveS > 0 ? await runBridge("naive", window, naiveS) : undefined;
        const w = `${o.connections}x${window}`;
        figures[`${w} events/s gateway | batched | naive`] = [gw, batched, naive].map((r) => (r ? r.eventsPerSec.toLocaleString("en-US") : "-")).join(" | ");
        figures[`${w} ack p50 ms gateway | batched | naive`] = [gw, batched, naive].map((r) => (r ? r.latency.p50 : "-")).join(" | ");
        figures[`${w} ack p99 ms gateway | batched | naive`] = [gw, batched, naive].map((r) => (r ? r.latency.p99 : "-")).join(" | ");
        figures[`${w} gateway / batched, events/s`] = ratio(gw.eventsPerSec, batched.eventsPerSec);
        figures[`${w} gateway / batched, p50`] = ratio(gw.latency.p50, batched.latency.p50);
        figures[`${w} gateway / batched, p99`] = ratio(gw.latency.p99, batched.latency.p99);
        if (naive) figures[`${w} gateway / naive, events/s`] = ratio(gw.eventsPerSec, naive.eventsPerSec);
      }
      if (own.raw) {
        const { raw, run: rawRun } = await measureRaw(stack, o, o.workers);
        runs.push(rawRun);
        figures["raw librdkafka (S2) events/s"] = raw.eventsPerSec;
      }
      for (const r of runs) {
        const failed = Number(r.figures.failed);
        if (failed > 0) notes.push(`${r.label}: ${failed} events failed (${r.figures.failures})`);
      }
      notes.push("the bridges send uncompressed (KafkaJS has no built-in lz4); the gateway compresses with lz4");
      notes.push("KafkaJS 2.2.4 lets an idempotent producer have one produce request in flight per broker");
      if (o.rate === 0) notes.push("max rate: every connection keeps its window full, so latency is mostly in-flight / throughput");
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

/** Starts bench/<kind>-bridge/server.cjs on Node and waits for its "LISTENING <port>" line. */
async function startBridge(kind: BridgeKind, brokers: string, window: number): Promise<Bridge> {
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn([resolveNodeBinary(process.env.NODE_BINARY), resolve(import.meta.dir, `../${kind}-bridge/server.cjs`), brokers, "0", String(window)], {
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
      throw new Error(`${kind} bridge did not print LISTENING (${next === "timeout" ? "30 s timeout" : `exit ${await proc.exited}`}): ${out}\n${errors.join("\n")}`);
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
