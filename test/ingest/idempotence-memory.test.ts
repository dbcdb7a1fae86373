import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { ensureTopic } from "../support/kafka-broker";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { rssMiB } from "../support/proc";
import { RawSocket } from "./wire";

/**
 * What remembering an event id costs, whatever the client makes of its id and source (outside
 * tester: identities of 1,256 two-byte characters, the longest an id and a source may be, cost
 * about 2.7 KB each, so IDEMPOTENCE_MAX_IDS of them held 1.48 GB). Two runs of the same number of
 * events of the same size, one with short ids and one with the longest: the second may not hold
 * more than a little beyond the first.
 */
let gw: GatewayProcess;
let brokers: string;
beforeAll(async () => {
  brokers = await kafkaBrokers();
  gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0", RATE_LIMIT_HANDLING_MS: "0" });
}, 60_000);
afterAll(async () => {
  await gw.stop();
}, 60_000);

// Enough that the old cost (2.7 KB an id) stands well clear of how far RSS moves with collections.
const N = 80_000;
const BATCH = 250;

async function publishAll(s: RawSocket, topic: string, event: (i: number) => object, firstCid: number): Promise<void> {
  let cid = firstCid;
  for (let i = 0; i < N; i += BATCH) {
    // A few batches in flight at a time.
    s.send(JSON.stringify({ t: 11, cid: ++cid, topic, events: Array.from({ length: BATCH }, (_, j) => event(i + j)) }));
    if ((cid - firstCid) % 4 === 0) await s.waitFor((r) => r.frame.cid === cid, 1, 60_000);
  }
  const replies = await s.waitFor((r) => typeof r.frame.cid === "number" && r.frame.cid > firstCid, cid - firstCid, 120_000);
  for (const r of replies) expect(r.frame).toMatchObject({ t: 22 });
  for (const r of replies) expect(r.frame.errors ?? []).toEqual([]);
  s.received.length = 0;
}

test("the longest ids and sources cost what short ones do to remember", async () => {
  const topic = freshTopic("idem-memory");
  await ensureTopic(brokers, topic, 2);
  const s = await RawSocket.connect(gw.wsUrl, "json");
  // Two-byte characters, as long as the envelope allows: 256 of id, 1,024 of source.
  const longId = (i: number) => `${i}-`.padEnd(256, "ж");
  const longSource = "ж".repeat(1024);
  // The short run carries the same bytes in its data, so both cost the same to decode and write.
  const pad = "ж".repeat(256 + 1024);
  await publishAll(s, topic, (i) => ({ type: "warm", id: `w-${i}`, data: pad }), 0);
  await Bun.sleep(2000);
  const afterShort = rssMiB(gw.proc.pid);
  await publishAll(s, topic, (i) => ({ type: "long", id: longId(i), source: longSource, data: "" }), 1_000_000);
  await Bun.sleep(2000);
  const afterLong = rssMiB(gw.proc.pid);
  console.log(`${N} events with short ids, then ${N} with ids of 256 and sources of 1,024 two-byte characters: RSS ${afterShort.toFixed(0)} MiB, then ${afterLong.toFixed(0)} MiB`);
  // At 2.7 KB an id, the long ones would hold 200 MiB more (135 MiB for 40,000 on the old code).
  // Remembered as hashes they hold 9-15 MiB more for 40,000 alone, but RSS on a loaded CI box moves
  // by tens of MiB with when collections run (+53 and +76 MiB for 40,000 in fresh-clone CIs, where
  // the bound was 70): the bound is half the old cost.
  expect(afterLong - afterShort).toBeLessThan(135);
  s.close();
}, 240_000);

test("the longest identities still tell events apart: a re-send gets the original's position, and one character of difference in the id or the source is a new event", async () => {
  const topic = freshTopic("idem-long");
  await ensureTopic(brokers, topic, 1);
  const s = await RawSocket.connect(gw.wsUrl, "json");
  const id = "i".repeat(255);
  const source = "s".repeat(1024);
  const events = [
    { type: "a", id: `${id}1`, source },
    { type: "a", id: `${id}1`, source }, // the re-send
    { type: "a", id: `${id}2`, source },
    { type: "a", id: `${id}1`, source: `${source.slice(1)}t` },
    // The same characters split otherwise between source and id.
    { type: "a", id: `s${id.slice(1)}1`, source: `${source.slice(1)}i` },
  ];
  events.forEach((event, i) => s.send(JSON.stringify({ t: 10, cid: i + 1, topic, event })));
  const acks = (await s.waitFor((r) => typeof r.frame.cid === "number", events.length)).map((r) => r.frame).sort((a, b) => a.cid - b.cid);
  for (const a of acks) expect(a.t).toBe(20);
  expect(acks[1]!.offset).toBe(acks[0]!.offset);
  expect(new Set([acks[0]!.offset, acks[2]!.offset, acks[3]!.offset, acks[4]!.offset]).size).toBe(4);
  s.close();
}, 60_000);
