import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";

let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
});

test("connect refuses a URL with a query string at once, saying why, rather than reconnecting into the gateway's 400 without end", async () => {
  for (const url of [`${gw.wsUrl}?access_token=abc`, `${gw.wsUrl}?x`]) {
    await expect(connect({ url })).rejects.toThrow("query string");
  }
  await expect(connect({ url: gw.wsUrl, urls: [`${gw.wsUrl}?x=1`] })).rejects.toThrow(`${gw.wsUrl}?x=1 has a query string`);
  // No query, or an empty one: connected, as the gateway takes them.
  for (const url of [gw.wsUrl, `${gw.wsUrl}?`]) {
    const c = await connect({ url });
    c.close();
  }
});
