/**
 * Publish rates, per connection and per principal, in events/s and bytes/s (token buckets, see
 * token-bucket.ts). A request over a rate is refused RATE_LIMITED with the milliseconds after which
 * it would pass; nothing is queued for it. A connection that keeps sending into refusals, past
 * `closeAfterRefusals` of them within 10 s, is to be closed (4429): it ignores the hints. Its client
 * address then opens no new connection for `closePenaltyMs`: a flooder that simply reconnects would
 * otherwise start over with a fresh burst each time.
 *
 * Bytes are charged for every frame, before it is decoded (a frame costs its decode whatever it
 * holds); events are charged for publishes, once their count is known. The principal is the token's
 * subject with authentication on, else the client address; an HTTP client is charged as a
 * connection of its own per principal, since it has none.
 */
import { GatewayError } from "../protocol/errors";
import { HandlingBudget } from "./handling-budget";
import type { LoopStalls } from "./loop-stalls";
import { type Stalls, TokenBucket } from "./token-bucket";

export interface Rates {
  /** 0: no limit. */
  eventsPerSec: number;
  bytesPerSec: number;
}

export interface RateLimitOptions {
  /** New WebSocket connections per second from one client address; 0: no limit. */
  connectsPerSecPerIp: number;
  connection: Rates;
  principal: Rates;
  /** Each bucket holds this many seconds of its rate. */
  burstSeconds: number;
  /** RATE_LIMITED refusals within any 10 s past which a connection is closed; 0: never. */
  closeAfterRefusals: number;
  /** How long an address whose connection was closed for that opens no new one; 0: not at all. */
  closePenaltyMs: number;
  /** Frames refused for a request error (1xxx) within any 10 s past which a connection is closed; 0: never. */
  closeAfterInvalid: number;
  /**
   * Subscribes per second per connection (0: no limit), from a bucket of `burst`; and per client
   * address over all its connections and streams, from a bucket of ADDRESS_SUBSCRIBE_BURST_S of it.
   */
  subscribes: { perSec: number; burst: number; perAddressPerSec: number };
  /**
   * Subscribes that read history (each opens a reader of its own) per second: over the instance from
   * a bucket of `instanceBurst`, and per client address from a bucket of `addressBurst` (0: no limit).
   */
  replays: { perSec: number; instanceBurst: number; perAddressPerSec: number; addressBurst: number };
  /** `refresh` frames per second per connection (0: no limit), from a bucket of REFRESH_BURST. */
  refreshesPerSec: number;
  /** HTTP tokens refused per second per client address (0: no limit), from a bucket of BAD_TOKEN_BURST_S of it. */
  badTokensPerSecPerAddress: number;
  /**
   * Milliseconds of the gateway's time one connection's requests may take per second (0: no limit),
   * from a bucket of `burstSeconds` of it; charged after the work, since only then is its cost known.
   */
  handlingMsPerSec: number;
  /**
   * Milliseconds a second that the clients past half their own handling budget may take together
   * (0: no total), from a bucket of `burstSeconds` of it (see handling-budget.ts).
   */
  handlingTotalMsPerSec: number;
}

type Unit = "events" | "bytes";
export type Scope = "connection" | "principal";

/** What a refusal was for, for the metric and the message. */
export interface Refusal {
  error: GatewayError;
  scope: Scope;
  unit: Unit | "connections" | "subscribes" | "refreshes" | "handling" | "requests";
}

class Buckets {
  readonly events: TokenBucket;
  readonly bytes: TokenBucket;
  constructor(r: Rates, burstSeconds: number, now: number, stalls: Stalls | null) {
    this.events = new TokenBucket(r.eventsPerSec, Math.max(1, r.eventsPerSec * burstSeconds), now, undefined, stalls);
    this.bytes = new TokenBucket(r.bytesPerSec, Math.max(1, r.bytesPerSec * burstSeconds), now, undefined, stalls);
  }
  isFull(now: number): boolean {
    return this.events.isFull(now) && this.bytes.isFull(now);
  }
}

const REFUSAL_WINDOW_S = 10;
// An address's subscribe bucket holds this many seconds of its rate: everyone behind one NAT
// resubscribing at once after a restart.
const ADDRESS_SUBSCRIBE_BURST_S = 5;
// An address's bucket of refused tokens holds this many seconds of its rate: a client whose token
// expired retries a few requests before it fetches a new one.
const BAD_TOKEN_BURST_S = 5;
// Principals remembered at most; full buckets are forgotten first (they hold no state worth keeping).
const MAX_PRINCIPALS = 100_000;
const MAX_PENALISED_PRINCIPALS = 16;

/** A client address's close penalty: `closed` names whose connections were closed there ("" none), null for too many. */
interface Penalty {
  until: number;
  closed: Set<string> | null;
}
const SWEEP_EVERY_MS = 10_000;
// A client refreshes once per token lifetime; a few at once covers a retry after a failed one.
const REFRESH_BURST = 3;
// The busy connections' total owes at most this many seconds of its rate: they rest at most that long
// after a load (theirs or delivery's) is gone.
const TOTAL_DEBT_SECONDS = 5;

/** The limits of one connection: its own buckets, and its count of refusals. */
export class ConnectionRate {
  readonly own: Buckets;
  readonly subscribes: TokenBucket;
  readonly refreshes: TokenBucket;
  /** Handling time, in ms (null: no limit): src/ws/ingress.ts rests a socket on it; HTTP refuses on it. */
  readonly handling: HandlingBudget | null;
  private readonly refusals: TokenBucket | null;
  private readonly invalid: TokenBucket | null;

  constructor(
    options: RateLimitOptions,
    now: number,
    /** Whose the own buckets are, as a refusal names them: an HTTP client's are its principal's requests'. */
    readonly scope: Scope = "connection",
    /** The gateway's total handling time for busy clients (null: none). */
    handlingTotal: TokenBucket | null = null,
    stalls: Stalls | null = null,
  ) {
    this.own = new Buckets(options.connection, options.burstSeconds, now, stalls);
    // What a client sends within these while the gateway stands still arrives together when it wakes.
    this.subscribes = new TokenBucket(options.subscribes.perSec, Math.max(1, options.subscribes.burst), now, undefined, stalls);
    this.refreshes = new TokenBucket(options.refreshesPerSec, REFRESH_BURST, now, undefined, stalls);
    const ms = options.handlingMsPerSec;
    this.handling = ms > 0 ? new HandlingBudget(new TokenBucket(ms, Math.max(1, ms * options.burstSeconds), now), handlingTotal) : null;
    this.refusals = allowance(options.closeAfterRefusals, now, stalls);
    this.invalid = allowance(options.closeAfterInvalid, now, stalls);
  }

  /** Counts a RATE_LIMITED refusal; true when the connection is past its allowance and must be closed. */
  refused(now: number): boolean {
    return spent(this.refusals, now);
  }

  /** Counts a frame refused for a request error; true when the connection is past its allowance and must be closed. */
  refusedInvalid(now: number): boolean {
    return spent(this.invalid, now);
  }
}

/**
 * An allowance of `n`, given back at `n` per REFUSAL_WINDOW_S: spent by more than `n` at once, or by more
 * than `n` per window kept up (up to 2n can pass within one window); none kept for 0 (no limit).
 */
function allowance(n: number, now: number, stalls: Stalls | null): TokenBucket | null {
  return n > 0 ? new TokenBucket(n / REFUSAL_WINDOW_S, n, now, undefined, stalls) : null;
}

function spent(bucket: TokenBucket | null, now: number): boolean {
  if (!bucket) return false;
  if (bucket.waitMs(now) > 0) return true;
  bucket.spend(1);
  return false;
}

/** Buckets by name (principals, HTTP clients), forgetting the ones that are full again. */
class BucketMap<B> {
  private readonly map = new Map<string, B>();
  private lastSweep: number;

  constructor(
    private readonly make: (now: number) => B,
    private readonly isFull: (b: B, now: number) => boolean,
    now: number,
  ) {
    this.lastSweep = now;
  }

  get(name: string, now: number): B {
    let b = this.map.get(name);
    if (!b) {
      if (now - this.lastSweep > SWEEP_EVERY_MS || this.map.size >= MAX_PRINCIPALS) this.sweep(now);
      b = this.make(now);
      this.map.set(name, b);
    }
    return b;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    // Still full of busy ones, the oldest go, which costs them at most a fresh burst.
    forget(this.map, (b) => this.isFull(b, now));
  }
}

/**
 * Keeps a map of client names under MAX_PRINCIPALS: the entries that hold nothing worth keeping go,
 * then, if it is still full, the oldest (a Map iterates in insertion order).
 */
function forget<V>(map: Map<string, V>, isSpent: (v: V) => boolean): void {
  for (const [name, v] of map) if (isSpent(v)) map.delete(name);
  for (const name of map.keys()) {
    if (map.size < MAX_PRINCIPALS) break;
    map.delete(name);
  }
}

export class RateLimits {
  private readonly principals: BucketMap<Buckets>;
  private readonly httpClients: BucketMap<ConnectionRate>;
  private readonly connects: BucketMap<TokenBucket>;
  private readonly addressSubscribes: BucketMap<TokenBucket>;
  private readonly replayStarts: TokenBucket | null;
  private readonly addressReplayStarts: BucketMap<TokenBucket>;
  private readonly addressBadTokens: BucketMap<TokenBucket>;
  /** Client addresses closed for flooding: until when they open no connection, and whose connections were closed. */
  private readonly penalties = new Map<string, Penalty>();
  /** Handling time of every client, which the busy ones wait for once it is spent (see handling-budget.ts). */
  private readonly handlingTotal: TokenBucket | null;
  readonly enabled: boolean;
  /** Whether any principal rate is set: only then is a principal worth naming for a request. */
  readonly byPrincipal: boolean;

  private readonly clock: () => number;

  constructor(
    private readonly options: RateLimitOptions,
    readClock: () => number = () => performance.now(),
    /** The gateway's own stalls: each look at the clock may be the first after one (loop-stalls.ts). */
    private readonly stalls: LoopStalls | null = null,
  ) {
    this.clock = stalls ? () => {
      const t = readClock();
      stalls.observe(t);
      return t;
    } : readClock;
    const now = this.clock();
    this.principals = new BucketMap((t) => new Buckets(options.principal, options.burstSeconds, t, stalls), (b, t) => b.isFull(t), now);
    const total = options.handlingTotalMsPerSec;
    // Delivery charges the total whatever the clients do, so a gateway loaded for minutes would owe minutes
    // and rest its busy clients long after the load was gone: the debt is kept to TOTAL_DEBT_SECONDS of it.
    this.handlingTotal = total > 0 ? new TokenBucket(total, Math.max(1, total * options.burstSeconds), now, total * TOTAL_DEBT_SECONDS) : null;
    this.httpClients = new BucketMap((t) => new ConnectionRate(options, t, "principal", this.handlingTotal, stalls), (c, t) => c.own.isFull(t) && (c.handling?.isFull(t) ?? true), now);
    const connects = options.connectsPerSecPerIp;
    this.connects = new BucketMap((t) => new TokenBucket(connects, Math.max(1, connects * options.burstSeconds), t, undefined, stalls), (b, t) => b.isFull(t), now);
    const subs = options.subscribes.perAddressPerSec;
    this.addressSubscribes = new BucketMap((t) => new TokenBucket(subs, Math.max(1, subs * ADDRESS_SUBSCRIBE_BURST_S), t, undefined, stalls), (b, t) => b.isFull(t), now);
    const r = options.replays;
    this.replayStarts = r.perSec > 0 ? new TokenBucket(r.perSec, Math.max(1, r.instanceBurst), now) : null;
    this.addressReplayStarts = new BucketMap((t) => new TokenBucket(r.perAddressPerSec, Math.max(1, r.addressBurst), t), (b, t) => b.isFull(t), now);
    const bad = options.badTokensPerSecPerAddress;
    this.addressBadTokens = new BucketMap((t) => new TokenBucket(bad, Math.max(1, bad * BAD_TOKEN_BURST_S), t), (b, t) => b.isFull(t), now);
    const { connection: c, principal: p } = options;
    this.enabled = c.eventsPerSec + c.bytesPerSec + p.eventsPerSec + p.bytesPerSec > 0;
    this.byPrincipal = p.eventsPerSec + p.bytesPerSec > 0;
  }

  /** Work done for no client in particular (delivering events), paid from the busy clients' total. */
  chargeHandlingTotal(ms: number): void {
    this.handlingTotal?.spend(ms);
  }

  connection(): ConnectionRate {
    return new ConnectionRate(this.options, this.clock(), "connection", this.handlingTotal, this.stalls);
  }

  /** HTTP has no connection: each principal's requests share the buckets of one. */
  httpClient(principal: string): ConnectionRate {
    return this.httpClients.get(principal, this.clock());
  }

  /**
   * Charges a new WebSocket connection to its client address, before anything else is done for the
   * upgrade: a client reconnecting in a loop costs a handshake, a hello and a close each time.
   */
  /**
   * The close penalty of `ip`, while it runs, for a connection of `principal` (its token verified), or of
   * no one known yet (undefined). A principal other than those whose connections were closed there is
   * spared: behind a NAT, one tokenless client closed 4400 kept every client of the address out.
   */
  penaltyFor(ip: string, principal?: string): Refusal | undefined {
    const p = this.penalties.get(ip);
    if (p === undefined) return undefined;
    const wait = Math.ceil(p.until - this.clock());
    if (wait <= 0) {
      this.penalties.delete(ip);
      return undefined;
    }
    if (principal !== undefined && principal !== "" && p.closed !== null && !p.closed.has(principal)) return undefined;
    const error = new GatewayError("RATE_LIMITED", `a connection from this address was closed (4429 or 4400) for sending on into refusals; no new connection for ${wait} ms${principal === undefined ? " without a token of another principal" : ""}`, { retryAfterMs: wait, scope: "address" });
    return { error, scope: "connection", unit: "connections" };
  }

  /** The rate of new connections of `ip` (CONNECTION_RATE_PER_IP); the close penalty is penaltyFor's. */
  admitConnection(ip: string): Refusal | undefined {
    const rate = this.options.connectsPerSecPerIp;
    if (rate === 0) return undefined;
    const bucket = this.connects.get(ip, this.clock());
    const wait = bucket.waitMs(this.clock());
    if (wait === 0) {
      bucket.spend(1);
      return undefined;
    }
    const error = new GatewayError("RATE_LIMITED", `over the rate of ${rate} new connections/s from one address; retry in ${wait} ms`, { retryAfterMs: wait, scope: "address" });
    return { error, scope: "connection", unit: "connections" };
  }

  /**
   * A connection from `ip` was closed for flooding (`principal`: its token's, "" without one): the
   * address opens no new one for a while, except for other principals' (penaltyFor).
   */
  penalise(ip: string, principal = ""): void {
    if (this.options.closePenaltyMs === 0) return;
    const now = this.clock();
    if (this.penalties.size >= MAX_PRINCIPALS) forget(this.penalties, (p) => p.until <= now);
    const running = this.penalties.get(ip);
    const closed = running && running.until > now ? running.closed : new Set<string>();
    this.penalties.delete(ip);
    // Past a few principals closed at one address, the address is refused to every one of them.
    const named = closed !== null && closed.size < MAX_PENALISED_PRINCIPALS ? closed.add(principal) : null;
    this.penalties.set(ip, { until: now + this.options.closePenaltyMs, closed: named });
  }

  /**
   * Charges a frame's bytes; a refusal, or undefined when it may be handled. `minWaitMs`: the least
   * retry hint a refusal gives, when the caller will not read the client again before then.
   */
  admitBytes(conn: ConnectionRate, principal: string, bytes: number, minWaitMs = 0): Refusal | undefined {
    return this.admit(conn, principal, "bytes", bytes, minWaitMs);
  }

  /** Charges a publish's events; a refusal, or undefined when it may be published. `minWaitMs` as above. */
  admitEvents(conn: ConnectionRate, principal: string, events: number, minWaitMs = 0): Refusal | undefined {
    return this.admit(conn, principal, "events", events, minWaitMs);
  }

  /**
   * Charges a subscribe to its connection (none for an SSE stream) and its client address, before any
   * of its work (the ACL and its audit line, the log's watermarks, a feed): a refusal, or undefined
   * when it may go on. An address that opens a connection per hundred subscribes meets its own bucket.
   */
  admitSubscribe(conn: ConnectionRate | null, address: string, minWaitMs = 0): Refusal | undefined {
    const now = this.clock();
    const own = conn?.subscribes;
    const perAddress = this.options.subscribes.perAddressPerSec > 0 ? this.addressSubscribes.get(address, now) : null;
    const ownWait = own ? own.waitMs(now) : 0;
    const addressWait = perAddress ? perAddress.waitMs(now) : 0;
    if (ownWait === 0 && addressWait === 0) {
      own?.spend(1);
      perAddress?.spend(1);
      return undefined;
    }
    const after = Math.max(ownWait, addressWait, minWaitMs);
    const which = ownWait >= addressWait ? `connection rate of ${this.options.subscribes.perSec}` : `rate of ${this.options.subscribes.perAddressPerSec} from one client address`;
    const error = new GatewayError("RATE_LIMITED", `over the ${which} subscribes/s; retry in ${after} ms`, { retryAfterMs: after, scope: ownWait >= addressWait ? "connection" : "address" });
    return { error, scope: "connection", unit: "subscribes" };
  }

  /**
   * Charges a subscribe that reads history (start earliest, a time, a token) before its work: each
   * opens a reader of its own, asks the log for offsets and closes it again. Within every subscribe
   * rate, ten addresses subscribing and unsubscribing replays 126 times a second held another
   * client's p99 at 314-394 ms (hostile tester), so they have rates of their own.
   */
  admitReplay(address: string, minWaitMs = 0): Refusal | undefined {
    const now = this.clock();
    const perAddress = this.options.replays.perAddressPerSec > 0 ? this.addressReplayStarts.get(address, now) : null;
    const addressWait = perAddress ? perAddress.waitMs(now) : 0;
    const instanceWait = this.replayStarts ? this.replayStarts.waitMs(now) : 0;
    if (addressWait === 0 && instanceWait === 0) {
      perAddress?.spend(1);
      this.replayStarts?.spend(1);
      return undefined;
    }
    const after = Math.max(addressWait, instanceWait, minWaitMs);
    const which = addressWait >= instanceWait ? `${this.options.replays.perAddressPerSec} a second from one client address (REPLAY_START_RATE_PER_ADDRESS)` : `${this.options.replays.perSec} a second on this instance (REPLAY_START_RATE)`;
    const error = new GatewayError("RATE_LIMITED", `over the rate of subscribes that read history, ${which}; retry in ${after} ms, or start from latest`, { retryAfterMs: after, scope: addressWait >= instanceWait ? "address" : "instance" });
    return { error, scope: "connection", unit: "subscribes" };
  }

  /**
   * Before an HTTP request's token is verified: refused (RATE_LIMITED) while its client address has
   * had BAD_TOKEN_RATE_PER_ADDRESS tokens refused a second, without verifying this one. Each bad
   * token costs a signature check and was answered at once: 8,000 a second from one address put a
   * control connection's p99 from 3.8 to 64 ms (outside security tester). Valid tokens cost nothing here.
   */
  admitTokenCheck(address: string): Refusal | undefined {
    const rate = this.options.badTokensPerSecPerAddress;
    if (rate === 0) return undefined;
    const wait = this.addressBadTokens.get(address, this.clock()).waitMs(this.clock());
    if (wait === 0) return undefined;
    const error = new GatewayError("RATE_LIMITED", `this client address sent more than ${rate} refused tokens a second (BAD_TOKEN_RATE_PER_ADDRESS); retry in ${wait} ms`, { retryAfterMs: wait, scope: "address" });
    return { error, scope: "connection", unit: "requests" };
  }

  /** An HTTP request's token from `address` was refused: charged to the address (see admitTokenCheck). */
  tokenRefused(address: string): void {
    if (this.options.badTokensPerSecPerAddress > 0) this.addressBadTokens.get(address, this.clock()).spend(1);
  }

  /**
   * Charges a `refresh` to its connection before its work (a signature check, JWKS perhaps, every
   * subscription checked again, an audit line): a refusal, or undefined when it may go on. Unbounded,
   * one client sent 352,000 in 20 s, each writing an audit line.
   */
  admitRefresh(conn: ConnectionRate, minWaitMs = 0): Refusal | undefined {
    const now = this.clock();
    const wait = conn.refreshes.waitMs(now);
    if (wait === 0) {
      conn.refreshes.spend(1);
      return undefined;
    }
    const after = Math.max(wait, minWaitMs);
    const error = new GatewayError("RATE_LIMITED", `over the connection rate of ${this.options.refreshesPerSec} refreshes/s; retry in ${after} ms`, { retryAfterMs: after, scope: "connection" });
    return { error, scope: "connection", unit: "refreshes" };
  }

  /**
   * An HTTP client whose requests took more than its handling time is refused until that is paid
   * back, before its next body is decoded (a WebSocket is not read meanwhile instead: ws/ingress.ts).
   */
  admitHandling(conn: ConnectionRate, bytes: number): Refusal | undefined {
    const now = this.clock();
    const wait = conn.handling?.waitMs(now, bytes) ?? 0;
    if (wait === 0) return undefined;
    const why =
      conn.handling!.ownWaitMs(now) > 0
        ? `this client's requests took more than ${this.options.handlingMsPerSec} ms of the gateway's time a second (RATE_LIMIT_HANDLING_MS)`
        : `the clients busiest with the gateway's time took more than the ${this.options.handlingTotalMsPerSec} ms a second they share (RATE_LIMIT_HANDLING_TOTAL_MS), and this client is one of them or this body could make it one`;
    const error = new GatewayError("RATE_LIMITED", `${why}; retry in ${wait} ms`, { retryAfterMs: wait, scope: conn.scope });
    return { error, scope: conn.scope, unit: "handling" };
  }

  private admit(conn: ConnectionRate, principal: string, unit: Unit, cost: number, minWaitMs: number): Refusal | undefined {
    if (!this.enabled) return undefined;
    const now = this.clock();
    const own = conn.own[unit];
    const shared = this.options.principal[unit === "events" ? "eventsPerSec" : "bytesPerSec"] > 0 ? this.principals.get(principal, now)[unit] : null;
    const ownWait = own.waitMs(now);
    const sharedWait = shared ? shared.waitMs(now) : 0;
    if (ownWait === 0 && sharedWait === 0) {
      own.spend(cost);
      shared?.spend(cost);
      return undefined;
    }
    const ownFirst = ownWait >= sharedWait;
    const scope: Scope = ownFirst ? conn.scope : "principal";
    const wait = Math.max(ownWait, sharedWait, minWaitMs);
    const rate = ownFirst ? this.options.connection : this.options.principal;
    const per = unit === "events" ? `${rate.eventsPerSec} events/s` : `${rate.bytesPerSec} bytes/s`;
    const error = new GatewayError("RATE_LIMITED", `over the ${scope} rate of ${per}; retry in ${wait} ms`, { retryAfterMs: wait, scope });
    return { error, scope, unit };
  }
}
