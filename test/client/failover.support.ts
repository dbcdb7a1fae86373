import { expect } from "bun:test";
import type { DeliveredEvent, GatewayClient, PublishResult } from "../../src/client";
import { consumeAll } from "../support/kafka-broker";

/**
 * Load and checks shared by the SDK's kill tests: a client publishing without pause, a subscription
 * recording every (partition, offset) it is given, and the comparison of both with what kcat reads
 * back from Kafka afterwards.
 */
export interface Load {
  published: number;
  acked: PublishResult[];
  failed: unknown[];
  /** Stops publishing and waits until every publish made has settled (or `timeoutMs` passes). */
  stop(timeoutMs?: number): Promise<void>;
}

export function startLoad(c: GatewayClient, topic: string): Load {
  const load: Load = { published: 0, acked: [], failed: [], stop: async () => {} };
  let running = true;
  const loop = (async () => {
    while (running) {
      const batch = Array.from({ length: 20 }, () => {
        const n = load.published++;
        return c.publish({ type: "load", key: `k${n % 7}`, data: { n } }, { topic }).then(
          (a) => void load.acked.push(a),
          (e) => void load.failed.push(e),
        );
      });
      await Promise.race([Promise.all(batch), Bun.sleep(20)]);
    }
  })();
  load.stop = async (timeoutMs = 60_000) => {
    running = false;
    await loop;
    for (const t = Date.now(); load.acked.length + load.failed.length < load.published && Date.now() - t < timeoutMs; ) await Bun.sleep(100);
  };
  return load;
}

/** Every (partition, offset) the subscription delivered, in the order it came. */
export function record(sub: { onEvent(h: (e: DeliveredEvent) => void): unknown }): Array<[number, number]> {
  const seen: Array<[number, number]> = [];
  sub.onEvent((e) => seen.push([e.partition, e.offset]));
  return seen;
}

/**
 * After the load has settled: every publish settled, every acked event is in Kafka at the position
 * its ack named, and the subscription (from earliest) got exactly the topic's records, per partition
 * in offset order: no gap, no duplicate. Returns how many ids Kafka holds more than once (an event
 * written whose ack was lost, then re-sent).
 */
export async function verify(brokers: string, topic: string, load: Load, seen: Array<[number, number]>): Promise<{ duplicateIds: number; records: number }> {
  expect(load.acked.length + load.failed.length).toBe(load.published);
  // Nothing is refused for good: what a dying gateway refused was retriable and re-sent.
  expect(load.failed).toEqual([]);
  expect(load.acked.length).toBeGreaterThan(100);

  const records = await consumeAll(brokers, topic, { expect: load.acked.length });
  const idAt = new Map(records.map((r) => [`${r.partition}:${r.offset}`, r.headers.ce_id]));
  const missing = load.acked.filter((a) => idAt.get(`${a.partition}:${a.offset}`) !== a.id);
  expect(missing).toEqual([]);
  const copies = new Map<string, number>();
  for (const r of records) copies.set(r.headers.ce_id!, (copies.get(r.headers.ce_id!) ?? 0) + 1);
  const duplicateIds = [...copies.values()].filter((n) => n > 1).length;

  // The subscription catches up with the end of the topic, then must equal it exactly.
  for (const t = Date.now(); seen.length < records.length && Date.now() - t < 30_000; ) await Bun.sleep(100);
  await Bun.sleep(500); // a duplicate would arrive after the count was reached
  const key = ([p, o]: [number, number]) => `${p}:${o}`;
  const perPartition = (list: Array<[number, number]>) => {
    const m = new Map<number, number[]>();
    for (const [p, o] of list) m.set(p, [...(m.get(p) ?? []), o]);
    return [...m.entries()].sort((a, b) => a[0] - b[0]);
  };
  // As delivered (order kept within each partition) against Kafka's own order.
  expect(perPartition(seen)).toEqual(perPartition(records.map((r) => [r.partition, r.offset])));
  expect(new Set(seen.map(key)).size).toBe(seen.length);
  return { duplicateIds, records: records.length };
}
