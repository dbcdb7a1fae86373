// The physical limit the gateway is measured against: librdkafka's produce() with delivery reports,
// straight from one Node process, with the gateway's producer settings and the same records (key,
// 115-byte value, the CloudEvents headers the gateway writes). Plain CommonJS because it runs on
// Node: the addon does not load in Bun.
//   node bench/raw-producer.cjs BROKERS TOPIC SECONDS PAYLOAD_BYTES KEYS
const Kafka = require("@confluentinc/kafka-javascript");
const [brokers, topic, seconds, payloadBytes, keyCount] = process.argv.slice(2);
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
const keys = Array.from({ length: Number(keyCount) }, (_, i) => Buffer.from(`k${i}`));
let sent = 0;
let delivered = 0;
let failed = 0;
let start = 0;
let stopAt = 0;
producer.on("delivery-report", (err) => {
  if (err) failed++;
  else delivered++;
  if (Date.now() >= stopAt && delivered + failed === sent) {
    const secs = (Date.now() - start) / 1000;
    console.log(JSON.stringify({ scenario: "raw-librdkafka", eventsPerSec: Math.round(delivered / secs), failed, seconds: secs }));
    process.exit(0);
  }
});
producer.on("ready", () => {
  producer.setPollInBackground(true);
  start = Date.now();
  stopAt = start + Number(seconds) * 1000;
  const pump = () => {
    for (let i = 0; i < 2000 && Date.now() < stopAt; i++) {
      const headers = [
        { ce_specversion: "1.0" },
        { ce_id: crypto.randomUUID() },
        { ce_source: "/bench" },
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
});
producer.connect();
