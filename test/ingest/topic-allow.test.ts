import { expect, test } from "bun:test";
import { gatewayForBlock } from "../support/gateway";
import { GatewayClient } from "../support/ws-client";

/**
 * TOPIC_ALLOW is the pattern the whole topic name must match. It was used unanchored: with
 * `orders\..*`, `internal.orders.x`, `xorders.y` and `secret_orders.leak` were acked, and a subscribe
 * to `internal.orders.x` delivered (outside security tester). An alternation is anchored as a whole.
 */
const block = gatewayForBlock({ KAFKA_BROKERS: "", TOPIC_ALLOW: "orders\\..*|audit" });

test("TOPIC_ALLOW matches the whole topic name, on WebSocket publish and subscribe, and on HTTP", async () => {
  const c = await GatewayClient.connect(block.gw.wsUrl);
  for (const topic of ["orders.a", "audit"]) expect(await c.publish({ type: "t.ok", data: {} }, topic)).toMatchObject({ t: 20, topic });
  for (const topic of ["internal.orders.x", "xorders.y", "secret_orders.leak", "audit.x", "x-audit", "orders"]) {
    expect(await c.publish({ type: "t.no", data: {} }, topic)).toMatchObject({ t: 21, code: "INVALID_TOPIC" });
    expect(await c.subscribe({ sub: `s-${topic}`, topic, start: "earliest" }, () => {})).toMatchObject({ t: 21, code: "INVALID_TOPIC" });
    const http = await fetch(`${block.gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "t.no", data: {} }) });
    expect(http.status).toBe(400);
    expect(((await http.json()) as { error: { code: string } }).error.code).toBe("INVALID_TOPIC");
  }
  c.close();
});

const open = gatewayForBlock({ KAFKA_BROKERS: "" });
const undenied = gatewayForBlock({ KAFKA_BROKERS: "", TOPIC_DENY: "none" });

test("TOPIC_DENY, by default the internal topics of Kafka and of the systems around it, is refused whatever TOPIC_ALLOW and the grants say; `none`, nothing is", async () => {
  // A `*` grant reached __consumer_offsets (every group's name, offsets and members: share group
  // names to join) and wrote to _schemas and connect-configs (outside security tester).
  const c = await GatewayClient.connect(open.gw.wsUrl);
  for (const topic of ["__consumer_offsets", "__transaction_state", "_schemas", "_confluent-metrics", "connect-configs", "connect-offsets", "connect-status"]) {
    expect([topic, await c.publish({ type: "t.no", data: {} }, topic)]).toMatchObject([topic, { t: 21, code: "INVALID_TOPIC" }]);
    expect([topic, await c.subscribe({ sub: `s-${topic}`, topic, start: "earliest" }, () => {})]).toMatchObject([topic, { t: 21, code: "INVALID_TOPIC" }]);
    const http = await fetch(`${open.gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "t.no", data: {} }) });
    expect([topic, http.status]).toEqual([topic, 400]);
  }
  // Names that only look alike are the user's.
  for (const topic of ["schemas", "a__b", "my_connect-configs", "connect-configs2"]) expect(await c.publish({ type: "t.ok", data: {} }, topic)).toMatchObject({ t: 20, topic });
  c.close();
  const u = await GatewayClient.connect(undenied.gw.wsUrl);
  expect(await u.publish({ type: "t.ok", data: {} }, "_schemas")).toMatchObject({ t: 20, topic: "_schemas" });
  u.close();
});
