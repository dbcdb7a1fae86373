import { ConfigError, loadConfig } from "./config/load";
import { EMBEDDED_LOG_WARNING } from "./http/health";
import { createLogger } from "./observability/logger";
import { startGateway } from "./server";

let config;
try {
  config = loadConfig();
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(e.message);
    process.exit(2);
  }
  throw e;
}

const logger = createLogger(config.LOG_LEVEL);
let gateway;
try {
  gateway = await startGateway(config, logger);
} catch (e) {
  // A key file that cannot be read or used is a configuration error like any other: say so, exit 2.
  if (e instanceof ConfigError) {
    console.error(e.message);
    process.exit(2);
  }
  throw e;
}
const durable = gateway.log.kind === "kafka";
if (!durable) logger.warn(EMBEDDED_LOG_WARNING);
logger.info("listening", { host: config.HOST, port: gateway.port, ...(gateway.internalPort !== undefined ? { internalPort: gateway.internalPort } : {}), tls: gateway.tls, log: gateway.log.kind, durable, ready: gateway.log.isReady(), maxConnections: gateway.maxConnections });

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    logger.info("draining", { signal });
    await gateway.close();
    logger.info("stopped");
    process.exit(0);
  });
}
