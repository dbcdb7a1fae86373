/**
 * A publisher that pipelines without waiting for acks, as a careless or hostile client does, in a
 * process of its own so it does not slow the test's own clients.
 *   bun test/support/flooder.ts WS_URL SECONDS [EVENTS_PER_FRAME]
 * Prints one JSON line at the end: frames sent and replies by kind and code.
 */
import { GatewayClient } from "./ws-client";

const [url, seconds, perFrame = "100"] = process.argv.slice(2);
const client = await GatewayClient.connect(url!);
const counts: Record<string, number> = {};
let sent = 0;
const pending: Promise<void>[] = [];
const until = Date.now() + Number(seconds) * 1000;
const events = Array.from({ length: Number(perFrame) }, (_, i) => ({ type: "flood", key: `k${i % 16}`, data: { i, pad: "x".repeat(100) } }));
while (Date.now() < until) {
  for (let i = 0; i < 20; i++) {
    sent++;
    pending.push(
      client.publishBatch(events).then((r) => {
        const k = r.t === 22 ? (r.errors?.length ? `batch_ack:${r.errors[0].code}` : "batch_ack") : `nack:${r.code}`;
        counts[k] = (counts[k] ?? 0) + 1;
      }),
    );
  }
  await Bun.sleep(0);
}
await Promise.race([Promise.all(pending), Bun.sleep(10_000)]);
console.log(JSON.stringify({ sent, counts }));
client.close();
process.exit(0);
