import { loadConfig } from "./src/config/load";
import { createLogger } from "./src/observability/logger";
import { startGateway } from "./src/server";
import { connect } from "./src/client/index.ts";
process.env.EMBEDDED_RETENTION_BYTES = "33554432"; process.env.RATE_LIMIT_BYTES = "0"; process.env.RATE_LIMIT_EVENTS = "0"; process.env.PORT = "18121"; process.env.LOG_LEVEL = "error";
const gw = await startGateway(loadConfig(), createLogger("error"));
const mu = () => { const m = process.memoryUsage(); return `rss ${(m.rss / 2 ** 20).toFixed(0)} heapUsed ${(m.heapUsed / 2 ** 20).toFixed(0)} arrayBuffers ${(m.arrayBuffers / 2 ** 20).toFixed(0)}`; };
const c = await connect({ url: "ws://127.0.0.1:18121/ws" });
const big = "x".repeat(250_000);
for (let r = 0; r < 2; r++) {
  for (let i = 0; i < 60; i++) await c.publishBatch(Array.from({ length: 10 }, () => ({ type: "big", data: big })), { topic: `t-${r}-${i}` });
}
Bun.gc(true); await Bun.sleep(100); Bun.gc(true);
console.log(process.env.IDEMPOTENCE_WINDOW_MS ?? "default", "after gc", mu());
process.exit(0);
