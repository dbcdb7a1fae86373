// S6's baseline: the WebSocket → Kafka bridge a competent developer writes by hand in an afternoon
// with the two most popular Node libraries, ws and KafkaJS. It speaks the gateway's wire protocol
// (hello/welcome, publish/publish_batch → ack/batch_ack, nack) so the same load client drives both.
// It is naive in one way only, the way such bridges are: each frame is one `await producer.send()`,
// with no batching across frames or connections.
//   node bench/naive-bridge/server.cjs BROKERS [PORT=0] [WINDOW=10000]   → prints "LISTENING <port>"
const { randomUUID } = require("node:crypto");
const { WebSocketServer } = require("ws");
const { Kafka, Partitioners, logLevel } = require("kafkajs");
const { Packr, Unpackr } = require("msgpackr");

const [brokers = process.env.KAFKA_BROKERS, port = process.env.PORT ?? "0", window = process.env.WINDOW ?? "10000"] = process.argv.slice(2);
const unpackr = new Unpackr({ useRecords: false });
const packr = new Packr({ useRecords: false });

// KafkaJS returns one RecordMetadata (partition, baseOffset) per partition, not per message; to give
// each event its own offset we remember the partition its default partitioner picked for it.
const partitionOf = new WeakMap();
const createPartitioner = () => {
  const pick = Partitioners.DefaultPartitioner();
  return (args) => {
    const p = pick(args);
    partitionOf.set(args.message, p);
    return p;
  };
};

const kafka = new Kafka({ clientId: "naive-bridge", brokers: brokers.split(","), logLevel: logLevel.WARN });
// idempotent: true makes acks -1 (all) mandatory and retries unbounded: the same durability the
// gateway gives. maxInFlightRequests 5 is the most Kafka allows an idempotent producer while keeping
// order (KIP-98 / KAFKA-5494); KafkaJS 2.2.4 serialises an idempotent producer's produce requests
// per broker anyway (eosManager.acquireBrokerLock), so 1 and 5 behave alike here.
// No compression: KafkaJS has only gzip built in (lz4, which the gateway uses, needs a third-party
// codec), and gzip would cost CPU. Sending uncompressed slightly favours the bridge on CPU.
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5, createPartitioner });

const send = (ws, frame) => {
  if (ws.readyState === ws.OPEN) ws.send(packr.pack(frame));
};

function toMessage(ev) {
  const id = randomUUID();
  const message = {
    key: ev.key ?? null,
    value: ev.data == null ? null : Buffer.from(ev.data.buffer, ev.data.byteOffset, ev.data.byteLength),
    headers: { ce_specversion: "1.0", ce_id: id, ce_source: ev.source ?? "/naive-bridge", ce_type: String(ev.type), "content-type": "application/octet-stream" },
  };
  return { id, message };
}

// One produce per frame; replies with each event's partition and offset.
async function publish(ws, f) {
  const events = f.t === 10 ? [f.event] : f.events;
  if (typeof f.topic !== "string" || !Array.isArray(events) || events.length === 0) {
    return send(ws, { t: 21, cid: f.cid, code: "INVALID_FRAME", message: "topic and events are required" });
  }
  const out = events.map(toMessage);
  const messages = out.map((o) => o.message);
  let metadata;
  try {
    metadata = await producer.send({ topic: f.topic, messages });
  } catch (err) {
    return send(ws, { t: 21, cid: f.cid, code: "KAFKA_ERROR", message: String(err && err.message) });
  }
  const next = {};
  for (const m of metadata) next[m.partition] = Number(m.baseOffset);
  const partitions = messages.map((m) => partitionOf.get(m) ?? -1);
  const offsets = partitions.map((p) => (p in next ? next[p]++ : -1));
  if (f.t === 10) send(ws, { t: 20, cid: f.cid, id: out[0].id, topic: f.topic, partition: partitions[0], offset: offsets[0] });
  else send(ws, { t: 22, cid: f.cid, topic: f.topic, ids: out.map((o) => o.id), partitions, offsets });
}

async function main() {
  await producer.connect();
  const wss = new WebSocketServer({ port: Number(port), maxPayload: 1024 * 1024 });
  wss.on("connection", (ws) => {
    ws.on("message", (data) => {
      let f;
      try {
        f = unpackr.unpack(data);
      } catch (err) {
        return ws.close(1007, "not msgpack");
      }
      if (f.t === 1) {
        send(ws, { t: 2, v: 1, session: randomUUID(), log: "kafka", limits: { maxFrameBytes: 1024 * 1024, maxBatchEvents: 1000, maxDepth: 32, window: Number(window) } });
      } else if (f.t === 10 || f.t === 11) {
        publish(ws, f);
      } else {
        send(ws, { t: 21, cid: f.cid, code: "UNSUPPORTED", message: `frame type ${f.t}` });
      }
    });
  });
  await new Promise((resolve) => wss.once("listening", resolve));
  console.log(`LISTENING ${wss.address().port}`);

  const stop = async () => {
    wss.close();
    for (const c of wss.clients) c.terminate();
    await producer.disconnect().catch(() => {});
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
