import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { startGateway } from "../support/gateway";
import { kafkaBrokers } from "../support/kafka";

test("a clean stop removes the IPC socket from the temp folder (and any worker bundle an earlier version made)", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1" });
  const ours = () => readdirSync(tmpdir()).filter((n) => n.startsWith(`kgw-worker-${gw.proc.pid}`) || n.startsWith(`kgw-${gw.proc.pid}-`));
  expect(ours().length).toBeGreaterThan(0);
  expect(await gw.stop("SIGTERM")).toBe(0);
  expect(ours()).toEqual([]);
}, 60_000);

test("what a gateway killed with SIGKILL left behind is removed by the next one to start", async () => {
  const brokers = await kafkaBrokers();
  const killed = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" });
  const left = () => readdirSync(tmpdir()).filter((n) => n.startsWith(`kgw-worker-${killed.proc.pid}`) || n.startsWith(`kgw-${killed.proc.pid}-`));
  await killed.stop("SIGKILL");
  expect(left().length).toBeGreaterThan(0);
  const next = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1" });
  expect(left()).toEqual([]);
  expect(await next.stop("SIGTERM")).toBe(0);
}, 60_000);
