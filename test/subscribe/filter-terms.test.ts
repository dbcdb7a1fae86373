import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayClient, SubscribeError, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { underControl } from "../ingest/control";

/**
 * A record is matched against every distinct filter of its topic in one piece (a delivery turn
 * cannot cut a record): ten addresses holding 10,000 subscriptions within every per-address bound,
 * each with its own 127-term `where` (outside tester), made each record cost ~120 ms and a control's
 * p99 went from 9 to 365 ms. The distinct filters of one topic's subscribers now hold at most
 * MAX_FILTER_TERMS_PER_TOPIC terms together; a subscribe whose new filter would pass it is refused
 * TOO_MANY_SUBSCRIPTIONS, and one whose filter is already there costs nothing more.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "", MAX_FILTER_TERMS_PER_TOPIC: "20000", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0", RATE_LIMIT_BYTES: "0" });
});
afterAll(async () => {
  await gw.stop();
});

/** A where of 32 comparisons on an 8-deep path (127 terms), distinct by `n`. */
const where = (n: number) => Array.from({ length: 32 }, (_, j) => `data.a.b.c.d.e.f.g.h == 'v${n}-${j}'`).join(" or ");

test("distinct filters of one topic are bounded in terms: past the bound a new one is refused, the same one still joins, another topic is its own", async () => {
  const topic = freshTopic("filter-terms");
  const clients: GatewayClient[] = [];
  const refusals: string[] = [];
  let accepted = 0;
  for (let c = 0; c < 4; c++) {
    const client = await connect({ url: gw.wsUrl });
    clients.push(client);
    await Promise.all(
      Array.from({ length: 60 }, (_, s) =>
        client.subscribe(topic, { filter: { where: where(c * 100 + s) } }).then(
          () => void accepted++,
          (e: unknown) => void refusals.push(e instanceof SubscribeError ? e.code : String(e)),
        ),
      ),
    );
  }
  // 20,000 terms hold 157 filters of 127 terms (and a bit).
  expect(accepted).toBeGreaterThanOrEqual(150);
  expect(accepted).toBeLessThanOrEqual(158);
  expect(new Set(refusals)).toEqual(new Set(["TOO_MANY_SUBSCRIPTIONS"]));
  // A filter already held costs nothing: it joins. Another topic has its own bound.
  await clients[0]!.subscribe(topic, { filter: { where: where(0) } });
  await clients[0]!.subscribe(freshTopic("filter-terms-other"), { filter: { where: where(0) } });
  // Events still flow under the bound, and the control keeps its latency.
  const pub = await connect({ url: gw.wsUrl });
  await underControl(gw, "events against 157 filters of 127 terms", async () => {
    for (let i = 0; i < 200; i++) await pub.publish({ type: "t", data: { a: { b: { c: { d: { e: { f: { g: { h: "x" } } } } } } } } }, { topic });
  }, { p99UnderMs: 300 });
  for (const c of [...clients, pub]) c.close();
}, 120_000);
