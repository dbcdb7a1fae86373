import { expect, test } from "bun:test";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { GatewayClient } from "../support/ws-client";
import { underControl } from "../ingest/control";

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

/**
 * Two new names that collide, published to together on one instance: neither exists when the
 * gateway asks Kafka, so both were taken, and the one Kafka did not make waited out the message
 * timeout (KAFKA_REJECTED or PUBLISH_TIMEOUT, retriable, after 30 s), its records holding the
 * workers' capacity meanwhile: an address sending 1,000-event batches to it put every other client
 * of the instance at OVERLOADED for 25 s (outside tester). The instance knows both names: the second
 * is refused INVALID_TOPIC at once, and the first is written.
 */
test("two new names that collide, named together on one instance: one is written, the other refused INVALID_TOPIC at once", async () => {
  const c = await GatewayClient.connect(file.gw.wsUrl);
  const dotted = freshTopic("pair.made").replaceAll("-", ".");
  const underscored = dotted.replaceAll(".", "_");
  // A control publishes throughout: every one of its requests answered, its latency held.
  const [a, b, tookMs] = await underControl(file.gw, "two colliding names named together", async () => {
    const started = Date.now();
    const replies = await Promise.all([c.publish({ type: "pair", data: {} }, dotted), c.publish({ type: "pair", data: {} }, underscored)]);
    return [...replies, Date.now() - started] as const;
  });
  console.log(`${dotted}: ${a.code ?? a.t}; ${underscored}: ${b.code ?? b.t}, in ${tookMs} ms`);
  const replies = [a, b];
  expect(replies.filter((r) => r.t === 20).length).toBe(1);
  expect(replies.filter((r) => r.t === 21 && r.code === "INVALID_TOPIC").length).toBe(1);
  expect(tookMs).toBeLessThan(5000);
  // Named again a second later (the first answer, "Kafka has neither", is stale by then): the same.
  await Bun.sleep(1000);
  const written = a.t === 20 ? dotted : underscored;
  const refused = a.t === 20 ? underscored : dotted;
  const again = Date.now();
  expect(await c.publish({ type: "pair", data: {} }, refused)).toMatchObject({ t: 21, code: "INVALID_TOPIC" });
  expect(Date.now() - again).toBeLessThan(5000);
  expect(await c.publish({ type: "pair", data: {} }, written)).toMatchObject({ t: 20 });
  c.close();
}, 60_000);
