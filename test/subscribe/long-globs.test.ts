import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";

/**
 * Source patterns of 500-800 characters that nearly match a 1,024-character source: each test cost
 * indexOf ~150 us, and 1,000 subscriptions of 64 such patterns (within every bound then: 64,000 of
 * MAX_FILTER_TERMS_PER_TOPIC's 100,000 terms) made one event hold the event loop 7-9 s (outside
 * hostile tester: a control's acks stopped, /health/live timed out). A long pattern is now found in
 * one pass (protocol/glob.ts) and counts a term per 64 characters, so a topic holds far fewer.
 */
const A = (n: number) => "a".repeat(n);
const pattern = (x: number) => `*${A(100 + (x % 200))}b${A(350 + (Math.floor(x / 200) % 151))}*${A(1 + Math.floor(x / 30200))}`;

test("one event against a topic's filters of long, nearly matching source patterns costs the control little", async () => {
  // Many addresses reach the topic's whole bound; this test's one address is let take it.
  const gw = await startGateway({ KAFKA_BROKERS: "", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0", RATE_LIMIT_BYTES: "0", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_HANDLING_MS: "0", MAX_FILTER_TERMS_PER_ADDRESS: "100000" });
  const topic = freshTopic("long-globs");
  const clients: RawWsClient[] = [];
  try {
    const writer = await RawWsClient.connect(gw.port, "/ws", "", "127.0.0.1");
    writer.send({ t: 1, v: 1 });
    writer.send({ t: 10, cid: 1, topic, event: { type: "init" } });
    expect((await writer.waitFor((f) => f.cid === 1)).t).toBe(20);
    let accepted = 0;
    let refused = 0;
    for (let c = 0; c < 10; c++) {
      const cl = await RawWsClient.connect(gw.port, "/ws", "", `127.0.0.${20 + c}`);
      cl.send({ t: 1, v: 1 });
      for (let s = 0; s < 100; s++) {
        const source = Array.from({ length: 64 }, (_, i) => pattern((c * 100 + s) * 64 + i));
        cl.send({ t: 12, cid: s + 1, sub: `s${s}`, topic, filter: { source }, start: "latest" });
      }
      for (let s = 0; s < 100; s++) {
        const reply = await cl.waitFor((f) => f.cid === s + 1, 30_000);
        if (reply.t === 23) accepted++;
        else refused++;
      }
      cl.pause(); // nothing matches; they never read
      clients.push(cl);
    }
    console.log(`long-pattern filters: ${accepted} subscribed, ${refused} refused`);
    await underControl(
      gw,
      "three events with a 1,024-character source against the topic's long patterns",
      async () => {
        for (let i = 0; i < 3; i++) {
          writer.send({ t: 10, cid: 10 + i, topic, event: { type: "x", source: A(1024), data: i } });
          await Bun.sleep(1000);
        }
        for (let i = 0; i < 3; i++) expect((await writer.waitFor((f) => f.cid === 10 + i, 30_000)).t).toBe(20);
      },
      // Before: the control's acks stopped for 7-9 s per event.
      { maxUnderMs: 1500 },
    );
    writer.destroy();
  } finally {
    for (const c of clients) c.destroy();
    await gw.stop();
  }
}, 180_000);
