import { runLoad, waitFor } from "../harness/load";
import { parseBenchArgs } from "../harness/options";
import { CpuMeter } from "../harness/processes";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";
import { openSubscribers } from "../harness/subscriber";

const SUBS_PER_CONNECTION = 100;
/** Deliveries per second asked of the unfiltered runs: every subscriber gets every event. */
const UNFILTERED_DELIVERIES = 100_000;

/**
 * S4: publish → subscriber, end to end through the log, with 1, 100 and 1,000 subscribers.
 * Unfiltered, every subscriber gets every event, at a publish rate that keeps deliveries near
 * 100k/s. Filtered, event n has type t(n mod subscribers) and subscriber i asks for type ti, so
 * each event goes to exactly one subscriber and the rate stays at --rate: that measures routing.
 */
export const s4: Scenario = {
  name: "s4",
  title: "fan-out: publish → subscriber latency and deliveries/s, 1/100/1000 subscribers, with and without filters",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(argv, "bun run bench -- s4 [options]", { embedded: { type: "boolean", default: false, help: "use the embedded log instead of Kafka" } }, { rate: "20000", duration: "6", batch: "100" });
    const stack = await Stack.create({ url: o.url, brokers: o.brokers, kafka: !own.embedded });
    const startedAt = new Date().toISOString();
    const runs: RunReport[] = [];
    const figures: Record<string, number | string> = {};
    try {
      const url = await stack.startGateway({ KAFKA_WORKERS: String(o.workers), MAX_SUBSCRIPTIONS_PER_CONNECTION: String(SUBS_PER_CONNECTION) });
      // One unmeasured round first: the first reader of a fresh gateway and the broker's fetch path
      // start cold, and without this the first configuration measured start-up, not fan-out.
      const warmTopic = `s4-warmup-${Date.now()}`;
      const warm = await openSubscribers(url, 1, warmTopic, () => undefined);
      await runLoad({ url, label: "s4 warm-up", connections: 1, rate: o.rate || 20_000, window: o.window, batch: o.batch, payloadBytes: o.payload, keys: o.keys, durationS: 3, topic: warmTopic });
      warm.close();
      for (const subscribers of o.subscribers ? [o.subscribers] : [1, 100, 1000]) {
        for (const filtered of [false, true]) {
          const rate = filtered ? o.rate || 20_000 : Math.min(o.rate || 20_000, Math.max(10, Math.floor(UNFILTERED_DELIVERIES / subscribers)));
          const batch = Math.max(1, Math.min(o.batch, Math.floor(rate / 100)));
          const topic = `s4-${subscribers}-${filtered ? "f" : "all"}-${Date.now()}`;
          const subs = await openSubscribers(url, subscribers, topic, (i) => (filtered ? { types: [`t${i}`] } : o.filter), SUBS_PER_CONNECTION);
          const label = `${subscribers} sub${subscribers > 1 ? "s" : ""}, ${filtered ? "filtered" : "all events"}`;
          const cpu = new CpuMeter(stack.groups());
          cpu.start();
          const load = await runLoad({ url, label, connections: 1, rate, window: o.window, batch, payloadBytes: o.payload, keys: Math.max(o.keys, subscribers), durationS: o.duration, topic, typeOf: (n) => `t${n % subscribers}` });
          const expected = filtered ? load.acked + load.warmupEvents : (load.acked + load.warmupEvents) * subscribers;
          await waitFor(() => subs.delivered >= expected, 15_000);
          const cpuSplit = cpu.stop();
          const latency = subs.latency();
          const got = subs.delivered;
          runs.push({
            label,
            figures: { publishedPerSec: load.eventsPerSec, deliveriesPerSec: Math.round(got / load.seconds), delivered: got, expected, droppedForLag: subs.lagged },
            latency: latency.summaryMs(),
            curve: latency.curveMs(),
            // The publisher's per-second series: acked events/s and ack p99 (the table's latency is delivery).
            series: load.series,
            cpu: cpuSplit,
          });
          figures[`${label}: p99 ms`] = latency.summaryMs().p99;
          subs.close();
        }
      }
    } finally {
      await stack.stop();
    }
    return {
      scenario: "s4",
      title: s4.title,
      machine: machine(),
      startedAt,
      figures,
      runs,
      notes: [`log: ${own.embedded ? "embedded" : "Kafka"}; latency is from the publisher's intended send time (open loop) to receipt by the subscriber, both on this machine's clock.`],
    };
  },
};
