import { TokenBucket } from "../limits/token-bucket";
import { PublishError, type PublishResult, type PublishRetry, Publisher } from "./publisher";
import { SubscribeError, type SubscribeOptions, Subscription, clientClosed } from "./subscription";
import { type Codec, FrameType, type InFrame, type OutgoingEvent, PROTOCOL_VERSION, decode, encode, filterRefusal, frameRefusal } from "./wire";

/** Tries of a subscribe refused RATE_LIMITED before the refusal is the application's. */
const MAX_SUBSCRIBE_ATTEMPTS = 20;

export interface ConnectOptions {
  /**
   * ws:// or wss:// URL of the gateway's socket, e.g. ws://localhost:8080/ws; or several, of
   * instances sharing Kafka (and RESUME_TOKEN_KEYS): each reconnect tries the next one.
   */
  url: string | string[];
  /** More instances to fail over to, after those of `url`. */
  urls?: string[];
  /** A bearer token, or a function that returns a fresh one (called on each connect and before expiry). */
  token?: string;
  getToken?: () => string | Promise<string>;
  /** msgpack (default) or json. */
  codec?: Codec;
  /** The WebSocket class, where there is no global one. */
  WebSocket?: typeof WebSocket;
  /** Reconnect backoff: from `minMs`, doubling to `maxMs`, with jitter. */
  reconnect?: { minMs?: number; maxMs?: number };
  /**
   * How long an attempt may take from opening the socket to the gateway's welcome before the next is
   * tried (ms); its getToken call, before the socket is opened, gets as long again (and a refresh's too).
   */
  connectTimeoutMs?: number;
  /**
   * Attempts (over all the URLs) that the first connection gets before `connect()` rejects, saying
   * what each URL last said, and the client stops (onState "closed"). Default 10: 16-33 s of backoff
   * where connections are refused, plus up to connectTimeoutMs an attempt where they hang (twice
   * that where getToken hangs too). Infinity waits for a gateway for ever. Once welcomed, the client
   * reconnects for ever.
   */
  connectAttempts?: number;
  /**
   * Liveness of an open connection: after `idleMs` with nothing from the gateway a `ping` is sent, and
   * with still nothing `timeoutMs` later the connection is given up and the next instance tried (a
   * hung instance, or a path that drops packets without a reset, would otherwise hold the client).
   * Default 10 s and 10 s; false: never.
   */
  heartbeat?: { idleMs?: number; timeoutMs?: number } | false;
  lingerMs?: number;
  maxQueued?: number;
  maxAttempts?: number;
  /**
   * Told each time a publish is refused with a retriable code and queued to be sent again (for
   * metrics and logs: retries are otherwise invisible until they run out).
   */
  onRetry?: (retry: PublishRetry) => void;
  /** Told each time the connection goes up or down. */
  onState?: (state: "open" | "reconnecting" | "closed", detail?: { code?: number; reason?: string; url?: string }) => void;
}

type Limits = { window: number; maxBatchEvents: number } & Record<string, number>;

/**
 * The numeric limits a welcome advertises, if this client can follow them: each finite, none
 * negative, and the window, batch and frame sizes at least 1 (0 rates mean none). Null otherwise.
 */
function welcomeLimits(raw: unknown): Limits | null {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return null;
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== "number") continue; // not a limit this client knows how to follow
    if (!Number.isFinite(value) || value < 0) return null;
    out[name] = value;
  }
  for (const name of ["window", "maxBatchEvents"]) if (!((out[name] ?? 0) >= 1)) return null;
  if (out.maxFrameBytes !== undefined && out.maxFrameBytes < 1) return null;
  return out as Limits;
}

/** ConnectOptions.connectAttempts' default. */
const DEFAULT_CONNECT_ATTEMPTS = 10;

// Close codes after which reconnecting cannot help.
const FATAL_CLOSES = new Set([4000]);

/**
 * A connection to the gateway that stays up: it says hello (with a token), reconnects with
 * exponential backoff and jitter when the socket drops, and then re-sends unacknowledged publishes
 * (same ids) and resumes every subscription from its last token. See docs/client.md.
 */
export class GatewayClient {
  session = "";
  limits: Limits = { window: 1000, maxBatchEvents: 100 };
  private ws: WebSocket | null = null;
  /**
   * The connection's subscribe rate as welcome advertised it (subscribesPerSec, from a bucket of
   * maxSubscriptions), kept here so subscribes wait their turn rather than being refused: refusals
   * count toward the gateway's 4429 close. Null when it advertised none.
   */
  private subscribeBucket: TokenBucket | null = null;
  private welcomed = false;
  private closed = false;
  private cid = 1;
  private attempt = 0;
  private readonly urls: string[];
  /** The instance this attempt goes (went) to; each reconnect moves to the next. */
  private urlIndex = 0;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  /** The backoff before the next attempt: cleared by close(), or a closed client's process waited it out (up to maxMs, ten times that after a 4429). */
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly subs = new Map<string, Subscription>();
  private readonly publisher: Publisher;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly codec: Codec;
  private firstWelcome!: { resolve: () => void; reject: (e: Error) => void };
  /** Before the first welcome: what each URL's last attempt ended with, for connect()'s rejection. */
  private readonly firstFailures = new Map<string, string>();
  /** Whether any connection was welcomed: from then on the client reconnects for ever. */
  private everWelcomed = false;
  private readonly connectAttempts: number;

  private constructor(private readonly options: ConnectOptions) {
    this.codec = options.codec ?? "msgpack";
    this.urls = [...(Array.isArray(options.url) ? options.url : [options.url]), ...(options.urls ?? [])];
    if (this.urls.length === 0) throw new Error("connect: give `url` (one or more ws:// URLs)");
    // The gateway refuses an upgrade with a query string (400), and a browser's WebSocket cannot read
    // why: said here, once, rather than as reconnects without end.
    const queried = this.urls.find((u) => /^[^#]*\?[^#]/.test(u));
    if (queried !== undefined) throw new Error(`connect: ${queried} has a query string, which the gateway refuses; its token goes in \`token\``);
    this.connectAttempts = options.connectAttempts ?? DEFAULT_CONNECT_ATTEMPTS;
    if (!(this.connectAttempts >= 1)) throw new Error(`connect: connectAttempts is at least 1 (Infinity: for ever), not ${options.connectAttempts}`);
    this.publisher = new Publisher(
      {
        ready: () => this.welcomed,
        encode: (f) => encode(f, this.codec),
        refusal: (data) => frameRefusal(data, this.codec, this.limits),
        sendEncoded: (data) => this.ws?.readyState === 1 && this.ws.send(data),
        nextCid: () => this.cid++,
        limits: () => this.limits,
      },
      {
        lingerMs: options.lingerMs ?? 2,
        maxQueued: options.maxQueued ?? 100_000,
        maxAttempts: options.maxAttempts ?? 8,
        onRetry: options.onRetry,
        tokenRenewal: { possible: () => this.options.getToken !== undefined && !this.closed, request: () => this.refreshNow() },
      },
    );
  }

  /** Connects and resolves once the gateway has welcomed the client. */
  static connect(options: ConnectOptions): Promise<GatewayClient> {
    let c: GatewayClient;
    try {
      c = new GatewayClient(options);
    } catch (e) {
      return Promise.reject(e); // options refused: a rejection, as any failure to connect is
    }
    return new Promise((resolve, reject) => {
      c.firstWelcome = { resolve: () => resolve(c), reject };
      void c.open();
    });
  }

  publish(event: OutgoingEvent, opts: { topic?: string } = {}): Promise<PublishResult> {
    // Typed as the publishes close() cut are: nothing of it was sent.
    if (this.closed) return Promise.reject(new PublishError("CLIENT_CLOSED", "the client is closed", false, false, event.id ?? ""));
    return this.publisher.publish(event, opts.topic);
  }

  /** Publishes several events; each settles on its own (they may share frames with other publishes). */
  publishBatch(events: OutgoingEvent[], opts: { topic?: string } = {}): Promise<PromiseSettledResult<PublishResult>[]> {
    return Promise.allSettled(events.map((e) => this.publish(e, opts)));
  }

  /** Subscribes; resolves once the gateway has confirmed. Iterate it, or give it callbacks. */
  async subscribe(topic: string | string[], options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.closed) throw clientClosed(); // nothing would answer it
    const refusal = options.filter === undefined ? null : filterRefusal(options.filter);
    if (refusal) throw new SubscribeError(refusal);
    const id = `s${this.cid++}`;
    // Sent only on a welcomed connection: sent between a reconnect's open and its welcome, the
    // subscribe went out twice (again with the resubscribes the welcome starts), was refused
    // SUBSCRIPTION_EXISTS on the client and left running on the gateway (outside probe Z). Until the
    // welcome it waits, and the resubscribe answers it.
    const sub = new Subscription(id, Array.isArray(topic) ? topic : [topic], options, { send: (f) => this.welcomed && this.send(f), unsubscribe: (s) => this.unsubscribe(s), nextCid: () => this.cid++, forget: (s) => this.subs.delete(s.id) });
    this.subs.set(id, sub);
    // Each wait can be cut short by a refusal of the welcome's resubscribe of it (see resubscribe).
    const step = <T>(p: Promise<T>) =>
      new Promise<T>((resolve, reject) => {
        this.callers.set(sub, reject);
        p.then(resolve, reject);
      });
    try {
      return await this.subscribeLoop(sub, step);
    } finally {
      this.callers.delete(sub);
    }
  }

  /** subscribe()'s tries of `sub`, each wait through `step` (which a resubscribe's refusal cuts short). */
  private async subscribeLoop(sub: Subscription, step: <T>(p: Promise<T>) => Promise<T>): Promise<Subscription> {
    let afterRefresh = false;
    for (let attempt = 1; ; attempt++) {
      try {
        await step(this.subscribeTurn());
        // Not welcomed (a reconnect under way): the welcome's resubscribes send it, and this waits for that.
        if (!this.welcomed) await step(this.nextWelcome());
        await step(this.openOnce(sub));
        return sub;
      } catch (e) {
        if (!afterRefresh && this.refreshWillAnswer(e)) {
          afterRefresh = true;
          await this.refreshAnswered();
          continue;
        }
        // Over the connection's subscribe rate (SUBSCRIBE_RATE_LIMIT): sent again once the gateway
        // would take it, as a publish is. Any other refusal is the application's to handle.
        const limited = e instanceof SubscribeError && e.code === "RATE_LIMITED" && attempt < MAX_SUBSCRIBE_ATTEMPTS && !this.closed;
        if (!limited) {
          this.subs.delete(sub.id);
          throw e;
        }
        await step(this.sleep(Math.max(10, (e as SubscribeError).retryAfterMs ?? 100)));
      }
    }
  }

  /** The instance the client is connected (or connecting) to. */
  get url(): string {
    return this.urls[this.urlIndex]!;
  }

  /** Events waiting to be sent or acknowledged. */
  get pendingPublishes(): number {
    return this.publisher.pending;
  }

  close(): void {
    this.closed = true;
    for (const w of this.welcomeWaiters.splice(0)) w.reject(clientClosed());
    this.refreshSettled();
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const [timer, reject] of this.sleeps) {
      clearTimeout(timer);
      reject(clientClosed());
    }
    this.sleeps.clear();
    this.publisher.failAll("CLIENT_CLOSED", "the client was closed before the gateway acknowledged this event");
    for (const s of [...this.subs.values()]) s.end({ kind: "ended", code: "CLIENT_CLOSED" });
    this.ws?.close(1000);
    this.options.onState?.("closed");
  }

  private async token(): Promise<string | undefined> {
    return this.options.getToken ? await this.options.getToken() : this.options.token;
  }

  private get connectTimeoutMs(): number {
    return this.options.connectTimeoutMs ?? 10_000;
  }

  /**
   * The token, or a rejection once connectTimeoutMs has passed without one, for a connect and for a
   * refresh alike: a getToken that never settles (an identity provider fetched with no timeout) held
   * connect() and every reconnect (outside probe Z), or every later refresh (second review), for good.
   * The timer is unref'd where timers can be: a closed client's process need not wait it out.
   */
  private async tokenWithin(): Promise<string | undefined> {
    const ms = this.connectTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        this.token(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`it did not answer within ${ms} ms`)), ms);
          (timer as { unref?: () => void }).unref?.();
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async open(): Promise<void> {
    let token: string | undefined;
    try {
      token = await this.tokenWithin();
    } catch (e) {
      if (this.closed) return;
      return this.retry(undefined, `getToken failed: ${(e as Error).message}`);
    }
    if (this.closed) return;
    const Ws = this.options.WebSocket ?? globalThis.WebSocket;
    let ws: WebSocket;
    try {
      ws = new Ws(this.url);
    } catch (e) {
      return this.retry(undefined, `cannot open ${this.url}: ${(e as Error).message}`);
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    // An instance that accepts but never welcomes (hung, or a black-holed host) must not hold the
    // client: past the timeout the socket is dropped and the next instance is tried.
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (this.ws !== ws || this.welcomed) return;
      this.ws = null;
      ws.close();
      this.retry(undefined, `no welcome from ${this.url} within ${this.connectTimeoutMs} ms`);
    }, this.connectTimeoutMs);
    ws.onopen = () => this.sendOn(ws, { t: FrameType.HELLO, v: PROTOCOL_VERSION, cid: 0, client: "kafka-ws-gateway/client", ...(token ? { token } : {}) });
    this.watch(ws);
    ws.onmessage = (m) => {
      if (this.ws !== ws) return; // a socket given up on (connect timeout) says nothing more
      this.lastHeard = Date.now();
      let f: InFrame;
      try {
        f = decode(m.data);
      } catch (e) {
        // Never skipped in silence: it may have carried acks or a subscription's events. A new
        // connection re-sends what is in flight (same ids) and resumes subscriptions from their tokens.
        return this.giveUp(ws, "undecodable frame", `a frame from ${this.url} could not decode (${(e as Error).message}); reconnecting`);
      }
      // The peer's limits steer every loop of ours (batch sizes, the window): a welcome whose limits
      // could make one spin or stall (a batch of 0 events, a window of -1) is a broken peer.
      if (f.t === FrameType.WELCOME && welcomeLimits(f.limits) === null) {
        return this.giveUp(ws, "invalid welcome", `the welcome from ${this.url} advertises limits this client cannot follow (${JSON.stringify(f.limits)?.slice(0, 200)}); reconnecting`);
      }
      this.onFrame(f);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.connectionEnded();
      if (this.closed) return;
      if (FATAL_CLOSES.has(e.code)) {
        this.firstWelcome.reject(new Error(`the gateway closed the connection: ${e.code} ${e.reason}`));
        return this.close();
      }
      this.retry(e.code, e.reason);
    };
  }

  private lastHeard = 0;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;

  /** The heartbeat of `ws` (see ConnectOptions.heartbeat), from its opening until it is replaced. */
  private watch(ws: WebSocket): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    const hb = this.options.heartbeat;
    if (hb === false) return;
    const idleMs = hb?.idleMs ?? 10_000;
    const timeoutMs = hb?.timeoutMs ?? 10_000;
    this.lastHeard = Date.now();
    let pingAt = 0;
    const timer = setInterval(() => {
      if (this.ws !== ws || this.closed) return clearInterval(timer);
      if (!this.welcomed) return; // connectTimeoutMs watches that part
      const now = Date.now();
      if (pingAt > 0 && this.lastHeard >= pingAt) pingAt = 0;
      if (pingAt === 0 && now - this.lastHeard >= idleMs) {
        pingAt = now;
        this.sendOn(ws, { t: FrameType.PING, cid: this.cid++ });
      } else if (pingAt > 0 && now - pingAt >= timeoutMs) {
        clearInterval(timer);
        this.giveUp(ws, "no answer to ping", `nothing from ${this.url} for ${now - this.lastHeard} ms, a ping unanswered`);
      }
    }, Math.max(50, Math.min(1000, idleMs / 4, timeoutMs / 4)));
    this.heartbeatTimer = timer;
  }

  /**
   * Drops an open connection and reconnects, without waiting for a closing handshake the other side
   * may never answer; what was in flight is re-sent on the next one. (1000: browsers let a client
   * close with no other code below 3000.)
   */
  private giveUp(ws: WebSocket, closeReason: string, reason: string): void {
    this.ws = null;
    ws.close(1000, closeReason);
    this.connectionEnded();
    this.retry(undefined, reason);
  }

  /** What belonged to the connection that ended: none of it is answered now. */
  private connectionEnded(): void {
    this.welcomed = false;
    this.publisher.onDisconnect();
    this.closedInFlight.clear();
    this.refreshSettled(); // the next connection's hello carries a fresh token
    // A refresh is for the connection it was scheduled on: left running, it called getToken while
    // the client was down (outside probe), and the next hello carries a fresh token anyway.
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  private retry(code: number | undefined, reason: string): void {
    // Never welcomed: the caller awaits connect(), and a gateway that is not there (a wrong URL, a
    // port not open) must get an answer rather than a promise that never settles.
    if (!this.everWelcomed) {
      this.firstFailures.set(this.url, reason || (code === undefined || code === 1006 ? "no connection" : `closed ${code}`));
      if (this.attempt + 1 >= this.connectAttempts) {
        this.firstWelcome.reject(new Error(`no welcome after ${this.attempt + 1} attempt${this.attempt === 0 ? "" : "s"}: ${[...this.firstFailures].map(([url, why]) => `${url}: ${why}`).join("; ")}`));
        return this.close();
      }
    }
    this.options.onState?.("reconnecting", { code, reason, url: this.url });
    // A gateway that closed us for flooding (4429) or for invalid requests (4400) should not see us
    // again at once: it refuses the address for a while (RATE_LIMIT_CLOSE_PENALTY_SECONDS).
    const delay = this.backoff(this.attempt++) * (code === 4429 || code === 4400 ? 10 : 1);
    // The next instance, if there are several: the one that dropped us may be down.
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closed) void this.open();
    }, delay);
  }

  /** The wait before try number `attempt` + 1: from reconnect.minMs, doubling to maxMs, with jitter over its upper half. */
  private backoff(attempt: number): number {
    const base = Math.min(this.options.reconnect?.maxMs ?? 10_000, (this.options.reconnect?.minMs ?? 100) * 2 ** attempt);
    return base / 2 + Math.random() * (base / 2);
  }

  private onFrame(f: InFrame): void {
    if (f.t === FrameType.WELCOME) return this.onWelcome(f);
    if (f.t === FrameType.PONG) return; // heard: that is all a pong says
    if (f.t === FrameType.REFRESHED) {
      this.refreshing = null;
      this.refreshSettled();
      this.publisher.onTokenRenewed();
      return this.scheduleRefresh(f.expiresAt as number | undefined);
    }
    if (f.t === FrameType.ERROR && f.cid === undefined && f.code === "UNAUTHENTICATED") {
      // The token expired before a refresh was taken: publishes wait for one, asked for now.
      this.publisher.onTokenExpired();
      return this.refreshNow();
    }
    if (f.t === FrameType.NACK && this.refreshing !== null && f.cid === this.refreshing.cid) return this.onRefreshRefused(f);
    if (f.cid !== undefined && this.closedInFlight.has(f.cid)) return this.answeredAfterClose(f);
    if (typeof f.sub === "string" && this.subs.has(f.sub)) return this.subs.get(f.sub)!.handle(f);
    if (this.publisher.onReply(f)) return;
    // A refused subscribe is nacked without its sub: it is matched by cid.
    for (const s of this.subs.values()) if (s.awaits(f.cid)) return s.handle(f);
    if (f.t === FrameType.NACK && f.cid === 0) {
      // The hello was refused (a bad token): nothing will work on this connection.
      this.firstWelcome.reject(new Error(`hello refused: ${f.code as string}: ${f.message as string}`));
      // Never welcomed: the caller's connect() has failed and it holds no client to close, so this
      // one must not go on reconnecting behind its back.
      if (!this.session) this.close();
    }
  }

  private onWelcome(f: InFrame): void {
    this.session = f.session as string;
    // One sent on a connection that dropped is never answered; a token fetch that never settled
    // must not keep every later refresh from being sent.
    this.refreshing = null;
    this.fetchingToken = false;
    this.limits = welcomeLimits(f.limits)!;
    const perSec = this.limits.subscribesPerSec ?? 0;
    // As the gateway sizes it, 5% slower (frames are read with jitter), and full: its bucket is new too.
    this.subscribeBucket = perSec > 0 ? new TokenBucket(perSec * 0.95, Math.max(1, this.limits.maxSubscriptions ?? 1), performance.now()) : null;
    this.welcomed = true;
    this.everWelcomed = true;
    this.attempt = 0;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.options.onState?.("open", { url: this.url });
    this.firstWelcome.resolve();
    this.scheduleRefresh(f.expiresAt as number | undefined);
    // Resume every subscription where it was, then let the publishes through.
    for (const s of this.subs.values()) this.resubscribe(s, this.ws!, 0);
    for (const w of this.welcomeWaiters.splice(0)) w.resolve();
    this.publisher.onReady();
  }

  /**
   * Each subscription's subscribe in flight, and the one it was confirmed on, by connection: a
   * subscribe() waiting its turn across a reconnect, or retrying a RATE_LIMITED beside the welcome's
   * resubscribe, sent it a second time on the same connection, refused SUBSCRIPTION_EXISTS on the
   * client and left running on the gateway (second review). Sent once per connection, and whoever
   * else asks waits for that one.
   */
  private readonly opening = new WeakMap<Subscription, { ws: WebSocket | null; done: Promise<void> }>();
  private readonly confirmedOn = new WeakMap<Subscription, WebSocket | null>();

  private openOnce(sub: Subscription): Promise<void> {
    const ws = this.ws;
    if (this.confirmedOn.get(sub) === ws) return Promise.resolve();
    const inFlight = this.opening.get(sub);
    if (inFlight && inFlight.ws === ws) return inFlight.done;
    const done = sub.open();
    const entry = { ws, done };
    this.opening.set(sub, entry);
    done.then(
      () => {
        if (this.opening.get(sub) === entry) this.opening.delete(sub);
        this.confirmedOn.set(sub, ws);
      },
      () => this.opening.get(sub) === entry && this.opening.delete(sub),
    );
    return done;
  }

  /**
   * The subscriptions a subscribe() call still waits for, with how to tell it a refusal. A welcome's
   * resubscribe refused for one (TOO_MANY_SUBSCRIPTIONS past MAX_SUBSCRIPTIONS_PER_CONNECTION) was
   * retried as a resumed subscription is, while the call waited a turn of its own and was refused
   * again (outside probe: up to 15 s late), or, its turns taken by those retries, was never answered.
   */
  private readonly callers = new Map<Subscription, (e: unknown) => void>();

  /** Subscribes in flight, by cid, whose subscription was closed meanwhile: unsubscribed if they are confirmed. */
  private readonly closedInFlight = new Map<number, { ws: WebSocket; id: string }>();

  /**
   * An unsubscribe for what the gateway holds on this connection, and nothing more: one for a
   * subscription not yet resumed after a reconnect (its resubscribe waiting its turn, or a retry) was
   * refused UNKNOWN_SUBSCRIPTION, and such refusals count toward the gateway's 4400 close (outside
   * probe). One whose subscribe is in flight is unsubscribed once it is confirmed.
   */
  private unsubscribe(s: Subscription): void {
    const ws = this.ws;
    if (!this.welcomed || ws === null) return; // the next connection resumes only subscriptions still open
    if (this.confirmedOn.get(s) === ws) return this.send({ t: FrameType.UNSUBSCRIBE, cid: this.cid++, sub: s.id });
    const cid = s.pendingCid;
    if (cid !== undefined && this.opening.get(s)?.ws === ws) this.closedInFlight.set(cid, { ws, id: s.id });
  }

  /** The answer to a subscribe whose subscription was closed while it was in flight. */
  private answeredAfterClose(f: InFrame): void {
    const closed = this.closedInFlight.get(f.cid!)!;
    this.closedInFlight.delete(f.cid!);
    if (f.t === FrameType.SUBSCRIBED && this.ws === closed.ws) this.send({ t: FrameType.UNSUBSCRIBE, cid: this.cid++, sub: closed.id });
  }

  /** Waiters for the next welcome; refused when the client closes. */
  private welcomeWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  private nextWelcome(): Promise<void> {
    if (this.closed) return Promise.reject(clientClosed());
    return new Promise((resolve, reject) => this.welcomeWaiters.push({ resolve, reject }));
  }

  /** Waits until the advertised subscribe rate allows one more, and takes it. */
  private async subscribeTurn(): Promise<void> {
    for (;;) {
      const bucket = this.subscribeBucket;
      const wait = bucket ? bucket.waitMs(performance.now()) : 0;
      if (wait === 0) return bucket?.spend(1);
      await this.sleep(wait);
    }
  }

  /**
   * The waits of subscribes and resubscribes (for the subscribe rate, a retryAfterMs), each with its
   * rejection: close() ends them all at once. Left to run, a subscribe() cut by close() rejected
   * only when its wait was over, and a closed client's process lived on until the last (100
   * resubscribes refused with a retryAfterMs of a second: about 100 s; second review).
   */
  private readonly sleeps = new Map<ReturnType<typeof setTimeout>, (e: Error) => void>();

  private sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.reject(clientClosed());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.sleeps.delete(timer);
        resolve();
      }, ms);
      this.sleeps.set(timer, reject);
    });
  }

  /** When the last resubscribe retried on a refusal's retryAfterMs goes: the next goes a retryAfterMs after it. */
  private resubscribeSlot = 0;

  /**
   * Resumes a subscription on a new connection. A refusal that says to retry (the instance failed
   * over to is replaying as many subscriptions as it may, or is not ready) is tried again on the same
   * connection with backoff and jitter, as a reconnect is: ending the subscription would leave the
   * application's loop finished with no error. Other refusals (FORBIDDEN, a token no longer valid) end it.
   */
  private resubscribe(s: Subscription, ws: WebSocket, attempt: number, afterRefresh = false): void {
    const current = () => !this.closed && this.ws === ws && this.subs.get(s.id) === s;
    this.subscribeTurn()
      .then(() => (current() ? this.openOnce(s) : undefined))
      .catch((e) => {
        if (!current()) return; // ended, or a new connection resumes it
        if (!afterRefresh && this.refreshWillAnswer(e)) {
          return void this.refreshAnswered().then(() => current() && ws.readyState === 1 && this.resubscribe(s, ws, attempt, true));
        }
        // Never confirmed yet: its subscribe() call answers the application, as for any subscribe.
        const caller = this.callers.get(s);
        if (caller) return caller(e);
        if (!(e instanceof SubscribeError && e.retriable)) return s.end({ kind: "ended", code: (e as { code?: string }).code, message: (e as Error).message });
        // A refusal that says when (RATE_LIMITED: the address's replay starts, say) is retried then,
        // each such retry a retryAfterMs after the one before: all sent again after the backoff,
        // a reconnect's resubscribes came back together into as many refusals again (outside probe:
        // 236 refusals for 100 subscriptions; with a low RATE_LIMIT_CLOSE_AFTER, closed 4429).
        const hinted = e.retryAfterMs;
        let wait = this.backoff(attempt);
        if (typeof hinted === "number" && hinted > 0) {
          const now = Date.now();
          this.resubscribeSlot = Math.max(now + hinted, this.resubscribeSlot + hinted);
          wait = this.resubscribeSlot - now;
        }
        this.sleep(wait).then(
          () => current() && ws.readyState === 1 && this.resubscribe(s, ws, attempt + 1),
          () => {}, // the client closed
        );
      });
  }

  /** With getToken, a fresh token is sent (refresh frame) a while before the current one expires. */
  private scheduleRefresh(expiresAt: number | undefined): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (!this.options.getToken || !expiresAt || !Number.isFinite(expiresAt)) return;
    const lead = Math.min(60_000, Math.max(1000, (expiresAt - Date.now()) / 5));
    this.refreshTimer = setTimeout(() => void this.sendRefresh(0), Math.max(0, expiresAt - Date.now() - lead));
  }

  /** Waiters for the refresh under way to be answered (or given up, or its connection to end, or the client to close). */
  private refreshWaiters: Array<() => void> = [];

  /**
   * Whether `e` is a subscribe refused for the token's age while this client's own refresh is under
   * way: the refresh answers it, and the subscribe is sent again once. Ended or rejected at once, a
   * subscription resumed (or made) just past the expiry was lost for a refresh that was coming (outside probe).
   */
  private refreshWillAnswer(e: unknown): boolean {
    return e instanceof SubscribeError && e.code === "UNAUTHENTICATED" && !this.closed && (this.fetchingToken || this.refreshing !== null);
  }

  private refreshAnswered(): Promise<void> {
    return new Promise((resolve) => this.refreshWaiters.push(resolve));
  }

  private refreshSettled(): void {
    for (const w of this.refreshWaiters.splice(0)) w();
  }

  /** The refresh frame awaiting its answer, and which try it is (a retriable refusal sends it again). */
  private refreshing: { cid: number; attempt: number } | null = null;

  /** A token being fetched for a refresh (getToken may take a while): another is not asked meanwhile. */
  private fetchingToken = false;

  /** Which fetch `fetchingToken` stands for: one for a connection since ended may settle after the next one's began. */
  private tokenFetches = 0;

  private async sendRefresh(attempt: number): Promise<void> {
    if (this.fetchingToken) return;
    this.fetchingToken = true;
    const fetch = ++this.tokenFetches;
    const ws = this.ws;
    try {
      const token = await this.tokenWithin();
      if (!token || this.closed) return;
      // Its connection ended meanwhile: the next connection's hello carried (carries) a fresh token.
      if (!this.welcomed || this.ws !== ws) return;
      this.refreshing = { cid: this.cid++, attempt };
      this.send({ t: FrameType.REFRESH, cid: this.refreshing.cid, token });
      this.publisher.onRefreshSent();
    } catch {
      // Tried again while the connection lasts: a fetch that failed or timed out after the token
      // expired (the gateway's UNAUTHENTICATED came meanwhile, and asked nothing then) left only the
      // 4401 close (outside probe). The next connect's hello brings a fresh one anyway.
      if (!this.closed && this.welcomed && this.ws === ws && this.refreshing === null) {
        if (this.refreshTimer) clearTimeout(this.refreshTimer);
        this.refreshTimer = setTimeout(() => void this.sendRefresh(attempt + 1), Math.min(this.backoff(attempt), 2000));
      }
    } finally {
      // A later fetch (the next connection's) is under way: it is that one's to clear and settle.
      // Cleared by this one, the subscribes waiting for the new connection's refresh were sent
      // before it was answered, refused UNAUTHENTICATED again, and ended (second review).
      if (fetch === this.tokenFetches) {
        this.fetchingToken = false;
        if (this.refreshing === null) this.refreshSettled(); // nothing sent: nothing will answer
      }
    }
  }

  /** A refresh now, unless one is being fetched or awaits its answer (publishes refused as expired wait for it). */
  private refreshNow(): void {
    if (this.refreshing !== null || this.fetchingToken || !this.welcomed) return;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    void this.sendRefresh(0);
  }

  /**
   * A refresh refused for a passing reason (the gateway's key set unreachable: UNAVAILABLE; a rate) is
   * sent again after a backoff, as long as the connection lasts: not sent again, every publish after
   * the token's expiry was refused UNAUTHENTICATED until the 4401 close (outside tester: 264-544
   * events). Any other refusal waits for that close, and the next connect's token.
   */
  private onRefreshRefused(f: InFrame): void {
    const retry = this.refreshing;
    this.refreshing = null;
    this.refreshSettled();
    this.publisher.onRefreshAnswered();
    if (!retry || f.retriable !== true || this.closed) return;
    const wait = typeof f.retryAfterMs === "number" ? Math.max(f.retryAfterMs, 100) : Math.min(this.backoff(retry.attempt), 2000);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.sendRefresh(retry.attempt + 1), wait);
  }

  private send(frame: Record<string, unknown>): void {
    if (this.ws && this.ws.readyState === 1) this.sendOn(this.ws, frame);
  }

  private sendOn(ws: WebSocket, frame: Record<string, unknown>): void {
    ws.send(encode(frame, this.codec));
  }
}
