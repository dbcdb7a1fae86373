/**
 * The workload of test/kafka/librdkafka.test.ts's leak test, in a process of its own: two million
 * small records produced and consumed through the bun:ffi binding, touching every part of each
 * record the worker copies out. Prints one JSON line: counts, seconds, and RSS at each fifth.
 *   bun test/support/librdkafka-leak-run.ts BROKERS TOPIC
 */
import { readFileSync } from "node:fs";
import { Consumer, type DeliveryVisitor, MessageBatch, OFFSET_BEGINNING, Producer, type ProduceRecord } from "../../src/kafka/librdkafka";

const [brokers, topic] = process.argv.slice(2) as [string, string];
const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;

const p = new Producer({ "bootstrap.servers": brokers, acks: "all", "enable.idempotence": true, "linger.ms": 5, "compression.type": "lz4", partitioner: "murmur2_random", "queue.buffering.max.messages": 100_000 });
const c = new Consumer({ "bootstrap.servers": brokers, "group.id": `l-${topic}`, "enable.auto.commit": false, "queued.max.messages.kbytes": 8192, "fetch.max.bytes": 4_194_304 });
c.assign([0, 1].map((partition) => ({ topic, partition, offset: OFFSET_BEGINNING })));
const N = 2_000_000;
const value = Buffer.alloc(40, 120);
const sink = new Uint8Array(1 << 16);
const batch = new MessageBatch(10_000);
let delivered = 0;
let failed = 0;
let consumed = 0;
let produced = 0;
const visitor: DeliveryVisitor = { delivered: () => void delivered++, failed: () => void failed++ };
const headers: Array<[string, string]> = [["ce_type", "leak.test"], ["ce_id", "x"]];
const rec: ProduceRecord = { topic, value, key: "k", headers };
const samples: number[] = [];
const started = Date.now();
while ((consumed < N || delivered + failed < N) && Date.now() - started < 120_000) {
  for (let i = 0; i < 5000 && produced < N; i++) {
    headers[1]![1] = `id-${produced}`;
    rec.key = `k${produced & 63}`;
    if (p.produce(rec) !== 0) break;
    produced++;
  }
  p.poll(visitor);
  const n = c.consume(batch, 0);
  for (let i = 0; i < n; i++) {
    if (batch.err(i) !== 0) continue;
    consumed++;
    batch.copyValue(i, sink, 0);
    batch.partition(i);
    batch.offset(i);
    batch.timestamp(i);
    batch.topic(i);
    for (let h = batch.headerCount(i) - 1; h >= 0; h--) batch.header(h);
  }
  batch.release();
  if (samples.length < 4 && consumed >= ((samples.length + 1) * N) / 5) {
    Bun.gc(true);
    samples.push(rss());
  }
  if (n === 0) await Bun.sleep(0);
}
Bun.gc(true);
samples.push(rss());
c.destroy();
p.destroy();
console.log(JSON.stringify({ n: N, delivered, failed, consumed, seconds: (Date.now() - started) / 1000, samples }));
