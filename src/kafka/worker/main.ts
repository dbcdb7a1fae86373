/**
 * A Kafka worker process: Bun, calling librdkafka through bun:ffi (src/kafka/librdkafka), the same
 * library build @confluentinc/kafka-javascript installs, at about a third of its addon's CPU per
 * record. The pool spawns and supervises it (pool.ts); it speaks the IPC of ipc.ts and
 * records-layout.ts: PONG to every PING, HEALTH from the broker probe (broker-probe.ts), an error for
 * every record of a PRODUCE batch it cannot read, degraded RECORDS for a record it cannot encode.
 *
 * One thread does the Kafka work and never blocks: it produces (producer.ts), polls
 * delivery reports and readers' records (readers.ts) on a short timer, and answers the
 * gateway. Metadata questions, which block until the broker answers, and rd_kafka_new(), which
 * blocks while librdkafka starts its threads, run on helper threads (queries.ts, query-thread.ts).
 * librdkafka's own threads never run JavaScript.
 */
import type { Socket } from "bun";
import { BrokerProbe, CONNECTION_FAILURE } from "./broker-probe";
import { ByteReader, IpcType, MessageReader, type Query, jsonMessage } from "../wire/ipc";
import { ConsumerHandle, Err, versionString } from "../librdkafka";
import { SocketWriter } from "../wire/socket-writer";
import { StatusReporter } from "./status";
import { WORKER_CONFIG_REFUSED, type WorkerConfig } from "../wire/worker-config";
import { FfiProducer } from "./producer";
import { QueryThread, type StallWatch } from "./query-thread";
import { type ConsumerOpener, FfiReaders, checkReaderProps } from "./readers";
import { IdleCollector } from "./idle-collector";

const config: WorkerConfig = JSON.parse(process.env.KGW_WORKER_CONFIG ?? "{}");
let writer: SocketWriter | null = null;
let ready = false;
let shuttingDown = false;
const send = (buf: Buffer) => writer?.write(buf);
const status = new StatusReporter(send);

// The last connection failure (broker-probe.ts CONNECTION_FAILURE), kept for the connect failure that follows.
let connectCause = "";
let causeAt = 0;

let ffi: FfiProducer;
let librdkafka: string;
try {
  librdkafka = versionString(); // loads the library and refuses an unverified version
  ffi = new FfiProducer(config.producer, (buf) => writer?.writeTransient(buf), (code, message, fatal, event) => {
    const allDown = code === Err.ALL_BROKERS_DOWN;
    if (allDown) brokers.allBrokersDown(message);
    // Any error event from librdkafka (a refused connection, a timed-out request, a failed login) may be
    // why a record's topic stayed unknown: see FfiProducer.brokersTrouble.
    if (!fatal) ffi?.brokersTrouble();
    if (CONNECTION_FAILURE.test(message)) [connectCause, causeAt] = [message, Date.now()];
    // Reported, the all-brokers-down that follows a failed login would replace its cause as the
    // worker's last error, on /health and in the nacks.
    else if (allDown && Date.now() - causeAt < 5000) return;
    status.report(fatal ? "error" : "warn", event ?? "kafka_error", message, { code });
  });
  checkReaderProps(config.consumer, config.bulkConsumer);
} catch (e) {
  process.stderr.write(`kafka worker ${config.workerIndex}: ${String((e as Error)?.message ?? e)}\n`);
  process.exit(WORKER_CONFIG_REFUSED);
}
/**
 * Readers' consumers are made on a thread of their own (queries.ts). One that has opens waiting and
 * has answered none for OPEN_STALL_MS is stuck in rd_kafka_new(): it is let go, every open waiting
 * on it fails (their subscribers hear UNAVAILABLE from the gateway's ready timeout), and a new thread
 * takes the next; a stuck one would otherwise leave every later reader of the worker unopened.
 */
const OPEN_STALL_MS = 10_000;
/** A helper thread asking through the producer's handle, with the readers' properties (queries.ts). */
const queryThread = (stall?: StallWatch) => new QueryThread(() => ffi.producer.rk, { consumer: config.consumer }, stall);
const openerThread: QueryThread = queryThread({
  ms: OPEN_STALL_MS,
  stalled: (reason) => status.report("error", "reader_error", `the consumer opener: ${reason}`),
  // Made once its open had failed, for a reader the gateway has given up on.
  late: (answer) => {
    if (typeof answer.result === "number") openerThread.ask({ kind: "destroyConsumer", rk: answer.result }, () => {});
  },
});
const openConsumer: ConsumerOpener = (props, done) =>
  openerThread.ask({ kind: "openConsumer", props }, (r) => {
    try {
      done(r.error === undefined ? new ConsumerHandle(r.result as number) : new Error(r.error));
    } catch (err) {
      // As in dispatch(): a reader that fails to start is reported, never allowed to end the worker.
      status.report("error", "worker_error", String((err as Error)?.stack ?? err));
    }
    wake();
  });

// Readers' messages are bulk: behind delivery reports and PONGs, in order among themselves.
const collector = new IdleCollector();
const readers = new FfiReaders(
  config.consumer,
  config.bulkConsumer,
  (buf) => {
    collector.copiedOut(buf.byteLength);
    writer?.writeBulk(buf);
  },
  status,
  openConsumer,
);

const queries = queryThread();
// Exit code of a worker whose librdkafka client is wedged (BrokerProbe onWedged): the gateway replaces it.
const EXIT_WEDGED = 70;
// The probe has a thread of its own: behind a slow question it would read as an outage.
let probeThread = queryThread();
const brokers = new BrokerProbe(
  {
    getMetadata: (o, cb) =>
      probeThread.ask({ kind: "probe", timeoutMs: o.timeout }, (r) => {
        // Each probe, not only an outage's third failure, tells the producer whether Kafka answers.
        if (r.error === undefined) ffi.brokersAnswered();
        else ffi.brokersTrouble();
        return r.error === undefined ? cb(null, r.result as string | null) : cb(new Error(r.error));
      }),
    freshProbe: (o, cb) => probeThread.ask({ kind: "freshProbe", timeoutMs: o.timeout }, (r) => (r.error === undefined ? cb(null, r.result as string | null) : cb(new Error(r.error)))),
  },
  config.probeTimeoutMs ?? 1500,
  // Every way to "down" (ALL_BROKERS_DOWN, failed or lost probes) has marked the producer's trouble already.
  (up, reason) => send(jsonMessage(IpcType.HEALTH, { brokers: up ? "up" : "down", reason })),
  (cluster) => send(jsonMessage(IpcType.HEALTH, { cluster })),
  () => {
    ffi.brokersTrouble();
    status.report("warn", "probe_lost", "a broker probe went unanswered; its thread is replaced");
    probeThread.terminate();
    probeThread = queryThread();
  },
  (reason) => {
    // Nothing in this process can mend the handle: the gateway replaces the worker (its in-flight
    // events are nacked WORKER_LOST, which the SDK re-sends by id).
    status.report("error", "client_wedged", `${reason}; the worker exits to be replaced`);
    setTimeout(() => process.exit(EXIT_WEDGED), 100);
  },
  () => ffi.written,
);

// Nothing keeps a body past its message (PRODUCE is copied, the rest is JSON): the reader reuses
// its assembly buffer.
const reader = new MessageReader((type, body) => {
  try {
    dispatch(type, body);
  } catch (e) {
    // A bug in handling one control message is reported, not allowed to kill the producer.
    status.report("error", "worker_error", String((e as Error)?.stack ?? e));
  }
}, true);

function dispatch(type: number, body: Buffer): void {
  if (type === IpcType.PRODUCE) {
    ffi.onProduce(body, ready);
    wake();
  } else if (type === IpcType.PING) {
    const seq = body.length > 2 ? new ByteReader(body).json<{ seq?: unknown }>().seq : undefined;
    send(jsonMessage(IpcType.PONG, typeof seq === "number" ? { seq } : {}));
  } else if ((type >= IpcType.OPEN_READER && type <= IpcType.CLOSE_READER) || type === IpcType.STORE_OFFSETS) {
    readers.handle(type, new ByteReader(body).json());
    if (type === IpcType.CLOSE_READER) collector.readerClosed();
    wake();
  } else if (type === IpcType.QUERY) {
    const q = new ByteReader(body).json<Query & { reqId: number; deadline?: number }>();
    if (!ready) return void send(jsonMessage(IpcType.QUERY_RESULT, { reqId: q.reqId, error: "the worker is not connected to Kafka" }));
    queries.ask(q, (r) => send(jsonMessage(IpcType.QUERY_RESULT, { reqId: q.reqId, result: r.result, error: r.error, ...(r.denied ? { denied: true } : {}) })), q.deadline);
  } else if (type === IpcType.SHUTDOWN) {
    void shutdown(body.length > 0 ? new ByteReader(body).json<{ timeoutMs: number }>().timeoutMs : 5000);
  }
}

await Bun.connect<undefined>({
  unix: config.socketPath,
  socket: {
    open(s) {
      writer = new SocketWriter(s as Socket<unknown>);
      send(jsonMessage(IpcType.HELLO, { workerIndex: config.workerIndex, token: config.token, pid: process.pid, runtime: "bun", bun: Bun.version, node: process.versions.node, librdkafka }));
      connectProducer();
    },
    data: (_s, chunk) => {
      lastFromGateway = performance.now();
      reader.push(chunk as Buffer);
    },
    drain: () => writer?.drain(),
    // Without the gateway there is nobody to acknowledge to: leave at once, rather than linger as an
    // orphan or drain. What it still holds could only reach Kafka unacknowledged, after its clients
    // re-sent it elsewhere, too late for idempotent publish to recognise (a duplicate). A graceful
    // stop comes as SHUTDOWN first, and then this close finds the drain already under way.
    close: () => {
      // SIGKILL, not exit(): exit waits for the metadata thread, which may sit in a call to a slow broker.
      if (!shuttingDown) process.kill(process.pid, "SIGKILL");
    },
    error: () => {},
  },
}).catch(() => process.exit(2));

// A stop is the gateway's to make: it drains, then sends SHUTDOWN. SIGINT and SIGTERM sent to the
// whole process group (Ctrl-C in a terminal, a supervisor that signals every process) reached the
// workers too, which died at once: their events in flight were nacked WORKER_LOST, though many had
// been written, and clients re-sending them made duplicates (outside hostile tester: 1,100 nacked, 500
// of them in Kafka). Ignored here, the drain runs as with the gateway signalled alone; a worker with
// no gateway still leaves at once (the socket's close above, or the silence below).
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => {});

/**
 * A gateway that says nothing for `gatewaySilentMs` (it pings every second or so) is stopped or
 * wedged: nobody takes this worker's acks or records, and its readers' partitions would stay with it.
 * A share group's stayed for 5 minutes (max.poll.interval.ms), its records reaching no member on any
 * other instance (chaos tester). The readers leave their groups at once (closed, not timed out),
 * then the worker goes as it does without a gateway; the gateway, if it comes back, starts another.
 */
let lastFromGateway = performance.now();
const silence = setInterval(() => {
  if (shuttingDown || performance.now() - lastFromGateway < config.gatewaySilentMs) return;
  clearInterval(silence);
  shuttingDown = true;
  process.stderr.write(`kafka worker ${config.workerIndex}: nothing from the gateway for ${config.gatewaySilentMs} ms; leaving\n`);
  readers.closeAll();
  // The poll loop serves their close, as in shutdown().
  void (async () => {
    const deadline = performance.now() + 2000;
    while (readers.closingCount > 0 && performance.now() < deadline) await Bun.sleep(5);
    process.kill(process.pid, "SIGKILL");
  })();
}, 1000);

/** READY once a broker answers a metadata request through the producer; retried every second. */
function connectProducer(): void {
  queries.ask({ kind: "connect" }, (r) => {
    if (shuttingDown) return;
    if (r.error !== undefined) {
      status.report("warn", "connect_failed", connectCause ? `${r.error} (after: ${connectCause})` : r.error);
      return void setTimeout(connectProducer, 1000);
    }
    ready = true;
    connectCause = "";
    send(jsonMessage(IpcType.READY, { cluster: r.result }));
    brokers.start();
    wake();
  });
}

// The poll loop: every millisecond while records are in flight; every 2 ms while readers are
// fetching, 8 ms once they have had nothing for a while (a reader that is merely open costs a
// quarter as much, and the first record after a quiet spell waits at most 8 ms); 50 ms with
// neither (error events only). A message from the gateway wakes it at once. Nothing here blocks.
const READERS_QUIET_TICKS = 50;
let timer: Timer | null = null;
let timerDue = 0;
let quietTicks = 0;
const ALIVE = jsonMessage(IpcType.PONG, {});
let aliveAt = 0;
function loop(): void {
  timer = null;
  let busy = false;
  const now = performance.now();
  if (now - aliveAt >= config.aliveEveryMs) {
    aliveAt = now;
    send(ALIVE);
  }
  try {
    busy = ffi.tick(ready);
    quietTicks = readers.tick() > 0 ? 0 : quietTicks + 1;
    busy ||= readers.cutShort;
  } catch (e) {
    // Thrown out of a timer, it would end the process and every record and reader on it.
    status.report("error", "worker_error", String((e as Error)?.stack ?? e));
  }
  const reading = readers.size > 0 || readers.closingCount > 0;
  schedule(busy || ffi.backlogged ? 1 : reading ? (quietTicks < READERS_QUIET_TICKS ? 2 : 8) : 50);
}
function schedule(ms: number): void {
  const due = Date.now() + ms;
  if (timer && timerDue <= due) return;
  if (timer) clearTimeout(timer);
  timerDue = due;
  timer = setTimeout(loop, ms);
}
function wake(): void {
  quietTicks = 0;
  schedule(1);
}
schedule(50);

async function shutdown(timeoutMs: number): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  brokers.stop();
  readers.closeAll();
  // Nothing in librdkafka's destructor is worth waiting for once every report is sent.
  const hardExit = () => void process.kill(process.pid, "SIGKILL");
  setTimeout(hardExit, timeoutMs + 1000).unref();
  if (!ready) return hardExit();
  // Give queued records their delivery reports (and the gateway its acks) before leaving.
  await ffi.drain(timeoutMs);
  const deadline = Date.now() + 500;
  while (readers.closingCount > 0 && Date.now() < deadline) await Bun.sleep(5);
  // Let the last DELIVERY leave the socket.
  const flushed = Date.now() + 1000;
  while ((writer?.queuedBytes ?? 0) > 0 && Date.now() < flushed) await Bun.sleep(5);
  await Bun.sleep(20);
  process.exit(0);
}
