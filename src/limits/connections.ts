import { GatewayError } from "../protocol/errors";
import { KeyCounts } from "./key-counts";
import { openFilesLimit } from "./open-files";

export interface ConnectionLimits {
  /** Sockets in total; 0 means derived from the process's open-files limit. */
  maxConnections: number;
  maxConnectionsPerIp: number;
}

/**
 * Caps WebSocket connections in total and per client address, checked before the upgrade. The
 * total always stays below the open-files limit: at that limit the listener can no longer accept,
 * /health/live stops answering and the event loop spins on failed accepts, so we refuse, with a
 * code, while there are still descriptors left for Kafka, health checks and the refusals themselves.
 */
export class ConnectionLimiter {
  readonly max: number;
  private total = 0;
  private readonly byIp = new KeyCounts<string>();
  private readonly full: GatewayError;
  private readonly fullForIp: GatewayError;

  constructor(private readonly limits: ConnectionLimits, fdLimit = openFilesLimit()) {
    const safe = fdLimit > 0 ? Math.max(16, Math.floor(fdLimit * 0.8) - 64) : Number.MAX_SAFE_INTEGER;
    this.max = limits.maxConnections > 0 ? Math.min(limits.maxConnections, safe) : safe;
    this.full = new GatewayError("TOO_MANY_CONNECTIONS", `this instance holds its maximum of ${this.max} connections; retry later or connect to another instance`);
    this.fullForIp = new GatewayError("TOO_MANY_CONNECTIONS", `this address holds its maximum of ${limits.maxConnectionsPerIp} connections`);
  }

  get open(): number {
    return this.total;
  }

  /** Takes a slot for `ip`, or returns the refusal. */
  acquire(ip: string): GatewayError | null {
    if (this.total >= this.max) return this.full;
    if (this.byIp.get(ip) >= this.limits.maxConnectionsPerIp) return this.fullForIp;
    this.byIp.add(ip);
    this.total++;
    return null;
  }

  release(ip: string): void {
    this.byIp.remove(ip);
    this.total = Math.max(0, this.total - 1);
  }
}
