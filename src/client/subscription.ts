import { type DeliveredEvent, type ErrorCode, FrameType, type Gap, type InFrame, type Start, type WireError } from "./wire";

/** A subscribe the gateway refused (a bad filter or position, a topic not granted or not there…), with its code. */
export class SubscribeError extends Error {
  readonly code: ErrorCode;
  readonly num: number;
  readonly retriable: boolean;
  /** For RATE_LIMITED: when the gateway would take it. */
  readonly retryAfterMs?: number;
  constructor(err: WireError) {
    super(`${err.code}: ${err.message}`);
    this.name = "SubscribeError";
    this.code = err.code;
    this.num = err.num;
    this.retriable = err.retriable;
    if (typeof err.retryAfterMs === "number") this.retryAfterMs = err.retryAfterMs;
  }
}

/**
 * A subscribe cut by client.close(), or made after it: one error whenever the close came (waiting for a
 * welcome it was a plain Error, waiting for its answer a SubscribeError; outside probe), as a
 * publish's is PublishError CLIENT_CLOSED.
 */
export function clientClosed(): SubscribeError {
  return new SubscribeError({ code: "CLIENT_CLOSED" as ErrorCode, num: 0, message: "the client is closed", retriable: false, mayBePersisted: false });
}

export interface SubscribeOptions {
  /** The filter, as docs/subscriptions.md writes it. */
  filter?: Record<string, unknown>;
  start?: Start;
  policy?: "drop-oldest" | "disconnect";
  /** A share group: its members split the topic's partitions. */
  share?: string;
  /** Events held for a consumer that iterates slower than they arrive; past it the oldest go (a `lagged` notice says how many). */
  maxBuffered?: number;
}

/** What a subscription says besides events. */
export type Notice =
  | { kind: "live" }
  | { kind: "lagged"; dropped: number; where: "gateway" | "client" }
  /** Records gone from the log before the gateway read them: the subscription will never get them. */
  | { kind: "gap"; gaps: Gap[] }
  | { kind: "ended"; code?: string; message?: string };

/** One line saying what a gap is, for a person (the CLI, the dashboard). */
export function describeGap(g: Gap): string {
  return g.reason === "log_reset"
    ? `${g.topic}/${g.partition}: the log was reset at offset ${g.from}; reading the new log from ${g.to}`
    : `${g.topic}/${g.partition}: offsets ${g.from} to ${g.to - 1} are gone from the log (${g.reason})`;
}

export interface SubscriptionLink {
  send(frame: Record<string, unknown>): void;
  /** Ends it on the gateway, as far as the gateway has it on the current connection. */
  unsubscribe(sub: Subscription): void;
  nextCid(): number;
  forget(sub: Subscription): void;
}

/**
 * One subscription: an async iterator of events, or callbacks. It remembers the resume token of the
 * last frame it got, so after a reconnect it subscribes again from exactly there: no gap, no repeat.
 */
export class Subscription implements AsyncIterable<DeliveredEvent> {
  /**
   * The position after the last event handed to the application (by the iterator, or to onEvent),
   * at a frame's granularity: it moves to a frame's token as the frame's last event is handed over.
   * An application that stores it after each event and stops may, resumed from it, get again the
   * events of a frame it had begun, and never misses one it was not handed.
   */
  token: string | undefined;
  /** Whether history is delivered: true from `subscribed` for a start at `latest`, else from the `live` notice. */
  live = false;
  /**
   * Records this subscription will never see: what the last `subscribed` said it starts past (retention
   * deleted them, or the log was reset), then every `gap` found while reading. Empty when nothing was lost.
   */
  gaps: Gap[] = [];
  /** The token of the last frame received: a reconnect resumes from it (the buffer keeps what came before). */
  private received: string | undefined;
  private ended = false;
  private buffer: DeliveredEvent[] = [];
  /** Events ever put in the buffer, and ever taken out of it (handed over or dropped). */
  private buffered = 0;
  private taken = 0;
  /** Frame tokens not yet passed by the iterator: each covers the events buffered before it came. */
  private readonly marks: Array<{ after: number; token: string }> = [];
  private waiter: ((r: IteratorResult<DeliveredEvent>) => void) | null = null;
  private readonly eventHandlers: Array<(e: DeliveredEvent) => void> = [];
  private readonly noticeHandlers: Array<(n: Notice) => void> = [];
  private confirm: { resolve: () => void; reject: (e: Error) => void; cid: number } | null = null;
  private endCode: string | undefined;
  /** How it ended, told to notice handlers given afterwards. */
  private endNotice: (Notice & { kind: "ended" }) | null = null;

  constructor(
    readonly id: string,
    readonly topics: string[],
    private readonly options: SubscribeOptions,
    private readonly link: SubscriptionLink,
  ) {}

  /**
   * Calls `handler` for each event; events then no longer wait for the iterator. Those that came
   * before the first handler and wait in the iterator's buffer are handed to it first, now, in
   * order: a handler given after another await would otherwise never see them (outside probe).
   */
  onEvent(handler: (e: DeliveredEvent) => void): this {
    this.eventHandlers.push(handler);
    if (this.eventHandlers.length === 1 && this.buffer.length > 0) {
      const waiting = this.buffer;
      this.buffer = [];
      for (const e of waiting) {
        this.took(1, true);
        handler(e);
      }
    }
    return this;
  }

  /**
   * Calls `handler` for each notice. One given after the subscription ended still hears how it ended
   * (at once, asynchronously): the gateway may end it (KAFKA_DENIED, FORBIDDEN) before the
   * application has attached its handler.
   */
  onNotice(handler: (n: Notice) => void): this {
    this.noticeHandlers.push(handler);
    const ended = this.endNotice;
    if (ended) queueMicrotask(() => handler(ended));
    return this;
  }

  /** Sends the subscribe frame (again, after a reconnect, from the last token); resolves on `subscribed`. */
  open(): Promise<void> {
    // Ended (the client closed) while it waited its turn to subscribe: nothing would answer it.
    if (this.ended) return Promise.reject(this.endedError());
    const cid = this.link.nextCid();
    const frame: Record<string, unknown> = { t: FrameType.SUBSCRIBE, cid, sub: this.id };
    if (this.topics.length === 1) frame.topic = this.topics[0];
    else frame.topics = this.topics;
    if (this.options.filter) frame.filter = this.options.filter;
    if (this.options.policy) frame.policy = this.options.policy;
    if (this.options.share) frame.share = this.options.share;
    const start = this.received !== undefined && !this.options.share ? { token: this.received } : this.options.start;
    if (start !== undefined) frame.start = start;
    // Re-sent before the first was confirmed (the connection dropped meanwhile): the first caller
    // is answered by this one's reply.
    const earlier = this.confirm;
    return new Promise((resolve, reject) => {
      this.confirm = {
        cid,
        resolve: () => (earlier?.resolve(), resolve()),
        reject: (e) => (earlier?.reject(e), reject(e)),
      };
      try {
        this.link.send(frame);
      } catch (e) {
        // Not encodable (a start or option the codec cannot write): this subscribe alone fails, coded.
        this.confirm = null;
        reject(new SubscribeError({ code: "CLIENT_UNENCODABLE" as ErrorCode, num: 0, message: `the subscribe cannot be encoded: ${String((e as Error)?.message ?? e).slice(0, 200)}`, retriable: false, mayBePersisted: false }));
      }
    });
  }

  /** The cid of its subscribe still waiting for an answer, if one is. */
  get pendingCid(): number | undefined {
    return this.confirm?.cid;
  }

  /** Whether `cid` is that of this subscription's subscribe still waiting for its answer. */
  awaits(cid: number | undefined): boolean {
    return cid !== undefined && this.confirm?.cid === cid;
  }

  /** A frame for this subscription (or the reply to its subscribe/unsubscribe). */
  handle(f: InFrame): void {
    if (this.confirm && f.cid === this.confirm.cid) {
      const c = this.confirm;
      this.confirm = null;
      if (f.t === FrameType.SUBSCRIBED) {
        if (typeof f.token === "string" && this.received === undefined) this.reached(f.token);
        this.live = f.live === true;
        this.gaps = (f.gaps as Gap[] | undefined) ?? [];
        return c.resolve();
      }
      return c.reject(new SubscribeError(f as unknown as WireError));
    }
    const token = typeof f.token === "string" ? f.token : undefined;
    if (f.t === FrameType.EVENT) return this.deliver([entryOf(f)], token);
    if (f.t === FrameType.EVENT_BATCH) return this.deliver(f.events as DeliveredEvent[], token);
    if (token !== undefined) this.reached(token);
    switch (f.t) {
      case FrameType.LIVE:
        this.live = true;
        return this.notify({ kind: "live" });
      case FrameType.LAGGED:
        return this.notify({ kind: "lagged", dropped: f.dropped as number, where: "gateway" });
      case FrameType.GAP: {
        const gaps = (f.gaps as Gap[] | undefined) ?? [];
        this.gaps.push(...gaps);
        return this.notify({ kind: "gap", gaps });
      }
      case FrameType.UNSUBSCRIBED:
        return this.end({ kind: "ended", code: f.code as string | undefined, message: f.message as string | undefined });
    }
  }

  /** Ends it: an unsubscribe is sent, and the iterator finishes. Resolves with the token to resume from later. */
  async close(): Promise<string | undefined> {
    // Before end(): the link needs the subscribe still in flight, if one is.
    if (!this.ended) this.link.unsubscribe(this);
    this.end({ kind: "ended" });
    return this.token;
  }

  private endedError(notice?: Notice & { kind: "ended" }): SubscribeError {
    return new SubscribeError({ code: (notice?.code ?? this.endCode ?? "CLIENT_CLOSED") as ErrorCode, num: 0, message: notice?.message ?? "the subscription ended before the gateway answered its subscribe", retriable: false, mayBePersisted: false });
  }

  /** Ended from outside: the client closed. */
  end(notice: Notice & { kind: "ended" }): void {
    if (this.ended) return;
    this.ended = true;
    this.endCode = notice.code;
    this.endNotice = notice;
    // A subscribe still waiting for its answer gets one: it will never come now.
    const pending = this.confirm;
    this.confirm = null;
    pending?.reject(this.endedError(notice));
    this.link.forget(this);
    this.notify(notice);
    this.waiter?.({ value: undefined, done: true });
    this.waiter = null;
  }

  [Symbol.asyncIterator](): AsyncIterator<DeliveredEvent> {
    return {
      next: () => {
        const e = this.buffer.shift();
        if (e) {
          this.took(1, true);
          return Promise.resolve({ value: e, done: false });
        }
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.waiter = resolve));
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  /** A frame's events, and its token: it covers them once the last is handed over. */
  private deliver(events: DeliveredEvent[], token: string | undefined): void {
    if (this.eventHandlers.length > 0) {
      for (let i = 0; i < events.length; i++) {
        if (i === events.length - 1 && token !== undefined) this.reached(token);
        for (const h of this.eventHandlers) h(events[i]!);
      }
      if (events.length === 0 && token !== undefined) this.reached(token);
      return;
    }
    for (const e of events) {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w({ value: e, done: false });
      } else {
        this.buffer.push(e);
        this.buffered++;
      }
    }
    const max = this.options.maxBuffered ?? 10_000;
    if (this.buffer.length > max) {
      const dropped = this.buffer.length - max;
      this.buffer.splice(0, dropped);
      // The token stays before them: resumed from it, the application gets them again.
      this.took(dropped, false);
      this.notify({ kind: "lagged", dropped, where: "client" });
    }
    if (token !== undefined) this.reached(token);
  }

  /** A frame's token: the application's position once every event buffered before it is handed over. */
  private reached(token: string): void {
    this.received = token;
    if (this.taken === this.buffered) this.token = token;
    else this.marks.push({ after: this.buffered, token });
  }

  /** `n` buffered events went: handed to the application (the marks they complete apply), or dropped. */
  private took(n: number, handed: boolean): void {
    this.taken += n;
    while (this.marks.length > 0 && this.marks[0]!.after <= this.taken) {
      const mark = this.marks.shift()!;
      if (handed) this.token = mark.token;
    }
  }

  private notify(n: Notice): void {
    // Those present now: one a handler adds hears the end from onNotice, not here a second time.
    const count = this.noticeHandlers.length;
    for (let i = 0; i < count; i++) this.noticeHandlers[i]!(n);
  }
}

/** An `event` frame's entry, as `event_batch` carries each: the frame's t, sub and token are not the event's. */
function entryOf(f: InFrame): DeliveredEvent {
  const e: DeliveredEvent = { topic: f.topic as string, partition: f.partition as number, offset: f.offset as number, event: f.event as DeliveredEvent["event"] };
  if (f.degraded !== undefined) e.degraded = f.degraded as DeliveredEvent["degraded"];
  if (f.reason !== undefined) e.reason = f.reason as string;
  return e;
}
