import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { type Broker, ensureTopic, startBroker } from "../support/kafka-broker";
import { rawProduce } from "../support/raw-producer";
import { type Notice, PublishError, SubscribeError, connect } from "../../src/client";
import { collect } from "../support/sdk-collector";
import { underControl } from "../ingest/control";
import { until } from "../support/until";

/**
 * The gateway's own Kafka principal refused by the cluster's ACLs (Kafka's StandardAuthorizer, a
 * broker of its own). A subscription the gateway cannot read was answered `subscribed` and then got
 * nothing, ever: librdkafka retries a fetch refused TOPIC_AUTHORIZATION_FAILED for good, and the
 * gateway only logged it. Now every subscription of such a feed ends with an `unsubscribed` notice
 * carrying KAFKA_DENIED (with its resume token), and a subscribe after the operator grants Read
 * reads from a new reader, not the refused one. Publishes Kafka refuses for the same reason are
 * nacked KAFKA_DENIED, not KAFKA_REJECTED.
 */
const PASSWORD = "acl-gw-Pa55word-77b1";
let broker: Broker;
let gw: GatewayProcess;

const acl = async (...args: string[]) => {
  const p = Bun.spawn(["bash", join(import.meta.dir, "../../scripts/kafka/acl"), broker.brokers, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`scripts/kafka/acl ${args.join(" ")} failed (${code}): ${err}${out}`);
};

beforeAll(async () => {
  broker = await startBroker({ env: { KAFKA_SCRAM_USERS: `gateway:${PASSWORD}`, KAFKA_AUTHORIZER: "1" } });
  // What a gateway needs on the topics it serves: everything on ok-*, the control's topic and the
  // gateway's own groups (kgw-*), and the cluster (idempotent writes). Nothing else.
  await acl("--add", "--allow-principal", "User:gateway", "--operation", "All", "--topic", "ok-", "--topic", "hostile-control", "--group", "kgw-", "--resource-pattern-type", "prefixed");
  await acl("--add", "--allow-principal", "User:gateway", "--operation", "All", "--cluster");
  gw = await startGateway({ KAFKA_BROKERS: broker.saslBrokers!, KAFKA_WORKERS: "2", KAFKA_PROPERTIES: `security.protocol=SASL_PLAINTEXT,sasl.mechanism=SCRAM-SHA-512,sasl.username=gateway,sasl.password=${PASSWORD}` }, { captureStderr: true });
}, 120_000);
afterAll(async () => {
  await gw?.stop();
  await broker?.stop();
}, 60_000);

/** The notice that ended `sub`, waited for up to `ms`. */
function endedWithin(sub: { onNotice(h: (n: Notice) => void): unknown }, ms: number): Promise<Notice & { kind: "ended" }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ended notice within ${ms} ms`)), ms);
    sub.onNotice((n) => {
      if (n.kind !== "ended") return;
      clearTimeout(timer);
      resolve(n);
    });
  });
}

test("a subscription the gateway's principal may not read ends KAFKA_DENIED (live, replay and share group), and reads once Read is granted", async () => {
  const topic = freshTopic("denied");
  await ensureTopic(broker.brokers, topic, 3);
  const written = await rawProduce(broker.brokers, topic, Array.from({ length: 6 }, (_, i) => ({ partition: i % 3, key: `k${i}`, value: JSON.stringify({ i }) })));
  // Describe only: the topic is seen (subscribing finds it), its records cannot be fetched.
  await acl("--add", "--allow-principal", "User:gateway", "--operation", "Describe", "--topic", topic);

  await underControl(gw, "subscriptions refused by Kafka's ACLs", async () => {
    const client = await connect({ url: gw.wsUrl, maxAttempts: 1 });
    const live = await client.subscribe(topic);
    const replay = await client.subscribe(topic, { start: "earliest" });
    // A handler given after the end still hears it (the live one may end before the replay is subscribed).
    for (const n of [await endedWithin(live, 20_000), await endedWithin(replay, 20_000)]) {
      expect(n.code).toBe("KAFKA_DENIED");
      expect(n.message).toContain(topic);
    }
    expect((await endedWithin(live, 1000)).code).toBe("KAFKA_DENIED");
    // A share group it may use, on the topic it may not read: setting the group's start commits
    // offsets of the topic, which Kafka refuses too; the refusal names both.
    const shared = await client.subscribe(topic, { share: "topic-unreadable" }).then(
      (sub) => endedWithin(sub, 30_000),
      (e: unknown) => e as SubscribeError,
    );
    expect(shared.code).toBe("KAFKA_DENIED");
    expect(shared.message).toContain(topic);
    client.close();

    // A server-sent-events stream is its one subscription: ended, the stream ends after the notice
    // and the browser is told to come back from its token later (old code: left open, heartbeats only).
    const res = await fetch(`${gw.url}/api/v1/stream?topic=${topic}`);
    expect(res.status).toBe(200);
    const text = await Promise.race([res.text(), Bun.sleep(30_000).then(() => "still open after 30 s")]);
    expect(text).toContain("event: subscribed");
    expect(text).toMatch(/event: unsubscribed\ndata: \{[^\n]*"code":"KAFKA_DENIED"/);
    expect(text.trimEnd().endsWith("retry: 10000")).toBe(true);
  });

  // A share group the gateway may not use, on a topic it may read.
  const readable = freshTopic("ok-shared");
  await ensureTopic(broker.brokers, readable, 2);
  await acl("--add", "--deny-principal", "User:gateway", "--operation", "Read", "--group", "kgw-share-forbidden");
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1 });
  // Refused at once (setting the new group's start is refused), or else ended when its reader is.
  const shared = await client.subscribe(readable, { share: "forbidden" }).then(
    (sub) => endedWithin(sub, 30_000),
    (e: unknown) => e as SubscribeError,
  );
  expect(shared.code).toBe("KAFKA_DENIED");
  expect(shared.message).toContain("kgw-share-forbidden");

  // Read granted: a new subscription reads the topic (the refused reader was not kept for it).
  await acl("--add", "--allow-principal", "User:gateway", "--operation", "Read", "--topic", topic);
  const again = collect(await client.subscribe(topic, { start: "earliest" }));
  await again.waitFor(6, 20_000);
  const at = (xs: Array<{ partition: number; offset: number }>) => xs.map((x) => `${x.partition}/${x.offset}`).sort();
  expect(at(again.events)).toEqual(at(written));
  const liveSub = await client.subscribe(topic);
  const liveAgain = collect(liveSub);
  await Bun.sleep(1000); // the live feed's reader assigned
  const after = await rawProduce(broker.brokers, topic, [{ partition: 1, key: "k", value: "{}" }]);
  await liveAgain.waitFor(1, 20_000);
  expect(at(liveAgain.events)).toEqual(at(after));

  // Read taken back while it streams (an ACL rotated): the live subscription is ended, not left silent.
  await acl("--remove", "--force", "--allow-principal", "User:gateway", "--operation", "Read", "--topic", topic);
  await rawProduce(broker.brokers, topic, [{ partition: 0, key: "k", value: "{}" }]);
  const revoked = await endedWithin(liveSub, 30_000);
  expect(revoked.code).toBe("KAFKA_DENIED");
  client.close();
  const said = [...gw.lines, ...gw.errLines].join("\n");
  expect(said).toContain("KAFKA_DENIED");
}, 180_000);

test("a topic the principal may not describe is refused UNKNOWN_TOPIC saying it may be hidden by ACLs, and a publish Kafka refuses for ACLs is nacked KAFKA_DENIED", async () => {
  const hidden = freshTopic("hidden");
  await ensureTopic(broker.brokers, hidden, 1);
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1 });
  const refused = await client.subscribe(hidden).then(() => null, (e: unknown) => e);
  expect(refused).toBeInstanceOf(SubscribeError);
  expect((refused as SubscribeError).code).toBe("UNKNOWN_TOPIC");
  expect((refused as SubscribeError).message).toContain("ACL");

  const readOnly = freshTopic("readonly");
  await ensureTopic(broker.brokers, readOnly, 1);
  await acl("--add", "--allow-principal", "User:gateway", "--operation", "Describe", "--operation", "Read", "--topic", readOnly);
  const nack = await client.publish({ id: "w1", type: "t.acl", key: "k", data: {} }, { topic: readOnly }).then(() => null, (e: unknown) => e);
  expect(nack).toBeInstanceOf(PublishError);
  expect((nack as PublishError).code).toBe("KAFKA_DENIED");
  expect((nack as PublishError).retriable).toBe(false);
  // Write without Read: the ids reader cannot read the topic's history, so publishes with ids do
  // not wait for it (old code: the first waited out the 3 s warm-up), and the log says what is lost.
  const writeOnly = freshTopic("writeonly");
  await ensureTopic(broker.brokers, writeOnly, 2);
  await rawProduce(broker.brokers, writeOnly, [{ partition: 0, key: "k", value: "{}" }, { partition: 1, key: "k", value: "{}" }]);
  await acl("--add", "--allow-principal", "User:gateway", "--operation", "Describe", "--operation", "Write", "--topic", writeOnly);
  const t0 = performance.now();
  const first = await client.publish({ id: "wo-1", type: "t.acl", key: "k", data: {} }, { topic: writeOnly });
  const firstMs = performance.now() - t0;
  expect(first).toMatchObject({ id: "wo-1", topic: writeOnly });
  console.log(`[acl] first publish with an id to a topic the gateway may write and not read: ${firstMs.toFixed(0)} ms`);
  expect(await client.publish({ id: "wo-1", type: "t.acl", key: "k", data: {} }, { topic: writeOnly })).toEqual(first);
  await until("the ids reader's refusal logged", () => gw.lines.some((l) => l.includes("refuse the ids reader") && l.includes(writeOnly)));
  // Old code: the publish waited out the warm-up (3 s), which said so.
  expect(gw.lines.filter((l) => l.includes("not read in time") && l.includes(writeOnly))).toEqual([]);
  // The connection lives on.
  expect(await client.publish({ id: "w2", type: "t.acl", key: "k", data: {} }, { topic: freshTopic("ok-after") })).toMatchObject({ id: "w2" });
  client.close();
}, 120_000);

test("a write-only topic idempotence let go (idle past twice its window) and follows again is found refused again, not waited out", async () => {
  // The ids reader is long-lived: a topic it stopped following and follows again is assigned anew,
  // and the refusal must be told again (old code: told once per reader, so the second follow waited
  // out the 3 s warm-up).
  const short = await startGateway({ KAFKA_BROKERS: broker.saslBrokers!, KAFKA_WORKERS: "1", IDEMPOTENCE_WINDOW_MS: "1000", KAFKA_PROPERTIES: `security.protocol=SASL_PLAINTEXT,sasl.mechanism=SCRAM-SHA-512,sasl.username=gateway,sasl.password=${PASSWORD}` }, { captureStderr: true });
  try {
    const writeOnly = freshTopic("writeonly-again");
    await ensureTopic(broker.brokers, writeOnly, 1);
    await acl("--add", "--allow-principal", "User:gateway", "--operation", "Describe", "--operation", "Write", "--topic", writeOnly);
    const client = await connect({ url: short.wsUrl, maxAttempts: 1 });
    const refusals = () => short.lines.filter((l) => l.includes("refuse the ids reader") && l.includes(writeOnly)).length;
    await client.publish({ id: "a-1", type: "t.acl", key: "k", data: {} }, { topic: writeOnly });
    await until("the ids reader's refusal logged", () => refusals() === 1);
    await Bun.sleep(3500); // forgotten: idle past 2 × 1 s, swept each second
    const t0 = performance.now();
    await client.publish({ id: "a-2", type: "t.acl", key: "k", data: {} }, { topic: writeOnly });
    console.log(`[acl] publish with an id once the refused topic is followed again: ${(performance.now() - t0).toFixed(0)} ms`);
    await until("the refusal logged again", () => refusals() === 2);
    expect(short.lines.filter((l) => l.includes("not read in time") && l.includes(writeOnly))).toEqual([]);
    client.close();
  } finally {
    await short.stop();
  }
}, 120_000);

test("a manual reader's group id refused by ACLs costs it nothing: live and replay subscriptions still read, publishes with ids are still answered", async () => {
  // Manual readers (live feeds, replays, idempotence's ids reader) carry a group id librdkafka
  // requires, kgw-reader-…, and never join or commit: refusing it must not end their subscriptions.
  await acl("--add", "--deny-principal", "User:gateway", "--operation", "All", "--group", "kgw-reader-", "--resource-pattern-type", "prefixed");
  const topic = freshTopic("ok-readers");
  await ensureTopic(broker.brokers, topic, 2);
  const written = await rawProduce(broker.brokers, topic, [{ partition: 0, key: "a", value: "{}" }, { partition: 1, key: "b", value: "{}" }]);
  const client = await connect({ url: gw.wsUrl, maxAttempts: 1 });
  const live = await client.subscribe(topic);
  const replay = await client.subscribe(topic, { start: "earliest" });
  const ends: Notice[] = [];
  live.onNotice((n) => n.kind === "ended" && ends.push(n));
  replay.onNotice((n) => n.kind === "ended" && ends.push(n));
  const liveEvents = collect(live);
  const replayEvents = collect(replay);
  await replayEvents.waitFor(2, 20_000);
  const acked = await client.publish({ id: "r1", type: "t.acl", key: "k", data: {} }, { topic });
  await liveEvents.waitFor(1, 20_000);
  await Bun.sleep(2000); // a refusal of the readers' group comes within the first fetches
  const at = (xs: Array<{ partition: number; offset: number }>) => xs.map((x) => `${x.partition}/${x.offset}`).sort();
  expect(ends).toEqual([]);
  expect(at(liveEvents.events)).toEqual(at([acked]));
  expect(at(replayEvents.events.slice(0, 2))).toEqual(at(written));
  client.close();
}, 120_000);
