// Checks that the batched bridge acknowledges each event with where it really is: a fresh broker,
// the bridge, 4 connections sending 1-event and 50-event frames to two topics at once (so flushes
// mix frames, connections and topics), then kcat reads both topics and every acked id must be the
// ce_id header of the record at its (partition, offset).
//   bun bench/batched-bridge/check.ts   → prints "ok: N events" or exits 1 with the mismatches
import { resolve } from "node:path";
import { Packr, Unpackr } from "msgpackr";
import { connectHelloed } from "../harness/handshake";
import { resolveNodeBinary } from "../harness/node-binary";
import { consumeAll, ensureTopic, startBroker } from "../../test/support/kafka-broker";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });
const root = resolve(import.meta.dir, "../..");
const broker = await startBroker();
const topics = [`bb-check-a-${Date.now()}`, `bb-check-b-${Date.now()}`];
for (const t of topics) await ensureTopic(broker.brokers, t, 3);
const bridge = Bun.spawn([resolveNodeBinary(process.env.NODE_BINARY), resolve(import.meta.dir, "server.cjs"), broker.brokers, "0", "10000"], {
  cwd: root,
  env: { ...process.env, NODE_PATH: resolve(root, "node_modules"), KAFKAJS_NO_PARTITIONER_WARNING: "1" },
  stdout: "pipe",
  stderr: "inherit",
});
let failed = false;
try {
  let out = "";
  const reader = bridge.stdout.getReader();
  while (!/LISTENING \d+/.test(out)) {
    const n = await reader.read();
    if (n.done) throw new Error(`bridge exited: ${out}`);
    out += new TextDecoder().decode(n.value);
  }
  const url = `ws://127.0.0.1:${/LISTENING (\d+)/.exec(out)![1]}`;
  const acked: Array<{ topic: string; id: string; partition: number; offset: number }> = [];
  let cid = 0;
  const FRAMES = 100;
  await Promise.all(
    Array.from({ length: 4 }, async (_, c) => {
      const { ws } = await connectHelloed(url);
      const pending = new Map<number, (f: any) => void>();
      ws.onmessage = (m) => {
        const f = unpackr.unpack(new Uint8Array(m.data as ArrayBuffer));
        pending.get(f.cid)?.(f);
      };
      const replies: Array<Promise<any>> = [];
      for (let i = 0; i < FRAMES; i++) {
        const topic = topics[(c + i) % 2]!;
        const n = i % 5 === 0 ? 50 : 1;
        const events = Array.from({ length: n }, (_, j) => ({ type: "check", key: `k${(c * 7919 + i * 31 + j) % 97}`, data: new Uint8Array([c, i & 255, j]) }));
        const id = ++cid;
        replies.push(new Promise((res) => pending.set(id, res)).then((f) => ({ f, topic })));
        ws.send(packr.pack(n === 1 ? { t: 10, cid: id, topic, event: events[0] } : { t: 11, cid: id, topic, events }));
      }
      for (const { f, topic } of await Promise.all(replies)) {
        if (f.t === 20) acked.push({ topic, id: f.id, partition: f.partition, offset: f.offset });
        else if (f.t === 22) f.ids.forEach((id: string, k: number) => acked.push({ topic, id, partition: f.partitions[k], offset: f.offsets[k] }));
        else throw new Error(`not acked: ${JSON.stringify(f)}`);
      }
      ws.close();
    }),
  );
  const at = new Map<string, string>();
  for (const t of topics) for (const r of await consumeAll(broker.brokers, t, { expect: acked.filter((a) => a.topic === t).length })) at.set(`${t}/${r.partition}/${r.offset}`, r.headers.ce_id!);
  const wrong = acked.filter((a) => at.get(`${a.topic}/${a.partition}/${a.offset}`) !== a.id);
  if (wrong.length > 0 || at.size !== acked.length) {
    failed = true;
    console.error(`${wrong.length} of ${acked.length} acks point elsewhere (${at.size} records in Kafka), e.g. ${JSON.stringify(wrong.slice(0, 3))}`);
  } else console.log(`ok: ${acked.length} events, each acked at its own partition and offset`);
} finally {
  bridge.kill("SIGTERM");
  await bridge.exited;
  await broker.stop();
}
process.exit(failed ? 1 : 0);
