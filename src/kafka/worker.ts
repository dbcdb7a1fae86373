/**
 * A Kafka worker process on Node (KAFKA_WORKER_RUNTIME=node; the default is worker-bun.ts). Never
 * Bun: the librdkafka addon does not load in Bun, so the gateway bundles this file for Node and
 * supervises a pool of them (see pool.ts). One producer per
 * process; records arrive in PRODUCE batches and go to librdkafka's produce() with delivery reports,
 * and each batch is answered by one DELIVERY message once its last report is in.
 */
import * as net from "node:net";
import Kafka from "@confluentinc/kafka-javascript";
import { BrokerProbe, CONNECTION_FAILURE } from "./broker-probe";
import { ByteReader, ByteWriter, type DeliveryError, HeaderKind, IpcType, MessageReader, type Query, ReceivedTable, jsonMessage } from "./ipc";
import { StatusReporter } from "./status";
import { Readers } from "./worker-readers";

export interface WorkerConfig {
  socketPath: string;
  workerIndex: number;
  token: string;
  producer: Record<string, string | number | boolean>;
  /** Properties every reader's consumer starts from (brokers, client id, security). */
  consumer: Record<string, string | number | boolean>;
  /** How long one broker probe (a metadata request) may take before it counts as failed. */
  probeTimeoutMs: number;
}

const QUEUE_FULL = -184; // RD_KAFKA_RESP_ERR__QUEUE_FULL
const ALL_BROKERS_DOWN = -187; // RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
const ALL_BROKERS_DOWN_TEXT = /all broker connections are down/i; // its err2str
// opaque = batchId * 2^20 + index: a number, so delivery reports need no per-event object.
const INDEX_BITS = 1048576;

interface PendingBatch {
  remaining: number;
  partitions: Int32Array;
  offsets: Float64Array;
  errorIndex: Int32Array;
  errors: DeliveryError[];
}

interface QueuedRecord {
  topic: string;
  value: Buffer | null;
  key: Buffer | null;
  timestamp: number;
  opaque: number;
  headers: Array<Record<string, Buffer | string>> | undefined;
}

const config: WorkerConfig = JSON.parse(process.env.KGW_WORKER_CONFIG ?? "{}");
const batches = new Map<number, PendingBatch>();
// Records librdkafka refused with queue-full, in order; retried before anything newer so that
// per-key order survives the stall. Bounded by the gateway's per-worker in-flight cap.
const backlog: QueuedRecord[] = [];
let backlogTimer: NodeJS.Timeout | null = null;
let producerReady = false;
let shuttingDown = false;

const socket = net.createConnection(config.socketPath);
socket.setNoDelay(true);
const send = (buf: Buffer) => void socket.write(buf);
const status = new StatusReporter(send);
const readers = new Readers(config.consumer, send, status);

socket.on("connect", () => {
  send(
    jsonMessage(IpcType.HELLO, {
      workerIndex: config.workerIndex,
      token: config.token,
      pid: process.pid,
      runtime: typeof (globalThis as { Bun?: unknown }).Bun === "undefined" ? "node" : "bun",
      node: process.versions.node,
      librdkafka: Kafka.librdkafkaVersion,
    }),
  );
});
// Without the gateway there is nobody to acknowledge to: leave rather than linger as an orphan.
socket.on("close", () => shutdown(2000));
socket.on("error", () => {});

const producer = new Kafka.Producer({ ...config.producer, dr_cb: true } as never);
const brokers = new BrokerProbe(producer as never, config.probeTimeoutMs, (up, reason) => send(jsonMessage(IpcType.HEALTH, { brokers: up ? "up" : "down", reason })));

// Until the producer is ready nothing polls it, and librdkafka hands out its error events only when
// polled: a wrong SASL password or an untrusted broker certificate would show as nothing at all, then
// as "broker transport failure" once connect() times out. Polling the native client meanwhile lets the
// cause through (an authentication failure within a second) to /health and the nacks.
const connectingPoll = setInterval(() => {
  try {
    (producer as unknown as { _client: { poll(): void } })._client.poll();
  } catch {} // before the native handle exists
}, 500);
// The last such cause, kept for the connect failure that follows it.
let connectCause = "";
let causeAt = 0;

producer.on("ready", () => {
  producerReady = true;
  clearInterval(connectingPoll);
  connectCause = "";
  producer.setPollInBackground(true);
  send(jsonMessage(IpcType.READY, {}));
  brokers.start();
});
producer.on("event.error", (err: { code: number; message: string }) => {
  // The binding passes error events on as their message alone (the code arrives as -1).
  const allDown = err.code === ALL_BROKERS_DOWN || ALL_BROKERS_DOWN_TEXT.test(err.message);
  if (allDown) brokers.allBrokersDown(err.message);
  if (CONNECTION_FAILURE.test(err.message)) [connectCause, causeAt] = [err.message, Date.now()];
  // Reported, it would replace the cause as the worker's last error on /health.
  else if (allDown && Date.now() - causeAt < 5000) return;
  status.report("warn", "kafka_error", err.message, { code: err.code });
});
producer.on("delivery-report", ((err: LibError | null, report: { opaque?: unknown; partition: number; offset: number }) => {
  const opaque = report.opaque as number;
  const batchId = Math.floor(opaque / INDEX_BITS);
  const index = opaque - batchId * INDEX_BITS;
  const batch = batches.get(batchId);
  if (!batch) return;
  if (err) {
    batch.partitions[index] = -1;
    batch.offsets[index] = -1;
    batch.errorIndex[index] = batch.errors.push(toDeliveryError(err)) - 1;
  } else {
    batch.partitions[index] = report.partition;
    batch.offsets[index] = report.offset;
  }
  if (--batch.remaining === 0) finishBatch(batchId, batch);
  if (backlog.length > 0) scheduleBacklog(0);
}) as never);

connectProducer();

function connectProducer(): void {
  producer.connect({}, (err: unknown) => {
    if (!err) return;
    const cause = connectCause ? ` (after: ${connectCause})` : "";
    status.report("warn", "connect_failed", `${String((err as Error).message ?? err)}${cause}`);
    setTimeout(connectProducer, 1000);
  });
}

const reader = new MessageReader((type, body) => {
  try {
    dispatch(type, body);
  } catch (e) {
    // A bug in handling one control message is reported, not allowed to kill the producer.
    status.report("error", "worker_error", String((e as Error)?.stack ?? e));
  }
});

function dispatch(type: number, body: Buffer): void {
  if (type === IpcType.PRODUCE) onProduce(new ByteReader(body));
  else if (type === IpcType.PING) send(jsonMessage(IpcType.PONG, {}));
  else if (type >= IpcType.OPEN_READER && type <= IpcType.CLOSE_READER) readers.handle(type, new ByteReader(body).json());
  else if (type === IpcType.QUERY) {
    const q = new ByteReader(body).json<Query & { reqId: number }>();
    try {
      answer(q);
    } catch (e) {
      send(jsonMessage(IpcType.QUERY_RESULT, { reqId: q.reqId, error: String((e as Error)?.message ?? e) }));
    }
  } else if (type === IpcType.SHUTDOWN) shutdown(body.length > 0 ? new ByteReader(body).json<{ timeoutMs: number }>().timeoutMs : 5000);
}
socket.on("data", (chunk: Buffer) => reader.push(chunk));

/** Metadata questions, answered with the producer's client: it is connected whenever we are ready. */
function answer(q: Query & { reqId: number }): void {
  const reply = (result: unknown, error?: string) => send(jsonMessage(IpcType.QUERY_RESULT, { reqId: q.reqId, result, error }));
  const fail = (e: unknown) => reply(undefined, String((e as Error)?.message ?? e));
  if (!producerReady) return fail("the worker is not connected to Kafka");
  const client = producer as unknown as MetadataClient;
  const each = <T>(n: number, f: (p: number, cb: (err: unknown, v: T) => void) => void) =>
    Promise.all(Array.from({ length: n }, (_, p) => new Promise<T>((res, rej) => f(p, (err, v) => (err ? rej(err) : res(v))))));
  if (q.kind === "partitions") {
    // All topics, not this one: naming it makes librdkafka's producer ask the broker to auto-create it.
    client.getMetadata({ allTopics: true, timeout: 5000 }, (err, md) => (err ? fail(err) : reply(md.topics.find((t) => t.name === q.topic)?.partitions.length ?? 0)));
  } else if (q.kind === "watermarks") {
    each<{ lowOffset: number; highOffset: number }>(q.partitions, (p, cb) => client.queryWatermarkOffsets(q.topic, p, 5000, cb)).then(
      (w) => reply(w.map((o) => ({ low: o.lowOffset, high: o.highOffset }))),
      fail,
    );
  } else if (q.kind === "offsetsForTime") {
    const tps = Array.from({ length: q.partitions }, (_, partition) => ({ topic: q.topic, partition, offset: q.timestampMs }));
    metadataConsumer().then(
      (c) => c.offsetsForTimes(tps, 5000, (err, out) => (err ? fail(err) : reply(out.sort((a, b) => a.partition - b.partition).map((t) => t.offset)))),
      fail,
    );
  }
}

// offsetsForTimes exists only on consumers in the binding; one idle consumer answers it, made on first use.
let metaConsumer: Promise<MetadataClient> | null = null;
function metadataConsumer(): Promise<MetadataClient> {
  metaConsumer ??= new Promise((resolve, reject) => {
    const c = new Kafka.KafkaConsumer({ ...config.consumer, "group.id": `kgw-meta-${process.pid}`, "enable.auto.commit": false } as never, {} as never);
    c.connect({}, (err: unknown) => (err ? reject(err) : resolve(c as unknown as MetadataClient)));
  });
  metaConsumer.catch(() => (metaConsumer = null));
  return metaConsumer;
}

interface MetadataClient {
  getMetadata(o: { topic?: string; allTopics?: boolean; timeout: number }, cb: (err: unknown, md: { topics: Array<{ name: string; partitions: unknown[] }> }) => void): void;
  queryWatermarkOffsets(topic: string, partition: number, timeout: number, cb: (err: unknown, o: { lowOffset: number; highOffset: number }) => void): void;
  offsetsForTimes(tps: Array<{ topic: string; partition: number; offset: number }>, timeout: number, cb: (err: unknown, out: Array<{ partition: number; offset: number }>) => void): void;
}

// This connection's string tables (see PRODUCE in ./ipc.ts). librdkafka's binding only reads a
// header object, so one object per distinct (name, value) serves every record that carries it.
const topics = new ReceivedTable<string>();
const headerEntries = new ReceivedTable<Record<string, Buffer | string>>();

function readHeader(r: ByteReader): Record<string, Buffer | string> {
  const name = r.longString();
  const kind = r.u8();
  // A computed key is always an own property, "__proto__" included (it is a header like any other).
  return { [name]: kind === HeaderKind.TEXT ? r.longString() : r.slice(r.u32()) };
}

/**
 * A PRODUCE batch: every record is parsed before any is produced, so a batch that cannot be read
 * (a bug on either side of the socket) is answered with an error for each of its records rather
 * than half-produced or left pending.
 */
function onProduce(r: ByteReader): void {
  const batchId = r.u32();
  const count = r.u32();
  const batch: PendingBatch = {
    remaining: count,
    partitions: new Int32Array(count),
    offsets: new Float64Array(count),
    errorIndex: new Int32Array(count).fill(-1),
    errors: [],
  };
  batches.set(batchId, batch);
  if (count === 0) return finishBatch(batchId, batch);
  const records: QueuedRecord[] = new Array(count);
  try {
    for (let i = 0; i < count; i++) {
      const topic = topics.resolve(r.u16(), () => r.shortString());
      const key = r.nullableSlice();
      const value = r.nullableSlice();
      const timestamp = r.f64();
      const headerCount = r.u32();
      if (headerCount > r.buf.length - r.pos) throw new RangeError(`${headerCount} headers cannot fit in the rest of the message`);
      let headers: Array<Record<string, Buffer | string>> | undefined;
      if (headerCount > 0) {
        headers = new Array(headerCount);
        for (let h = 0; h < headerCount; h++) headers[h] = headerEntries.resolve(r.u16(), () => readHeader(r));
      }
      records[i] = { topic, value, key, timestamp, opaque: batchId * INDEX_BITS + i, headers };
    }
    if (r.pos !== r.buf.length) throw new RangeError(`${r.buf.length - r.pos} bytes left over after ${count} records`);
  } catch (e) {
    const message = `the worker could not read batch ${batchId} of ${count} records: ${String((e as Error)?.message ?? e)}`;
    status.report("error", "produce_unreadable", message);
    const error: DeliveryError = { code: -1, name: "ERR_IPC", message, retriable: false };
    for (let i = 0; i < count; i++) failRecord(batchId * INDEX_BITS + i, error);
    return;
  }
  for (const rec of records) {
    if (backlog.length > 0 || !producerReady) backlog.push(rec);
    else if (!tryProduce(rec)) backlog.push(rec);
  }
  if (backlog.length > 0) scheduleBacklog(producerReady ? 1 : 50);
}

/** Returns false on queue-full (the caller keeps the record); any other error fails the record. */
function tryProduce(rec: QueuedRecord): boolean {
  try {
    producer.produce(rec.topic, null, rec.value, rec.key, rec.timestamp, rec.opaque, rec.headers);
    return true;
  } catch (e) {
    const err = e as LibError;
    if (err.code === QUEUE_FULL) return false;
    failRecord(rec.opaque, toDeliveryError(err));
    return true;
  }
}

function failRecord(opaque: number, error: DeliveryError): void {
  const batchId = Math.floor(opaque / INDEX_BITS);
  const index = opaque - batchId * INDEX_BITS;
  const batch = batches.get(batchId);
  if (!batch) return;
  batch.partitions[index] = -1;
  batch.offsets[index] = -1;
  batch.errorIndex[index] = batch.errors.push(error) - 1;
  if (--batch.remaining === 0) finishBatch(batchId, batch);
}

function scheduleBacklog(delayMs: number): void {
  if (backlogTimer) return;
  backlogTimer = setTimeout(drainBacklog, delayMs);
}

function drainBacklog(): void {
  backlogTimer = null;
  if (!producerReady) return scheduleBacklog(50);
  let i = 0;
  while (i < backlog.length && tryProduce(backlog[i]!)) i++;
  backlog.splice(0, i);
  if (backlog.length > 0) scheduleBacklog(1);
}

const out = new ByteWriter(16 * 1024);
function finishBatch(batchId: number, b: PendingBatch): void {
  batches.delete(batchId);
  const start = out.beginMessage(IpcType.DELIVERY);
  out.u32(batchId);
  out.u32(b.partitions.length);
  for (let i = 0; i < b.partitions.length; i++) {
    out.i32(b.partitions[i]!);
    out.f64(b.offsets[i]!);
    out.i32(b.errorIndex[i]!);
  }
  const errors = Buffer.from(b.errors.length ? JSON.stringify(b.errors) : "[]");
  out.u32(errors.length);
  out.bytes(errors);
  out.endMessage(start);
  send(out.take());
}

interface LibError {
  code: number;
  message: string;
  isRetriable?: boolean;
  retriable?: boolean;
}

function toDeliveryError(err: LibError): DeliveryError {
  return { code: err.code, name: codeName(err.code), message: err.message, retriable: Boolean(err.isRetriable ?? err.retriable) };
}

let codeNames: Map<number, string> | null = null;
function codeName(code: number): string {
  if (!codeNames) {
    codeNames = new Map();
    for (const [k, v] of Object.entries(Kafka.CODES.ERRORS as Record<string, number>)) codeNames.set(v, k);
  }
  return codeNames.get(code) ?? `ERR_${code}`;
}

function shutdown(timeoutMs: number): void {
  if (shuttingDown) return;
  shuttingDown = true;
  brokers.stop();
  clearInterval(connectingPoll);
  readers.closeAll();
  // process.exit() can block in librdkafka's destructor while it is still dialling a broker; with
  // nothing left to deliver, a hard exit is safe and prompt.
  const hardExit = () => void process.kill(process.pid, "SIGKILL");
  if (!producerReady) return hardExit();
  // Give queued records their delivery reports (and the gateway its acks) before leaving.
  const deadline = Date.now() + timeoutMs;
  const waitForBacklog = () => {
    if (backlog.length > 0 && Date.now() < deadline) return void setTimeout(waitForBacklog, 10);
    producer.flush(Math.max(0, deadline - Date.now()), () => setTimeout(() => producer.disconnect(() => process.exit(0)), 20));
  };
  waitForBacklog();
  setTimeout(hardExit, timeoutMs + 1000).unref();
}
