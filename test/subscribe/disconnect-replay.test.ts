import { expect, test } from "bun:test";
import { type DeliveredEvent, connect } from "../../src/client";
import { gatewayForBlock } from "../support/gateway";
import { until } from "../support/until";

/**
 * A read batch becomes one frame per subscription, and 500 records of 2 KB are a frame past
 * SUBSCRIBER_BUFFER_BYTES (1 MiB) on their own. With the disconnect policy, that one frame counted
 * as falling behind: a replay of the history from earliest was told `lagged` and closed 4001 before
 * its first event, and resuming from the notice's token met the same frame again, every time (outside
 * probe: 880 of 1,200 events never arrived over 13 resumes, also for a client reading at full speed).
 * As drop-oldest keeps the newest frame, the disconnect policy now closes only a subscription that is
 * behind: more than one event frame waiting, or its connection not reading at all.
 */
const block = gatewayForBlock({ KAFKA_BROKERS: "", EMBEDDED_PARTITIONS: "1", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });

test("a replay whose read batches are each larger than SUBSCRIBER_BUFFER_BYTES, with the disconnect policy, delivers all its history and goes live", async () => {
  const topic = `disconnect-replay-${Date.now()}`;
  const c = await connect({ url: block.gw.wsUrl });
  const pad = "p".repeat(2_000);
  for (let b = 0; b < 6; b++) await c.publishBatch(Array.from({ length: 200 }, (_, i) => ({ type: "history", data: { i: b * 200 + i, pad } })), { topic });
  const seen: DeliveredEvent[] = [];
  const notices: string[] = [];
  let live = false;
  const sub = await c.subscribe(topic, { start: "earliest", policy: "disconnect" });
  sub.onEvent((e) => seen.push(e));
  sub.onNotice((n) => {
    if (n.kind === "live") live = true;
    else notices.push(n.kind);
  });
  await until("the history and live", () => (live && seen.length >= 1200) || notices.length > 0, 30_000);
  expect(notices).toEqual([]);
  expect(seen.map((e) => e.offset)).toEqual(Array.from({ length: 1200 }, (_, i) => i));
  c.close();
}, 60_000);
