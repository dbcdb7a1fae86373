import { resolve } from "node:path";
import { Packr, Unpackr } from "msgpackr";
import { connect } from "../../src/client";
import { ConfigSchema } from "../../src/config/schema";
import { LatencyHistogram } from "../harness/histogram";
import type { Series } from "../harness/load";
import { numberArg, parseBenchArgs } from "../harness/options";
import { CpuMeter, rssBytes } from "../harness/processes";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";

/**
 * S7: flood isolation. A control connection publishes one event every `--interval` ms and records
 * its ack latency, first alone, then while three hostile clients run, each in its own process: one
 * flooding publishes (pipelined 100-event batches, never waiting), one opening connections as fast
 * as it can, one sending malformed frames; with `--attackers replay`, sixteen replays of a topic's
 * history from one address (issue 13). The gateway runs with its default limits. Reported: the
 * control's p50/p99 quiet and under attack, their ratio, and whether any control request was lost.
 */
const ATTACKER = resolve(import.meta.dir, "../harness/attacker.ts");
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });
const DEFAULTS = ConfigSchema.parse({});

interface ControlResult {
  histogram: LatencyHistogram;
  sent: number;
  acked: number;
  failed: Record<string, number>;
  /** Per second of the run: what was sent and acked, and the acked ones' p50 and p99 (a spike shows when). */
  series: Series;
}

/**
 * One connection, one publish at a time, paced: its latency is what a quiet client sees. Opened once,
 * before any attack, as an established client is: the attackers share its address (loopback), and
 * the connection churner spends that address's allowance of new connections.
 */
class Control {
  private readonly replies = new Map<number, (f: Record<string, unknown>) => void>();
  private cid = 1;
  private constructor(private readonly ws: WebSocket) {}

  static async open(url: string): Promise<Control> {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    await new Promise<void>((r, j) => ((ws.onopen = () => r()), (ws.onerror = () => j(new Error("control could not connect")))));
    const c = new Control(ws);
    let welcome: (() => void) | undefined;
    ws.onmessage = (m) => {
      const f = unpackr.unpack(new Uint8Array(m.data as ArrayBuffer));
      if (f.t === 2) return welcome?.();
      c.replies.get(f.cid)?.(f);
      c.replies.delete(f.cid);
    };
    await new Promise<void>((r) => ((welcome = r), ws.send(packr.pack({ t: 1, v: 1 }))));
    return c;
  }

  async run(seconds: number, intervalMs: number): Promise<ControlResult> {
    const out: ControlResult = { histogram: new LatencyHistogram(), sent: 0, acked: 0, failed: {}, series: { t: [], sentPerSec: [], ackedPerSec: [], p50Ms: [], p99Ms: [] } };
    const began = performance.now();
    const until = began + seconds * 1000;
    let second = { at: 1, sent: 0, acked: 0, histogram: new LatencyHistogram() };
    const endSecond = () => {
      out.series.t.push(second.at);
      out.series.sentPerSec.push(second.sent);
      out.series.ackedPerSec.push(second.acked);
      out.series.p50Ms.push(second.histogram.percentileMs(50));
      out.series.p99Ms.push(second.histogram.percentileMs(99));
      second = { at: second.at + 1, sent: 0, acked: 0, histogram: new LatencyHistogram() };
    };
    while (performance.now() < until) {
      const cid = this.cid++;
      const t0 = performance.now();
      const answered = new Promise<Record<string, unknown>>((r) => this.replies.set(cid, r));
      this.ws.send(packr.pack({ t: 10, cid, topic: "s7-control", event: { type: "control", data: { cid } } }));
      const reply = await Promise.race([answered, Bun.sleep(30_000).then(() => ({ t: -1, code: "NO_REPLY" }))]);
      out.sent++;
      while (t0 - began >= second.at * 1000) endSecond();
      second.sent++;
      if (reply.t === 20) {
        out.acked++;
        second.acked++;
        out.histogram.record((performance.now() - t0) * 1000);
        second.histogram.record((performance.now() - t0) * 1000);
      } else out.failed[String(reply.code)] = (out.failed[String(reply.code)] ?? 0) + 1;
      const rest = intervalMs - (performance.now() - t0);
      if (rest > 0) await Bun.sleep(rest);
    }
    endSecond();
    return out;
  }

  close(): void {
    this.ws.close();
  }
}

/** `n` events of 1 KB in `topic`, through the gateway at its default limits (several connections). */
async function seed(url: string, topic: string, n: number): Promise<void> {
  const lanes = 8;
  const payload = "x".repeat(1000);
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      const client = await connect({ url });
      for (let i = lane * 500; i < n; i += lanes * 500) {
        await client.publishBatch(Array.from({ length: Math.min(500, n - i) }, (_, j) => ({ type: "history", key: `k${(i + j) % 97}`, data: { i: i + j, payload } })), { topic });
      }
      client.close();
    }),
  );
}

export const s7: Scenario = {
  name: "s7",
  title: "flood isolation: a control connection's ack latency, quiet and under three hostile clients",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(argv, "bun run bench -- s7 [options]", {
      interval: { type: "string", default: "10", help: "ms between the control's publishes" },
      kafka: { type: "boolean", default: false, help: "run on a local Kafka broker instead of the embedded log" },
      attackers: { type: "string", default: "flood,connect,malformed", help: "which hostile clients run, comma-separated" },
      "attacker-nice": { type: "string", default: "19", help: "nice value of the attackers' processes (0: the gateway's own priority)" },
      history: { type: "string", default: "50000", help: "events of 1 KB written first for the replay attacker to read" },
    }, { duration: "10" });
    const interval = numberArg("interval", own.interval, { min: 1 });
    const attackers = String(own.attackers).split(",").filter(Boolean);
    const attackerNice = numberArg("attacker-nice", own["attacker-nice"], { min: 0, integer: true });
    const history = numberArg("history", own.history, { min: 1, integer: true });
    const historyTopic = `s7-history-${Date.now()}`;
    const stack = await Stack.create({ url: o.url, brokers: o.brokers, kafka: Boolean(own.kafka) });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const figures: Record<string, number | string> = {};
    try {
      // The limits a deployment has by default: the stack lifts the rates for capacity benchmarks.
      // The gateway's defaults, unless this run's environment sets a limit (to compare one).
      const limit = (name: "RATE_LIMIT_EVENTS" | "RATE_LIMIT_BYTES" | "RATE_LIMIT_HANDLING_MS" | "CONNECTION_RATE_PER_IP") => process.env[name] ?? String(DEFAULTS[name]);
      const url = await stack.startGateway({ RATE_LIMIT_EVENTS: limit("RATE_LIMIT_EVENTS"), RATE_LIMIT_BYTES: limit("RATE_LIMIT_BYTES"), RATE_LIMIT_HANDLING_MS: limit("RATE_LIMIT_HANDLING_MS"), CONNECTION_RATE_PER_IP: limit("CONNECTION_RATE_PER_IP"), KAFKA_WORKERS: String(o.workers) });
      if (attackers.includes("replay")) await seed(url, historyTopic, history);
      const control = await Control.open(url);
      await control.run(2, interval); // warm-up: JIT, topic creation
      const quietCpu = new CpuMeter(stack.groups());
      quietCpu.start();
      const quiet = await control.run(o.duration, interval);
      runs.push({ label: "control, quiet", figures: { sent: quiet.sent, acked: quiet.acked }, latency: quiet.histogram.summaryMs(), curve: quiet.histogram.curveMs(), cpu: quietCpu.stop(), series: quiet.series });

      // The attackers start up (Bun's start-up costs the box a burst of CPU that no attacker on
      // another machine would) and then attack together, at the moment the control starts
      // measuring: their first second, when the flooder is not closed yet, is measured too.
      const startAt = Date.now() + 1500;
      const procs = attackers.map((mode) => Bun.spawn(["nice", "-n", String(attackerNice), process.execPath, ATTACKER, mode, url, String(o.duration + 1), String(startAt), historyTopic], { stdout: "pipe", stderr: "inherit" }));
      await Bun.sleep(Math.max(0, startAt - Date.now()));
      const cpu = new CpuMeter({ ...stack.groups(), attackers: () => procs.map((p) => p.pid) });
      cpu.start();
      const rssBefore = stack.gateway ? rssBytes(stack.gateway.proc.pid) : 0;
      let rssPeak = rssBefore;
      const sampler = setInterval(() => stack.gateway && (rssPeak = Math.max(rssPeak, rssBytes(stack.gateway.proc.pid))), 200);
      const attacked = await control.run(o.duration, interval);
      control.close();
      clearInterval(sampler);
      const cpuSplit = cpu.stop();
      const outcomes = await Promise.all(procs.map(async (p) => JSON.parse((await new Response(p.stdout).text()).trim().split("\n").at(-1) || "{}")));
      runs.push({ label: "control, under attack", figures: { sent: attacked.sent, acked: attacked.acked, ...Object.fromEntries(Object.entries(attacked.failed).map(([k, v]) => [`failed ${k}`, v])) }, latency: attacked.histogram.summaryMs(), curve: attacked.histogram.curveMs(), cpu: cpuSplit, series: attacked.series });
      for (const a of outcomes) runs.push({ label: `attacker ${a.mode}`, figures: a.counts ?? {} });

      const q = quiet.histogram.summaryMs();
      const a = attacked.histogram.summaryMs();
      figures["control p50 quiet → attacked (ms)"] = `${q.p50} → ${a.p50}`;
      figures["control p99 quiet → attacked (ms)"] = `${q.p99} → ${a.p99}`;
      figures["p99 attacked / quiet"] = Number((a.p99 / q.p99).toFixed(2));
      figures["p50 attacked / quiet"] = Number((a.p50 / q.p50).toFixed(2));
      figures["target p99 within 2x of quiet"] = a.p99 <= 2 * q.p99 ? "met" : "not met";
      figures["control requests lost"] = attacked.sent - attacked.acked;
      figures["control max per second under attack (ms)"] = attacked.series.p99Ms.map((ms) => Math.round(ms)).join(" ");
      if (rssBefore) figures["gateway RSS before → peak (MiB)"] = `${(rssBefore / 2 ** 20).toFixed(0)} → ${(rssPeak / 2 ** 20).toFixed(0)}`;
    } finally {
      await stack.stop();
    }
    return { scenario: "s7", title: s7.title, machine: machine(), startedAt, figures, runs, notes: [`attackers: ${attackers.join(", ")}; control every ${interval} ms for ${o.duration} s; ${own.kafka ? "Kafka" : "embedded log"}`] };
  },
};
