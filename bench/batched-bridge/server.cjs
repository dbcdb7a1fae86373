// S6's second baseline: the bridge a careful developer writes once the naive one (bench/naive-bridge/)
// proves slow. Same libraries (ws, KafkaJS), same idempotent producer, same wire protocol, but events
// from every frame and every connection are queued and sent together: a flush happens 5 ms after the
// first queued event or as soon as 500 are queued, whichever is first, and is one `producer.sendBatch()`
// (one produce request: `send()` for several topics). Each event is still acknowledged with its own
// partition and offset, and a frame is answered once all its events are.
//   node bench/batched-bridge/server.cjs BROKERS [PORT=0] [WINDOW=10000] [LINGER_MS=5] [MAX_EVENTS=500]
//   → prints "LISTENING <port>"
const { randomUUID } = require("node:crypto");
const { WebSocketServer } = require("ws");
const { Kafka, Partitioners, logLevel } = require("kafkajs");
const { Packr, Unpackr } = require("msgpackr");

const args = process.argv.slice(2);
const brokers = args[0] ?? process.env.KAFKA_BROKERS;
const port = Number(args[1] ?? process.env.PORT ?? "0");
const window = Number(args[2] ?? process.env.WINDOW ?? "10000");
const lingerMs = Number(args[3] ?? "5");
const maxEvents = Number(args[4] ?? "500");
const unpackr = new Unpackr({ useRecords: false });
const packr = new Packr({ useRecords: false });

// KafkaJS returns one RecordMetadata (partition, baseOffset) per topic-partition, not per message; to
// give each event its own offset we remember the partition its default partitioner picked for it.
const partitionOf = new WeakMap();
const createPartitioner = () => {
  const pick = Partitioners.DefaultPartitioner();
  return (a) => {
    const p = pick(a);
    partitionOf.set(a.message, p);
    return p;
  };
};

const kafka = new Kafka({ clientId: "batched-bridge", brokers: brokers.split(","), logLevel: logLevel.WARN });
// The same producer as the naive bridge (see there): idempotent, so acks=all; uncompressed.
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5, createPartitioner });

const send = (ws, frame) => {
  if (ws.readyState === ws.OPEN) ws.send(packr.pack(frame));
};

/** One publish frame waiting for its events' outcomes. */
class Pending {
  constructor(ws, f, n) {
    this.ws = ws;
    this.f = f;
    this.ids = new Array(n);
    this.partitions = new Array(n);
    this.offsets = new Array(n);
    this.left = n;
    this.done = false;
  }
  settle(i, partition, offset) {
    if (this.done) return;
    this.partitions[i] = partition;
    this.offsets[i] = offset;
    if (--this.left > 0) return;
    this.done = true;
    const f = this.f;
    if (f.t === 10) send(this.ws, { t: 20, cid: f.cid, id: this.ids[0], topic: f.topic, partition, offset });
    else send(this.ws, { t: 22, cid: f.cid, topic: f.topic, ids: this.ids, partitions: this.partitions, offsets: this.offsets });
  }
  fail(message) {
    if (this.done) return;
    this.done = true;
    send(this.ws, { t: 21, cid: this.f.cid, code: "KAFKA_ERROR", message });
  }
}

// The queue across all connections: parallel arrays of (topic, message, frame, index in frame).
let queue = [];
let timer = null;

function enqueue(ws, f) {
  const events = f.t === 10 ? [f.event] : f.events;
  if (typeof f.topic !== "string" || !Array.isArray(events) || events.length === 0) {
    return send(ws, { t: 21, cid: f.cid, code: "INVALID_FRAME", message: "topic and events are required" });
  }
  const p = new Pending(ws, f, events.length);
  for (let i = 0; i < events.length; i++) {
    const ev = events[i];
    const id = randomUUID();
    p.ids[i] = id;
    const message = {
      key: ev.key ?? null,
      value: ev.data == null ? null : Buffer.from(ev.data.buffer, ev.data.byteOffset, ev.data.byteLength),
      headers: { ce_specversion: "1.0", ce_id: id, ce_source: ev.source ?? "/batched-bridge", ce_type: String(ev.type), "content-type": "application/octet-stream" },
    };
    queue.push({ topic: f.topic, message, pending: p, index: i });
    if (queue.length >= maxEvents) flush();
  }
  if (queue.length > 0 && timer === null) timer = setTimeout(flush, lingerMs);
}

// Sends what is queued as one request; flushes may overlap (KafkaJS orders an idempotent producer's
// requests per broker itself).
function flush() {
  if (timer !== null) {
    clearTimeout(timer);
    timer = null;
  }
  if (queue.length === 0) return;
  const items = queue;
  queue = [];
  const byTopic = new Map();
  for (const it of items) {
    let list = byTopic.get(it.topic);
    if (!list) byTopic.set(it.topic, (list = []));
    list.push(it.message);
  }
  const topicMessages = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
  producer.sendBatch({ topicMessages }).then(
    (metadata) => {
      // Within one request the messages of a topic-partition get consecutive offsets, in order.
      const next = new Map();
      for (const m of metadata) next.set(`${m.topicName}\0${m.partition}`, Number(m.baseOffset));
      for (const it of items) {
        const partition = partitionOf.get(it.message) ?? -1;
        const k = `${it.topic}\0${partition}`;
        const offset = next.has(k) ? next.get(k) : -1;
        if (offset >= 0) next.set(k, offset + 1);
        it.pending.settle(it.index, partition, offset);
      }
    },
    (err) => {
      const message = String(err && err.message);
      for (const it of items) it.pending.fail(message);
    },
  );
}

async function main() {
  await producer.connect();
  const wss = new WebSocketServer({ port, maxPayload: 1024 * 1024 });
  wss.on("connection", (ws) => {
    ws.on("message", (data) => {
      let f;
      try {
        f = unpackr.unpack(data);
      } catch {
        return ws.close(1007, "not msgpack");
      }
      if (f.t === 1) {
        send(ws, { t: 2, v: 1, session: randomUUID(), log: "kafka", limits: { maxFrameBytes: 1024 * 1024, maxBatchEvents: 1000, maxDepth: 32, window } });
      } else if (f.t === 10 || f.t === 11) {
        enqueue(ws, f);
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
