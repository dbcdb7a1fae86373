import { randomBytes } from "node:crypto";
import { describe, expect, test } from "bun:test";
import { type GatewayClient as Client, type DeliveredEvent, type Gap, type Subscription, connect } from "../../src/client";
import { gatewayForBlock } from "../support/gateway";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { deleteRecords, deleteTopic, ensureTopic } from "../support/kafka-broker";
import { rawProduce } from "../support/raw-producer";
import { until } from "../support/until";

/**
 * A reader's next offset can stop existing under it: retention deletes the records a slow replay has
 * not reached yet, or the partition's log is reset (the topic deleted and created again). Either way the subscriber must be told, with a `gap` naming the
 * partition and the offsets, and must go on reading what the log has. Before, the Kafka readers
 * jumped to the end of the partition (librdkafka's `auto.offset.reset`), the embedded reader jumped
 * to the log's start, and a feed skipped every record below its old position as read already: events
 * went missing with no word, and a reset topic's live subscribers heard nothing at all.
 */

interface Seen {
  events: DeliveredEvent[];
  gaps: Gap[];
  /** Events and gaps in the order they arrived. */
  order: Array<{ offset: number } | { gap: Gap }>;
  live: boolean;
}

function watch(sub: Subscription): Seen {
  const seen: Seen = { events: [], gaps: [], order: [], live: sub.live };
  sub.onEvent((e) => {
    seen.events.push(e);
    seen.order.push({ offset: e.offset });
  });
  sub.onNotice((n) => {
    if (n.kind === "live") seen.live = true;
    if (n.kind === "gap")
      for (const g of n.gaps) {
        seen.gaps.push(g);
        seen.order.push({ gap: g });
      }
  });
  return seen;
}

/** Every offset below `end` of partition 0 was delivered once or lies in a gap, and each gap came before the events after it. */
function expectAccounted(seen: Seen, end: number): void {
  const offsets = seen.events.map((e) => e.offset);
  expect(new Set(offsets).size).toBe(offsets.length);
  const delivered = new Set(offsets);
  const unaccounted: number[] = [];
  for (let o = 0; o < end; o++) if (!delivered.has(o) && !seen.gaps.some((g) => g.reason === "retention" && o >= g.from && o < g.to)) unaccounted.push(o);
  expect(unaccounted.length === 0 ? "none" : `${unaccounted.length}, from ${unaccounted[0]} to ${unaccounted.at(-1)}`).toBe("none");
  // Each event after a gap is at or past it: the notice is not overtaken by what it explains.
  let floor = -1;
  for (const item of seen.order) {
    if ("gap" in item) floor = item.gap.to;
    else expect(item.offset).toBeGreaterThanOrEqual(floor);
  }
}

const events = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ type: "gap.test", data: { i: from + i } }));

async function publishAll(client: Client, topic: string, n: number, from = 0): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    const acks = await client.publishBatch(events(Math.min(500, n - i), from + i), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
  }
}

describe("embedded log", () => {
  const block = gatewayForBlock({ EMBEDDED_PARTITIONS: "1", EMBEDDED_RETENTION_RECORDS: "1000", REPLAY_RATE_LIMIT: "500" });

  test("retention overtaking a slow replay: a retention gap, then the records still there, nothing missing unsaid", async () => {
    const topic = freshTopic("gap-retention");
    const client = await connect({ url: block.gw.wsUrl });
    await publishAll(client, topic, 1000);
    const sub = await client.subscribe(topic, { start: "earliest" });
    const seen = watch(sub);
    await until("the replay to begin", () => seen.events.length > 50);
    // 3,000 more: retention keeps 1,000, so the replay's next records are deleted before it gets there.
    await publishAll(client, topic, 3000, 1000);
    await until("the replay to reach the end", () => seen.events.some((e) => e.offset === 3999), 30_000);
    expect(seen.gaps.length).toBeGreaterThan(0);
    expectAccounted(seen, 4000);
    await until("live", () => seen.live);
    client.close();
  }, 60_000);
});

describe("Kafka", () => {
  const file = kafkaGatewayForFile({ REPLAY_RATE_LIMIT: "500", RATE_LIMIT_BYTES: "0" });
  /** `counts[p]` JSON CloudEvents in partition p, written by another producer, each saying its tag, partition and number. */
  const tagged = (topic: string, counts: number[], tag: string) =>
    rawProduce(file.brokers, topic, counts.flatMap((n, partition) => Array.from({ length: n }, (_, i) => ({ partition, value: JSON.stringify({ tag, partition, i }), headers: [["ce_type", "reset.test"], ["content-type", "application/json"]] as Array<[string, string]> }))));

  test("records deleted ahead of a slow replay: a retention gap, then the records still there, nothing missing unsaid", async () => {
    const topic = freshTopic("gap-delete");
    await ensureTopic(file.brokers, topic, 1);
    const client = await connect({ url: file.gw.wsUrl });
    // 40 MB: far more than is read ahead (4 MB in librdkafka, 2,000 records in the gateway), so most of
    // it is still to be fetched when deleted.
    // Random, so compression does not shrink it: one compressed fetch of repeated bytes would hold it all.
    const pad = () => randomBytes(1500).toString("base64");
    for (let i = 0; i < 20_000; i += 500) {
      const acks = await client.publishBatch(events(500, i).map((e) => ({ ...e, data: { ...e.data, pad: pad() } })), { topic });
      expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
    }
    const sub = await client.subscribe(topic, { start: "earliest" });
    const seen = watch(sub);
    await until("the replay to begin", () => seen.events.length > 50);
    await deleteRecords(file.brokers, topic, { 0: 19_000 });
    await until("the replay to reach the end", () => seen.events.some((e) => e.offset === 19_999), 30_000);
    expect(seen.gaps.length).toBeGreaterThan(0);
    expect(seen.gaps.at(-1)!.to).toBe(19_000);
    expectAccounted(seen, 20_000);
    await until("live", () => seen.live);
    // And live from there.
    await publishAll(client, topic, 10, 20_000);
    await until("the live events", () => seen.events.some((e) => e.offset === 20_009));
    client.close();
  }, 90_000);

  test("a topic deleted and created again under live subscribers: a log_reset gap, then the new log's records; an old token says so too", async () => {
    // Three partitions, as the broker creates a topic a producer names (the gateway's producer may
    // create it again itself the moment it is gone); every event on one key, so in one partition.
    const topic = freshTopic("gap-reset");
    await ensureTopic(file.brokers, topic, 3);
    const client = await connect({ url: file.gw.wsUrl });
    const sub = await client.subscribe(topic, { start: "latest" });
    const seen = watch(sub);
    const keyed = (n: number, from: number) => events(n, from).map((e) => ({ ...e, key: "one" }));
    const acks = await client.publishBatch(keyed(100, 0), { topic });
    const partition = (acks[0] as PromiseFulfilledResult<{ partition: number }>).value.partition;
    await until("the first 100", () => seen.events.length === 100);
    const oldToken = sub.token!;

    await deleteTopic(file.brokers, topic);
    await ensureTopic(file.brokers, topic, 3);
    await until("the gateway to publish to the new topic", async () => (await client.publishBatch(keyed(40, 100), { topic }).then((r) => r.every((a) => a.status === "fulfilled"))), 30_000);
    await until("the new log's events", () => seen.events.length >= 140, 30_000);
    expect(seen.gaps).toEqual([{ topic, partition, from: 100, to: 0, reason: "log_reset" }]);
    // The new log's offsets start over, after the notice.
    const after = seen.events.slice(100);
    expect(after.map((e) => [e.partition, e.offset])).toEqual(Array.from({ length: 40 }, (_, i) => [partition, i]));
    expect(after.map((e) => (e.event.data as { i: number }).i)).toEqual(Array.from({ length: 40 }, (_, i) => 100 + i));

    // A token from before the reset resumes at the new log's start, and says why.
    const again = await client.subscribe(topic, { start: { token: oldToken } });
    expect(again.gaps).toEqual([{ topic, partition, from: 100, to: 0, reason: "log_reset" }]);
    const replayed = watch(again);
    await until("the replay of the new log", () => replayed.events.length >= 40);
    expect(replayed.events.map((e) => e.offset)).toEqual(Array.from({ length: 40 }, (_, i) => i));

    // Not asserted here: an event re-sent with an id of the old log is written to the new one only once
    // the gateway's ids reader has found the reset itself, which it did alone here but not within 60 s
    // in full CI runs (see the session note); docs/protocol.md says a re-send before that gets the old ack.
    client.close();
  }, 120_000);

  test("a token from before a topic was made again, resumed where the new log is past it on one partition and not on another: every partition from the new log's start, each with its log_reset gap", async () => {
    // The token proves the reset on p0 and p1 (past their new ends), and a topic is made again whole:
    // p2's new log, longer than the token's offset there, was read from that offset, its first
    // records skipped without a word (outside probe: 2 of 2 runs, 10 records).
    const topic = freshTopic("gap-reset-partial");
    await ensureTopic(file.brokers, topic, 3);
    await tagged(topic, [20, 20, 3], "old");
    const client = await connect({ url: file.gw.wsUrl });
    const first = await client.subscribe(topic, { start: "earliest" });
    const read = watch(first);
    await until("the old log", () => read.events.length === 43, 30_000);
    const oldToken = first.token!;
    await first.close();

    await deleteTopic(file.brokers, topic);
    await ensureTopic(file.brokers, topic, 3);
    await tagged(topic, [10, 10, 10], "new");
    const again = await client.subscribe(topic, { start: { token: oldToken } });
    expect([...again.gaps].sort((a, b) => a.partition - b.partition)).toEqual([
      { topic, partition: 0, from: 20, to: 0, reason: "log_reset" },
      { topic, partition: 1, from: 20, to: 0, reason: "log_reset" },
      { topic, partition: 2, from: 3, to: 0, reason: "log_reset" },
    ]);
    const replayed = watch(again);
    await until("the new log", () => replayed.events.length >= 30, 30_000).catch(() => {});
    const offsets = (p: number) => replayed.events.filter((e) => e.partition === p).map((e) => e.offset);
    expect([0, 1, 2].map(offsets)).toEqual([0, 1, 2].map(() => Array.from({ length: 10 }, (_, i) => i)));
    client.close();
  }, 120_000);

  test("a token from before a topic was made again, resumed once the new log is past it on every partition: the topic's id says so, every partition from the new log's start with its log_reset gap", async () => {
    // Offsets alone could not tell: every token offset lies within the new logs. It resumed there,
    // the new logs' first records skipped in silence (docs/protocol.md listed it as not covered).
    const topic = freshTopic("gap-reset-outgrown");
    await ensureTopic(file.brokers, topic, 2);
    await tagged(topic, [5, 5], "old");
    const client = await connect({ url: file.gw.wsUrl });
    const first = await client.subscribe(topic, { start: "earliest" });
    const read = watch(first);
    await until("the old log", () => read.events.length === 10, 30_000);
    const oldToken = first.token!;
    await first.close();

    await deleteTopic(file.brokers, topic);
    await ensureTopic(file.brokers, topic, 2);
    await tagged(topic, [12, 12], "new");
    const again = await client.subscribe(topic, { start: { token: oldToken } });
    expect([...again.gaps].sort((a, b) => a.partition - b.partition)).toEqual([
      { topic, partition: 0, from: 5, to: 0, reason: "log_reset" },
      { topic, partition: 1, from: 5, to: 0, reason: "log_reset" },
    ]);
    const replayed = watch(again);
    await until("the new log", () => replayed.events.length >= 24, 30_000).catch(() => {});
    const offsets = (p: number) => replayed.events.filter((e) => e.partition === p).map((e) => e.offset);
    expect([0, 1].map(offsets)).toEqual([0, 1].map(() => Array.from({ length: 12 }, (_, i) => i)));
    expect(replayed.events.every((e) => (e.event.data as { tag: string }).tag === "new")).toBe(true);

    // A token of the new log resumes where it was: same id, no gap.
    const newToken = again.token!;
    await again.close();
    const third = await client.subscribe(topic, { start: { token: newToken } });
    expect(third.gaps).toEqual([]);
    client.close();
  }, 120_000);
});
