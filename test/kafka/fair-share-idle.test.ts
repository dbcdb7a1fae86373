import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";

/**
 * The fair share calls the workers stalled when nothing it handed them has settled for 5 s, and then
 * hands over everything waiting, budget or not. It counted those 5 s from the last answer, even when
 * the workers had had nothing to answer since: the first burst after 5 s of quiet, queued behind the
 * budget while its first acks came (a new topic's take longer), was taken for a stall, logged as
 * one, and let in whole (outside probe: 2 of 2 drain runs). The wait counts from when the workers
 * were last either answering or idle.
 */
const file = kafkaGatewayForFile({ KAFKA_WORKERS: "2", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0", RATE_LIMIT_HANDLING_MS: "0" });

test("a burst after more than 5 s of quiet, its first acks slow, is not taken for a stall of the workers", async () => {
  const clients = await Promise.all([0, 1].map(() => connect({ url: file.gw.wsUrl })));
  await clients[0]!.publish({ type: "warm" }, { topic: freshTopic("fair-idle-warm") });
  await Bun.sleep(6_000);
  const from = file.gw.lines.length;
  // 16,000 events at once, past the 5,000 the workers are handed before acks come, to a topic the
  // gateway's producer makes: the first acks take a while.
  const topic = freshTopic("fair-idle-burst");
  const batch = Array.from({ length: 1000 }, (_, i) => ({ type: "burst", key: `k${i % 16}`, data: { i } }));
  const settled = await Promise.all(clients.flatMap((c) => Array.from({ length: 8 }, () => c.publishBatch(batch, { topic }))));
  expect(settled.flat().filter((r) => r.status !== "fulfilled")).toEqual([]);
  const stalls = file.gw.lines.slice(from).filter((l) => l.includes("answered nothing"));
  expect(stalls).toEqual([]);
  for (const c of clients) c.close();
}, 60_000);
