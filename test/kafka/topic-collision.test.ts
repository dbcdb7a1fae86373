import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { GatewayClient } from "../support/ws-client";

/**
 * Kafka takes topic names that differ only in `.` and `_` for one name, and refuses to create the
 * second. A publish to it waited out the message timeout and ended PUBLISH_TIMEOUT, which says
 * retry (outside security tester: 30 s). Now it is refused INVALID_TOPIC at once, naming the topic
 * in the way; the topic that exists takes events as before.
 */
const file = kafkaGatewayForFile({ KAFKA_MESSAGE_TIMEOUT_MS: "8000" });

test("a publish to a topic whose name collides with one Kafka has ('.' for '_') is refused INVALID_TOPIC at once, not timed out", async () => {
  const c = await GatewayClient.connect(file.gw.wsUrl);
  const existing = freshTopic("billing_invoices").replaceAll("-", "_");
  const colliding = existing.replaceAll("_", ".");
  expect(await c.publish({ type: "invoice.made", data: {} }, existing)).toMatchObject({ t: 20, topic: existing });
  const started = Date.now();
  const reply = await c.publish({ type: "invoice.made", data: {} }, colliding);
  const tookMs = Date.now() - started;
  console.log(`publish to ${colliding} beside ${existing}: ${reply.code ?? reply.t} in ${tookMs} ms`);
  expect(reply).toMatchObject({ t: 21, code: "INVALID_TOPIC", retriable: false });
  expect(reply.message).toContain(existing);
  expect(tookMs).toBeLessThan(5000);
  // Asked again, answered from what is known.
  expect(await c.publish({ type: "invoice.made", data: {} }, colliding)).toMatchObject({ t: 21, code: "INVALID_TOPIC" });
  expect(await c.publish({ type: "invoice.made", data: {} }, existing)).toMatchObject({ t: 20 });
  c.close();
}, 60_000);
