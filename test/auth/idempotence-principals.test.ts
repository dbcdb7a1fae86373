import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayClient, type PublishResult, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { consumeAll, ensureTopic } from "../support/kafka-broker";
import { SECRET, hsToken, postEvent } from "./support";

/**
 * With authentication on, an event is its principal's (source, id). Before, it was (source, id)
 * alone: one principal that wrote an id first (a guessable one, as "order-7" of "/shop") had
 * another principal's event with it acked with the first one's position and never written, its
 * data lost while its client held an ack; on this instance and, read back from Kafka, on others.
 */
const GRANTS = { kgw: { publish: ["*"], subscribe: ["*"] } };
let brokers: string;
const gateways: GatewayProcess[] = [];
beforeAll(async () => {
  brokers = await kafkaBrokers();
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", AUTH_JWT_SECRET: SECRET };
  gateways.push(...(await Promise.all([startGateway(env), startGateway(env)])));
}, 90_000);
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
});

const as = async (gw: GatewayProcess, sub: string): Promise<GatewayClient> => connect({ url: gw.wsUrl, token: await hsToken({ sub, ...GRANTS }), maxAttempts: 1 });
const at = (r: PublishResult) => [r.partition, r.offset];

test("two principals with the same source and id each get their own event written and acked, and each one's re-sends, on either instance and over HTTP, get its own ack", async () => {
  const [a, b] = gateways as [GatewayProcess, GatewayProcess];
  const topic = freshTopic("idem-principals");
  await ensureTopic(brokers, topic, 1);
  const event = (data: string) => ({ source: "/shop", id: "order-7", type: "order", data });

  const mallory = await as(a, "mallory");
  const squatted = at(await mallory.publish(event("mallory's"), { topic }));
  const alice = await as(a, "alice");
  const own = at(await alice.publish(event("alice's"), { topic }));
  expect(own).not.toEqual(squatted);

  // Re-sends: the same principal's get its own ack, here, on the other instance, and over HTTP.
  expect(at(await alice.publish(event("alice's"), { topic }))).toEqual(own);
  const [aliceB, malloryB] = await Promise.all([as(b, "alice"), as(b, "mallory")]);
  expect(at(await aliceB.publish(event("alice's"), { topic }))).toEqual(own);
  expect(at(await malloryB.publish(event("mallory's"), { topic }))).toEqual(squatted);
  const posted = await postEvent(b, topic, await hsToken({ sub: "alice", ...GRANTS }), event("alice's"));
  expect(posted.status).toBe(202);
  const body = (await posted.json()) as { partition: number; offset: number };
  expect([body.partition, body.offset]).toEqual(own);

  // Kafka holds both, each with the principal that wrote it (CloudEvents' authcontext extension).
  const records = await consumeAll(brokers, topic, { expect: 2 });
  expect(records.map((r) => [r.offset, r.headers.ce_id, r.headers.ce_authid, r.headers.ce_authtype])).toEqual([
    [squatted[1], "order-7", "mallory", "unknown"],
    [own[1], "order-7", "alice", "unknown"],
  ]);
  for (const c of [mallory, alice, aliceB, malloryB]) c.close();
}, 90_000);

test("a client cannot write the principal's headers itself: ce_authid in an event's headers is refused as every ce_ header is", async () => {
  const alice = await as(gateways[0]!, "alice");
  const topic = freshTopic("idem-authid");
  await expect(alice.publish({ type: "t", headers: { ce_authid: "bob" } }, { topic })).rejects.toMatchObject({ code: "INVALID_EVENT" });
  alice.close();
});
