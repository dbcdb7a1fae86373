import { afterAll, beforeAll, expect, test } from "bun:test";
import { resolve } from "node:path";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { underControl } from "../ingest/control";

/**
 * One address holds a thousand subscriptions with filters of their own and reads none of them, while
 * events arrive: each event is filtered and encoded a thousand times. Delivered in one go per batch,
 * that work held the event loop for seconds, and every other client waited behind it (the hostile
 * tester's control publish: p50 0.8 ms → 990 ms, p99 2.3 s). A feed now delivers in slices of a few
 * milliseconds, letting other clients' frames in between.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
});
afterAll(async () => {
  await gw.stop();
});

test("a thousand filtered subscriptions that never read, fed 500 events/s: other clients keep their latency", async () => {
  const topic = freshTopic("fanout");
  const c = await connect({ url: gw.wsUrl });
  await c.publish({ type: "init", data: { i: 0 } }, { topic });
  const holders = Bun.spawn(["node", resolve(import.meta.dir, "../support/non-reader.cjs"), String(gw.port), "10", "100", topic], { stdout: "pipe" });
  try {
    const reader = holders.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("opened");
    for (let n = 0; n < 100; n++) {
      const h = (await (await fetch(`${gw.url}/health`)).json()) as { subscriptions: { subscriptions: number } };
      if (h.subscriptions.subscriptions >= 1000) break;
      await Bun.sleep(100);
    }
    await underControl(
      gw,
      "1,000 filtered non-reading subscriptions, 500 events/s",
      async () => {
        // 500 events/s as a feed would send them: on schedule, not waiting for acks.
        const until = Date.now() + 8000;
        const sent: Promise<PromiseSettledResult<unknown>[]>[] = [];
        for (let i = 1; Date.now() < until; i += 20) {
          sent.push(c.publishBatch(Array.from({ length: 20 }, (_, j) => ({ type: "fan", data: { i: i + j, pad: "x".repeat(60) } })), { topic }));
          await Bun.sleep(40);
        }
        const acks = (await Promise.all(sent)).flat();
        expect(acks.filter((a) => a.status !== "fulfilled")).toEqual([]);
      },
      { p99UnderMs: 500 },
    );
  } finally {
    holders.kill("SIGKILL");
    c.close();
  }
}, 90_000);
