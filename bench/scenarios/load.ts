import { runLoad, waitFor } from "../harness/load";
import { parseBenchArgs } from "../harness/options";
import { CpuMeter } from "../harness/processes";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";
import { openSdkSubscribers } from "../harness/sdk-subscriber";
import { openSubscribers } from "../harness/subscriber";

/**
 * The harness as users point it at their own pipeline: publishers at a fixed rate (open loop) or
 * at max rate, optionally subscribers with a filter reading the same topic, against --url or a
 * gateway started here (embedded log, or Kafka with --kafka / --brokers). They are the client SDK by
 * default, as the pipeline's own applications would be (its pacing to the gateway's rates, retries
 * and reconnects included); `--client raw` sends pre-encoded frames instead, for rates past what
 * one process can build with the SDK.
 */
export const load: Scenario = {
  name: "load",
  title: "publish (and subscribe) load against any gateway",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(argv, "bun run bench -- load [--url ws://host:port/ws] [options]", {
      kafka: { type: "boolean", default: false, help: "start a local Kafka broker for a locally started gateway" },
      client: { type: "string", default: "sdk", help: "sdk (kafka-ws-gateway/client, as applications publish) or raw (pre-encoded frames, next to no client CPU)" },
    });
    const client = own.client === "raw" ? "raw" : own.client === "sdk" ? "sdk" : undefined;
    if (!client) throw new Error(`--client must be sdk or raw, got ${own.client}`);
    const stack = await Stack.create({ url: o.url, brokers: o.brokers, kafka: own.kafka === true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const figures: Record<string, number | string> = {};
    try {
      const url = await stack.startGateway({ KAFKA_WORKERS: String(o.workers), PUBLISH_WINDOW: String(Math.max(o.window, o.batch)) });
      const topic = o.topic ?? `load-${Date.now()}`;
      const subs = o.subscribers > 0 ? await (client === "sdk" ? openSdkSubscribers : openSubscribers)(url, o.subscribers, topic, () => o.filter) : undefined;
      const cpu = new CpuMeter(stack.groups());
      cpu.start();
      const r = await runLoad({ url, label: o.rate ? `publish at ${o.rate} ev/s` : "publish at max rate", connections: o.connections, rate: o.rate, window: o.window, batch: o.batch, payloadBytes: o.payload, keys: o.keys, durationS: o.duration, topic, client });
      runs.push({ label: r.label, figures: { eventsPerSec: r.eventsPerSec, sent: r.sent, acked: r.acked, failed: r.failed, ...Object.fromEntries(Object.entries(r.failures).map(([k, v]) => [`failed ${k}`, v])) }, latency: r.latency, curve: r.curve, series: r.series, cpu: cpu.stop() });
      figures["acked events/s"] = r.eventsPerSec;
      figures["ack p99 ms"] = r.latency.p99;
      if (subs) {
        // Without a filter every subscriber should see every event; with one, we cannot know.
        if (!o.filter) await waitFor(() => subs.delivered >= (r.acked + r.warmupEvents) * o.subscribers, 15_000);
        else await Bun.sleep(2000);
        const latency = subs.latency();
        runs.push({ label: `${o.subscribers} subscriber${o.subscribers > 1 ? "s" : ""}${o.filter ? ", filtered" : ""}`, figures: { delivered: subs.delivered, deliveriesPerSec: Math.round(subs.delivered / r.seconds), droppedForLag: subs.lagged }, latency: latency.summaryMs(), curve: latency.curveMs() });
        figures["delivery p99 ms"] = latency.summaryMs().p99;
        subs.close();
      }
    } finally {
      await stack.stop();
    }
    return {
      scenario: "load",
      title: load.title,
      machine: machine(),
      startedAt,
      figures,
      runs,
      notes: [`${client === "sdk" ? "the client SDK" : "the raw client"}, ${o.connections} connections, ${o.batch} events per ${client === "sdk" ? "tick, one publish() each" : "frame"}, ${o.payload}-byte payloads, ${o.keys} keys, ${o.duration} s; ack latency counts from the intended send time${o.rate ? "" : " (max rate: from the actual send)"}.`],
    };
  },
};
