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
