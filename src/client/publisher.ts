import { type AdvertisedRates, Pacer } from "./pacer";
import { type ErrorCode, type FrameRefusal, FrameType, type InFrame, type OutgoingEvent, type WireError } from "./wire";
import { ErrorCodes } from "../protocol/codes";

/** Where an acknowledged event is in Kafka. */
export interface PublishResult {
  id: string;
  topic: string;
  partition: number;
  offset: number;
}

/** A publish that will not be acknowledged: the gateway's refusal, or the client's own (CLIENT_*). */
export class PublishError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retriable: boolean,
    readonly mayBePersisted: boolean,
    readonly id: string,
    /** The gateway's number for `code` (docs/protocol.md); absent for the client's own CLIENT_* refusals. */
    readonly num?: number,
  ) {
    super(message);
    this.name = "PublishError";
  }
}

interface Item {
  event: OutgoingEvent & { id: string };
  topic: string | undefined;
  /** Publish order, kept through retries. */
  seq: number;
  /** Topic and key, for events with a key: those whose order Kafka keeps. */
  orderKey: string | null;
  attempts: number;
  /** Refused and retried: it holds its key (Publisher.held) until it settles. */
  holding: boolean;
  /** Sent on a connection that dropped before its answer: marked `resend` when sent again. */
  resent?: boolean;
  resolve(r: PublishResult): void;
  reject(e: PublishError): void;
}

export interface PublisherOptions {
  /** How long a publish waits for others to share its frame (ms). */
  lingerMs: number;
  /** Events the client holds, queued and in flight together; past it, publish fails CLIENT_QUEUE_FULL. */
  maxQueued: number;
  /** Attempts per event for retriable refusals (and re-sends after a reconnect). */
  maxAttempts: number;
  onRetry?: (retry: PublishRetry) => void;
  /**
   * Whether a fresh token can be had (ClientOptions.getToken), and asking for one now: events refused
   * UNAUTHENTICATED (the token expired) then wait for it, and are sent again once it is taken.
   */
  tokenRenewal?: { possible(): boolean; request(): void };
}

/** A publish refused with a retriable code, to be sent again (ClientOptions.onRetry). */
export interface PublishRetry {
  /** The event's id (the SDK gives every event one). */
  id: string;
  code: ErrorCode;
  /** Attempts made so far (1 after the first refusal). */
  attempts: number;
}

export interface PublisherLink {
  /** Whether the socket is open and welcomed. */
  ready(): boolean;
  /** A frame in the connection's codec, and sending it so encoded. */
  encode(frame: Record<string, unknown>): Uint8Array | string;
  /** What the gateway would refuse an encoded frame for as a whole (wire.ts frameRefusal), or null. */
  refusal(data: Uint8Array | string): FrameRefusal | null;
  sendEncoded(data: Uint8Array | string): void;
  nextCid(): number;
  /** The connection's window, batch and frame sizes, and publish rates (0: none), from welcome. */
  limits(): AdvertisedRates & { window: number; maxBatchEvents: number; maxFrameBytes?: number; resendWindowMs?: number };
}

const utf8 = new TextEncoder();
/** Bytes of an encoded frame; a string is only encoded when it might be over `max`. */
function byteSize(data: Uint8Array | string, max: number): number {
  if (typeof data !== "string") return data.byteLength;
  return data.length * 3 <= max ? data.length : utf8.encode(data).byteLength;
}

const uuid = () => globalThis.crypto.randomUUID();
const isEncoded = (got: Uint8Array | string | FrameRefusal): got is Uint8Array | string => typeof got === "string" || got instanceof Uint8Array;
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
/** What per-key order is kept within: the topic and the key (bytes as hex, so they cannot equal a text key). */
function orderKeyOf(event: OutgoingEvent, topic: string | undefined): string | null {
  const key = event.key;
  if (key === undefined || key === null) return null;
  return `${topic ?? ""}\u0000${typeof key === "string" ? `s${key}` : `b${hex(key)}`}`;
}
// How far into the queue a frame looks for events of its topic: a bound on the work per frame.
const SCAN_EVENTS = 4096;

/**
 * Publishes in batches under the advertised window. Small publishes made within `lingerMs` share a
 * publish_batch; at most `window` events are unacknowledged at once; what cannot be sent waits here,
 * bounded by `maxQueued`. Every event gets an `id` before it is first sent, so a re-send (after a
 * retriable refusal, or of what was in flight when the connection dropped) carries the same id.
 */
export class Publisher {
  private queue: Item[] = [];
  private readonly inflight = new Map<number, Item[]>();
  private inflightEvents = 0;
  /** Refused events waiting out their delay before they are queued again, a group per reply. */
  private readonly retrying = new Map<Item[], ReturnType<typeof setTimeout>>();
  private retryingEvents = 0;
  /**
   * Keys with refused events being retried, those events in publish order, from the first refusal
   * until each settles (acked, or given up). Only the first of a key is sent meanwhile, and no later
   * event of the key: were one sent while a retry was in flight, and that retry refused again (a
   * broker frozen past the message timeout refuses every re-send), it would land before the retry
   * in its partition (the chaos tester: 7,215 of 30,000 out of order, with the key held only while
   * a retry waited out its delay).
   */
  private readonly held = new Map<string, Item[]>();
  private seq = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /**
   * performance.now() before which nothing is sent: a RATE_LIMITED reply's retryAfterMs is the
   * connection's, not the refused frame's. Frames sent on meanwhile would be refused too, and past
   * RATE_LIMIT_CLOSE_AFTER of them the gateway closes the socket (4429) for ignoring the hint.
   */
  private pausedUntil = 0;
  /**
   * The connection's publish rates as welcome advertised them (pacer.ts). Made at welcome, after the
   * gateway made its own buckets, so this one is never ahead of them.
   */
  private pacer: Pacer | null = null;
  /** The last frame sent, and the last sent before the pacer's last cut (see onReply). */
  private lastSentCid = -1;
  private lastCidBeforeCut = -1;
  /**
   * Events refused UNAUTHENTICATED, in publish order, waiting for a fresh token (a refresh taken, or a
   * new connection's hello); nothing is sent meanwhile: the gateway would refuse it the same way.
   */
  private awaitingToken: Item[] = [];
  private tokenExpired = false;
  /**
   * A refresh awaits its answer: nothing is sent meanwhile. Sent behind it, an event would run under
   * the new token while one sent before it, refused as expired, is sent again after it.
   */
  private refreshPending = false;

  constructor(
    private readonly link: PublisherLink,
    private readonly options: PublisherOptions,
  ) {}

  /** Events queued, in flight, or waiting to be retried. */
  get pending(): number {
    return this.queue.length + this.inflightEvents + this.retryingEvents + this.awaitingToken.length;
  }

  publish(event: OutgoingEvent, topic?: string): Promise<PublishResult> {
    // The id is what makes a re-send idempotent and what the result names: only a string will do
    // (JSON would drop a Symbol, and the gateway would write the event under an id of its own).
    if (event.id !== undefined && typeof event.id !== "string") {
      return Promise.reject(new PublishError("INVALID_EVENT", `id must be a string; this one is a ${typeof event.id}`, false, false, String(event.id as unknown as string)));
    }
    const withId = event.id ? (event as Item["event"]) : { ...event, id: uuid() };
    if (this.pending >= this.options.maxQueued) {
      return Promise.reject(new PublishError("CLIENT_QUEUE_FULL", `${this.pending} events are already waiting (maxQueued ${this.options.maxQueued})`, true, false, withId.id));
    }
    return new Promise((resolve, reject) => {
      const item: Item = {
        event: withId,
        topic,
        seq: this.seq++,
        orderKey: orderKeyOf(withId, topic),
        attempts: 0,
        holding: false,
        resolve: (r) => {
          this.release(item);
          resolve(r);
        },
        reject: (e) => {
          this.release(item);
          reject(e);
        },
      };
      this.queue.push(item);
      this.schedule(this.options.lingerMs);
    });
  }

  /** A reply; true when it was one of ours. */
  onReply(f: InFrame): boolean {
    const items = f.cid === undefined ? undefined : this.inflight.get(f.cid);
    if (!items) return false;
    this.inflight.delete(f.cid!);
    this.inflightEvents -= items.length;
    const again: Item[] = [];
    let delay = 0;
    const renewal = this.options.tokenRenewal;
    const refused = (item: Item, err: WireError) => {
      if (err.code === "UNAUTHENTICATED" && renewal?.possible() && ++item.attempts < this.options.maxAttempts) {
        this.hold(item);
        this.awaitingToken.push(item);
        this.tokenExpired = true;
        this.options.onRetry?.({ id: item.event.id, code: err.code, attempts: item.attempts });
      } else if (err.retriable && ++item.attempts < this.options.maxAttempts) {
        again.push(item);
        this.options.onRetry?.({ id: item.event.id, code: err.code, attempts: item.attempts });
        delay = Math.max(delay, err.retryAfterMs ?? Math.min(2000, 50 * 2 ** item.attempts));
        if (err.code === "RATE_LIMITED") {
          const now = performance.now();
          // A frame sent before the last cut went at the old rate: its refusal says nothing new.
          if (err.scope === "principal" && f.cid! > this.lastCidBeforeCut && this.pacer) {
            this.pacer.principalRefused(now);
            this.lastCidBeforeCut = this.lastSentCid;
          }
          this.pausedUntil = Math.max(this.pausedUntil, now + delay);
        }
      } else item.reject(new PublishError(err.code, err.message, err.retriable, err.mayBePersisted, item.event.id, err.num));
    };
    if (f.t === FrameType.ACK || f.t === FrameType.BATCH_ACK) {
      const errors = new Map<number, WireError>();
      for (const e of (f.errors as Array<WireError & { i: number }> | undefined) ?? []) errors.set(e.i, e);
      const partitions = (f.partitions as number[] | undefined) ?? [f.partition as number];
      const offsets = (f.offsets as number[] | undefined) ?? [f.offset as number];
      items.forEach((item, i) => {
        const err = errors.get(i);
        if (err) refused(item, err);
        else item.resolve({ id: item.event.id, topic: f.topic as string, partition: partitions[i]!, offset: offsets[i]! });
      });
    } else {
      // A nack of the whole request.
      for (const item of items) refused(item, f as unknown as WireError);
    }
    if (again.length > 0) this.retryLater(again, delay);
    if (this.tokenExpired) renewal!.request();
    this.schedule(0);
    return true;
  }

  /** The token expired (the gateway said so): nothing is sent until a fresh one is taken. */
  onTokenExpired(): void {
    if (this.options.tokenRenewal?.possible()) this.tokenExpired = true;
  }

  /** A refresh was sent: publishes wait for its answer (onRefreshAnswered, onTokenRenewed). */
  onRefreshSent(): void {
    this.refreshPending = true;
  }

  /** The refresh was refused: publishes go on under the token the connection has. */
  onRefreshAnswered(): void {
    this.refreshPending = false;
    this.schedule(0);
  }

  /** A fresh token was taken (a refresh answered): what waited for it is sent again, in its place. */
  onTokenRenewed(): void {
    this.tokenExpired = false;
    this.refreshPending = false;
    const waiting = this.awaitingToken.sort((a, b) => a.seq - b.seq);
    this.awaitingToken = [];
    this.requeue(waiting);
    this.schedule(0);
  }

  /**
   * Queues a reply's retriable events again after `delay`, each back at its place in publish order.
   * Meanwhile their keys are held: later events of those keys wait in the queue.
   */
  private retryLater(items: Item[], delay: number): void {
    this.retryingEvents += items.length;
    for (const item of items) this.hold(item);
    this.retrying.set(
      items,
      setTimeout(() => {
        this.retrying.delete(items);
        this.retryingEvents -= items.length;
        this.requeue(items);
        this.schedule(0);
      }, delay),
    );
  }

  private hold(item: Item): void {
    if (item.orderKey === null || item.holding) return;
    item.holding = true;
    const list = this.held.get(item.orderKey);
    if (!list) return void this.held.set(item.orderKey, [item]);
    let at = list.length;
    while (at > 0 && list[at - 1]!.seq > item.seq) at--;
    list.splice(at, 0, item);
  }

  /** It settled: its key is free once no earlier refused event of the key is still being retried. */
  private release(item: Item): void {
    if (!item.holding) return;
    item.holding = false;
    const list = this.held.get(item.orderKey!)!;
    list.splice(list.indexOf(item), 1);
    if (list.length === 0) this.held.delete(item.orderKey!);
  }

  /** Whether `item` may be sent now: its key is not held, or it is the first held event of its key. */
  private sendable(item: Item): boolean {
    if (item.orderKey === null) return true;
    const list = this.held.get(item.orderKey);
    return list === undefined || list[0] === item;
  }

  /** Puts `items` (in publish order) back into the queue, each before the first queued event published after it. */
  private requeue(items: Item[]): void {
    const merged: Item[] = [];
    let i = 0;
    for (const q of this.queue) {
      while (i < items.length && items[i]!.seq < q.seq) merged.push(items[i++]!);
      merged.push(q);
    }
    while (i < items.length) merged.push(items[i++]!);
    this.queue = merged;
  }

  /** The connection dropped: what was in flight is sent again, first, once it is back. */
  onDisconnect(): void {
    const again = [...this.inflight.values()].flat().sort((a, b) => a.seq - b.seq);
    for (const item of again) item.resent = true;
    this.inflight.clear();
    this.inflightEvents = 0;
    this.requeue(again);
    // The next connection's hello carries a fresh token.
    this.onTokenRenewed();
  }

  /** The connection is (back) up. */
  onReady(): void {
    this.pacer = Pacer.from(this.link.limits(), performance.now());
    this.schedule(0);
  }

  /** The client is closed for good: everything still waiting fails. */
  failAll(code: string, message: string): void {
    for (const timer of this.retrying.values()) clearTimeout(timer);
    const waiting = [...[...this.inflight.values()].flat(), ...[...this.retrying.keys()].flat(), ...this.awaitingToken, ...this.queue];
    this.awaitingToken = [];
    for (const item of waiting) item.reject(new PublishError(code, message, false, true, item.event.id));
    this.retrying.clear();
    this.retryingEvents = 0;
    this.held.clear();
    this.queue = [];
    this.inflight.clear();
    this.inflightEvents = 0;
  }

  private schedule(ms: number): void {
    if (this.timer !== null) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, ms);
  }

  /**
   * Sends what the window has room for, a frame per topic: the events of the first queued event's
   * topic, in the order they were published, from among the first SCAN_EVENTS queued (a service
   * publishing to several topics in turn would otherwise send a frame per event; Kafka keeps no
   * order between topics). A frame over the gateway's `maxFrameBytes` would be refused whole
   * (FRAME_TOO_LARGE), so it is halved until it fits; an event too large on its own is sent alone,
   * for the gateway to refuse with its code.
   */
  private flush(): void {
    if (!this.link.ready() || this.tokenExpired || this.refreshPending) return;
    const paused = this.pausedUntil - performance.now();
    if (paused > 0) return this.schedule(Math.ceil(paused));
    if (this.pausedUntil > 0) {
      // What the pacer saved up during the pause would go out at once, into a bucket just repaid.
      this.pausedUntil = 0;
      this.pacer?.empty(performance.now());
    }
    const { window, maxBatchEvents, maxFrameBytes = Number.POSITIVE_INFINITY } = this.link.limits();
    sending: while (this.queue.length > 0 && this.inflightEvents < window) {
      const wait = this.pacer ? this.pacer.waitMs(performance.now()) : 0;
      if (wait > 0) return this.schedule(wait);
      const scan = Math.min(this.queue.length, SCAN_EVENTS);
      const head = this.held.size === 0 ? 0 : this.firstSendable(scan);
      if (head < 0) return; // every event in reach waits for a retry of its key, which flushes again
      const topic = this.queue[head]!.topic;
      const room = Math.min(maxBatchEvents, window - this.inflightEvents);
      const picked: Item[] = [];
      for (let i = head; i < scan && picked.length < room; i++) {
        const item = this.queue[i]!;
        if (item.topic === topic && this.sendable(item)) picked.push(item);
      }
      let n = picked.length;
      const cid = this.link.nextCid();
      let data: Uint8Array | string;
      for (;;) {
        const got = this.encodeFrame(cid, picked, n, topic);
        if (!isEncoded(got)) {
          // Sent, it would be refused whole: the events the gateway would refuse alone fail here, alone.
          const refused: Array<[Item, FrameRefusal]> = [];
          if (n === 1) refused.push([picked[0]!, got]);
          else
            for (const item of picked.slice(0, n)) {
              const alone = this.encodeFrame(cid, [item], 1, topic);
              if (!isEncoded(alone)) refused.push([item, alone]);
            }
          if (refused.length > 0) {
            this.unqueue(
              refused.map(([item]) => item),
              scan,
            );
            for (const [item, why] of refused) item.reject(new PublishError(why.code, why.message, false, false, item.event.id, why.num));
            continue sending;
          }
          // Each passes alone (an event nests a level deeper in a batch than alone): fewer per frame.
          n = Math.ceil(n / 2);
          continue;
        }
        data = got;
        if (byteSize(data, maxFrameBytes) <= maxFrameBytes) break;
        if (n === 1) {
          // The gateway would refuse it FRAME_TOO_LARGE, and past 4 × its WebSocket layer closes the
          // socket (1009) with every reply in flight: refused here, alone, never sent.
          this.unqueue([picked[0]!], scan);
          picked[0]!.reject(new PublishError("FRAME_TOO_LARGE", `the event's frame is over the gateway's maxFrameBytes (${maxFrameBytes})`, false, false, picked[0]!.event.id, ErrorCodes.FRAME_TOO_LARGE.num));
          continue sending;
        }
        n = Math.ceil(n / 2);
      }
      const items = picked.slice(0, n);
      this.unqueue(items, scan);
      // A JSON frame's bytes cost an encode, made only when there is a bytes rate to keep.
      if (this.pacer) this.pacer.spend(n, !this.pacer.countsBytes ? 0 : typeof data === "string" ? utf8.encode(data).byteLength : data.byteLength);
      this.inflight.set(cid, items);
      this.lastSentCid = cid;
      this.inflightEvents += items.length;
      this.link.sendEncoded(data);
    }
  }

  /**
   * The first `n` of `items` as one frame, encoded; or why it cannot be sent: a value the codec
   * cannot write (a BigInt past 64 bits; any BigInt in JSON), or what the gateway would refuse the
   * frame for whole. Thrown from here, it would leave the flush timer, where nothing can catch it.
   */
  private encodeFrame(cid: number, items: Item[], n: number, topic: string | undefined): Uint8Array | string | FrameRefusal {
    try {
      const data = this.link.encode(this.frame(cid, items, n, topic));
      return this.link.refusal(data) ?? data;
    } catch (e) {
      return { code: "CLIENT_UNENCODABLE", message: `the event cannot be encoded: ${String((e as Error)?.message ?? e).slice(0, 200)}` };
    }
  }

  /** The first of the first `scan` queued events whose key is not held, or -1. */
  private firstSendable(scan: number): number {
    for (let i = 0; i < scan; i++) if (this.sendable(this.queue[i]!)) return i;
    return -1;
  }

  /** Takes `items`, all among the first `scan` queued, out of the queue; the rest keep their order. */
  private unqueue(items: Item[], scan: number): void {
    if (this.queue[items.length - 1] === items[items.length - 1]) {
      this.queue.splice(0, items.length); // a run at the head: the usual case
      return;
    }
    const taken = new Set(items);
    const kept: Item[] = [];
    for (let i = 0; i < scan; i++) if (!taken.has(this.queue[i]!)) kept.push(this.queue[i]!);
    this.queue.splice(0, scan, ...kept);
  }

  private frame(cid: number, items: Item[], n: number, topic: string | undefined): Record<string, unknown> {
    const frame: Record<string, unknown> = n === 1 ? { t: FrameType.PUBLISH, cid, event: items[0]!.event } : { t: FrameType.PUBLISH_BATCH, cid, events: items.slice(0, n).map((i) => i.event) };
    if (topic !== undefined) frame.topic = topic;
    // The gateway then reads the topic's log to its end before looking their ids up: the original may
    // have been written through another instance a moment ago (docs/protocol.md, Idempotent publish).
    if ((this.link.limits().resendWindowMs ?? 0) > 0) {
      for (let i = 0; i < n; i++) {
        if (items[i]!.resent) {
          frame.resend = true;
          break;
        }
      }
    }
    return frame;
  }
}
