// Stays on raw sockets for the heavy senders: they send pre-built JSON text as fast as the rates allow.
import { afterAll, expect, test } from "bun:test";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { GatewayClient } from "../support/ws-client";

let gw: GatewayProcess | null = null;
afterAll(() => gw?.stop(), 60_000);

/**
 * Frames differ in cost by four orders of magnitude: a small publish takes microseconds, a valid 260 KB
 * JSON event tens of milliseconds. Six connections sending the latter within their own rates (the
 * default 4 MiB/s each) must not queue a light client's publishes for seconds: the gateway shares
 * its time by what frames cost, not by how many there are.
 */
test("six connections sending 260 KB JSON events within their rates leave a light publisher its share: every request answered, median within 200 ms", async () => {
  // The light client publishes on a clock, every 50 ms, whether or not its last publish is answered,
  // as a service does: one frame per connection per round would let its frames pile up.
  gw = await startGateway({});
  const g = gw;
  const inner = `[${Array.from({ length: 2000 }, (_, i) => i).join(",")}]`;
  const frame = `{"cid":1,"t":10,"topic":"heavy","event":{"type":"x","data":[${Array.from({ length: 30 }, () => inner).join(",")}]}}`;
  const heavy: WebSocket[] = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const ws = new WebSocket(g.wsUrl);
      await new Promise((r) => (ws.onopen = r));
      ws.send('{"t":1,"v":1}');
      return ws;
    }),
  );
  const control = await GatewayClient.connect(g.wsUrl);
  const latencies: number[] = [];
  const replies: Array<Promise<unknown>> = [];
  const clock = setInterval(() => {
    const t0 = performance.now();
    replies.push(control.publish({ type: "control" }, "fairness-control").then((f) => (expect(f.t).toBe(20), latencies.push(performance.now() - t0))));
  }, 50);
  let heavySent = 0;
  const end = Date.now() + 6000;
  while (Date.now() < end) {
    for (const ws of heavy) if (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 4_000_000) (ws.send(frame), heavySent++);
    await Bun.sleep(20);
  }
  clearInterval(clock);
  await Promise.all(replies);
  expect((await fetch(`${g.url}/health/live`)).status).toBe(200);
  const sorted = [...latencies].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)]!;
  console.log(`heavy senders sent ${heavySent} frames of ${frame.length} B; control: ${sorted.length} publishes, all answered, median ${p50.toFixed(1)} ms, p99 ${sorted[Math.floor(sorted.length * 0.99)]!.toFixed(1)} ms`);
  expect(latencies.length).toBe(replies.length);
  expect(p50).toBeLessThan(200);
  control.close();
  for (const ws of heavy) ws.close();
}, 120_000);
