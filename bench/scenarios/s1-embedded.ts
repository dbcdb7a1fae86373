import { runLoad } from "../harness/load";
import { parseBenchArgs } from "../harness/options";
import { CpuMeter } from "../harness/processes";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";

/**
 * S1: the gateway alone, on its embedded log, at 1, 10 and 100 events per frame: what the
 * WebSocket edge, decoding, validation and acks cost when no Kafka is in the way.
 */
export const s1: Scenario = {
  name: "s1",
  title: "ingest into the embedded log (no Kafka), by events per frame",
  async run(argv) {
    const { common: o } = parseBenchArgs(argv, "bun run bench -- s1 [options]", {}, { connections: "4", duration: "8", window: "20000" });
    const stack = await Stack.create({ url: o.url, kafka: false });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const byBatch: Record<number, number> = {};
    try {
      for (const batch of o.url ? [o.batch] : [1, 10, 100]) {
        const url = await stack.startGateway({ PUBLISH_WINDOW: String(Math.max(o.window, batch)), EMBEDDED_RETENTION_RECORDS: "100000" });
        const cpu = new CpuMeter(stack.groups());
        cpu.start();
        const r = await runLoad({ url, label: `s1 batch ${batch}`, connections: o.connections, rate: o.rate, window: o.window, batch, payloadBytes: o.payload, keys: o.keys, durationS: o.duration, topic: o.topic ?? `s1-${batch}-${Date.now()}` });
        byBatch[batch] = r.eventsPerSec;
        runs.push({ label: r.label, figures: { eventsPerSec: r.eventsPerSec, framesPerSec: Math.round(r.eventsPerSec / batch), failed: r.failed }, latency: r.latency, curve: r.curve, series: r.series, cpu: cpu.stop() });
      }
    } finally {
      await stack.stop();
    }
    const figures: Record<string, number | string> = {};
    if (byBatch[100]) figures["events/s at 100 per frame"] = byBatch[100];
    if (byBatch[100] && byBatch[1]) figures["100-per-frame over 1-per-frame"] = Number((byBatch[100] / byBatch[1]).toFixed(1));
    if (byBatch[100]) figures["target 1M events/s at 100 per frame"] = byBatch[100] >= 1_000_000 ? "met" : `not met (${(byBatch[100] / 1e6).toFixed(2)}M)`;
    return { scenario: "s1", title: s1.title, machine: machine(), startedAt, figures, runs, notes: [] };
  },
};
