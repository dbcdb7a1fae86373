import { afterAll, beforeAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { RawWsClient } from "../support/raw-ws";

/**
 * A client that gives up on a gateway that stopped answering (the SDK does after 20 s without an
 * answer to its ping) closes its connection and sends what was unacknowledged to another instance.
 * The stopped gateway, on waking, read the publishes still in that connection's socket before the
 * close behind them, and wrote them: the events were in Kafka twice (outside tester, a 26 s stop:
 * 12 and 222 duplicated ids a run). Requests of a connection its client closed during the stall are
 * neither written nor answered.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
}, 60_000);
afterAll(async () => {
  process.kill(gw.proc.pid, "SIGCONT");
  await gw.stop();
});

const published = async () => Number((await (await fetch(`${gw.url}/metrics`)).text()).match(/^gateway_events_published_total\{transport="ws"\} (\d+)/m)?.[1] ?? 0);

test("publishes a client sent and then closed its connection on, while the gateway was stopped, are not written when it wakes", async () => {
  const leaving = await RawWsClient.connect(gw.port);
  leaving.send({ t: 1, v: 1, cid: 0 });
  await leaving.waitFor((f) => f.t === 2);
  const staying = await RawWsClient.connect(gw.port);
  staying.send({ t: 1, v: 1, cid: 0 });
  await staying.waitFor((f) => f.t === 2);
  const before = await published();
  process.kill(gw.proc.pid, "SIGSTOP");
  try {
    for (let cid = 1; cid <= 50; cid++) leaving.send({ t: 10, cid, topic: "gave-up", event: { id: `g-${cid}`, type: "t.gave-up", data: { cid } } });
    // Another connection's requests sent meanwhile are still all handled.
    for (let cid = 1; cid <= 50; cid++) staying.send({ t: 10, cid, topic: "stayed", event: { id: `s-${cid}`, type: "t.stayed", data: { cid } } });
    await Bun.sleep(1_500);
    leaving.sendFrame(Buffer.from([0x03, 0xe8]), { opcode: 8 }); // close 1000, then the TCP FIN
    leaving.end();
    await Bun.sleep(1_000);
  } finally {
    process.kill(gw.proc.pid, "SIGCONT");
  }
  const deadline = Date.now() + 10_000;
  while (staying.frames.filter((f) => f.t === 20).length < 50 && Date.now() < deadline) await Bun.sleep(20);
  expect(staying.frames.filter((f) => f.t === 20).length).toBe(50);
  await Bun.sleep(500);
  expect((await published()) - before).toBe(50);
  staying.destroy();
}, 60_000);
