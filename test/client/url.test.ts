import { expect, test } from "bun:test";
import { connect } from "../../src/client";
import { gatewayForBlock } from "../support/gateway";

const file = gatewayForBlock({ KAFKA_BROKERS: "" });

test("connect refuses a URL with a query string at once, saying why, rather than reconnecting into the gateway's 400 without end", async () => {
  for (const url of [`${file.gw.wsUrl}?access_token=abc`, `${file.gw.wsUrl}?x`]) {
    await expect(connect({ url })).rejects.toThrow("query string");
  }
  await expect(connect({ url: file.gw.wsUrl, urls: [`${file.gw.wsUrl}?x=1`] })).rejects.toThrow(`${file.gw.wsUrl}?x=1 has a query string`);
  // No query, or an empty one: connected, as the gateway takes them.
  for (const url of [file.gw.wsUrl, `${file.gw.wsUrl}?`]) {
    const c = await connect({ url });
    c.close();
  }
});
