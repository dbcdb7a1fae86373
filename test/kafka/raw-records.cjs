// Writes records straight into Kafka, as any other producer might: shapes the gateway would never
// write itself. Runs on Node (the librdkafka addon does not load in Bun).
//   node test/kafka/raw-records.cjs BROKERS TOPIC < spec.json
// spec: [{ key?, keyBase64?, value?: base64, headers?: [[name, value, "base64"?]], manyHeaders?: n }], written in order to
// partition 0. Prints one JSON line: the offset of each record, or the error that refused it.
const Kafka = require("@confluentinc/kafka-javascript");
const [brokers, topic] = process.argv.slice(2);
const spec = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const producer = new Kafka.Producer({ "bootstrap.servers": brokers, acks: "all", dr_cb: true, "message.max.bytes": 100000000 });
const results = new Array(spec.length);
let pending = spec.length;
producer.on("delivery-report", (err, report) => {
  results[report.opaque] = err ? { error: String(err.message) } : { offset: report.offset };
  if (--pending === 0) {
    console.log(JSON.stringify(results));
    producer.disconnect(() => process.exit(0));
  }
});
producer.on("ready", () => {
  producer.setPollInBackground(true);
  spec.forEach((r, i) => {
    const headers = (r.headers ?? []).map(([name, value, encoding]) => {
      // Built with a computed key: an own property whatever the name ("__proto__" included).
      return { [name]: encoding === "base64" ? Buffer.from(value, "base64") : value };
    });
    for (let h = 0; h < (r.manyHeaders ?? 0); h++) headers.push({ [`h${h}`]: `v${h}` });
    const value = r.value === undefined ? null : Buffer.from(r.value, "base64");
    const key = r.keyBase64 !== undefined ? Buffer.from(r.keyBase64, "base64") : (r.key ?? null);
    producer.produce(topic, 0, value, key, Date.now(), i, headers);
  });
});
producer.connect();
setTimeout(() => {
  console.error("raw-records: no delivery reports within 60 s");
  process.exit(1);
}, 60_000).unref();
