import { expect, test } from "bun:test";
import { alterTopicConfigs, consumeAll, ensureTopic } from "../support/kafka-broker";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { RawSocket } from "./wire";

/**
 * A topic's own settings tighter than the gateway's limits (outside tester): Kafka refuses a whole
 * record batch when one record in it is past the topic's max.message.bytes or timestamp bounds, so
 * one client's event failed other clients' events on the partition (177 of 247 innocent events
 * refused KAFKA_REJECTED with max.message.bytes=2000, 146 of 199 with a tight timestamp bound). The
 * gateway learns each topic's bounds (DescribeConfigs) and refuses the one event instead.
 */
const file = kafkaGatewayForFile();

test("an event past its topic's own timestamp or size bounds is refused alone; every other client's event on the partition is acked and stored", async () => {
  const topic = freshTopic("topic-bounds");
  // All within the gateway's own limits (5 min ahead, any time before, 1 MB), not the topic's.
  await ensureTopic(file.brokers, topic, 1, { "message.timestamp.after.max.ms": "60000", "message.timestamp.before.max.ms": "3600000", "max.message.bytes": "100000" });
  const offender = await RawSocket.connect(file.gw.wsUrl, "json");
  const innocent = await RawSocket.connect(file.gw.wsUrl, "json");
  const iso = (ms: number) => new Date(Date.now() + ms).toISOString();
  const bad = [
    () => ({ type: "ahead", time: iso(3 * 60_000) }),
    () => ({ type: "behind", time: iso(-2 * 3_600_000) }),
    () => ({ type: "large", data: "x".repeat(150_000) }),
  ];
  const fine = [() => ({ type: "recent", time: iso(-30 * 60_000) }), () => ({ type: "soon", time: iso(30_000) })];
  let offenderSent = 0;
  let innocentSent = 0;
  const end = Date.now() + 3000;
  while (Date.now() < end) {
    offender.send(JSON.stringify({ t: 10, cid: ++offenderSent, topic, event: (offenderSent % 4 === 0 ? fine[(offenderSent / 4) % 2]! : bad[offenderSent % 3]!)() }));
    for (let i = 0; i < 5; i++) innocent.send(JSON.stringify({ t: 10, cid: ++innocentSent, topic, event: { type: "innocent", data: { i: innocentSent } } }));
    await Bun.sleep(10);
  }
  const innocentReplies = await innocent.waitFor((r) => typeof r.frame.cid === "number", innocentSent, 60_000);
  const offenderReplies = await offender.waitFor((r) => typeof r.frame.cid === "number", offenderSent, 60_000);
  const refused = innocentReplies.filter((r) => r.frame.t !== 20).map((r) => r.frame.code);
  console.log(`innocent: ${innocentSent} sent, ${refused.length} refused (${[...new Set(refused)].join(", ")})`);
  expect(refused).toEqual([]);
  let fineAcked = 0;
  for (const r of offenderReplies) {
    const cid = r.frame.cid as number;
    if (cid % 4 === 0) {
      expect(r.frame.t).toBe(20);
      fineAcked++;
    } else {
      expect(r.frame).toMatchObject({ t: 21, code: cid % 3 === 2 ? "EVENT_TOO_LARGE" : "TIME_SKEW" });
      expect(r.frame.message).toContain(topic);
    }
  }
  const stored = await consumeAll(file.brokers, topic, { expect: innocentSent + fineAcked });
  expect(stored.length).toBe(innocentSent + fineAcked);
  offender.close();
  innocent.close();
}, 120_000);

test("HTTP: the same bounds, the same refusals", async () => {
  const topic = freshTopic("topic-bounds-http");
  await ensureTopic(file.brokers, topic, 1, { "message.timestamp.after.max.ms": "60000", "max.message.bytes": "100000" });
  const post = async (body: unknown) => {
    const res = await fetch(`${file.gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return [res.status, ((await res.json()) as { error?: { code: string } }).error?.code];
  };
  expect(await post({ type: "ahead", time: new Date(Date.now() + 3 * 60_000).toISOString() })).toEqual([400, "TIME_SKEW"]);
  expect(await post({ type: "large", data: "x".repeat(150_000) })).toEqual([413, "EVENT_TOO_LARGE"]);
  expect((await post({ type: "fine" }))[0]).toBe(202);
}, 60_000);

test("a keyless event on a compacted topic is refused INVALID_EVENT alone; the keyed events around it are acked and stored", async () => {
  const topic = freshTopic("topic-bounds-compact");
  await ensureTopic(file.brokers, topic, 1, { "cleanup.policy": "compact" });
  const offender = await RawSocket.connect(file.gw.wsUrl, "json");
  const innocent = await RawSocket.connect(file.gw.wsUrl, "json");
  let offenderSent = 0;
  let innocentSent = 0;
  const end = Date.now() + 2000;
  while (Date.now() < end) {
    offender.send(JSON.stringify({ t: 10, cid: ++offenderSent, topic, event: { type: "keyless" } }));
    for (let i = 0; i < 5; i++) innocent.send(JSON.stringify({ t: 10, cid: ++innocentSent, topic, event: { type: "keyed", key: `k${innocentSent}` } }));
    await Bun.sleep(10);
  }
  const innocentReplies = await innocent.waitFor((r) => typeof r.frame.cid === "number", innocentSent, 60_000);
  const offenderReplies = await offender.waitFor((r) => typeof r.frame.cid === "number", offenderSent, 60_000);
  expect(innocentReplies.filter((r) => r.frame.t !== 20).map((r) => r.frame.code)).toEqual([]);
  expect(new Set(offenderReplies.map((r) => `${r.frame.t} ${r.frame.code}`))).toEqual(new Set(["21 INVALID_EVENT"]));
  expect((await consumeAll(file.brokers, topic, { expect: innocentSent })).length).toBe(innocentSent);
  offender.close();
  innocent.close();
}, 120_000);

/**
 * A topic's settings changed under a running gateway (outside tester: 20% of innocent events
 * KAFKA_REJECTED for up to a minute after a topic was switched to compact). Kafka refusing a batch
 * of a topic is the sign that what the gateway knows of it is stale, so it asks again at once
 * (at most once a second), and from then on refuses the offending events alone.
 */
/** Kafka bounds a record batch as compressed (lz4 here): 30,000 of one byte would pass. */
function incompressible(chars: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(chars))).toString("base64").slice(0, chars);
}

for (const change of <Array<{ name: string; configs: Record<string, string>; offending: () => object; code: string }>>[
  { name: "max.message.bytes lowered", configs: { "max.message.bytes": "20000" }, offending: () => ({ type: "large", data: incompressible(30_000) }), code: "EVENT_TOO_LARGE" },
  { name: "switched to compact", configs: { "cleanup.policy": "compact" }, offending: () => ({ type: "keyless" }), code: "INVALID_EVENT" },
]) {
  test(`${change.name} under a running gateway: within a couple of seconds the offending events are refused alone and every innocent one is acked`, async () => {
    const topic = freshTopic("topic-bounds-changed");
    await ensureTopic(file.brokers, topic, 1);
    const offender = await RawSocket.connect(file.gw.wsUrl, "json");
    const innocent = await RawSocket.connect(file.gw.wsUrl, "json");
    // Learned as they were.
    offender.send(JSON.stringify({ t: 10, cid: 1, topic, event: { type: "before", key: "k" } }));
    expect((await offender.waitFor((r) => r.frame.cid === 1, 1, 30_000))[0]!.frame.t).toBe(20);
    await alterTopicConfigs(file.brokers, topic, change.configs);
    let offenderSent = 1;
    let innocentSent = 0;
    const sentAt: number[] = [];
    const started = Date.now();
    while (Date.now() - started < 6000) {
      offender.send(JSON.stringify({ t: 10, cid: ++offenderSent, topic, event: change.offending() }));
      for (let i = 0; i < 5; i++) {
        sentAt[++innocentSent] = Date.now() - started;
        innocent.send(JSON.stringify({ t: 10, cid: innocentSent, topic, event: { type: "innocent", key: `k${innocentSent}` } }));
      }
      await Bun.sleep(10);
    }
    const innocentReplies = await innocent.waitFor((r) => typeof r.frame.cid === "number", innocentSent, 60_000);
    const offenderReplies = await offender.waitFor((r) => typeof r.frame.cid === "number", offenderSent, 60_000);
    const refused = innocentReplies.filter((r) => r.frame.t !== 20);
    const late = refused.filter((r) => sentAt[r.frame.cid as number]! > 2500);
    console.log(`${change.name}: ${innocentSent} innocent events, ${refused.length} refused (${[...new Set(refused.map((r) => r.frame.code))].join(", ")}), ${late.length} of them sent after 2.5 s`);
    expect(late.map((r) => r.frame.code)).toEqual([]);
    const lastOffender = offenderReplies.slice(-50);
    expect(new Set(lastOffender.map((r) => `${r.frame.t} ${r.frame.code}`))).toEqual(new Set([`21 ${change.code}`]));
    offender.close();
    innocent.close();
  }, 120_000);
}
