import { GatewayError } from "../protocol/errors";
import { KeyCounts } from "./key-counts";
import { openFilesLimit } from "./open-files";

export interface ConnectionLimits {
  /** Sockets in total; 0 means derived from the process's open-files limit. */
  maxConnections: number;
  maxConnectionsPerIp: number;
  /**
   * Connections still waiting for a token (authentication on, none at the upgrade) together; 0 means a
   * quarter of the instance's maximum.
   */
  maxTokenless?: number;
}

/**
 * Caps WebSocket connections in total and per client address, checked before the upgrade. The
 * total always stays below the open-files limit: at that limit the listener can no longer accept,
 * /health/live stops answering and the event loop spins on failed accepts, so we refuse, with a
 * code, while there are still descriptors left for Kafka, health checks and the refusals themselves.
 * With authentication on, an upgrade without a token is counted as tokenless too until its hello brings
 * one: such upgrades from a few addresses held every slot until HELLO_TIMEOUT, and clients with valid
 * tokens were refused (MAX_CONNECTIONS_PER_IP bounds one address, not many).
 */
export class ConnectionLimiter {
  readonly max: number;
  readonly maxTokenless: number;
  private total = 0;
  private tokenless = 0;
  private readonly byIp = new KeyCounts<string>();
  private readonly full: GatewayError;
  private readonly fullForIp: GatewayError;
  private readonly fullTokenless: GatewayError;

  constructor(private readonly limits: ConnectionLimits, fdLimit = openFilesLimit()) {
    const safe = fdLimit > 0 ? Math.max(16, Math.floor(fdLimit * 0.8) - 64) : Number.MAX_SAFE_INTEGER;
    this.max = limits.maxConnections > 0 ? Math.min(limits.maxConnections, safe) : safe;
    this.full = new GatewayError("TOO_MANY_CONNECTIONS", `this instance holds its maximum of ${this.max} connections; retry later or connect to another instance`);
    this.fullForIp = new GatewayError("TOO_MANY_CONNECTIONS", `this address holds its maximum of ${limits.maxConnectionsPerIp} connections`);
    this.maxTokenless = limits.maxTokenless ? Math.min(limits.maxTokenless, this.max) : Math.max(1, Math.floor(this.max / 4));
    this.fullTokenless = new GatewayError("TOO_MANY_CONNECTIONS", `${this.maxTokenless} connections are waiting for a token already (MAX_TOKENLESS_CONNECTIONS); connect with the token in the kgw.bearer subprotocol or an Authorization header, or retry later`);
  }

  get open(): number {
    return this.total;
  }

  /** Takes a slot for `ip` (`tokenless`: one that still has to bring a token), or returns the refusal. */
  acquire(ip: string, tokenless = false): GatewayError | null {
    if (this.total >= this.max) return this.full;
    if (this.byIp.get(ip) >= this.limits.maxConnectionsPerIp) return this.fullForIp;
    if (tokenless && this.tokenless >= this.maxTokenless) return this.fullTokenless;
    this.byIp.add(ip);
    this.total++;
    if (tokenless) this.tokenless++;
    return null;
  }

  /** A slot taken tokenless has its token now. Called once per such slot, before its release. */
  authenticated(): void {
    this.tokenless = Math.max(0, this.tokenless - 1);
  }

  /** `tokenless`: the slot never got its token. */
  release(ip: string, tokenless = false): void {
    this.byIp.remove(ip);
    this.total = Math.max(0, this.total - 1);
    if (tokenless) this.tokenless = Math.max(0, this.tokenless - 1);
  }
}
