import { fmt, runLoad, waitFor } from "../harness/load";
import { parseBenchArgs } from "../harness/options";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { openSdkSubscribers } from "../harness/sdk-subscriber";
import { Stack } from "../harness/stack";
import { openSubscribers } from "../harness/subscriber";

/** CPU of this process (user + system) in µs since `from`, from process.cpuUsage. */
const cpuSince = (from: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(from);
  return d.user + d.system;
};

/**
 * The client SDK's own cost: the same open-loop load, published and subscribed first through the
 * raw harness client (pre-encoded frames) and then through `kafka-ws-gateway/client`, against
 * one gateway in one run. Both clients run in this process, so process.cpuUsage over a run is the
 * client's CPU; per event it counts one publish and its deliveries to the run's subscribers.
 */
export const sdk: Scenario = {
  name: "sdk",
  title: "the client SDK beside the raw harness client: events/s, ack latency, client CPU per event",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(
      argv,
      "bun run bench -- sdk [--rate 5000] [--duration 10] [--subscribers 1] [--url ws://host:port/ws]",
      { kafka: { type: "boolean", default: false, help: "start a local Kafka broker for a locally started gateway" } },
      // At 5,000 events/s the SDK's 2 ms linger makes frames of about 10 events: the raw client
      // sends frames of that size, so the two put the same frames on the wire.
      { rate: "5000", batch: "10", subscribers: "1" },
    );
    if (!(o.rate > 0)) throw new Error("sdk compares open-loop runs: give --rate > 0");
    const stack = await Stack.create({ url: o.url, brokers: o.brokers, kafka: own.kafka === true });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const figures: Record<string, number | string> = {};
    const cpuPerEvent: Record<string, number> = {};
    try {
      const url = await stack.startGateway({ KAFKA_WORKERS: String(o.workers) });
      const base = o.topic ?? `sdk-${Date.now()}`;

      // Both clients warm up first, unmeasured: otherwise the first run pays for the cold JIT
      // (of this process and of the gateway) and the comparison favours the second.
      for (const client of ["raw", "sdk"] as const) {
        await runLoad({ url, label: `warm-up (${client})`, connections: 1, rate: o.rate, window: o.window, batch: o.batch, payloadBytes: o.payload, keys: o.keys, durationS: 2, topic: `${base}-warm`, client });
      }

      // The same schedule through the harness's raw client (pre-encoded frames, as every other
      // scenario measures), then through connect()/publish()/subscribe().
      for (const client of ["raw", "sdk"] as const) {
        const name = client === "sdk" ? "SDK" : "raw client";
        const topic = `${base}-${client}`;
        const subs = o.subscribers > 0 ? await (client === "sdk" ? openSdkSubscribers : openSubscribers)(url, o.subscribers, topic, () => undefined) : undefined;
        const cpu0 = process.cpuUsage();
        const r = await runLoad({ url, label: `${name} at ${fmt(o.rate)} ev/s`, connections: 1, rate: o.rate, window: o.window, batch: o.batch, payloadBytes: o.payload, keys: o.keys, durationS: o.duration, topic, client });
        if (subs) await waitFor(() => subs.delivered >= (r.acked + r.warmupEvents) * o.subscribers, 15_000);
        const cpuUs = cpuSince(cpu0);
        cpuPerEvent[client] = r.acked ? cpuUs / r.acked : Number.NaN;
        const failures = Object.fromEntries(Object.entries(r.failures).map(([k, v]) => [`failed ${k}`, v]));
        runs.push({ label: `${name}: publish`, figures: { eventsPerSec: r.eventsPerSec, sent: r.sent, acked: r.acked, failed: r.failed, ...failures, clientCpuMicrosPerEvent: Number(cpuPerEvent[client]!.toFixed(1)) }, latency: r.latency, curve: r.curve, series: r.series });
        if (subs) {
          const l = subs.latency();
          runs.push({ label: `${name}: subscribe`, figures: { delivered: subs.delivered, droppedForLag: subs.lagged }, latency: l.summaryMs(), curve: l.curveMs() });
          subs.close();
        }
      }

      const [rawPub, , sdkPub] = o.subscribers > 0 ? runs : [runs[0], undefined, runs[1]];
      figures["raw events/s"] = rawPub!.figures.eventsPerSec!;
      figures["sdk events/s"] = sdkPub!.figures.eventsPerSec!;
      figures["raw ack p50/p99 ms"] = `${rawPub!.latency!.p50} / ${rawPub!.latency!.p99}`;
      figures["sdk ack p50/p99 ms"] = `${sdkPub!.latency!.p50} / ${sdkPub!.latency!.p99}`;
      figures["raw client CPU µs/event"] = Number(cpuPerEvent.raw!.toFixed(1));
      figures["sdk client CPU µs/event"] = Number(cpuPerEvent.sdk!.toFixed(1));
      figures["sdk/raw client CPU"] = Number((cpuPerEvent.sdk! / cpuPerEvent.raw!).toFixed(2));
      // At a fixed rate both runs carry the same per-second costs (timers, the event loop): the
      // difference is what the SDK adds per event.
      figures["sdk − raw client CPU µs/event"] = Number((cpuPerEvent.sdk! - cpuPerEvent.raw!).toFixed(1));
    } finally {
      await stack.stop();
    }
    return {
      scenario: "sdk",
      title: sdk.title,
      machine: machine(),
      startedAt,
      figures,
      runs,
      notes: [
        `${fmt(o.rate)} events/s open loop for ${o.duration} s each, ${o.payload}-byte payloads, ${o.keys} keys, ${o.subscribers} subscriber(s) per client; each tick is ${o.batch} events: one frame from the raw client, ${o.batch} publish() calls to the SDK, which batches them itself. Ack latency counts from each event's due time.`,
        "Client CPU is this process's (process.cpuUsage) over a run, per acknowledged event: one publish plus its deliveries. The raw harness pre-encodes its frames and stays the load generator of record where precision matters; this scenario measures what the SDK costs an application.",
        "After 2 s of unmeasured warm-up of each, raw runs first, then SDK, on the same gateway (not interleaved): compare within a run, and repeat runs to see the spread.",
      ],
    };
  },
};
