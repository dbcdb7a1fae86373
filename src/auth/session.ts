import type { Config } from "../config/schema";
import { GatewayError } from "../protocol/errors";
import type { Audit } from "./audit";
import type { LoopStalls } from "../limits/loop-stalls";
import { atTime, clientDeadline } from "./deadline";
import { ANONYMOUS, type Authenticator, type Identity } from "./authenticator";
import { type Action, check, grantsWholeTopic } from "./policy";

export interface AuthContext {
  authenticator: Authenticator;
  audit: Audit;
  config: Config;
  /** The gateway's own stalls: a refresh grace that ran out while it stood still was not the client's. */
  stalls?: LoopStalls;
}

/** What a connection's auth state needs of its socket. */
export interface AuthHooks {
  /** The token expired: tell the client it has AUTH_REFRESH_GRACE to send refresh. */
  expiring(err: GatewayError): void;
  /** No valid token in time: close with 4401. */
  close(reason: string): void;
}

const MAX_CACHED_TOPICS = 1024;

/**
 * One connection's authentication: its identity once a token verified, the timer that ends it when the
 * token expires (unless a refresh replaces it first), and the audit of its decisions.
 */
export class ConnectionAuth {
  identity: Identity | undefined;
  /** The token expired and no refresh came yet: requests are refused until one does. */
  expired = false;
  /** Allowed decisions already written to the audit log for this connection's current token. */
  private readonly seen = new Set<string>();
  private cancelTimer: (() => void) | undefined;
  /**
   * Topics the current identity may publish to / subscribe to whole, already checked and audited: the
   * hot path of a publish is then one set lookup, with nothing allocated. Cleared with every new token.
   */
  private readonly granted = { publish: new Set<string>(), subscribe: new Set<string>() };

  constructor(
    private readonly ctx: AuthContext,
    readonly session: string,
    private readonly hooks: AuthHooks,
    identity?: Identity,
    /** The client's address, for the audit lines. */
    private readonly address?: string,
  ) {
    // Without a token yet, the connection's hello deadline (HELLO_TIMEOUT, src/ws/connection.ts) ends it.
    if (!ctx.authenticator.enabled) this.identity = ANONYMOUS;
    else if (identity) this.accept(identity);
  }

  get principal(): string {
    return this.identity?.principal ?? "anonymous";
  }

  /** Verifies a token (hello, or the upgrade request) and makes it the connection's. */
  async authenticate(token: string, action: "authenticate" | "refresh" = "authenticate"): Promise<GatewayError | undefined> {
    const { audit, authenticator } = this.ctx;
    let identity: Identity;
    this.verifying++;
    try {
      identity = await authenticator.verify(token);
    } catch (e) {
      const err = e instanceof GatewayError ? e : new GatewayError("UNAUTHENTICATED", "the token is not accepted");
      this.refused(err, action);
      this.graceOverMaybe();
      return err;
    } finally {
      this.verifying--;
    }
    // The connection closed while the token was checked: nothing is armed, or its timer would keep
    // the closed connection until the token's exp (a connect, hello, close loop: one per round).
    if (this.disposed) return new GatewayError("UNAUTHENTICATED", "the connection closed");
    if (action === "refresh" && this.identity && identity.principal !== this.identity.principal) {
      const err = new GatewayError("UNAUTHENTICATED", `a refresh must be for the same principal (${this.identity.principal})`);
      this.refused(err, action);
      this.graceOverMaybe();
      return err;
    }
    audit.record({ principal: identity.principal, action, outcome: "allow", transport: "ws", address: this.address, session: this.session });
    this.accept(identity);
    return undefined;
  }

  /** Audits a refusal of a token, or of a hello that brought none, under the connection's principal so far. */
  refused(err: GatewayError, action: "authenticate" | "refresh"): void {
    this.ctx.audit.record({ principal: this.principal, action, outcome: "deny", code: err.code, reason: err.message, transport: "ws", address: this.address, session: this.session });
  }

  /** Whether the connection may `action` on `topic` (and, for publish, these events), audited. */
  authorize(action: Action, topic: string, events?: readonly unknown[]): GatewayError | undefined {
    const granted = this.granted[action];
    if (!this.expired && granted.has(topic)) return undefined;
    const id = this.identity;
    let err: GatewayError | undefined;
    if (!id) err = new GatewayError("UNAUTHENTICATED", "send hello with a valid token first");
    else if (this.expired) err = new GatewayError("UNAUTHENTICATED", "the token has expired; send refresh with a new one");
    else err = check(id.grants, action, topic, events);
    // Bounded as `granted` is: a connection naming ever new topics makes the audit start over, not grow.
    if (this.seen.size >= MAX_CACHED_TOPICS) this.seen.clear();
    this.ctx.audit.record(
      { principal: this.principal, action, topic, outcome: err ? "deny" : "allow", ...(err ? { code: err.code, reason: err.message } : {}), transport: "ws", address: this.address, session: this.session },
      this.seen,
    );
    if (!err && grantsWholeTopic(id!.grants, action, topic)) {
      if (granted.size >= MAX_CACHED_TOPICS) granted.clear();
      granted.add(topic);
    }
    return err;
  }

  /** The first refusal among `topics`, each checked and audited as authorize() does; undefined when all are granted. */
  authorizeAll(action: Action, topics: readonly string[]): GatewayError | undefined {
    for (const topic of topics) {
      const err = this.authorize(action, topic);
      if (err) return err;
    }
    return undefined;
  }

  private disposed = false;
  /** Tokens of this connection being checked now (a refresh, a hello). */
  private verifying = 0;
  /** The refresh grace ran out (while a refresh was being checked, see graceOverMaybe). */
  private graceOver = false;

  dispose(): void {
    this.disposed = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  private accept(identity: Identity): void {
    this.identity = identity;
    this.expired = false;
    this.graceOver = false;
    this.granted.publish.clear();
    this.granted.subscribe.clear();
    this.seen.clear(); // a new token's decisions are audited afresh
    // Once the tolerance past exp is spent, the token is no longer valid anywhere else either.
    this.wait(this.ctx.authenticator.validUntil(identity) - Date.now(), () => this.expire());
  }

  private expire(): void {
    this.expired = true;
    const grace = this.ctx.config.AUTH_REFRESH_GRACE;
    this.hooks.expiring(new GatewayError("UNAUTHENTICATED", `the token has expired; send refresh with a new one within ${grace} ms or the connection is closed with 4401`));
    this.cancelTimer?.();
    this.cancelTimer = clientDeadline(
      grace,
      () => {
        this.graceOver = true;
        this.graceOverMaybe();
      },
      this.ctx.stalls,
    );
  }

  /**
   * The grace is over: the connection is closed, unless a refresh (or hello) it sent is still being
   * checked, a key set being fetched for it, say. That one decides: before, a refresh received in
   * time was answered `refreshed` and its connection closed 4401 all the same.
   */
  private graceOverMaybe(): void {
    if (this.graceOver && this.expired && this.verifying === 0 && !this.disposed) this.hooks.close("the token expired; reconnect with a new token");
  }

  private wait(ms: number, then: () => void): void {
    this.cancelTimer?.();
    this.cancelTimer = atTime(Date.now() + Math.max(0, ms), then);
  }
}
