import { expect, test } from "bun:test";
import { unpack } from "msgpackr";
import { connect } from "../../src/client";
import { gatewayForBlock } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { openJsonWs as open } from "../support/json-ws";

/**
 * A feed spreads a costly read batch over several turns (about 5 ms each): between them a
 * subscription holds records it matched but has not framed, and the feed's positions are past them.
 * An unsubscribe there must answer a token before those records, not after: the reviewer's probe,
 * subscribed and unsubscribed 60 times beside 950 filtered subscriptions, was told a token past
 * records it never got in 49 of 60 runs (6,587 records a resume would have skipped).
 */
const block = gatewayForBlock({ KAFKA_BROKERS: "", SUBSCRIBE_RATE_LIMIT: "0", SUBSCRIBE_RATE_LIMIT_PER_ADDRESS: "0" });


test("an unsubscribe while a feed is mid-batch answers a token no later than what the subscriber was sent", async () => {
  const gw = block.gw;
  const topic = freshTopic("unsub-mid");
  const pub = await connect({ url: gw.wsUrl });
  await pub.publish({ type: "init", data: { n: 0 } }, { topic });
  // Load that makes every batch cost several slices: filters that are evaluated one by one.
  const loads = await Promise.all([0, 1, 2].map(() => open(gw.wsUrl)));
  for (const [c, load] of loads.entries()) {
    await Promise.all(Array.from({ length: 300 }, (_, i) => load.req({ t: 12, sub: `l${i}`, topic, filter: { where: `data.n == ${1000 + i} or data.s == 'x${c}${i}'` } })));
  }
  await Promise.all(Array.from({ length: 50 }, (_, i) => loads[0]!.req({ t: 12, sub: `b${i}`, topic, filter: { types: [`t${i % 5}`] } })));
  const written = new Map<number, Set<number>>();
  let publishing = true;
  let n = 0;
  const pad = "p".repeat(300);
  const publisher = (async () => {
    while (publishing) {
      const acks = await pub.publishBatch(Array.from({ length: 200 }, () => ({ type: `t${n++ % 5}`, data: { n, pad } })), { topic });
      for (const a of acks) if (a.status === "fulfilled") (written.get(a.value.partition) ?? written.set(a.value.partition, new Set()).get(a.value.partition)!).add(a.value.offset);
      await Bun.sleep(5);
    }
  })();
  let got = new Map<number, Set<number>>();
  let lagged = 0;
  const probe = await open(gw.wsUrl, (f) => {
    if (f.t === 24 || f.t === 25) for (const e of f.t === 24 ? [f] : f.events) (got.get(e.partition) ?? got.set(e.partition, new Set()).get(e.partition)!).add(e.offset);
    else if (f.t === 27) lagged++;
  });
  const runs: Array<{ start: number[]; token: string; got: Map<number, Set<number>>; lagged: number }> = [];
  for (let i = 0; i < 40; i++) {
    got = new Map();
    lagged = 0;
    const s = await probe.req({ t: 12, sub: `p${i}`, topic });
    await Bun.sleep(10 + Math.random() * 40);
    const u = await probe.req({ t: 13, sub: `p${i}` });
    runs.push({ start: s.start[topic], token: u.token, got, lagged });
  }
  publishing = false;
  await publisher;
  let skipped = 0;
  for (const r of runs) {
    if (r.lagged > 0) continue; // told, and its token is the last frame's
    const to = new Map<string, number[]>((unpack(Buffer.from(r.token.split(".")[0]!, "base64url")) as { p: Array<[string, number[]]> }).p).get(topic)!;
    r.start.forEach((from, p) => {
      for (let o = from; o < to[p]!; o++) if (written.get(p)?.has(o) && !r.got.get(p)?.has(o)) skipped++;
    });
  }
  expect(skipped).toBe(0);
  for (const l of loads) l.ws.close();
  probe.ws.close();
  pub.close();
}, 120_000);
