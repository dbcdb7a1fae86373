// Raw test client: the attack pipelines subscribes to made-up topics without waiting, which the SDK never does.
import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { underControl } from "../ingest/control";
import { GatewayClient } from "../support/ws-client";

// test-plan: alone (it bounds a time from above; scripts/test-plan.ts).

/**
 * Subscribing asks Kafka how many partitions a topic has (and so whether it exists). Those questions
 * were asked one full metadata request each, five times for a topic that does not exist, in one
 * queue per worker that every client shares: a few connections subscribing to made-up topics, each
 * within its own limits, queued minutes of them, and every other client's subscribe failed
 * UNAVAILABLE until the queue drained. Now questions asked meanwhile share one request.
 */
// Without the subscribe bounds (SUBSCRIBE_RATE_LIMIT, MAX_FEEDS_PER_ADDRESS: test/subscribe/subscribe-limits),
// which would stop these connections long before the questions piled up, and would count the probe
// (from the same address) with them: this is about the questions.
const file = kafkaGatewayForFile({ SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0", MAX_FEEDS_PER_ADDRESS: "100000" });

test("a flood of subscribes to made-up topics: each is refused UNKNOWN_TOPIC, and other clients' subscribes to real topics are answered at once", async () => {
  const real = await Promise.all(Array.from({ length: 6 }, async () => {
    const t = freshTopic("meta-real");
    await ensureTopic(file.brokers, t, 3);
    return t;
  }));
  const probeTimes: number[] = [];
  const refusals: Record<string, number> = {};
  await underControl(file.gw, "subscribes to made-up topics", async () => {
    let running = true;
    // 10 connections, each keeping 99 subscribes to made-up topics in flight (within its 100).
    const attackers = await Promise.all(Array.from({ length: 10 }, () => GatewayClient.connect(file.gw.wsUrl)));
    const lanes = attackers.flatMap((c, ci) =>
      Array.from({ length: 99 }, async (_, li) => {
        for (let n = 0; running; n++) {
          const f = await c.subscribe({ sub: `x-${li}-${n}`, topic: `made-up-${ci}-${li}-${n}`, start: "latest" }, () => {});
          const code = f.t === 23 ? "subscribed" : String(f.code);
          refusals[code] = (refusals[code] ?? 0) + 1;
        }
      }),
    );
    await Bun.sleep(2000);
    // Meanwhile, another client subscribes to real topics nobody reads yet (each needs the question).
    const probe = await GatewayClient.connect(file.gw.wsUrl);
    for (const [i, topic] of real.entries()) {
      const t0 = performance.now();
      const f = await probe.subscribe({ sub: `real-${i}`, topic, start: "latest" }, () => {});
      probeTimes.push(performance.now() - t0);
      expect(f).toMatchObject({ t: 23 });
      await Bun.sleep(500);
    }
    running = false;
    await Promise.all(lanes);
    for (const c of attackers) c.close();
    probe.close();
  });
  console.log(`made-up topics: ${JSON.stringify(refusals)}; real subscribes answered in ${probeTimes.map((t) => t.toFixed(0)).join(", ")} ms`);
  expect(Object.keys(refusals)).toEqual(["UNKNOWN_TOPIC"]);
  // Quiet, one is answered in about 10 ms; when each caller asked alone, 0.8–2.5 s here.
  expect(Math.max(...probeTimes)).toBeLessThan(500);
}, 120_000);
