// The physical limit the gateway is measured against: librdkafka's produce() with delivery reports,
// straight from a Node process, with the gateway's producer settings and the same records (key,
// value of the same size, the five headers the gateway writes). Plain CommonJS because it runs on
// Node: the addon does not load in Bun.
//   node bench/raw-producer.cjs BROKERS TOPIC SECONDS PAYLOAD_BYTES KEYS START_AT_EPOCH_MS
// Prints one JSON line: {eventsPerSec, delivered, failed, seconds, cpuPercent, cpuSeconds}.
const Kafka = require("@confluentinc/kafka-javascript");
const [brokers, topic, seconds, payloadBytes, keyCount, startAt] = process.argv.slice(2);
const producer = new Kafka.Producer({
  "bootstrap.servers": brokers,
  acks: "all",
  "enable.idempotence": true,
  "linger.ms": 5,
  "compression.type": "lz4",
  partitioner: "murmur2_random",
  "queue.buffering.max.messages": 200000,
  dr_cb: true,
});
const value = Buffer.alloc(Number(payloadBytes), 120);
const keys = Array.from({ length: Number(keyCount) }, (_, i) => `k${i}`);
let sent = 0;
let delivered = 0;
let failed = 0;
let start = 0;
let stopAt = 0;
let cpuAtStart;
producer.on("delivery-report", (err) => {
  if (start === 0) return; // the warm-up record
  if (err) failed++;
  else delivered++;
  if (Date.now() >= stopAt && delivered + failed === sent) {
    const secs = (Date.now() - start) / 1000;
    // This process's CPU, librdkafka's threads included: it is gone before anyone could read /proc.
    const cpu = process.cpuUsage(cpuAtStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const cpuPercent = Math.round((cpuSeconds / secs) * 100);
    console.log(JSON.stringify({ eventsPerSec: Math.round(delivered / secs), delivered, failed, seconds: secs, cpuPercent, cpuSeconds }));
    process.exit(0);
  }
});
producer.on("ready", () => {
  producer.setPollInBackground(true);
  // Warm up (metadata, idempotent producer id), then start with the other processes of this run.
  producer.produce(topic, null, value, keys[0], Date.now(), null, []);
  setTimeout(run, Math.max(0, Number(startAt) - Date.now()));
});
function run() {
  delivered = failed = 0;
  start = Date.now();
  cpuAtStart = process.cpuUsage();
  stopAt = start + Number(seconds) * 1000;
  const pump = () => {
    for (let i = 0; i < 2000 && Date.now() < stopAt; i++) {
      // What the gateway writes for an event without id, time or subject (src/ingest/to-record.ts).
      const headers = [
        { ce_specversion: "1.0" },
        { ce_id: crypto.randomUUID() },
        { ce_source: "/gateway/ws" },
        { ce_type: "bench.event" },
        { "content-type": "application/octet-stream" },
      ];
      try {
        producer.produce(topic, null, value, keys[sent % keys.length], Date.now(), null, headers);
        sent++;
      } catch {
        break; // queue full: let delivery reports drain it
      }
    }
    if (Date.now() < stopAt) setImmediate(pump);
  };
  pump();
}
producer.connect();
