import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";
import { SECRET, hsToken, now } from "../auth/support";

/**
 * A connection closed for its handshake (a later hello naming a protocol version this gateway does
 * not speak: 4000; a later hello whose token is refused: 4401) is closed once every publish it had
 * handed to Kafka is answered, as a connection closed for abuse is. Closed at once, the outside
 * tester's 200 publishes pipelined before a `hello` with v:2 were all written to Kafka and none
 * answered.
 */
let brokers: string;
let gw: GatewayProcess;
let token: string;
beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, AUTH_JWT_SECRET: SECRET, RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });
  token = await hsToken({ sub: "producer", exp: now() + 600, kgw: { publish: ["*"], subscribe: ["*"] } });
}, 90_000);
afterAll(async () => {
  await gw?.stop();
}, 60_000);

for (const { close, label, hello } of [
  { close: 4000, label: "a later hello with v:2", hello: () => ({ t: 1, v: 2, cid: 100_000 }) },
  { close: 4401, label: "a later hello with a refused token", hello: () => ({ t: 1, v: 1, cid: 100_000, token: `${token.slice(0, -4)}AAAA` }) },
]) {
  test(`closed ${close} by ${label} with publishes in flight: every publish answered once, every event written acked`, async () => {
    const topic = freshTopic(`handshake-${close}`);
    await ensureTopic(brokers, topic, 3);
    const n = 200;
    const c = await RawWsClient.connect(gw.port);
    await underControl(
      gw,
      `a connection closed ${close} with publishes in flight`,
      async () => {
        c.send({ t: 1, v: 1, token });
        await c.waitFor((f) => f.t === 2);
        for (let i = 0; i < n; i++) c.send({ t: 10, cid: i + 1, topic, event: { id: `ev-${i}`, type: "handshake", key: `k${i % 7}`, data: { i } } });
        c.send(hello());
        await Promise.race([c.ended, Bun.sleep(30_000)]);
      },
      { token },
    );
    expect(c.closeCode).toBe(close);
    const counts = new Map<number, number>();
    for (const f of c.frames) if (typeof f.cid === "number") counts.set(f.cid, (counts.get(f.cid) ?? 0) + 1);
    const acked = new Set(c.frames.filter((f) => f.t === 20).map((f) => f.cid as number));
    await Bun.sleep(500);
    const written = (await consumeAll(brokers, topic, { timeoutMs: 5000 })).map((r) => Number(r.headers.ce_id!.slice(3)));
    const unanswered = Array.from({ length: n }, (_, i) => i + 1).filter((cid) => !counts.has(cid));
    console.log(`closed ${close}: ${n - unanswered.length} of ${n} publishes answered (${acked.size} acked), ${written.length} events in Kafka`);
    expect(counts.get(100_000)).toBe(1); // the hello's own refusal
    expect(unanswered).toEqual([]);
    for (const count of counts.values()) expect(count).toBe(1);
    expect(written.filter((i) => !acked.has(i + 1))).toEqual([]);
    expect(acked.size).toBe(written.length);
  }, 120_000);
}

/**
 * Subscribes, unsubscribes and refreshes are requests too: a connection closed for its handshake
 * waits for their replies as for its publishes'. Before, only publishes were waited for: four
 * subscribes still starting (a replay from earliest, one from a time, a live one, a filtered one)
 * and the unsubscribe and subscribe queued behind them got no reply at all on Kafka (outside tester).
 */
test("closed 4000 with subscribes, an unsubscribe and a refresh still to answer: each gets exactly one reply", async () => {
  const topic = freshTopic("handshake-subs");
  const other = freshTopic("handshake-subs-other");
  await ensureTopic(brokers, topic, 3);
  await ensureTopic(brokers, other, 3);
  const c = await RawWsClient.connect(gw.port);
  await underControl(
    gw,
    "a connection closed 4000 with subscribes starting",
    async () => {
      c.send({ t: 1, v: 1, token });
      await c.waitFor((f) => f.t === 2);
      c.send({ t: 12, cid: 1, sub: "a", topic, start: "earliest" });
      c.send({ t: 12, cid: 2, sub: "b", topic, start: { time: Date.now() - 60_000 } });
      c.send({ t: 12, cid: 3, sub: "c", topic });
      c.send({ t: 12, cid: 4, sub: "d", topic: other, start: "earliest", filter: { types: ["t.*"] } });
      c.send({ t: 13, cid: 5, sub: "a" });
      c.send({ t: 12, cid: 6, sub: "a", topic });
      c.send({ t: 14, cid: 7, token });
      c.send({ t: 1, v: 2, cid: 8 });
      await Promise.race([c.ended, Bun.sleep(30_000)]);
    },
    { token },
  );
  expect(c.closeCode).toBe(4000);
  const counts = new Map<number, number>();
  for (const f of c.frames) if (typeof f.cid === "number") counts.set(f.cid, (counts.get(f.cid) ?? 0) + 1);
  console.log("replies by cid:", JSON.stringify(Object.fromEntries(counts)), c.frames.filter((f) => typeof f.cid === "number").map((f) => `${f.cid}:t${f.t}${f.code ? ` ${f.code}` : ""}`).join(", "));
  for (let cid = 1; cid <= 8; cid++) expect([cid, counts.get(cid)]).toEqual([cid, 1]);
}, 120_000);
