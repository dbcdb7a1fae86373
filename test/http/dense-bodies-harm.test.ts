import { expect, test } from "bun:test";
import { startGateway } from "../support/gateway";
import { underControl } from "../ingest/control";
import { SECRET, hsToken, now } from "../auth/support";

/**
 * HTTP bodies that cost far more than their bytes (JSON dense with long integers), from many
 * principals each within its own rates and handling budget: each was decoded and prepared as soon
 * as it arrived, all of them in one turn of the event loop, and a WebSocket client's ack waited for
 * every one (outside tester: 16 principals from one address, the control's p99 0.5-2.9 s, its
 * worst 2.9 s, against 3 ms quiet). HTTP work now takes its turn as frames do.
 */
const GRANTS = { kgw: { publish: ["*"], subscribe: ["*"] } };

const denseText = `{"type":"dense","data":[${Array.from({ length: 30_000 }, (_, i) => `123456789012345678901234567${100 + (i % 900)}`).join(",")}]}`;

test("dense JSON bodies posted by 16 principals, each within its rates, leave a WebSocket client's latency alone", async () => {

  const gw = await startGateway({ KAFKA_BROKERS: "", AUTH_JWT_SECRET: SECRET });
  try {
    const tokens = await Promise.all(Array.from({ length: 16 }, (_, i) => hsToken({ sub: `poster-${i}`, exp: now() + 600, ...GRANTS })));
    const control = await hsToken({ sub: "control", exp: now() + 600, ...GRANTS });
    const statuses: Record<string, number> = {};
    await underControl(
      gw,
      "dense HTTP bodies from 16 principals",
      async () => {
        const until = Date.now() + 6_000;
        await Promise.all(
          tokens.map(async (token) => {
            while (Date.now() < until) {
              const r = await fetch(`${gw.url}/api/v1/events?topic=dense-http`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: denseText });
              statuses[r.status] = (statuses[r.status] ?? 0) + 1;
              await r.arrayBuffer();
            }
          }),
        );
      },
      { token: control, maxUnderMs: 400 },
    );
    console.log(`statuses ${JSON.stringify(statuses)}`);
    expect(statuses["202"]).toBeGreaterThan(0);
  } finally {
    await gw.stop();
  }
}, 120_000);
