import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { deadUrl } from "../support/dead-url";
import { startGateway } from "../support/gateway";
import { until } from "../support/until";

const fast = { minMs: 10, maxMs: 20 };

test("connect() to gateways that are not there rejects after connectAttempts, saying what each URL said, and stops trying", async () => {
  const [a, b] = [await deadUrl(), await deadUrl()];
  const states: string[] = [];
  const failed = await connect({ url: [a, b], connectAttempts: 4, reconnect: fast, onState: (s) => void states.push(s) }).then(
    () => null,
    (e: Error) => e.message,
  );
  expect(failed).toStartWith("no welcome after 4 attempts: ");
  expect(failed).toContain(`${a}: `);
  expect(failed).toContain(`${b}: `);
  expect(states).toEqual(["reconnecting", "reconnecting", "reconnecting", "reconnecting", "closed"]);
  await Bun.sleep(300); // fifteen backoffs' worth: nothing more is tried behind the caller's back
  expect(states).toHaveLength(5);
});

test("connect() has a default: a wrong URL rejects after 10 attempts, not a promise that never settles", async () => {
  const url = await deadUrl();
  let tries = 0;
  const failed = await connect({ url, reconnect: fast, onState: (s) => void (s === "reconnecting" && tries++) }).then(
    () => null,
    (e: Error) => e.message,
  );
  expect(failed).toBe(`no welcome after 10 attempts: ${url}: no connection`);
  expect(tries).toBe(10);
});

test("once welcomed, the client reconnects for ever: connectAttempts bounds the first connection only", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: "" });
  const states: string[] = [];
  const c = await connect({ url: gw.wsUrl, connectAttempts: 1, reconnect: fast, heartbeat: false, onState: (s) => void states.push(s) });
  await gw.stop();
  await until("five reconnects to the gateway gone", () => states.filter((s) => s === "reconnecting").length >= 5, 10_000);
  expect(states).not.toContain("closed");
  c.close();
}, 60_000);
