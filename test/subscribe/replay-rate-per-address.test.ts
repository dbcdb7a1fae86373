import { afterAll, expect, test } from "bun:test";
import { connect } from "../../src/client";
import { startGateway } from "../support/gateway";
import { RawWsClient } from "../support/raw-ws";

/**
 * REPLAY_RATE_LIMIT paces each replay alone: sixteen replays from one client address read sixteen
 * times as fast as one, and what that costs (reading, decoding, encoding, sending) took the cores
 * every other client's acks wait for (the hostile tester's sixteen replays: control ack p99 60-140 ms
 * against 8-9 quiet). The replays of one address now share REPLAY_RATE_LIMIT_PER_ADDRESS, in the
 * order they ask (each polling the rate on its own timer gave every turn to the first), while another
 * address's replay keeps its own pace.
 */
const gw = await startGateway({ REPLAY_RATE_LIMIT: "2000", REPLAY_RATE_LIMIT_PER_ADDRESS: "2000", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });
afterAll(() => gw.stop());

const HISTORY = 4000;

/** Opens `n` replays of `topic` from `address` at once; resolves with the ms from the first subscribe to each `live`. */
async function replays(address: string, topic: string, n: number): Promise<number[]> {
  const c = await RawWsClient.connect(gw.port, "/ws", "", address);
  c.send({ t: 1, v: 1 });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) c.send({ t: 12, cid: i + 1, sub: `r${i}`, topic, start: "earliest", filter: { types: ["none"] } });
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    await c.waitFor((f) => f.t === 26 && f.sub === `r${i}`, 60_000);
    times.push(performance.now() - t0);
  }
  const refused = c.frames.filter((f) => f.code !== undefined).map((f) => `${f.code}: ${f.message}`);
  expect(refused).toEqual([]);
  c.destroy();
  return times;
}

test("the replays of one client address share REPLAY_RATE_LIMIT_PER_ADDRESS; shared in turn; another address's replay keeps its own pace", async () => {
  const topic = `rate-per-address-${Date.now()}`;
  const pub = await connect({ url: gw.wsUrl });
  for (let i = 0; i < HISTORY; i += 500) await pub.publishBatch(Array.from({ length: 500 }, (_, j) => ({ type: "seed", key: `k${(i + j) % 31}`, data: { i: i + j } })), { topic });
  pub.close();

  const [many, one] = await Promise.all([replays("127.0.0.61", topic, 4), replays("127.0.0.62", topic, 1)]);
  const last = Math.max(...many);
  console.log(`four replays from one address: live after ${many.map((t) => t.toFixed(0)).join(", ")} ms; one from another: ${one[0]!.toFixed(0)} ms`);
  // 16,000 events at 2,000/s for the address: about 8 s (one batch goes before the schedule has a debt).
  expect(last).toBeGreaterThan(6000);
  // In turn, not one after the other: each of the four gets a fair share of the address's rate.
  expect(Math.min(...many)).toBeGreaterThan(last / 2);
  // Alone at 2,000/s, 4,000 events: about 2 s, whatever the other address asks.
  expect(one[0]!).toBeLessThan(last / 2);
}, 90_000);
