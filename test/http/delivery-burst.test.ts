import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { GatewayClient } from "../support/ws-client";

/**
 * The delivery view's builds are spaced, and at most a few requests wait their turn (the rest 429).
 * But a request arriving when no build was due started at once and reserved nothing, and on Kafka a
 * build awaits the topics' watermarks from the workers: every request arriving meanwhile started at
 * once too. A burst of requests built side by side, neither spaced nor bounded (outside reviewer).
 */
const file = kafkaGatewayForFile({ MAX_SUBSCRIPTIONS_PER_ADDRESS: "5000", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0" });

test("a burst of requests for the delivery view builds one at a time: those past the few that may wait get 429", async () => {
  const topics = Array.from({ length: 4 }, () => freshTopic("delivery-burst"));
  for (const t of topics) await ensureTopic(file.brokers, t, 3);
  const conns = await Promise.all(Array.from({ length: 4 }, () => GatewayClient.connect(file.gw.wsUrl)));
  for (let i = 0; i < 400; i++) {
    const r = await conns[i % 4]!.subscribe({ sub: `s${i}`, topics: [topics[i % 4]!], filter: { where: `data.n == ${i}` } } as never, () => {});
    expect(r).toMatchObject({ t: 23 });
  }
  const statuses: Record<number, number> = {};
  const refusals: Array<{ retryAfter: string | null; body: { error: { code: string; retryAfterMs?: number; scope?: string } } }> = [];
  await Promise.all(
    Array.from({ length: 30 }, async () => {
      const res = await fetch(`${file.gw.url}/api/v1/admin/delivery?limit=2000`);
      const text = await res.text();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status === 429) refusals.push({ retryAfter: res.headers.get("retry-after"), body: JSON.parse(text) });
    }),
  );
  // Each refusal says when to come back, as RATE_LIMITED does everywhere (docs/protocol.md).
  for (const r of refusals) {
    expect(r.body.error).toMatchObject({ code: "RATE_LIMITED", scope: "instance" });
    expect(r.body.error.retryAfterMs).toBeGreaterThan(0);
    expect(Number(r.retryAfter)).toBe(Math.max(1, Math.ceil(r.body.error.retryAfterMs! / 1000)));
  }
  console.log(`30 requests at once: ${JSON.stringify(statuses)}`);
  // One building, eight waiting: the rest refused.
  expect(statuses[200]).toBeLessThanOrEqual(9);
  expect(statuses[429]).toBeGreaterThanOrEqual(21);
  for (const c of conns) c.close();
}, 120_000);

test("a request for the delivery view whose client left gives its place up: it neither holds one of the few waiting places nor builds", async () => {
  const topic = freshTopic("delivery-left");
  await ensureTopic(file.brokers, topic, 3);
  const conns = await Promise.all(Array.from({ length: 4 }, () => GatewayClient.connect(file.gw.wsUrl)));
  for (let i = 0; i < 400; i++) expect(await conns[i % 4]!.subscribe({ sub: `l${i}`, topics: [topic], filter: { where: `data.n == ${i}` } } as never, () => {})).toMatchObject({ t: 23 });
  const url = `${file.gw.url}/api/v1/admin/delivery?limit=2000`;
  // Let any spacing left by earlier builds pass, then one build runs and nine clients queue behind it and leave.
  await Bun.sleep(1_000);
  const leaving = Array.from({ length: 9 }, () => new AbortController());
  const left = leaving.map((c) => fetch(url, { signal: c.signal }).then((r) => r.status, () => "left"));
  await Bun.sleep(20);
  for (const c of leaving) c.abort();
  await Promise.all(left);
  // Eight places to wait in: the clients that left hold none of them.
  const statuses = await Promise.all(Array.from({ length: 8 }, () => fetch(url).then((r) => r.status)));
  expect(statuses).toEqual(Array(8).fill(200));
  for (const c of conns) c.close();
}, 120_000);
