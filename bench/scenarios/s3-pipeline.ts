import { type LoadResult, runLoad } from "../harness/load";
import { type CommonArgs, numberArg, parseBenchArgs } from "../harness/options";
import { CpuMeter } from "../harness/processes";
import { measureRaw } from "../harness/raw-producer";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";
import { median, spread } from "../harness/stats";

const USAGE_DEFAULTS = { connections: "4", duration: "8", window: "10000" } as const;

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** S3 against the gateway at `url`: max rate (windows full) when `rate` is 0, else open loop. */
export async function measureGateway(stack: Stack, o: CommonArgs, url: string, rate: number, label: string): Promise<{ r: LoadResult; run: RunReport }> {
  const cpu = new CpuMeter(stack.groups());
  cpu.start();
  const r = await runLoad({ url, label, connections: o.connections, rate, window: o.window, batch: o.batch, payloadBytes: o.payload, keys: o.keys, durationS: o.duration, topic: o.topic ?? `s3-${Date.now()}` });
  return { r, run: { label, figures: { eventsPerSec: r.eventsPerSec, failed: r.failed, ...(r.failed ? { failures: Object.entries(r.failures).map(([code, n]) => `${code}:${n}`).join(",") } : {}), ...(rate ? { targetRate: rate } : {}) }, latency: r.latency, curve: r.curve, series: r.series, cpu: cpu.stop() } };
}

/** S2 alone: the ceiling S3 is measured against. */
export const s2: Scenario = {
  name: "s2",
  title: "physical limit: raw librdkafka producers, the gateway's records and settings",
  async run(argv) {
    const { common: o } = parseBenchArgs(argv, "bun run bench -- s2 [options]  (--workers = producer processes)", {}, USAGE_DEFAULTS);
    const stack = await Stack.create({ brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    try {
      const { raw, run } = await measureRaw(stack, o, o.workers);
      return { scenario: "s2", title: s2.title, machine: machine(), startedAt, figures: { "events/s": raw.eventsPerSec, "per producer process": Math.round(raw.eventsPerSec / o.workers) }, runs: [run], notes: notes(o) };
    } finally {
      await stack.stop();
    }
  },
};

/**
 * S3: WebSocket → gateway → real Kafka, acks=all, against S2 measured in the same run on the same
 * broker: at max rate, then open loop at half of it, where latency is the figure that matters.
 */
export const s3: Scenario = {
  name: "s3",
  title: "full pipeline into real Kafka (acks=all) against raw librdkafka (S2)",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(argv, "bun run bench -- s3 [options]", { sets: { type: "string", default: "1", help: "sets of raw-node, raw-ffi, S3, S3, raw-ffi, raw-node (each then S3 open loop at 50%)" } }, USAGE_DEFAULTS);
    const sets = numberArg("sets", own.sets);
    const stack = await Stack.create({ url: o.url, brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const figures: Record<string, number | string> = {};
    try {
      const url = await stack.startGateway({ KAFKA_WORKERS: String(o.workers), PUBLISH_WINDOW: String(Math.max(o.window, o.batch)) });
      const label = o.rate ? `s3 at ${o.rate} ev/s` : `s3 max, ${o.workers} workers`;
      if (!stack.brokersAddr) {
        // Only a gateway URL: no broker of ours to measure S2 against.
        const only = await measureGateway(stack, o, url, o.rate, label);
        runs.push(only.run);
        figures["S3 events/s"] = only.r.eventsPerSec;
      } else {
        // Each set runs raw-node, raw-ffi, S3, S3, raw-ffi, raw-node: a drift of the machine's speed
        // during a set (these are shared, noisy machines) weighs on every side alike. Ratios are per
        // set; the figures are their median and range, never the best set.
        const toNode: number[] = [];
        const toFfi: number[] = [];
        const rates: number[] = [];
        const half: Array<{ p50: number; p99: number; p999: number; failed: number }> = [];
        let first = 0;
        for (let set = 1; set <= sets; set++) {
          const raw = { node: [] as number[], ffi: [] as number[] };
          const gw: number[] = [];
          for (const step of ["node", "ffi", "gateway", "gateway", "ffi", "node"] as const) {
            if (step === "gateway") {
              const m = await measureGateway(stack, o, url, o.rate, `${label} (set ${set})`);
              if (set === 1 && gw.length === 0) first = m.r.eventsPerSec;
              gw.push(m.r.eventsPerSec);
              runs.push(m.run);
            } else {
              const s2 = await measureRaw(stack, o, o.workers, step);
              s2.run.label = `s2 raw-${step} ×${o.workers} (set ${set})`;
              raw[step].push(s2.raw.eventsPerSec);
              runs.push(s2.run);
            }
          }
          rates.push(mean(gw));
          toNode.push(mean(gw) / mean(raw.node));
          toFfi.push(mean(gw) / mean(raw.ffi));
          if (!o.rate) {
            const at = Math.round(mean(gw) / 2 / o.batch) * o.batch;
            const h = await measureGateway(stack, o, url, at, `s3 open loop at 50% (${at} ev/s, set ${set})`);
            runs.push(h.run);
            half.push({ ...h.r.latency, failed: h.r.failed });
          }
        }
        figures.sets = sets;
        figures["S3 events/s, median [range of sets]"] = spread(rates, 0);
        figures["S3 / S2 raw-node, median [range of sets]"] = spread(toNode);
        figures["S3 / S2 raw-ffi, median [range of sets]"] = spread(toFfi);
        figures["first run of the fresh gateway / median S3"] = Number((first / median(rates)).toFixed(2));
        if (!o.rate) {
          figures["target S3 ≥ 1.5 × raw-node (median)"] = median(toNode) >= 1.5 ? "met" : "not met";
          figures["target S3 ≥ 0.75 × raw-ffi (median)"] = median(toFfi) >= 0.75 ? "met" : "not met";
          figures["at 50%: ack p50 ms, median [range of sets]"] = spread(half.map((h) => h.p50), 1);
          figures["at 50%: ack p99 ms, median [range of sets]"] = spread(half.map((h) => h.p99), 1);
          figures["at 50%: ack p99.9 ms, median [range of sets]"] = spread(half.map((h) => h.p999), 1);
          figures["at 50%: events refused (all sets)"] = half.reduce((n, h) => n + h.failed, 0);
        }
      }
    } finally {
      await stack.stop();
    }
    return { scenario: "s3", title: s3.title, machine: machine(), startedAt, figures, runs, notes: notes(o) };
  },
};

/** Worker-pool scaling: S3 at max rate with 1, 2 and 4 Kafka workers on one broker. */
export const scaling: Scenario = {
  name: "scaling",
  title: "S3 at max rate with 1, 2 and 4 Kafka workers",
  async run(argv) {
    const { common: o } = parseBenchArgs(argv, "bun run bench -- scaling [options]", {}, { ...USAGE_DEFAULTS, duration: "8" });
    const stack = await Stack.create({ brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const figures: Record<string, number | string> = {};
    try {
      for (const workers of [1, 2, 4]) {
        const url = await stack.startGateway({ KAFKA_WORKERS: String(workers), PUBLISH_WINDOW: String(Math.max(o.window, o.batch)) });
        const { r, run } = await measureGateway(stack, o, url, 0, `s3 max, ${workers} worker${workers > 1 ? "s" : ""}`);
        runs.push(run);
        figures[`events/s with ${workers} workers`] = r.eventsPerSec;
      }
      const one = Number(figures["events/s with 1 workers"]);
      figures["2 workers / 1"] = Number((Number(figures["events/s with 2 workers"]) / one).toFixed(2));
      figures["4 workers / 1"] = Number((Number(figures["events/s with 4 workers"]) / one).toFixed(2));
    } finally {
      await stack.stop();
    }
    return { scenario: "scaling", title: scaling.title, machine: machine(), startedAt, figures, runs, notes: notes(o) };
  },
};

function notes(o: CommonArgs): string[] {
  return [
    `${o.connections} connections, ${o.batch} events per frame, ${o.payload}-byte payloads, ${o.keys} keys, window ${o.window} events per connection, ${o.duration} s per run.`,
    "Producer settings on both sides: acks=all, enable.idempotence, linger.ms=5, lz4, murmur2_random; the raw producers write the same five headers the gateway writes.",
    "Broker, gateway, Kafka workers and the load client share the machine; cpu% is per process group, 100 = one core.",
  ];
}
