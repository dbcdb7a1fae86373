import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect as tcp } from "node:net";
import { readFileSync } from "node:fs";
import { type GatewayClient, connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic } from "../support/kafka";
import { RawWsClient, UPGRADE_REQUEST, textFrame } from "../support/raw-ws";
import { startSlowSubscriber } from "../support/slow-subscriber";
import { within } from "../kafka/harm";

/**
 * A share group member that stops reading (its TCP socket full) and later dies. Its records must go
 * to the members that read: a work queue slows to its members' pace, it does not drop. Before, the
 * stalled member's queue overflowed under drop-oldest and what was dropped counted as handed: the
 * hostile tester's reading member never got 2,574 of 10,000 events (Kafka), 2,652 (embedded).
 */
/** Events `job` numbered 0 to n-1 (`data.i`), 1 KB each, over 50 keys, in batches of 100, every one acked. */
async function publishJobs(c: GatewayClient, topic: string, n: number): Promise<void> {
  const pad = "x".repeat(1000);
  for (let i = 0; i < n; i += 100) {
    const acks = await c.publishBatch(Array.from({ length: 100 }, (_, j) => ({ type: "job", key: `k${(i + j) % 50}`, data: { i: i + j, pad } })), { topic });
    expect(acks.every((a) => a.status === "fulfilled")).toBe(true);
  }
}

/** A member of `group` that reads, through the SDK: the job numbers it got, as they come. */
async function readingMember(c: GatewayClient, topic: string, group: string): Promise<Set<number>> {
  const seen = new Set<number>();
  const reading = await c.subscribe(topic, { share: group });
  void (async () => {
    for await (const e of reading) if (e.event.type === "job") seen.add((e.event.data as { i: number }).i);
  })();
  return seen;
}

let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "", SUBSCRIBER_BUFFER_BYTES: String(64 * 1024) });
});
afterAll(async () => {
  await gw.stop();
});

test("a share member that stops reading: its records go to the member that reads, none is lost to the group, before and after it dies", async () => {
  const topic = freshTopic("share-stall");
  const group = `g-stall-${Date.now()}`;
  const c = await connect({ url: gw.wsUrl });
  await c.publish({ type: "init" }, { topic });
  const seen = await readingMember(c, topic, group);
  const stalled = await startSlowSubscriber(gw.port, topic, 600_000, "drop-oldest", undefined, group);
  try {
    const N = 20_000;
    await publishJobs(c, topic, N);
    // While the stalled member lives, the reading one gets all but what the stalled one was handed
    // into its socket (its kernel buffers and a queue's worth), and the gateway does not spin: a
    // member that overflowed takes nothing until half its queue is gone. Before, it was dealt back
    // the records it gave up, every turn: 100% CPU, and its keys never went to the reader (11,600
    // of 20,000 for as long as it lived).
    await Bun.sleep(4000);
    const cpu = () => {
      const f = readFileSync(`/proc/${gw.proc.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;
    };
    const before = cpu();
    await Bun.sleep(2000);
    expect((cpu() - before) / 2).toBeLessThan(0.3);
    expect(seen.size).toBeGreaterThanOrEqual(N - 5000);
    // What the stalled member gave up went to the other member: nothing was dropped, so no lagged
    // notice, no drops in its delivery health or in gateway_events_dropped_lag_total, and the moves
    // counted as what they are. Before, every re-dealt record counted as dropped for the member.
    const view = (await (await fetch(`${gw.url}/api/v1/admin/delivery`)).json()) as { subscriptions: Array<{ share: string | null; dropped: number; redealt: number; laggedNotices: number }> };
    const members = view.subscriptions.filter((s) => s.share === group);
    expect(members.map((m) => [m.dropped, m.laggedNotices])).toEqual([[0, 0], [0, 0]]);
    expect(Math.max(...members.map((m) => m.redealt))).toBeGreaterThan(0);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/^gateway_events_dropped_lag_total 0$/m);
    expect(Number(/^gateway_share_redealt_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    stalled.proc.kill("SIGKILL");
    await stalled.proc.exited;
    await within(20_000, () => seen.size === N);
    const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !seen.has(i));
    expect(missing.length).toBe(0);
  } finally {
    stalled.proc.kill("SIGKILL");
    c.close();
  }
}, 60_000);

test("every member of a share group stops reading, then all read again: every record reaches one of them without another being written", async () => {
  // The chaos tester's case (6 runs of 11, Kafka): the records read while every member was full
  // waited to be dealt again, and only a later read batch looked at them again. With nothing more
  // written they waited for good: the last 137-386 records of each partition, no notice, sockets open.
  const g = await startGateway({ KAFKA_BROKERS: "", SUBSCRIBER_BUFFER_BYTES: String(64 * 1024), SOCKET_SEND_BUFFER_BYTES: "16384" });
  const topic = freshTopic("share-all-full");
  const group = `g-all-full-${Date.now()}`;
  const c = await connect({ url: g.wsUrl });
  try {
    await c.publish({ type: "init" }, { topic });
    const members = await Promise.all([0, 1].map(() => RawWsClient.connect(g.port)));
    for (const m of members) {
      m.send({ t: 1, v: 1 });
      m.send({ t: 12, cid: 1, sub: "m", topic, share: group });
      await m.waitFor((f) => f.t === 23);
      m.pause();
    }
    const N = 10_000;
    await publishJobs(c, topic, N);
    await Bun.sleep(500);
    for (const m of members) m.resume();
    const got = () => {
      const seen = new Set<number>();
      for (const m of members) for (const f of m.frames) for (const e of f.t === 25 ? f.events : f.t === 24 ? [f] : []) if (e.event.type === "job") seen.add(e.event.data.i);
      return seen;
    };
    await within(20_000, () => got().size === N);
    const seen = got();
    expect(Array.from({ length: N }, (_, i) => i).filter((i) => !seen.has(i))).toEqual([]);
    for (const m of members) m.destroy();
  } finally {
    c.close();
    await g.stop();
  }
}, 90_000);

test("a share member that stops reading at once, under a light load its kernel buffers absorb: what it never read goes to the reading member when it dies", async () => {
  // Nothing waits in the gateway for such a member: every record it was dealt sits in the kernel's
  // buffers, counted as delivered once 2 s passed with nothing unread in Bun's buffer, and lost to
  // the group when it died (outside chaos tester: 387 and 921 of ~13,200 events). A record counts as
  // delivered now once the member has answered a ping sent behind it: read, not merely handed.
  const topic = freshTopic("share-light-stall");
  const group = `g-light-${Date.now()}`;
  const c = await connect({ url: gw.wsUrl });
  await c.publish({ type: "init" }, { topic });
  const seen = await readingMember(c, topic, group);
  const stalled = await startSlowSubscriber(gw.port, topic, 600_000, "drop-oldest", undefined, group);
  try {
    const N = 400;
    await publishJobs(c, topic, N);
    // Past the grace that counted its records delivered.
    await Bun.sleep(4000);
    expect(seen.size).toBeLessThan(N);
    stalled.proc.kill("SIGKILL");
    await stalled.proc.exited;
    await within(20_000, () => seen.size === N).catch(() => {});
    const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !seen.has(i));
    expect(missing.length).toBe(0);
  } finally {
    stalled.proc.kill("SIGKILL");
    c.close();
  }
}, 60_000);

test("a share member that reads but answers no ping is closed 4001 after 30 s, and what it was dealt goes to the member that answers", async () => {
  // Its records could never count as delivered: they held the group's commit, and the gateway's
  // memory, for as long as it lived.
  const topic = freshTopic("share-no-pong");
  const group = `g-no-pong-${Date.now()}`;
  const c = await connect({ url: gw.wsUrl });
  await c.publish({ type: "init" }, { topic });
  const seen = await readingMember(c, topic, group);
  // Reads everything and answers nothing: no pong, ever.
  const s = tcp({ port: gw.port, host: "127.0.0.1" });
  let received = "";
  s.on("data", (d: Buffer) => (received += d.toString("latin1")));
  const closedWith = new Promise<number>((resolve) => s.on("data", () => {
    const i = received.indexOf("\x88");
    if (i >= 0 && received.length >= i + 4) resolve(received.charCodeAt(i + 2) * 256 + received.charCodeAt(i + 3));
  }));
  s.write(UPGRADE_REQUEST);
  s.write(textFrame(JSON.stringify({ t: 1, v: 1 })));
  s.write(textFrame(JSON.stringify({ t: 12, cid: 1, sub: "m", topic, share: group })));
  await Bun.sleep(300);
  try {
    const N = 400;
    await publishJobs(c, topic, N);
    expect(await Promise.race([closedWith, Bun.sleep(40_000).then(() => -1)])).toBe(4001);
    await within(20_000, () => seen.size === N).catch(() => {});
    expect(Array.from({ length: N }, (_, i) => i).filter((i) => !seen.has(i))).toEqual([]);
  } finally {
    s.destroy();
    c.close();
  }
}, 90_000);

