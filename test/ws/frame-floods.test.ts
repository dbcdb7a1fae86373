import { expect, test } from "bun:test";
import { gatewayForBlock } from "../support/gateway";
import { RawWsClient } from "../support/raw-ws";
import { underControl } from "../ingest/control";
import { rssMiB } from "../support/proc";

/**
 * Frames that cost the gateway little to handle but something to answer (outside tester): with no
 * rate of their own, one connection pipelining protocol pings got 66,000 pongs a second and put a
 * control's ack p99 from 6 to 40 ms (eight connections: 854 ms), and WebSocket PINGs from a client
 * that never read had their pongs held in Bun's buffer, ~16 MiB a connection, for as long as it liked.
 * On the embedded log with the default limits.
 */
const block = gatewayForBlock({ KAFKA_BROKERS: "" });

test("protocol pings and hellos pipelined by one connection meet the events rate: refused RATE_LIMITED, each answered once, and the control keeps its latency", async () => {
  const gw = block.gw;
  const c = await RawWsClient.connect(gw.port);
  c.send({ t: 1, v: 1 });
  await c.waitFor((f) => f.t === 2);
  let sent = 0;
  await underControl(gw, "pings pipelined by one connection", async () => {
    const until = performance.now() + 4000;
    while (performance.now() < until && c.closeCode === null && !c.abnormal) {
      for (let i = 0; i < 2000; i++, sent++) {
        const cid = sent + 1;
        // (An unsubscribe of no subscription is refused as invalid, and counts toward the 4400 close.)
        if (sent % 2 === 0) c.send({ t: 15, cid });
        else c.send({ t: 1, v: 1, cid });
      }
      await Bun.sleep(5);
    }
  });
  await Promise.race([c.ended, Bun.sleep(2000)]);
  const counts = new Map<number, number>();
  for (const f of c.frames) if (typeof f.cid === "number" && f.cid >= 1) counts.set(f.cid, (counts.get(f.cid) ?? 0) + 1);
  const refused = c.frames.filter((f) => f.code === "RATE_LIMITED").length;
  console.log(`pipelined: ${sent} sent, ${counts.size} answered, ${refused} refused RATE_LIMITED, closed ${c.closeCode}`);
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  expect(refused).toBeGreaterThan(0);
  // Most of what was sent past the rate's burst is refused, or never read once the socket closed 4429.
  expect(counts.size - refused).toBeLessThan(20_000);
  c.destroy();
}, 60_000);

test("a client that sends WebSocket PINGs and never reads the pongs is closed 4001 once the gateway would hold them, and the gateway does not hold them", async () => {
  const gw = block.gw;
  const before = rssMiB(gw.proc.pid);
  const clients: RawWsClient[] = [];
  await underControl(gw, "WebSocket PINGs from clients that do not read", async () => {
    const payload = Buffer.alloc(125, 0x61);
    for (let n = 0; n < 4; n++) {
      const c = await RawWsClient.connect(gw.port);
      c.send({ t: 1, v: 1 });
      await c.waitFor((f) => f.t === 2);
      c.pause();
      for (let k = 0; k < 140; k++) {
        for (let j = 0; j < 1000; j++) c.sendFrame(payload, { opcode: 9 });
        await Bun.sleep(1);
      }
      clients.push(c);
    }
    await Bun.sleep(2000);
  });
  const held = rssMiB(gw.proc.pid) - before;
  for (const c of clients) c.resume();
  const settled = (c: RawWsClient) => c.closeCode !== null || c.abnormal || c.pongs === 140_000;
  await Promise.all(clients.map(async (c) => { for (const until = Date.now() + 20_000; !settled(c) && Date.now() < until; ) await Bun.sleep(50); }));
  console.log(`4 non-readers of 140,000 pongs each: gateway RSS +${held.toFixed(0)} MB while they stayed; closes ${clients.map((c) => c.closeCode)}; pongs read ${clients.map((c) => c.pongs)}`);
  // Closed 4001 once more than PONG_BACKLOG_BYTES of pongs waited in the gateway. The client's kernel
  // may take most of them first (this machine's tcp_rmem grows to 32 MB): a client whose pongs never
  // backed up that far is not closed, and reads every one once it reads again (ci48: 1 of 4).
  for (const c of clients) expect(c.closeCode === 4001 || (c.closeCode === null && !c.abnormal && c.pongs === 140_000)).toBe(true);
  expect(clients.some((c) => c.closeCode === 4001)).toBe(true);
  for (const c of clients) c.destroy();
}, 120_000);
