import { expect, test } from "bun:test";
import { type GatewayClient, connect } from "../../src/client";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";

/**
 * What one client address holds in the gateway by its subscriptions' filters. A `keys` list of 1,024
 * keys of up to 32,768 characters is one term (a Set lookup per event), so the term bounds did not
 * see it: 20 connections of one address with 50 subscriptions of ~1 MB of keys each held 2.3 GB
 * (outside hostile tester). MAX_FILTER_CHARS_PER_ADDRESS (8,000,000 by default) counts the
 * characters of every subscription's filter in its canonical form, over all the address's connections.
 */
const file = kafkaGatewayForFile({ RATE_LIMIT_BYTES: "0" });

/** A `keys` filter of 1,000 keys of 900 characters (about 900,000 characters), its own by `tag`. */
const bigFilter = (tag: string) => ({ keys: Array.from({ length: 1000 }, (_, i) => `${tag}-${i}-`.padEnd(900, "k")) });

test("one address's filters stop at MAX_FILTER_CHARS_PER_ADDRESS over all its connections; another address is not refused; a closed subscription gives its room back", async () => {
  const topic = freshTopic("filter-chars");
  const clients: GatewayClient[] = [];
  for (let i = 0; i < 3; i++) clients.push(await connect({ url: file.gw.wsUrl }));
  await clients[0]!.publish({ type: "init" }, { topic });
  const outcomes: Array<{ ok: boolean; code?: string; message?: string; close?: () => Promise<unknown> }> = [];
  await underControl(file.gw, "twelve subscriptions of 900,000 characters of keys each", async () => {
    for (let n = 0; n < 12; n++) {
      const c = clients[n % 3]!;
      const r = await c.subscribe(topic, { filter: bigFilter(`s${n}`) }).then(
        (s) => ({ ok: true, close: () => s.close() }),
        (e: { code: string; message: string }) => ({ ok: false, code: e.code, message: e.message }),
      );
      outcomes.push(r);
    }
  });
  // Eight of about 900,000 characters fit in 8,000,000; the ninth and every one after it do not.
  expect(outcomes.map((o) => o.ok)).toEqual([...Array(8).fill(true), ...Array(4).fill(false)]);
  for (const o of outcomes.slice(8)) expect(o).toMatchObject({ code: "TOO_MANY_SUBSCRIPTIONS", message: expect.stringContaining("MAX_FILTER_CHARS_PER_ADDRESS") });

  // Another client address is not held back by this one's filters.
  const other = await RawWsClient.connect(file.gw.port, "/ws", "", "127.0.0.2");
  other.send({ t: 1, v: 1 });
  other.send({ t: 12, cid: 1, sub: "other", topic, filter: bigFilter("other") });
  expect((await other.waitFor((f) => f.cid === 1, 30_000)).t).toBe(23);
  other.destroy();

  // Two ended: room for one more of the same size, and the refusal again after it.
  await outcomes[0]!.close!();
  await outcomes[1]!.close!();
  const sub = (tag: string) => clients[2]!.subscribe(topic, { filter: bigFilter(tag) }).then(() => "ok", (e: { code: string }) => e.code);
  expect(await sub("again-1")).toBe("ok");
  expect(await sub("again-2")).toBe("ok");
  expect(await sub("again-3")).toBe("TOO_MANY_SUBSCRIPTIONS");

  // A connection that closes gives back what its subscriptions held.
  clients[0]!.close();
  clients[1]!.close();
  const fresh = await connect({ url: file.gw.wsUrl });
  const back = await fresh.subscribe(topic, { filter: bigFilter("after-close") }).then(() => "ok", (e: { code: string }) => e.code);
  expect(back).toBe("ok");
  fresh.close();
  clients[2]!.close();
}, 180_000);
