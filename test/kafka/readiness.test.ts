import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { connect } from "../../src/client";

let gw: GatewayProcess;

beforeAll(async () => {
  // A port nothing listens on: the workers start but never reach a broker.
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const deadPort = probe.port;
  probe.stop(true);
  gw = await startGateway({ KAFKA_BROKERS: `127.0.0.1:${deadPort}`, KAFKA_WORKERS: "1", KAFKA_CONNECT_TIMEOUT_MS: "300" }, { waitReady: false });
}, 60_000);
afterAll(async () => {
  expect(await gw.stop()).toBe(0);
}, 60_000);

test("with Kafka unreachable: live, not ready, and publishes are nacked UNAVAILABLE (retriable) instead of queued", async () => {
  expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
  const ready = await fetch(`${gw.url}/health/ready`);
  expect(ready.status).toBe(503);
  expect(await ready.json()).toMatchObject({ status: "not_ready", log: { kind: "kafka", ready: false } });
  const detail = await gw.health();
  expect(detail.status).toBe("degraded");
  expect(detail.log.workers[0].state).not.toBe("ready");

  // One attempt: the SDK would otherwise retry a retriable refusal.
  const c = await connect({ url: gw.wsUrl, maxAttempts: 1 });
  await expect(c.publish({ type: "x" })).rejects.toMatchObject({ code: "UNAVAILABLE", retriable: true, mayBePersisted: false });
  const r = await fetch(`${gw.url}/api/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "x" }) });
  expect(r.status).toBe(503);
  expect(r.headers.get("retry-after")).toBe("1");
  c.close();
});
