/**
 * The one ordered outbound path of a socket. Replies (acks, nacks, welcome, subscribed…), subscription
 * control frames (live, unsubscribed) and event frames all pass through this queue, in the order they
 * were produced, so what a client reads is always a prefix of what the gateway decided to send: a
 * resume token in a frame names exactly the events handed before it.
 *
 * Frames are written at the end of the turn, corked (acks settle many frames at once from one worker
 * delivery report, and outside uWebSockets' own callbacks each ws.send() is a syscall), and only while
 * Bun's own buffer for the socket is under HIGH_WATER: the rest wait here, where the slow-consumer
 * policy of each subscription can still see and drop them (Bun's queue cannot be edited).
 */
import { QueuedFrame } from "../subscribe/queued-frame";
import { frameBytes } from "../protocol/frame-bytes";

/** What the queue needs of the socket: Bun's ServerWebSocket seen narrowly, or an SSE stream. */
export interface OutboundSocket {
  /**
   * Writes a frame; 0 when the socket is gone. `token` is the resume token a subscription frame
   * carries (also inside it), for a transport that repeats it beside the frame (SSE's `id:`).
   */
  send(data: Uint8Array | string, token?: string): number;
  getBufferedAmount(): number;
  cork(write: () => void): void;
}

type Entry = Uint8Array | string | QueuedFrame;

// Bun's buffer for one socket is kept under this; past it, frames wait in our queue.
const HIGH_WATER = 256 * 1024;

/**
 * Bytes all sockets together are handed in one turn of the event loop; past it, each queue goes on in
 * a later turn, in order. A frame is copied for every socket it goes to (and a text frame made UTF-8
 * on the way), and every queue flushed at the end of the turn that filled it: a record six times its
 * size as JSON, to 30 subscribers, was 160 MB of copies in one turn, and every other client's acks
 * waited 150-230 ms behind them (outside tester). One frame always goes, whatever its size.
 */
const TURN_BYTES = 4 * 1024 * 1024;
const turn = { left: TURN_BYTES, armed: false };
const newTurn = () => {
  turn.left = TURN_BYTES;
  turn.armed = false;
};
// A frame up to this size is written whatever the turn's count says.
const SMALL_BYTES = 64 * 1024;
const sizeOf = (e: Entry) => (e instanceof QueuedFrame ? e.size : frameBytes(e));

/** Counts bytes handed to a socket in this turn; the count starts over at the next one. */
function spendTurn(bytes: number): void {
  turn.left -= bytes;
  if (!turn.armed) {
    turn.armed = true;
    setImmediate(newTurn);
  }
}

export interface OutboundLimits {
  /** Reply bytes (not event frames, which their subscriptions bound) that may wait before the client counts as not reading. */
  maxReplyBytes: number;
}

export class Outbound {
  private queue: Entry[] = [];
  private head = 0;
  private scheduled = false;
  private replyBytes = 0;
  /** Dropped frames still in `queue`; compacted away once they are most of it. */
  private discarded = 0;
  private closed = false;
  /** A flush is running (see flush()). */
  private flushing = false;
  private onEmpty: (() => void) | null = null;

  constructor(
    private readonly socket: OutboundSocket,
    private readonly limits: OutboundLimits,
    /** Called once when the client is not reading its replies; the socket is then closed. */
    private readonly onStalled: () => void,
    /** Told after each flush what the client has not read yet: replies queued here and Bun's buffer. */
    private readonly onUnread: (bytes: number) => void = () => {},
  ) {}

  /** A reply or other frame that is never dropped. */
  reply(data: Uint8Array | string): void {
    if (this.closed) return;
    this.replyBytes += frameBytes(data);
    this.push(data);
    if (this.replyBytes > this.limits.maxReplyBytes) this.stall();
  }

  /** A subscription's frame; the subscription keeps its own count of what it has queued. */
  frame(f: QueuedFrame): void {
    if (!this.closed) this.push(f);
  }

  /** A subscription dropped one of its queued frames (slow-consumer policy, or it ended). */
  discard(f: QueuedFrame): void {
    if (f.dropped) return;
    f.drop();
    // A stalled reader's subscriptions keep queueing and dropping; without this the dropped
    // husks would pile up in the queue for as long as the client does not read.
    if (++this.discarded > 1024 && this.discarded * 2 > this.queue.length - this.head) this.compact();
  }

  /** Writes what Bun has room for; called at the end of a turn and on the socket's drain. */
  flush(ignoreHighWater = false): void {
    // An SSE stream's enqueue may call its pull at once, and pull flushes: that inner flush handed the
    // frames behind the one being written before it, so its subscription, told of them out of order,
    // kept them as queued, dropped them again later and counted their events in a `lagged` notice the
    // client had received (the chaos tester: `dropped` 450-970 over what was missing). The outer
    // flush is still writing, and writes them in turn.
    if (this.flushing) return;
    this.flushing = true;
    try {
      this.flushOnce(ignoreHighWater);
    } finally {
      this.flushing = false;
    }
    if (this.closed) return;
    const unread = this.unreadBytes;
    if (unread === 0 && this.written > this.writtenWhenTaken) {
      this.writtenWhenTaken = this.written;
      this.takenAt = Date.now();
    }
    this.onUnread(unread);
  }

  /**
   * When the client last took everything it had been sent (ms; 0: never sent anything): a reading
   * subscriber sends no frames, yet holds nothing, and the memory guard must not take it for a
   * connection sitting on a large frame.
   */
  takenAt = 0;
  private writtenWhenTaken = 0;

  /** Replies waiting here and all of Bun's buffer for the socket (frames, and pongs it wrote itself). */
  get unreadBytes(): number {
    return this.replyBytes + this.socket.getBufferedAmount();
  }

  private flushOnce(ignoreHighWater: boolean): void {
    this.scheduled = false;
    if (this.closed || this.head === this.queue.length) return this.settle();
    let deferred = false;
    this.socket.cork(() => {
      while (this.head < this.queue.length && (ignoreHighWater || this.socket.getBufferedAmount() < HIGH_WATER)) {
        const e = this.queue[this.head]!;
        // Small ones always go: an ack held back here waited for every big frame queued before it.
        if (!ignoreHighWater && turn.left <= 0 && sizeOf(e) > SMALL_BYTES && !(e instanceof QueuedFrame && e.dropped)) {
          deferred = true;
          break;
        }
        this.queue[this.head++] = undefined as never;
        if (e instanceof QueuedFrame) {
          if (e.dropped) {
            this.discarded--;
            continue;
          }
          const notice = e.owner.noticeBeforeNext();
          if (notice !== null && !this.write(notice)) return;
          if (!this.write(e.data, e.token)) return;
          spendTurn(e.size);
          e.owner.handed(e);
        } else {
          // What reply() counted: a string's UTF-8 bytes (its length, counted here, left non-ASCII
          // replies' difference behind for good, until the connection read as not reading).
          const bytes = frameBytes(e);
          this.replyBytes -= bytes;
          if (!this.write(e)) return;
          spendTurn(bytes);
        }
      }
    });
    if (deferred && !this.scheduled) {
      // The rest in a later turn: other clients' replies and frames go first.
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.settle();
  }

  /** Whether anything waits, here or in Bun's buffer: the client has not taken all it was sent. */
  get backlogged(): boolean {
    return this.head < this.queue.length || this.socket.getBufferedAmount() > 0;
  }

  /** Resolves once everything queued has been handed to Bun (or the socket closed). */
  whenEmpty(): Promise<void> {
    if (this.closed || this.head === this.queue.length) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.onEmpty;
      this.onEmpty = () => {
        previous?.();
        resolve();
      };
    });
  }

  /** The socket is gone: nothing more is written, and nothing is kept. */
  close(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.discarded = 0;
    this.replyBytes = 0;
    this.settle();
  }

  private compact(): void {
    this.queue = this.queue.slice(this.head).filter((e) => !(e instanceof QueuedFrame && e.dropped));
    this.head = 0;
    this.discarded = 0;
  }

  private push(e: Entry): void {
    this.queue.push(e);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Frames and replies handed to the socket so far. */
  written = 0;

  /** False when Bun refused the frame: the socket is closing, so the queue is done. */
  private write(data: Uint8Array | string, token?: string): boolean {
    this.written++;
    if (this.socket.send(data, token) !== 0) return true;
    this.close();
    return false;
  }

  private stall(): void {
    if (this.closed) return;
    this.close();
    this.onStalled();
  }

  private settle(): void {
    if (!this.onEmpty || (!this.closed && this.head < this.queue.length)) return;
    const done = this.onEmpty;
    this.onEmpty = null;
    done();
  }
}
