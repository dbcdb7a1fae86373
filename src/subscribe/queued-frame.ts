/**
 * What a subscription hands to its connection's one ordered outbound queue (src/ws/outbound.ts), and
 * what it needs back: to be told when each of its frames reaches the socket, so that its tokens and
 * `lagged` notices always describe what the client was really handed.
 */

import type { DecodedRecord } from "./decoded-record";

/** The subscription side of a queued frame. */
export interface FrameOwner {
  /** A notice to hand just before this owner's next frame (the `lagged` frame after drops), or null. */
  noticeBeforeNext(): Uint8Array | string | null;
  handed(frame: QueuedFrame): void;
}

/**
 * A frame of one subscription: droppable (events) or not (control frames such as `live`).
 *
 * An event frame waits as the entries it shares with every other subscriber of its records, and is
 * built when its socket takes it (`data`): built at once, each subscription of a connection that did
 * not read held a copy of every event it was sent, and the copies it then dropped for newer ones were
 * garbage. 6,000 such subscriptions of 60 KB events took the gateway to 0.5-1.6 GB while what they
 * held queued stayed within its 255 MiB bound (outside tester).
 */
export class QueuedFrame {
  dropped = false;
  constructor(
    readonly owner: FrameOwner,
    /** The frame, or what builds it when the socket takes it. */
    private content: Uint8Array | string | (() => Uint8Array | string),
    /** The frame's size, built or not: what its subscription counts as queued. */
    readonly size: number,
    /** Events in the frame; 0 for a control frame, which is never dropped. */
    readonly events: number,
    /** The token the frame carries, if any. */
    readonly token: string | undefined,
    /** A share group member's frame: its records, which the group may commit once they are handed (share-ledger.ts). */
    readonly records?: readonly DecodedRecord[],
  ) {}

  /** The frame's bytes, built now if they were left to be. */
  get data(): Uint8Array | string {
    if (typeof this.content === "function") this.content = this.content();
    return this.content;
  }

  /** Taken back: it will not be sent, and holds nothing while it waits to leave the queue. */
  drop(): void {
    this.dropped = true;
    this.content = "";
  }
}

/** The connection as its subscriptions see it. */
export interface SubscriberSocket {
  /** Event bytes its subscriptions hold queued, together (SUBSCRIBER_CONNECTION_BUFFER_BYTES). */
  queuedEventBytes: number;
  /** Queues a subscription's frame behind everything queued before it. */
  frame(f: QueuedFrame): void;
  /** Takes a queued frame back: it will not be sent. */
  discard(f: QueuedFrame): void;
  /** Queues a reply (subscribed, unsubscribed, nack), never dropped. */
  reply(data: Uint8Array | string): void;
  /** Writes everything queued, past the usual high-water mark: for a socket about to be closed. */
  flushAll(): void;
  /** Whether frames wait to be taken by the client (queued, or in the transport's own buffer). */
  backlogged(): boolean;
  /**
   * Where the transport can tell what its client has read (a WebSocket client answers pings in
   * order): asks, behind everything handed to it so far, and returns the number of that ask.
   */
  askRead?(): number;
  /** The highest ask the client has answered: it has read everything handed before that ask. */
  readAnswered?(): number;
  close(code: number, reason: string): void;
}
