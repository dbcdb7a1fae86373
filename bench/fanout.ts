/**
 * Fan-out cost: 1,000 subscriptions with distinct type filters over 10 connections, and a stream of
 * events each matching exactly one of them. Runs twice on the same gateway: filters the index can use
 * (`types: ["tN"]`), then the same filters as `where: "type == 'tN'"`, which every event must be tested
 * against. Prints deliveries/s and the gateway's decode+filter time per event, from its own metrics.
 *
 *   bun run bench -- fanout [--subscribers 1000] [--events 100000] [--kafka]
 */
import { parseArgs } from "node:util";
import { startGateway } from "../test/support/gateway";
import { startBroker } from "../test/support/kafka-broker";
import { GatewayClient } from "../test/support/ws-client";

const { values: o } = parseArgs({
  args: process.argv.slice(2),
  options: { subscribers: { type: "string", default: "1000" }, events: { type: "string", default: "100000" }, kafka: { type: "boolean", default: false } },
});
const subscribers = Number(o.subscribers);
const events = Number(o.events);
const perConn = 100;

const broker = o.kafka ? await startBroker() : undefined;
const gw = await startGateway({ KAFKA_BROKERS: broker?.brokers ?? "", KAFKA_WORKERS: "1", MAX_SUBSCRIPTIONS_PER_CONNECTION: String(perConn) });

async function filterSeconds(): Promise<{ sum: number; count: number }> {
  const m = await (await fetch(`${gw.url}/metrics`)).text();
  return { sum: Number(/gateway_filter_seconds_sum (\S+)/.exec(m)?.[1] ?? 0), count: Number(/gateway_filter_seconds_count (\S+)/.exec(m)?.[1] ?? 0) };
}

async function run(name: string, filterFor: (i: number) => Record<string, unknown>) {
  const topic = `fanout-${name}-${Date.now()}`;
  const conns = await Promise.all(Array.from({ length: Math.ceil(subscribers / perConn) }, () => GatewayClient.connect(gw.url.replace("http", "ws") + "/ws")));
  let delivered = 0;
  const latencies: number[] = [];
  const onFrame = (f: { t: number; event?: { data: { at: number } }; events?: Array<{ event: { data: { at: number } } }> }) => {
    const now = performance.timeOrigin + performance.now();
    const evs = f.t === 24 ? [f.event!] : f.t === 25 ? f.events!.map((e) => e.event) : [];
    for (const e of evs) {
      delivered++;
      if (delivered % 50 === 0) latencies.push(now - e.data.at);
    }
  };
  for (let i = 0; i < subscribers; i++) await conns[Math.floor(i / perConn)]!.subscribe({ sub: `s${i}`, topic, filter: filterFor(i) }, onFrame as never);
  const pub = await GatewayClient.connect(gw.url.replace("http", "ws") + "/ws");
  const before = await filterSeconds();
  const started = performance.now();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < events; i += 100) {
    const batch = Array.from({ length: 100 }, (_, j) => ({ type: `t${(i + j) % subscribers}`, data: { at: performance.timeOrigin + performance.now() } }));
    pending.push(pub.publishBatch(batch, topic));
    if (pending.length >= 50) await pending.shift();
  }
  await Promise.all(pending);
  const deadline = Date.now() + 120_000;
  while (delivered < events && Date.now() < deadline) await Bun.sleep(10);
  const secs = (performance.now() - started) / 1000;
  const after = await filterSeconds();
  latencies.sort((a, b) => a - b);
  const result = {
    scenario: `fanout-${name}`,
    log: o.kafka ? "kafka" : "memory",
    subscribers,
    events,
    delivered,
    deliveriesPerSec: Math.round(delivered / secs),
    filterMicrosPerEvent: Number((((after.sum - before.sum) / events) * 1e6).toFixed(2)),
    latencyMs: { p50: latencies[Math.floor(latencies.length * 0.5)]?.toFixed(1), p99: latencies[Math.floor(latencies.length * 0.99)]?.toFixed(1) },
  };
  console.log(JSON.stringify(result));
  for (const c of [...conns, pub]) c.close();
  return result;
}

const indexed = await run("types", (i) => ({ types: [`t${i}`] }));
const scanned = await run("where", (i) => ({ where: `type == 't${i}'` }));
console.log(JSON.stringify({ scenario: "fanout-ratio", filterCostScanOverIndex: Number((scanned.filterMicrosPerEvent / indexed.filterMicrosPerEvent).toFixed(1)) }));
await gw.stop();
await broker?.stop();
