/**
 * A Kafka worker process on Bun, using librdkafka through bun:ffi (src/kafka/librdkafka) instead of
 * the Node addon. It speaks the same IPC as the Node worker (worker.ts; layout in ipc.ts), so the
 * pool can supervise either kind alike. NOT WIRED YET: the pool does not spawn it. Before the switch
 * (KAFKA_WORKER_RUNTIME=node|bun) it must catch up with what landed on the Node worker meanwhile:
 * answer PING with PONG and report HEALTH (broker-probe.ts), read PRODUCE with 32-bit header counts
 * and answer an unreadable batch with an error per record, and write RECORDS through
 * records-layout.ts (32-bit header counts, own header names only).
 *
 * One thread does the Kafka work and never blocks: it produces (worker-bun-producer.ts), polls
 * delivery reports and readers' records (worker-bun-readers.ts) on a short timer, and answers the
 * gateway. Metadata questions, which block until the broker answers, run on a helper thread
 * (worker-bun-queries.ts). librdkafka's own threads never run JavaScript.
 */
import type { Socket } from "bun";
import { ByteReader, IpcType, MessageReader, type Query, jsonMessage } from "./ipc";
import { versionString } from "./librdkafka";
import { SocketWriter } from "./socket-writer";
import type { WorkerConfig } from "./worker";
import { FfiProducer } from "./worker-bun-producer";
import { FfiReaders } from "./worker-bun-readers";

const config: WorkerConfig = JSON.parse(process.env.KGW_WORKER_CONFIG ?? "{}");
let writer: SocketWriter | null = null;
let ready = false;
let shuttingDown = false;
const send = (buf: Buffer) => writer?.write(buf);
const status = (level: string, event: string, message: string, extra: object = {}) => send(jsonMessage(IpcType.STATUS, { level, event, message, ...extra }));

let ffi: FfiProducer;
let librdkafka: string;
try {
  librdkafka = versionString(); // loads the library and refuses an unverified version
  ffi = new FfiProducer(config.producer, send, (code, message, fatal) => status(fatal ? "error" : "warn", "kafka_error", message, { code }));
} catch (e) {
  process.stderr.write(`kafka worker ${config.workerIndex}: ${String((e as Error)?.message ?? e)}\n`);
  process.exit(3);
}
const readers = new FfiReaders(config.consumer, send);

// Metadata thread: see worker-bun-queries.ts.
const queries = new Worker(new URL("./worker-bun-queries.ts", import.meta.url).href);
const waiting = new Map<number, (r: { result?: unknown; error?: string }) => void>();
let querySeq = 0;
queries.onmessage = (e: MessageEvent<{ reqId: number; result?: unknown; error?: string }>) => {
  const done = waiting.get(e.data.reqId);
  waiting.delete(e.data.reqId);
  done?.(e.data);
};
function ask(query: Query | { kind: "connect" }, done: (r: { result?: unknown; error?: string }) => void): void {
  const reqId = ++querySeq;
  waiting.set(reqId, done);
  queries.postMessage({ reqId, rk: ffi.producer.rk, query });
}

const reader = new MessageReader((type, body) => {
  try {
    dispatch(type, body);
  } catch (e) {
    // A bug in handling one control message is reported, not allowed to kill the producer.
    status("error", "worker_error", String((e as Error)?.stack ?? e));
  }
});

function dispatch(type: number, body: Buffer): void {
  if (type === IpcType.PRODUCE) {
    ffi.onProduce(body, ready);
    wake();
  } else if (type >= IpcType.OPEN_READER && type <= IpcType.CLOSE_READER) {
    readers.handle(type, new ByteReader(body).json());
    wake();
  } else if (type === IpcType.QUERY) {
    const q = new ByteReader(body).json<Query & { reqId: number }>();
    if (!ready) return void send(jsonMessage(IpcType.QUERY_RESULT, { reqId: q.reqId, error: "the worker is not connected to Kafka" }));
    ask(q, (r) => send(jsonMessage(IpcType.QUERY_RESULT, { reqId: q.reqId, result: r.result, error: r.error })));
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
    data: (_s, chunk) => reader.push(chunk as Buffer),
    drain: () => writer?.drain(),
    // Without the gateway there is nobody to acknowledge to: leave rather than linger as an orphan.
    close: () => void shutdown(2000),
    error: () => {},
  },
}).catch(() => process.exit(2));

/** READY once a broker answers a metadata request through the producer; retried every second. */
function connectProducer(): void {
  ask({ kind: "connect" }, (r) => {
    if (shuttingDown) return;
    if (r.error !== undefined) {
      status("warn", "connect_failed", r.error);
      return void setTimeout(connectProducer, 1000);
    }
    ready = true;
    send(jsonMessage(IpcType.READY, {}));
    wake();
  });
}

// The poll loop: every millisecond while records or readers are active, slowly when idle (error
// events only). Nothing here blocks.
let timer: Timer | null = null;
let timerDue = 0;
function loop(): void {
  timer = null;
  const busy = ffi.tick(ready);
  readers.tick();
  schedule(busy || ffi.backlogged ? 1 : readers.size > 0 || readers.closingCount > 0 ? 2 : 50);
}
function schedule(ms: number): void {
  const due = Date.now() + ms;
  if (timer && timerDue <= due) return;
  if (timer) clearTimeout(timer);
  timerDue = due;
  timer = setTimeout(loop, ms);
}
function wake(): void {
  schedule(1);
}
schedule(50);

async function shutdown(timeoutMs: number): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
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
