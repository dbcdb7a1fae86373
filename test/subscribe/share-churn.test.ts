import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { gatewayForBlock } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { openJsonWs as open } from "../support/json-ws";

/**
 * Members that join a share group and leave it (unsubscribe, or close the socket) while large batches
 * are dealt, beside one that stays. A member that leaves while a batch is being dealt to it over
 * several turns holds records it was dealt but has not framed: they go back to the group like its
 * queued ones. Before, they were dropped, and the reviewer's group never got 95 and 446 events (the
 * group's commit stuck behind them) while the member that stayed read on.
 */
const block = gatewayForBlock({ KAFKA_BROKERS: "", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0" });


test("members joining and leaving a share group mid-batch: every event reaches a member while one stays", async () => {
  const gw = block.gw;
  const topic = freshTopic("share-churn");
  const group = `g-churn-${Date.now()}`;
  const seen = new Set<number>();
  const note = (f: any) => {
    if (f.t === 24 || f.t === 25) for (const e of f.t === 24 ? [f] : f.events) if (e.event.type === "job") seen.add(e.event.data.i);
  };
  const pub = await connect({ url: gw.wsUrl });
  await pub.publish({ type: "init" }, { topic });
  const stays = await open(gw.wsUrl, note);
  expect((await stays.req({ t: 12, sub: "m1", topic, share: group })).t).toBe(23);
  let publishing = true;
  let n = 0;
  const pad = "x".repeat(4000);
  const publisher = (async () => {
    while (publishing) {
      const base = n;
      n += 500;
      const acks = await pub.publishBatch(Array.from({ length: 500 }, (_, j) => ({ type: "job", key: `k${(base + j) % 97}`, data: { i: base + j, pad } })), { topic });
      expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
      await Bun.sleep(10);
    }
  })();
  const churners = [0, 1, 2].map(async (w) => {
    while (publishing) {
      const c = await open(gw.wsUrl, note);
      for (let k = 0; k < 5 && publishing; k++) {
        expect((await c.req({ t: 12, sub: `c${w}-${k}`, topic, share: group })).t).toBe(23);
        await Bun.sleep(Math.random() * 60);
        await c.req({ t: 13, sub: `c${w}-${k}` });
      }
      await c.req({ t: 12, sub: `c${w}-x`, topic, share: group });
      await Bun.sleep(Math.random() * 60);
      c.ws.close();
    }
  });
  await Bun.sleep(8000);
  publishing = false;
  await publisher;
  await Promise.all(churners);
  for (let i = 0; i < 40 && seen.size < n; i++) await Bun.sleep(500);
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !seen.has(i));
  expect(missing.length).toBe(0);
  stays.ws.close();
  pub.close();
}, 90_000);
