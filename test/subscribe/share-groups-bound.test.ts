import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { freshTopic, kafkaBrokers, kafkaGatewayForFile } from "../support/kafka";
import { startGateway } from "../support/gateway";
import { SECRET, hsToken } from "../auth/support";
import { RawWsClient } from "../support/raw-ws";

/**
 * Each share group name is a consumer group in the Kafka cluster, committed at its first subscribe
 * and kept by Kafka for days. One client subscribing and leaving with a new name each time made 22
 * groups a second (the hostile tester: 453 in 20 s), with nothing bounding the cluster's state.
 */
const file = kafkaGatewayForFile({ MAX_SHARE_GROUPS: "3", MAX_SHARE_GROUPS_PER_ADDRESS: "2" });

test("one client address introduces at most MAX_SHARE_GROUPS_PER_ADDRESS names, the instance at most MAX_SHARE_GROUPS; the groups joined before still take members", async () => {
  const c = await connect({ url: file.gw.wsUrl });
  const topic = freshTopic("share-bound");
  await c.publish({ type: "init" }, { topic });
  const refusal = (name: string) => c.subscribe(topic, { share: `${topic}-${name}` }).then((s) => (void s.close(), null), (e: { code: string; message: string }) => e);
  // Refused subscribes made no group: their names cost nothing (the outside tester's first 3 did).
  for (const name of ["x1", "x2", "x3"]) {
    const code = await c.subscribe(`${topic}-missing`, { share: `${topic}-${name}` }).then(() => null, (e: { code: string }) => e.code);
    expect(code).toBe("UNKNOWN_TOPIC");
  }
  for (const name of ["g1", "g2"]) await (await c.subscribe(topic, { share: `${topic}-${name}` })).close();
  // This address has introduced its two: a third name is refused, and says which bound.
  expect(await refusal("g3")).toMatchObject({ code: "TOO_MANY_SUBSCRIPTIONS", message: expect.stringContaining("MAX_SHARE_GROUPS_PER_ADDRESS") });
  // Another address still may, up to the instance's three.
  const other = await RawWsClient.connect(file.gw.port, "/ws", "", "127.0.0.2");
  other.send({ t: 1, v: 1 });
  other.send({ t: 12, cid: 1, sub: "s3", topic, share: `${topic}-g3` });
  expect((await other.waitFor((f) => f.cid === 1)).t).toBe(23);
  other.send({ t: 12, cid: 2, sub: "s4", topic, share: `${topic}-g4` });
  expect(await other.waitFor((f) => f.cid === 2)).toMatchObject({ code: "TOO_MANY_SUBSCRIPTIONS", message: expect.stringContaining("(MAX_SHARE_GROUPS)") });
  other.destroy();
  // A name already joined costs nothing, from any address.
  const again = await c.subscribe(topic, { share: `${topic}-g3` });
  expect(again.id).toBeString();
  await again.close();
  c.close();
}, 60_000);

test("with authentication on, one principal introduces at most MAX_SHARE_GROUPS_PER_ADDRESS names whatever addresses it comes from", async () => {
  // Per address only, twenty addresses of one principal (cheap over IPv6) used the instance's names
  // up until a restart (outside security tester).
  const gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), AUTH_JWT_SECRET: SECRET, MAX_SHARE_GROUPS: "10", MAX_SHARE_GROUPS_PER_ADDRESS: "2" });
  try {
    const topic = freshTopic("share-principal");
    const grants = { kgw: { publish: ["*"], subscribe: ["*"] } };
    const open = async (address: string, sub: string) => {
      const c = await RawWsClient.connect(gw.port, "/ws", "", address);
      c.send({ t: 1, v: 1, token: await hsToken({ sub, ...grants }) });
      expect((await c.waitFor((f) => f.t === 2 || f.t === 21)).t).toBe(2);
      return c;
    };
    const first = await open("127.0.0.10", "writer");
    first.send({ t: 10, cid: 1, topic, event: { type: "init" } });
    expect((await first.waitFor((f) => f.cid === 1, 30_000)).t).toBe(20);
    first.destroy();
    const outcomes: string[] = [];
    let cid = 0;
    for (const [address, sub, name] of [["127.0.0.11", "mallory", "a"], ["127.0.0.12", "mallory", "b"], ["127.0.0.13", "mallory", "c"], ["127.0.0.14", "mallory", "d"], ["127.0.0.15", "alice", "e"]] as const) {
      const c = await open(address, sub);
      c.send({ t: 12, cid: ++cid, sub: `s${cid}`, topic, share: `${topic}-${name}` });
      const reply = await c.waitFor((f) => f.cid === cid, 30_000);
      outcomes.push(reply.t === 23 ? "subscribed" : `${reply.code}${String(reply.message).includes("this principal") ? " (principal)" : ""}`);
      c.destroy();
    }
    expect(outcomes).toEqual(["subscribed", "subscribed", "TOO_MANY_SUBSCRIPTIONS (principal)", "TOO_MANY_SUBSCRIPTIONS (principal)", "subscribed"]);
  } finally {
    await gw.stop();
  }
}, 90_000);
