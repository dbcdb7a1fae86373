import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { RawWsClient } from "../support/raw-ws";

/**
 * An event refused OVERLOADED (its worker holds KAFKA_MAX_INFLIGHT_PER_WORKER unanswered events) is
 * sent again by its client; a later event of its key, sent before the client read that refusal, was
 * written first if acks had made room by the time it came: 8 per-key inversions in 1 of 2 runs of
 * 4 SDK clients pipelining 4,000 events with the cap at 100 (3,800 refusals). The pool now refuses
 * it too, until the earlier one comes again (LostKeys, as for a worker's loss).
 */
const file = kafkaGatewayForFile({ KAFKA_WORKERS: "1", KAFKA_MAX_INFLIGHT_PER_WORKER: "100" });

test("an event refused OVERLOADED is not overtaken by a later event of its key sent before its client read the refusal", async () => {
  const topic = freshTopic("overload-order");
  await ensureTopic(file.brokers, topic, 2);
  const c = await RawWsClient.connect(file.gw.port);
  c.send({ t: 1, v: 1, cid: 1 });
  await c.waitFor((f) => f.t === 2, 10_000);
  let cid = 1;
  const send = (frame: object) => {
    const n = ++cid;
    c.send({ ...frame, cid: n });
    return c.waitFor((f) => f.cid === n, 60_000);
  };
  const publish = (id: string) => send({ t: 10, topic, event: { type: "t.order", id, key: "k", data: { id } } });
  expect((await publish("warm")).t).toBe(20);
  const worker = (await file.gw.health()).log.workers[0];
  // The worker's cap filled with events it cannot answer while stopped.
  process.kill(worker.pid, "SIGSTOP");
  const filler = send({ t: 11, topic, events: Array.from({ length: 100 }, (_, i) => ({ type: "t.fill", key: `f${i}` })) });
  await Bun.sleep(200);
  const refusedA = await publish("a");
  expect(refusedA.code).toBe("OVERLOADED");
  process.kill(worker.pid, "SIGCONT");
  expect((await filler).t).toBe(22);
  // B was on its way before the client read A's refusal; A's re-send follows it.
  const b = await publish("b");
  const a = await publish("a");
  console.log(`b: ${b.code ?? "acked"}, a sent again: ${a.code ?? "acked"}`);
  expect(a.t).toBe(20);
  let bAgain = b;
  for (let attempt = 0; bAgain.t !== 20 && attempt < 50; attempt++) {
    expect(bAgain.code).toBe("OVERLOADED");
    expect(bAgain.message).toContain("earlier event of this key");
    await Bun.sleep(50);
    bAgain = await publish("b");
  }
  expect(bAgain.t).toBe(20);
  const records = await consumeAll(file.brokers, topic, { expect: 103, timeoutMs: 30_000 });
  const order = records
    .filter((r) => Buffer.from(r.key!).toString() === "k")
    .sort((x, y) => x.offset - y.offset)
    .map((r) => JSON.parse(Buffer.from(r.value!).toString()).id);
  expect(order).toEqual(["warm", "a", "b"]);
  c.destroy();
}, 120_000);
