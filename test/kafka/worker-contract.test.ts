import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Socket, Subprocess, UnixSocketListener } from "bun";
import { ByteReader, ByteWriter, HeaderKind, IpcType, LITERAL, MessageReader, jsonMessage } from "../../src/kafka/wire/ipc";
import { readRecords } from "../../src/kafka/wire/records-layout";
import { MAX_HEADER_NAMES } from "../../src/log/event-log";
import type { WorkerConfig } from "../../src/kafka/wire/worker-config";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";

/**
 * What the gateway relies on from a worker process, asked over the real IPC socket
 * with the worker talking to the real broker: the gateway's side is played here, message by message,
 * so it can send what the pool never would (a batch cut short, more headers than 16 bits count).
 */
const root = resolve(import.meta.dir, "../..");
const HEADERS = 70_000; // more than a 16-bit count holds

interface Worker {
  proc: Subprocess;
  /** What the worker wrote to stderr so far. */
  stderr: () => string;
  send(buf: Buffer): void;
  next(type: number, timeoutMs?: number): Promise<Buffer>;
  stop(): Promise<void>;
}

async function startWorker(runtime: "node" | "bun", brokers: string): Promise<Worker> {
  const socketPath = join(tmpdir(), `kgw-contract-${process.pid}-${runtime}-${crypto.randomUUID().slice(0, 8)}.sock`);
  const inbox: Array<{ type: number; body: Buffer }> = [];
  let conn: Socket<undefined> | null = null;
  const reader = new MessageReader((type, body) => inbox.push({ type, body: Buffer.from(body) }));
  const listener: UnixSocketListener<undefined> = Bun.listen<undefined>({
    unix: socketPath,
    socket: {
      open: (s) => void (conn = s),
      data: (_s, chunk) => reader.push(chunk as Buffer),
    },
  });
  const common = { "bootstrap.servers": brokers, "client.id": `contract-${runtime}` };
  const config: WorkerConfig = {
    socketPath,
    workerIndex: 0,
    token: "t:1",
    // A consumer property on the producer: librdkafka warns about it (CONFWARN) as the client starts.
    producer: { ...common, acks: "all", "linger.ms": 2, "auto.offset.reset": "earliest" },
    consumer: common,
    bulkConsumer: {},
    probeTimeoutMs: 1500,
    gatewaySilentMs: 60_000, // this test is the gateway, and pings only when it wants a PONG
    aliveEveryMs: 600_000, // and takes every PONG for the answer to its PING
  };
  const command = [process.execPath, join(root, "src/kafka/worker/main.ts")];
  const env: Record<string, string> = {};
  const proc = Bun.spawn(command, { env: { ...process.env, ...env, KGW_WORKER_CONFIG: JSON.stringify(config) }, stdout: "inherit", stderr: "pipe" });
  let stderr = "";
  void (async () => {
    const d = new TextDecoder();
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) stderr += d.decode(chunk, { stream: true });
  })();
  const w: Worker = {
    proc,
    stderr: () => stderr,
    send: (buf) => {
      // Unbuffered writes: keep offering the rest until the kernel took it all.
      let off = 0;
      const push = () => {
        off += Math.max(0, conn!.write(buf.subarray(off)));
        if (off < buf.length) setTimeout(push, 1);
      };
      push();
    },
    async next(type, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = inbox.findIndex((m) => m.type === type);
        if (i >= 0) return inbox.splice(i, 1)[0]!.body;
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${runtime} worker: no message of type ${type} (exit ${proc.exitCode})`);
        await Bun.sleep(5);
      }
    },
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
      listener.stop(true);
      rmSync(socketPath, { force: true });
    },
  };
  const hello = new ByteReader(await w.next(IpcType.HELLO)).json<{ runtime: string }>();
  expect(hello.runtime).toBe(runtime);
  await w.next(IpcType.READY);
  return w;
}

interface Rec {
  topic: string;
  key: string;
  value: string;
  headers: Array<[string, string]>;
}

/** A PRODUCE message in the documented layout, everything literal. */
function produce(batchId: number, records: Rec[], count = records.length): Buffer {
  const w = new ByteWriter();
  const start = w.beginMessage(IpcType.PRODUCE);
  w.u32(batchId);
  w.u32(count);
  for (const r of records) {
    w.u16(LITERAL);
    w.shortString(r.topic);
    w.nullableBytes(Buffer.from(r.key));
    w.nullableBytes(Buffer.from(r.value));
    w.f64(Date.now());
    w.u32(r.headers.length);
    for (const [name, value] of r.headers) {
      w.u16(LITERAL);
      w.longString(name);
      w.u8(HeaderKind.TEXT);
      w.longString(value);
    }
  }
  w.endMessage(start);
  return w.take();
}

function delivery(body: Buffer): { batchId: number; results: Array<{ partition: number; offset: number; error?: { name: string; message: string } }> } {
  const r = new ByteReader(body);
  const batchId = r.u32();
  const count = r.u32();
  const rows = Array.from({ length: count }, () => ({ partition: r.i32(), offset: r.f64(), errorIndex: r.i32() }));
  const errors = JSON.parse(r.buf.toString("utf8", r.pos + 4, r.pos + 4 + r.buf.readUInt32LE(r.pos)));
  return { batchId, results: rows.map((x) => ({ partition: x.partition, offset: x.offset, error: x.errorIndex >= 0 ? errors[x.errorIndex] : undefined })) };
}

let brokers: string;
beforeAll(async () => {
  brokers = await kafkaBrokers();
}, 60_000);

for (const runtime of ["bun"] as const) {
  describe(`${runtime} worker`, () => {
    let w: Worker;
    beforeAll(async () => {
      w = await startWorker(runtime, brokers);
    }, 60_000);
    afterAll(async () => {
      await w?.stop();
    });

    test("librdkafka's own log stays off stderr (the gateway hears of errors through STATUS)", async () => {
      await Bun.sleep(500);
      expect(w.stderr()).not.toMatch(/%\d\|/);
    });

    test("answers PING with PONG", async () => {
      w.send(jsonMessage(IpcType.PING, {}));
      await w.next(IpcType.PONG, 10_000);
    });

    test("a batch it cannot read gets an error for every record, and the next batch is produced", async () => {
      const topic = freshTopic(`contract-cut-${runtime}`);
      await ensureTopic(brokers, topic, 1);
      const rec: Rec = { topic, key: "k", value: "v", headers: [["h", "x"]] };
      // Says three records, carries one and a half.
      const whole = produce(7, [rec, rec]);
      const cut = Buffer.from(whole.subarray(0, whole.length - 5));
      cut.writeUInt32LE(cut.length - 4, 0);
      cut.writeUInt32LE(3, 5 + 4);
      w.send(cut);
      const bad = delivery(await w.next(IpcType.DELIVERY));
      expect(bad.batchId).toBe(7);
      expect(bad.results.length).toBe(3);
      for (const r of bad.results) {
        expect(r.partition).toBe(-1);
        expect(r.error?.name).toBe("ERR_IPC");
      }
      w.send(produce(8, [rec]));
      const good = delivery(await w.next(IpcType.DELIVERY));
      expect(good.batchId).toBe(8);
      expect(good.results[0]!.error).toBeUndefined();
      expect(good.results[0]!.offset).toBe(0); // nothing of the unreadable batch reached Kafka
    }, 60_000);

    test("a reader nobody acknowledges holds about 1 MiB in flight, however large its records: 900 KB records go two at a time, not four", async () => {
      const topic = freshTopic(`contract-credit-${runtime}`);
      await ensureTopic(brokers, topic, 1);
      const big = "a".repeat(900_000);
      w.send(produce(11, Array.from({ length: 8 }, () => ({ topic, key: "k", value: big, headers: [] }))));
      const d = delivery(await w.next(IpcType.DELIVERY, 60_000));
      expect(d.results.filter((r) => r.error)).toEqual([]);
      w.send(jsonMessage(IpcType.OPEN_READER, { readerId: 2 }));
      await w.next(IpcType.READER_READY);
      w.send(jsonMessage(IpcType.ASSIGN, { readerId: 2, assignments: [{ topic, partition: 0, offset: 0 }] }));
      const sizes: number[] = [];
      let records = 0;
      for (;;) {
        const body = await w.next(IpcType.RECORDS, sizes.length === 0 ? 30_000 : 3000).catch(() => null);
        if (!body) break;
        sizes.push(body.length);
        const r = new ByteReader(body);
        r.u32();
        records += readRecords(r).length;
      }
      // How many records a message holds depends on what librdkafka had fetched; what is sent before
      // the message that takes it past 1 MiB stays under it, and then nothing until an acknowledgement.
      // Before: four messages of one record each (2.7 MB before the last).
      expect(sizes.length).toBeGreaterThan(0);
      expect(sizes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(2 ** 20);
      if (records < 8) {
        // Acknowledged, it goes on. All of them: one acknowledgement frees only the oldest message,
        // and what is left may still be past 1 MiB (in CI: 900 KB, then 1.8 MB; the 1.8 MB held on).
        for (const _ of sizes) w.send(jsonMessage(IpcType.RECORDS_ACK, { readerId: 2 }));
        await w.next(IpcType.RECORDS, 30_000).catch((e) => {
          throw new Error(`${(e as Error).message}; before the acknowledgement: ${records} records in messages of ${sizes.join(", ")} bytes; worker stderr: ${w.stderr().slice(-2000)}`);
        });
      }
      w.send(jsonMessage(IpcType.CLOSE_READER, { readerId: 2 }));
    }, 120_000);

    test("readers being opened never hold the worker's loop: a PING behind 48 OPEN_READERs is answered at once, and what comes for a reader still opening waits for it", async () => {
      const topic = freshTopic(`contract-opens-${runtime}`);
      await ensureTopic(brokers, topic, 1);
      w.send(produce(12, [{ topic, key: "k", value: "opened", headers: [] }]));
      expect(delivery(await w.next(IpcType.DELIVERY, 60_000)).results[0]!.error).toBeUndefined();
      // Each consumer's rd_kafka_new() blocks 4-27 ms while librdkafka starts its threads: made on the
      // loop, these 48 held the PONG (and every delivery report) for 0.2-1.3 s. A reconnecting
      // dashboard fleet resuming its replays opens that many at once.
      const ids = Array.from({ length: 48 }, (_, i) => 100 + i);
      const [first, closedEarly] = [ids[0]!, ids[1]!];
      const burst = Buffer.concat([
        ...ids.map((readerId) => jsonMessage(IpcType.OPEN_READER, { readerId })),
        // Before either can have been made: kept, then applied in order.
        jsonMessage(IpcType.ASSIGN, { readerId: first, assignments: [{ topic, partition: 0, offset: 0 }] }),
        jsonMessage(IpcType.CLOSE_READER, { readerId: closedEarly }),
        jsonMessage(IpcType.PING, {}),
      ]);
      const sent = performance.now();
      w.send(burst);
      await w.next(IpcType.PONG, 10_000);
      const pongMs = performance.now() - sent;
      console.log(`PONG behind 48 OPEN_READERs: ${pongMs.toFixed(1)} ms`);
      for (const _ of ids) await w.next(IpcType.READER_READY, 30_000);
      let body = new ByteReader(await w.next(IpcType.RECORDS, 30_000));
      while (body.u32() !== first) body = new ByteReader(await w.next(IpcType.RECORDS, 30_000));
      expect(readRecords(body).map((r) => Buffer.from(r.value!).toString())).toEqual(["opened"]);
      for (const readerId of ids) if (readerId !== closedEarly) w.send(jsonMessage(IpcType.CLOSE_READER, { readerId }));
      w.send(jsonMessage(IpcType.PING, {}));
      await w.next(IpcType.PONG, 10_000);
      expect(w.stderr()).not.toMatch(/reader_error|worker_error/);
      expect(pongMs).toBeLessThan(100);
    }, 120_000);

    test(`a record with ${HEADERS} headers goes to Kafka whole, and a reader hands back its first MAX_HEADER_NAMES names and counts the rest`, async () => {
      const topic = freshTopic(`contract-hdr-${runtime}`);
      await ensureTopic(brokers, topic, 1);
      const headers = Array.from({ length: HEADERS }, (_, i) => [`h${i}`, `v${i}`] as [string, string]);
      w.send(produce(9, [{ topic, key: "k", value: "many", headers }]));
      const d = delivery(await w.next(IpcType.DELIVERY, 60_000));
      expect(d.results[0]!.error).toBeUndefined();
      const [inKafka] = await consumeAll(brokers, topic, { expect: 1 });
      expect(Object.keys(inKafka!.headers).length).toBe(HEADERS);
      expect(inKafka!.headers.h69999).toBe("v69999");

      w.send(jsonMessage(IpcType.OPEN_READER, { readerId: 1 }));
      await w.next(IpcType.READER_READY);
      w.send(jsonMessage(IpcType.ASSIGN, { readerId: 1, assignments: [{ topic, partition: 0, offset: 0 }] }));
      // A reader of an earlier test, acknowledged as it closed, may have sent on meanwhile: this one's.
      let body = new ByteReader(await w.next(IpcType.RECORDS, 60_000));
      while (body.u32() !== 1) body = new ByteReader(await w.next(IpcType.RECORDS, 60_000));
      const [rec] = readRecords(body);
      w.send(jsonMessage(IpcType.RECORDS_ACK, { readerId: 1 }));
      w.send(jsonMessage(IpcType.CLOSE_READER, { readerId: 1 }));
      expect(Buffer.from(rec!.value!).toString()).toBe("many");
      expect(rec!.headers.length).toBe(MAX_HEADER_NAMES);
      expect(rec!.headersLeftOut).toBe(HEADERS - MAX_HEADER_NAMES);
      expect(rec!.headers[MAX_HEADER_NAMES - 1]![0]).toBe(`h${MAX_HEADER_NAMES - 1}`);
      expect(Buffer.from(rec!.headers[MAX_HEADER_NAMES - 1]![1]).toString()).toBe(`v${MAX_HEADER_NAMES - 1}`);
    }, 120_000);
  });
}
