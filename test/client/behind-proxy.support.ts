import { type GatewayProcess, startGateway } from "../support/gateway";
import { type HoldingProxy, holdingProxy } from "../support/holding-proxy";

/** A gateway of its own (with `env`) behind a proxy that holds nothing, for `body`; both stopped after. */
export async function behindProxy(env: Record<string, string>, body: (gw: GatewayProcess, proxy: HoldingProxy) => Promise<void>, holdMs = 0): Promise<void> {
  const gw = await startGateway({ KAFKA_BROKERS: "", ...env });
  const proxy = await holdingProxy(gw.port, holdMs);
  try {
    await body(gw, proxy);
  } finally {
    await proxy.close();
    await gw.stop();
  }
}
