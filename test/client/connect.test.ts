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
  // Three reconnects after the first attempt, then closed: no "reconnecting" for a try that is not made.
  expect(states).toEqual(["reconnecting", "reconnecting", "reconnecting", "closed"]);
  await Bun.sleep(300); // fifteen backoffs' worth: nothing more is tried behind the caller's back
  expect(states).toHaveLength(4);
});

test("connect() has a default: a wrong URL rejects after 10 attempts, not a promise that never settles", async () => {
  const url = await deadUrl();
  let tries = 0;
  const failed = await connect({ url, reconnect: fast, onState: (s) => void (s === "reconnecting" && tries++) }).then(
    () => null,
    (e: Error) => e.message,
  );
  expect(failed).toBe(`no welcome after 10 attempts: ${url}: no connection`);
  expect(tries).toBe(9);
});

test("connectAttempts counts an attempt that times out without a welcome, and a getToken that throws; it is at least 1", async () => {
  // Accepts the WebSocket, never welcomes.
  const silent = Bun.serve({ port: 0, fetch: (req, server) => (server.upgrade(req) ? undefined : new Response("no", { status: 400 })), websocket: { message() {} } });
  try {
    const failed = await connect({ url: `ws://127.0.0.1:${silent.port}/ws`, connectAttempts: 2, connectTimeoutMs: 100, reconnect: fast }).then(
      () => null,
      (e: Error) => e.message,
    );
    expect(failed).toMatch(/^no welcome after 2 attempts: ws:\/\/127\.0\.0\.1:\d+\/ws: no welcome from .* within 100 ms$/);
  } finally {
    silent.stop(true);
  }
  const url = await deadUrl();
  const noToken = await connect({ url, connectAttempts: 1, getToken: () => Promise.reject(new Error("vault down")) }).then(
    () => null,
    (e: Error) => e.message,
  );
  expect(noToken).toBe(`no welcome after 1 attempt: ${url}: getToken failed: vault down`);
  for (const connectAttempts of [0, -1, Number.NaN]) {
    await expect(connect({ url, connectAttempts })).rejects.toThrow("connectAttempts is at least 1");
  }
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
