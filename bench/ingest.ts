/**
 * Quick ingest bench: one WebSocket client publishing batches as fast as its window allows, into a
 * real broker through the gateway, acks=all. Prints events/s and ack latency percentiles.
 *
 *   bun run bench -- ingest [--seconds 10] [--batch 100] [--payload 115] [--workers 2] [--url ws://…/ws]
 *
 * Without --url it starts its own broker and gateway. Latency here is closed-loop (send → ack of a
 * frame) and so hides queueing before the send; the open-loop harness is issue 5's.
 */
import { parseArgs } from "node:util";
import { resolveNodeBinary } from "../src/kafka/node-runtime";
import { startBroker } from "../test/support/kafka-broker";
import { startGateway } from "../test/support/gateway";
import { GatewayClient } from "../test/support/ws-client";

const { values: o } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seconds: { type: "string", default: "10" },
    batch: { type: "string", default: "100" },
    payload: { type: "string", default: "115" },
    workers: { type: "string", default: "2" },
    window: { type: "string", default: "10000" },
    keys: { type: "string", default: "1000" },
    url: { type: "string" },
    embedded: { type: "boolean", default: false },
    baseline: { type: "boolean", default: true },
  },
});
const seconds = Number(o.seconds);
const batch = Number(o.batch);
const window = Number(o.window);
const keys = Number(o.keys);

let stopBroker: (() => Promise<void>) | undefined;
let stopGateway: (() => Promise<number>) | undefined;
let url = o.url;
let baseline: { eventsPerSec: number } | undefined;
if (!url) {
  const env: Record<string, string> = { KAFKA_WORKERS: o.workers!, PUBLISH_WINDOW: String(window), LOG_LEVEL: "warn" };
  if (!o.embedded) {
    const b = await startBroker();
    stopBroker = b.stop;
    env.KAFKA_BROKERS = b.brokers;
    if (o.baseline) baseline = await rawBaseline(b.brokers);
  }
  const gw = await startGateway({ ...env, LOG_LEVEL: "info" });
  stopGateway = gw.stop;
  url = gw.wsUrl;
}

/** The same records straight from one Node librdkafka producer on the same broker, just before. */
async function rawBaseline(brokers: string): Promise<{ eventsPerSec: number }> {
  const proc = Bun.spawn([resolveNodeBinary(), `${import.meta.dir}/raw-producer.cjs`, brokers, `raw-${Date.now()}`, String(seconds), o.payload!, String(keys)], {
    env: { ...process.env, NODE_PATH: `${import.meta.dir}/../node_modules` },
    stdout: "pipe",
    stderr: "inherit",
  });
  const out = await new Response(proc.stdout).text();
  if ((await proc.exited) !== 0) throw new Error(`raw producer failed: ${out}`);
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

const client = await GatewayClient.connect(url);
const data = new Uint8Array(Number(o.payload)).fill(120);
const topic = `bench-${Date.now()}`;
const latencies: number[] = [];
let acked = 0;
let failed = 0;
let inflight = 0;
let seq = 0;
const frameWindow = Math.max(1, Math.floor(window / batch));
// Warm-up: create the topic and connect every producer.
await client.publishBatch(Array.from({ length: 100 }, (_, i) => ({ type: "bench.warmup", key: `k${i}`, data })), topic);

const started = performance.now();
const endAt = started + seconds * 1000;
await new Promise<void>((resolve) => {
  const pump = () => {
    while (inflight < frameWindow && performance.now() < endAt) {
      const events = new Array(batch);
      for (let i = 0; i < batch; i++) events[i] = { type: "bench.event", key: `k${seq++ % keys}`, data };
      const t0 = performance.now();
      inflight++;
      void client.publishBatch(events, topic).then((r) => {
        latencies.push(performance.now() - t0);
        inflight--;
        if (r.t === 22 && !r.errors) acked += batch;
        else failed += batch;
        if (performance.now() < endAt) pump();
        else if (inflight === 0) resolve();
      });
    }
  };
  pump();
});
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!.toFixed(2);
console.log(
  JSON.stringify({
    scenario: "ingest",
    log: o.embedded ? "memory" : "kafka",
    workers: Number(o.workers),
    batch,
    payloadBytes: data.length,
    seconds: Number(elapsed.toFixed(2)),
    eventsPerSec: Math.round(acked / elapsed),
    failed,
    ackLatencyMs: { p50: pct(50), p99: pct(99), p999: pct(99.9), max: latencies.at(-1)!.toFixed(2) },
    ...(baseline ? { rawLibrdkafkaEventsPerSec: baseline.eventsPerSec, ratioToRaw: Number((acked / elapsed / baseline.eventsPerSec).toFixed(3)) } : {}),
  }),
);
client.close();
await stopGateway?.();
await stopBroker?.();
