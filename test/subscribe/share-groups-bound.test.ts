import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";

/**
 * Each share group name is a consumer group in the Kafka cluster, committed at its first subscribe
 * and kept by Kafka for days. One client subscribing and leaving with a new name each time made 22
 * groups a second (the hostile tester: 453 in 20 s), with nothing bounding the cluster's state.
 */
const file = kafkaGatewayForFile({ MAX_SHARE_GROUPS: "3" });

test("past MAX_SHARE_GROUPS new share group names are refused TOO_MANY_SUBSCRIPTIONS; the groups joined before still take members", async () => {
  const c = await connect({ url: file.gw.wsUrl });
  const topic = freshTopic("share-bound");
  await c.publish({ type: "init" }, { topic });
  for (const name of ["g1", "g2", "g3"]) await (await c.subscribe(topic, { share: `${topic}-${name}` })).close();
  const refused = await c.subscribe(topic, { share: `${topic}-g4` }).then(() => null, (e: { code: string }) => e.code);
  expect(refused).toBe("TOO_MANY_SUBSCRIPTIONS");
  const again = await c.subscribe(topic, { share: `${topic}-g2` });
  expect(again.id).toBeString();
  await again.close();
  c.close();
}, 60_000);
