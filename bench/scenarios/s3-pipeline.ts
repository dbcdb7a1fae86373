import { type LoadResult, runLoad } from "../harness/load";
import { type CommonArgs, parseBenchArgs } from "../harness/options";
import { CpuMeter } from "../harness/processes";
import { type RawResult, runRawProducers } from "../harness/raw-producer";
import { type RunReport, type ScenarioReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";

const USAGE_DEFAULTS = { connections: "4", duration: "10", window: "10000" } as const;

/** S2: the raw librdkafka ceiling, as many producer processes as the gateway has Kafka workers. */
async function measureRaw(stack: Stack, o: CommonArgs, processes: number): Promise<{ raw: RawResult; run: RunReport }> {
  const broker = stack.broker;
  const cpu = new CpuMeter(broker ? { broker: () => [broker.pid] } : {});
  // The producers connect and warm up for 3 s, then start together: measure the broker from then.
  const timer = setTimeout(() => cpu.start(), 3000);
  const raw = await runRawProducers({ brokers: stack.brokersAddr!, topic: `s2-${Date.now()}`, seconds: o.duration, payloadBytes: o.payload, keys: o.keys, processes });
  clearTimeout(timer);
  return { raw, run: { label: `s2 raw librdkafka ×${processes}`, figures: { eventsPerSec: raw.eventsPerSec, failed: raw.failed }, cpu: { producers: raw.cpuPercent, ...cpu.stop() } } };
}

/** S3 against the gateway at `url`: max rate (windows full) when `rate` is 0, else open loop. */
async function measureGateway(stack: Stack, o: CommonArgs, url: string, rate: number, label: string): Promise<{ r: LoadResult; run: RunReport }> {
  const cpu = new CpuMeter(stack.groups());
  cpu.start();
  const r = await runLoad({ url, label, connections: o.connections, rate, window: o.window, batch: o.batch, payloadBytes: o.payload, keys: o.keys, durationS: o.duration, topic: o.topic ?? `s3-${Date.now()}` });
  return { r, run: { label, figures: { eventsPerSec: r.eventsPerSec, failed: r.failed, ...(rate ? { targetRate: rate } : {}) }, latency: r.latency, curve: r.curve, series: r.series, cpu: cpu.stop() } };
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
    const { common: o } = parseBenchArgs(argv, "bun run bench -- s3 [options]", {}, USAGE_DEFAULTS);
    const stack = await Stack.create({ url: o.url, brokers: o.brokers, kafka: true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const figures: Record<string, number | string> = {};
    try {
      let ceiling: number | undefined;
      if (stack.brokersAddr) {
        const s2 = await measureRaw(stack, o, o.workers);
        ceiling = s2.raw.eventsPerSec;
        runs.push(s2.run);
      }
      const url = await stack.startGateway({ KAFKA_WORKERS: String(o.workers) });
      const max = await measureGateway(stack, o, url, o.rate, o.rate ? `s3 at ${o.rate} ev/s` : `s3 max, ${o.workers} workers`);
      runs.push(max.run);
      const half = Math.round(max.r.eventsPerSec / 2 / o.batch) * o.batch;
      if (!o.rate && half > 0) runs.push((await measureGateway(stack, o, url, half, `s3 open loop at 50% (${half} ev/s)`)).run);
      figures["S3 events/s (max)"] = max.r.eventsPerSec;
      if (ceiling) {
        figures["S2 events/s (raw librdkafka)"] = ceiling;
        const ratio = max.r.eventsPerSec / ceiling;
        figures["S3 / S2"] = Number(ratio.toFixed(2));
        figures["target S3 ≥ 0.70 × S2"] = ratio >= 0.7 ? "met" : "not met";
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
        const url = await stack.startGateway({ KAFKA_WORKERS: String(workers) });
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
