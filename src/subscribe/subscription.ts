import type { Metrics } from "../metrics/metrics";
import { type CodecName, encodeFrame } from "../protocol/codec";
import { CloseCodes } from "../protocol/codes";
import { FrameType } from "../protocol/frames";
import type { DecodedRecord } from "./decoded-record";
import type { CompiledFilter } from "./filter";
import { type Positions, encodeToken, filterTag } from "./position";

/** What a subscription needs of its connection: Bun's ServerWebSocket, seen narrowly. */
export interface SubscriberSocket {
  send(data: Uint8Array | string): number;
  getBufferedAmount(): number;
  close(code: number, reason: string): void;
}

export type SlowPolicy = "drop-oldest" | "disconnect";

// Frames go to Bun only while its buffer for the socket is below this; the rest wait in our queue,
// where the policy can see and drop them (Bun's own queue cannot be edited).
const SOCKET_HIGH_WATER = 256 * 1024;

interface Pending {
  data: Uint8Array | string;
  size: number;
  events: number;
  token: string | undefined;
}

/**
 * One subscription of one connection: collects the matching events of each batch, sends them as one
 * frame with the resume token of the position after the batch, and applies the slow-consumer policy
 * when its queue passes `bufferBytes`. Its memory is bounded by that budget, whatever the client does.
 */
export class Subscription {
  readonly tag: string;
  live = false;
  closed = false;
  delivered = 0;
  private collected: DecodedRecord[] = [];
  private readonly pending: Pending[] = [];
  private pendingBytes = 0;
  private droppedSinceNotice = 0;
  private lastDeliveredToken: string;

  constructor(
    readonly id: string,
    readonly topics: string[],
    readonly filter: CompiledFilter,
    readonly policy: SlowPolicy,
    private readonly codec: CodecName,
    private readonly socket: SubscriberSocket,
    private readonly bufferBytes: number,
    private readonly metrics: Metrics,
    readonly positions: Positions,
    /** Set for a member of a share group: positions are then the group's, and frames carry no token. */
    readonly shareGroup?: string,
  ) {
    this.tag = filterTag(filter.identity);
    this.lastDeliveredToken = this.token();
  }

  get shared(): boolean {
    return this.shareGroup !== undefined;
  }

  token(): string {
    return this.shared ? "" : encodeToken(this.tag, this.positions);
  }

  collect(rec: DecodedRecord): void {
    this.collected.push(rec);
  }

  /** Ends a read batch: the positions after it become this subscription's, and its events one frame. */
  endBatch(after: Positions): void {
    for (const [topic, offsets] of after) if (this.positions.has(topic)) this.positions.set(topic, offsets.slice());
    const events = this.collected;
    if (events.length === 0 || this.closed) return;
    this.collected = [];
    const token = this.shared ? undefined : this.token();
    const frame =
      events.length === 1
        ? { t: FrameType.EVENT, sub: this.id, ...this.position(events[0]!), event: events[0]!.event(this.codec), ...(token ? { token } : {}) }
        : { t: FrameType.EVENT_BATCH, sub: this.id, events: events.map((e) => ({ ...this.position(e), event: e.event(this.codec) })), ...(token ? { token } : {}) };
    const data = encodeFrame(frame, this.codec);
    const size = typeof data === "string" ? data.length : data.byteLength;
    this.pending.push({ data, size, events: events.length, token });
    this.pendingBytes += size;
    this.flush();
    if (this.pendingBytes > this.bufferBytes) this.overflow();
  }

  /** Hands queued frames to the socket while it has room; call again on the socket's drain. */
  flush(): void {
    while (!this.closed && this.pending.length > 0 && this.socket.getBufferedAmount() < SOCKET_HIGH_WATER) {
      if (this.droppedSinceNotice > 0) this.sendLagged();
      const f = this.pending.shift()!;
      this.pendingBytes -= f.size;
      if (this.socket.send(f.data) === 0) {
        this.drop(f.events);
        continue;
      }
      this.delivered += f.events;
      this.metrics.eventsDelivered.inc(f.events);
      if (f.token) this.lastDeliveredToken = f.token;
    }
  }

  sendControl(frame: object): void {
    if (!this.closed) this.socket.send(encodeFrame(frame, this.codec));
  }

  close(): void {
    this.closed = true;
    this.pending.length = 0;
    this.pendingBytes = 0;
  }

  private overflow(): void {
    if (this.policy === "disconnect") {
      let dropped = 0;
      for (const f of this.pending) dropped += f.events;
      this.drop(dropped);
      this.sendLagged();
      this.close();
      this.socket.close(CloseCodes.SLOW_CONSUMER, `subscription ${this.id} fell behind`);
      return;
    }
    // drop-oldest: keep the newest frame at least, so a live subscriber stays live.
    while (this.pendingBytes > this.bufferBytes && this.pending.length > 1) {
      const f = this.pending.shift()!;
      this.pendingBytes -= f.size;
      this.drop(f.events);
    }
  }

  private drop(events: number): void {
    this.droppedSinceNotice += events;
    this.metrics.eventsDroppedLag.inc(events);
  }

  /** The gap, and the token of the last event before it: re-subscribing with it fills the gap. */
  private sendLagged(): void {
    this.socket.send(encodeFrame({ t: FrameType.LAGGED, sub: this.id, dropped: this.droppedSinceNotice, token: this.lastDeliveredToken, policy: this.policy }, this.codec));
    this.droppedSinceNotice = 0;
  }

  private position(e: DecodedRecord) {
    return { topic: e.record.topic, partition: e.record.partition, offset: e.record.offset };
  }
}
