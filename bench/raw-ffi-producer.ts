// S2 raw-ffi: the same physical-limit producer as bench/raw-producer.cjs (the gateway's settings and
// records: key, value of the same size, the five CloudEvents headers it writes), but in Bun through
// the bun:ffi binding (src/kafka/librdkafka) instead of the Node addon.
//   bun bench/raw-ffi-producer.ts BROKERS TOPIC SECONDS PAYLOAD_BYTES KEYS START_AT_EPOCH_MS [RATE]
// RATE: records/s to produce at (0 or absent: as fast as it can), to compare with a worker at its rate.
// Prints one JSON line: {eventsPerSec, delivered, failed, seconds, cpuPercent, cpuSeconds, threads}
// (threads: CPU seconds by thread name, as bench/harness/processes.ts threadCpuSeconds groups them).
//
// The hot path allocates nothing per record but the ce_id string: every byte a record needs is
// written into one reused scratch buffer whose address is taken once per chunk, and the vu array is
// reused (VuBatch).
import { addressOf, type DeliveryVisitor, Err, Producer, VuBatch } from "../src/kafka/librdkafka";
import { threadCpuSeconds } from "./harness/processes";

const [brokers, topic, seconds, payloadBytes, keyCount, startAt, rateArg] = process.argv.slice(2) as [string, string, string, string, string, string, string?];
const rate = Number(rateArg ?? 0);
const producer = new Producer({
  "bootstrap.servers": brokers,
  acks: "all",
  "enable.idempotence": true,
  "linger.ms": 5,
  "compression.type": "lz4",
  partitioner: "murmur2_random",
  "queue.buffering.max.messages": 200000,
});

// Layout of the scratch buffer: constant parts first (written once), then the per-record ce_id.
const enc = new TextEncoder();
const scratch = Buffer.alloc(64 * 1024);
let used = 0;
const put = (bytes: Uint8Array): [number, number] => {
  scratch.set(bytes, used);
  const at: [number, number] = [used, bytes.length];
  used += bytes.length;
  return at;
};
const cz = (s: string) => put(enc.encode(`${s}\0`));
const topicAt = cz(topic);
const valueAt = put(new Uint8Array(Number(payloadBytes)).fill(120));
const keysAt = Array.from({ length: Number(keyCount) }, (_, i) => put(enc.encode(`k${i}`)));
// What the gateway writes for an event without id, time or subject (src/ingest/to-record.ts).
const constantHeaders = [
  ["ce_specversion", "1.0"],
  ["ce_source", "/gateway/ws"],
  ["ce_type", "bench.event"],
  ["content-type", "application/octet-stream"],
].map(([n, v]) => ({ name: cz(n!), value: put(enc.encode(v!)) }));
const ceIdName = cz("ce_id");
const ceIdAt = used;
used += 36;

let sent = 0;
let delivered = 0;
let failed = 0;
let start = 0;
let stopAt = 0;
let cpuAtStart: NodeJS.CpuUsage;
let threadsAtStart = new Map<string, number>();
let measuring = false;
const reports: DeliveryVisitor = {
  delivered: () => void (measuring && delivered++),
  failed: () => void (measuring && failed++),
};
const vus = new VuBatch(64);

/** Produces one record; false on queue full. */
function produceOne(base: number): boolean {
  const k = keysAt[sent % keysAt.length]!;
  scratch.write(crypto.randomUUID(), ceIdAt, 36, "latin1");
  vus.reset();
  vus.begin(base + topicAt[0], 0);
  vus.value(base + valueAt[0], valueAt[1]);
  vus.key(base + k[0], k[1]);
  vus.timestamp(Date.now());
  vus.header(base + constantHeaders[0]!.name[0], base + constantHeaders[0]!.value[0], constantHeaders[0]!.value[1]);
  vus.header(base + ceIdName[0], base + ceIdAt, 36);
  for (let h = 1; h < constantHeaders.length; h++) {
    const c = constantHeaders[h]!;
    vus.header(base + c.name[0], base + c.value[0], c.value[1]);
  }
  const code = vus.produce(producer, 0);
  if (code === Err.QUEUE_FULL) return false;
  if (code !== 0) throw new Error(`produce failed: ${code}`);
  return true;
}

function finishIfDone(): boolean {
  if (Date.now() < stopAt || delivered + failed < sent) return false;
  const secs = (Date.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuAtStart); // this process, librdkafka's threads included
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const threads = Object.fromEntries([...threadCpuSeconds(process.pid)].map(([k, v]) => [k, v - (threadsAtStart.get(k) ?? 0)]));
  console.log(JSON.stringify({ eventsPerSec: Math.round(delivered / secs), delivered, failed, seconds: secs, cpuPercent: Math.round((cpuSeconds / secs) * 100), cpuSeconds, threads }));
  return true;
}

function pump(): void {
  const base = addressOf(scratch);
  const allowed = rate > 0 ? Math.min(2000, Math.floor(((Date.now() - start) * rate) / 1000) - sent) : 2000;
  for (let i = 0; i < allowed && Date.now() < stopAt; i++) {
    if (!produceOne(base)) break; // queue full: let delivery reports drain it
    sent++;
  }
  producer.poll(reports);
  if (finishIfDone()) {
    producer.destroy();
    process.exit(0);
  }
  // Past the end only reports are awaited: poll every millisecond rather than spin.
  if (Date.now() < stopAt) rate > 0 ? setTimeout(pump, 1) : setImmediate(pump);
  else setTimeout(pump, 1);
}

// Warm up (metadata, idempotent producer id), then start with the other processes of this run.
produceOne(addressOf(scratch));
const warmUntil = Date.now() + 30_000;
const warm = setInterval(() => {
  producer.poll(reports);
  if (producer.outqLen() > 0 && Date.now() < warmUntil) return;
  clearInterval(warm);
  setTimeout(() => {
    measuring = true;
    sent = 0;
    start = Date.now();
    cpuAtStart = process.cpuUsage();
    threadsAtStart = threadCpuSeconds(process.pid);
    stopAt = start + Number(seconds) * 1000;
    pump();
  }, Math.max(0, Number(startAt) - Date.now()));
}, 5);
