import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { type PublishError, connect } from "../../src/client";

test("SIGTERM mid-stream: new publishes are refused SHUTTING_DOWN, everything acked is in Kafka, exit 0", async () => {
  const brokers = await kafkaBrokers();
  const topic = freshTopic("drain");
  await ensureTopic(brokers, topic, 3);
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2" });
  let open = true;
  // One attempt per event, and no reconnect within the test: what is counted is this gateway's answers.
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1, reconnect: { minMs: 60_000, maxMs: 60_000 }, onState: (state) => state !== "open" && (open = false) });
  const acked = new Map<string, { partition: number; offset: number }>();
  const nackCodes = new Set<string>();
  let seq = 0;
  const pending = new Set<Promise<void>>();
  const exited = (async () => {
    await Bun.sleep(500);
    return gw.stop("SIGTERM");
  })();
  while (open) {
    while (pending.size < 10 && open) {
      const events = Array.from({ length: 50 }, () => ({ id: `d-${seq++}`, type: "test.drain", key: `k${seq % 7}` }));
      const p: Promise<void> = client.publishBatch(events, { topic }).then((settled) => {
        for (const r of settled) {
          if (r.status === "fulfilled") acked.set(r.value.id, { partition: r.value.partition, offset: r.value.offset });
          // CLIENT_CLOSED: still unanswered when the client was closed below, the SDK's own refusal.
          else if ((r.reason as PublishError).code !== "CLIENT_CLOSED") nackCodes.add((r.reason as PublishError).code);
        }
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await Promise.race([...pending, Bun.sleep(50)]);
  }
  client.close();
  await Promise.all(pending);
  expect(await exited).toBe(0);
  expect(acked.size).toBeGreaterThan(0);
  // Requests that arrive once the drain began are refused; if none arrived before the sockets closed, none are.
  for (const code of nackCodes) expect(code).toBe("SHUTTING_DOWN");
  const inKafka = new Map((await consumeAll(brokers, topic, { expect: acked.size })).map((r) => [r.headers.ce_id!, { partition: r.partition, offset: r.offset }]));
  for (const [id, pos] of acked) expect(inKafka.get(id)).toEqual(pos);
}, 60_000);

test("SIGTERM while subscribes keep coming: each one answered is subscribed or SHUTTING_DOWN (retriable, reconnect elsewhere), never UNAVAILABLE", async () => {
  const brokers = await kafkaBrokers();
  const topic = freshTopic("drain-subs");
  await ensureTopic(brokers, topic, 3);
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2", MAX_REPLAYS_PER_ADDRESS: "1000", MAX_REPLAY_SUBSCRIPTIONS: "1000", MAX_SUBSCRIPTIONS_PER_CONNECTION: "1000", SUBSCRIBE_RATE_LIMIT: "0" });
  const publisher = await connect({ url: gw.wsUrl });
  await publisher.publishBatch(Array.from({ length: 100 }, (_, i) => ({ type: "test.drain", key: `k${i}` })), { topic });
  publisher.close();
  const ws = new WebSocket(gw.wsUrl);
  const codes = new Map<number, string[]>();
  let welcomed!: () => void;
  const welcome = new Promise<void>((r) => (welcomed = r));
  ws.onmessage = (m) => {
    const f = JSON.parse(String(m.data));
    if (f.t === 2) return welcomed();
    if (f.cid === undefined) return; // events, `live`
    codes.set(f.cid, [...(codes.get(f.cid) ?? []), f.t === 23 ? "subscribed" : String(f.code)]);
  };
  const closed = new Promise<number>((r) => (ws.onclose = (e) => r(e.code)));
  await new Promise<void>((r) => (ws.onopen = () => r()));
  ws.send(JSON.stringify({ t: 1, v: 1 }));
  await welcome;
  let cid = 0;
  const subscribe = () => ws.send(JSON.stringify({ t: 12, cid: ++cid, sub: `s${cid}`, topic, start: "earliest" }));
  for (let i = 0; i < 32; i++) subscribe();
  await Bun.sleep(100);
  const exited = gw.stop("SIGTERM");
  // Subscribes keep coming through the drain, until the gateway closes the socket.
  let open = true;
  void closed.then(() => (open = false));
  while (open) {
    if (ws.readyState === WebSocket.OPEN) subscribe();
    await Bun.sleep(3);
  }
  expect(await closed).toBe(1001);
  expect(await exited).toBe(0);
  const all = [...codes.values()];
  // Each one answered, once.
  for (const replies of all) expect(replies).toHaveLength(1);
  const seen = new Set(all.flat());
  expect([...seen].filter((code) => code !== "subscribed" && code !== "SHUTTING_DOWN")).toEqual([]);
  expect(seen.has("SHUTTING_DOWN")).toBe(true);
}, 90_000);

test("SIGTERM to the gateway and its workers at once (a process group's Ctrl-C or stop): the drain is as with the gateway alone, no WORKER_LOST", async () => {
  // The workers had no handler and died at once: 1,100 events in flight nacked WORKER_LOST, 500 of
  // them written to Kafka (outside hostile tester).
  const brokers = await kafkaBrokers();
  const topic = freshTopic("drain-group");
  await ensureTopic(brokers, topic, 3);
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "2", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });
  const workers: number[] = (await gw.health()).log.workers.map((w: { pid: number }) => w.pid);
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1, reconnect: { minMs: 60_000, maxMs: 60_000 } });
  const codes = new Map<string, number>();
  const acked = new Set<string>();
  let seq = 0;
  let open = true;
  const pending = new Set<Promise<void>>();
  const pumping = (async () => {
    while (open) {
      while (pending.size < 40 && open) {
        const events = Array.from({ length: 100 }, () => ({ id: `g-${seq++}`, type: "test.drain", key: `k${seq % 7}` }));
        const p: Promise<void> = client.publishBatch(events, { topic }).then((settled) => {
          for (const r of settled) {
            const code = r.status === "fulfilled" ? "acked" : (r.reason as PublishError).code;
            if (r.status === "fulfilled") acked.add(r.value.id);
            codes.set(code, (codes.get(code) ?? 0) + 1);
          }
        });
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
      await Promise.race([...pending, Bun.sleep(20)]);
    }
  })();
  for (const until = Date.now() + 20_000; acked.size === 0 && Date.now() < until; ) await Bun.sleep(50);
  await Bun.sleep(500);
  for (const pid of workers) process.kill(pid, "SIGTERM");
  const exited = await gw.stop("SIGTERM");
  open = false;
  // What the SDK still waits for when its connection closed is its own CLIENT_CLOSED, not the gateway's answer.
  client.close();
  await Promise.all(pending);
  await pumping;
  expect(exited).toBe(0);
  console.log(`signals to the gateway and its workers together: ${JSON.stringify(Object.fromEntries(codes))}; ${gw.lines.filter((l) => l.includes("worker_exit")).length} worker exits`);
  expect(codes.get("WORKER_LOST") ?? 0).toBe(0);
  const inKafka = new Set((await consumeAll(brokers, topic, { expect: acked.size })).map((r) => r.headers.ce_id!));
  expect([...acked].filter((id) => !inKafka.has(id))).toEqual([]);
}, 120_000);
