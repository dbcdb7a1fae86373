/**
 * Fair scheduling of what clients send. uWebSockets hands over every frame a read brought in, at
 * once: a client that pipelines fifty 100-event batches has them all decoded, validated and handed to
 * the log before another client's single frame, read in the same poll, gets a look in. On two cores
 * that made a quiet client's ack wait 50–90 ms behind a flooder.
 *
 * So the work done on frames is metered. Each turn of the event loop may spend `sliceMs` on frames,
 * those handled as they arrive and those served from the inboxes together: past it, frames wait in
 * their connection's inbox, and the turn's pass serves the inboxes with what is left (at least one
 * frame, so the inboxes always move). One budget per turn, not one for arrivals and another for the
 * inboxes, keeps a turn short, and a quiet client's frame, read at the next turn, waits for one
 * turn's work.
 *
 * The inboxes share the time by deficit round-robin, on what their frames cost, not on how many
 * there are: each round gives every waiting connection QUANTUM_MS of credit, a connection is served
 * while its credit is positive, and each frame's measured time is taken off it. Frames cost from
 * microseconds (a small publish) to tens of milliseconds (a 250 KB JSON event), and one frame per
 * connection per round would give six connections of the latter fifteen times the time of a
 * client sending small frames, and let its frames queue for seconds. A connection in debt (its last
 * frames cost more than its share) is not handled on arrival either: it waits its turn. A connection whose
 * inbox holds more than `maxQueuedBytes` is paused (uWebSockets stops reading its socket, so the
 * client meets TCP backpressure and memory stays bounded) until its inbox is empty again. Frames of
 * one connection are always handled in the order they arrived.
 *
 * A connection over its publish rate is held the same way (`hold`): not read until its bucket
 * allows again. Refused frame by frame instead, a flooder would cost a read, a copy and a refusal for
 * each frame it sends, at line rate, without one event accepted.
 *
 * Round-robin shares the time between connections that wait, but it spends all there is: a client
 * whose frames cost far more than their bytes (JSON dense with long integers: 45 ms for a 945 KB
 * frame, within the bytes rate) had a frame of its handled at every turn of the event loop, and
 * every other client's request, which takes several turns (its frame, its records to the Kafka
 * worker, the worker's answer), waited for one of those at each (outside tester: three such
 * connections put the control's p99 at 2-3 s). So each connection also has a budget of handling
 * time (RATE_LIMIT_HANDLING_MS: a token bucket of measured milliseconds): past it, the connection rests,
 * neither read nor served, until it is paid back. Its frames are still all handled, in order, at the
 * pace the budget allows, and its client meets TCP backpressure, as for a rate. The connections
 * past half of theirs also share a total, and rest while it is spent (../limits/handling-budget.ts).
 * Both are checked before each frame as well as charged after it (see waitBefore).
 */

import type { HandlingBudget } from "../limits/handling-budget";
import { frameBytes } from "../protocol/frame-bytes";

/** What the scheduler needs of a socket: Bun's ServerWebSocket, seen narrowly. */
export interface IngressSocket {
  pause(): void;
  resume(): void;
}

export type RawFrame = string | Buffer;

/** One connection's waiting frames; kept on the connection, created by `inbox()`. */
export interface Inbox {
  frames: RawFrame[];
  head: number;
  bytes: number;
  paused: boolean;
  /** Held for a rate until this timer fires (see hold()), or `true`: until unhold (see holdUntilClosed()). */
  held: ReturnType<typeof setTimeout> | true | null;
  closed: boolean;
  /** To be closed once its replies are sent (holdUntilClosed): never rested again, what it sends is refused unread. */
  closing: boolean;
  /** Deficit round-robin credit, in ms of handling: negative while the connection is in debt. */
  credit: number;
  /** The connection's handling time, in ms (ConnectionRate.handling; null: no budget). */
  budget: HandlingBudget | null;
  /** Over its handling budget: neither read nor served until this timer fires (see rest()). */
  resting: ReturnType<typeof setTimeout> | null;
}

export interface IngressOptions {
  /** Milliseconds of frame handling per event-loop pass before frames start to wait their turn. */
  sliceMs: number;
  /** Bytes one connection may have waiting before its socket stops being read. */
  maxQueuedBytes: number;
  /**
   * The gateway's own stalls (LoopStalls): a stall that fell inside a frame's handling (the process
   * stopped mid-frame) is not the frame's cost. Charged to its client, a 12 s stop rested the
   * connection 5 s at a time, one frame each, for a minute: every request it had sent meanwhile
   * waited that long for its reply.
   */
  stalls?: { readonly total: number; observe(now: number): void };
}

/** `budget`: the connection's handling time (a bucket of ms that may go into debt by one frame's cost). */
export function inbox(budget: HandlingBudget | null = null): Inbox {
  return { frames: [], head: 0, bytes: 0, paused: false, held: null, closed: false, closing: false, credit: 0, budget, resting: null };
}

// Credit per round per waiting connection: small against a turn's slice, so that within one pass
// cheap frames of many connections interleave.
const QUANTUM_MS = 0.25;
// The longest a connection rests for its handling budget at once; still in debt, it rests again.
const MAX_REST_MS = 5000;
// After a stall, how long frames wait for the rest of what was read meanwhile (see noticeStall).
const SETTLE_MS = 200;


export class Ingress<S extends IngressSocket> {
  /** Connections with frames waiting, in the order they are served (a Set iterates in insertion order). */
  private readonly waiting = new Set<S>();
  /** Connections not read for a rate (see hold()). */
  private readonly held = new Set<S>();
  /** Connections over their handling budget (see rest()). */
  private readonly resting = new Set<S>();
  private spentMs = 0;
  private armed = false;
  /** Shutting down: frames are handled as they come (each is refused by then) and no socket is paused. */
  private draining = false;
  /** Until when (performance.now()) frames wait after a stall (see noticeStall); 0: not settling. */
  private settleUntil = 0;
  private seenStalls = 0;

  constructor(
    private readonly options: IngressOptions,
    private readonly inboxOf: (socket: S) => Inbox,
    /** Handles one frame; must not throw. */
    private readonly handle: (socket: S, raw: RawFrame) => void,
    /** Told each time a socket is paused. */
    private readonly onPause: () => void = () => {},
    /** Told each time a connection rests for its handling budget. */
    private readonly onRest: () => void = () => {},
  ) {}

  /** A frame arrived: handled now if this pass has time left and nothing of the connection waits. */
  offer(socket: S, raw: RawFrame): void {
    const box = this.inboxOf(socket);
    if (box.closed) return;
    if (this.options.stalls) this.noticeStall();
    const size = frameBytes(raw);
    if (box.head === box.frames.length && ((this.spentMs < this.options.sliceMs && box.credit >= 0 && !box.resting && this.settleUntil === 0 && this.waitBefore(box, size) === 0) || this.draining)) return void this.run(socket, raw, size);
    box.frames.push(raw);
    box.bytes += size;
    if (!box.resting) this.waiting.add(socket);
    if (!box.paused && box.bytes > this.options.maxQueuedBytes) {
      box.paused = true;
      this.onPause();
      if (!box.held && !box.resting) socket.pause();
    }
    this.arm();
  }

  /**
   * Handles now a frame read earlier and held outside the inbox (behind a token being verified), in
   * its place among the connection's frames: timed and charged as any other (stalls aside), resting
   * the connection past its budget. Uncharged, the 4 MiB of frames a refresh may hold ran free once
   * a second (second review).
   */
  handleHeld(socket: S, raw: RawFrame): void {
    this.run(socket, raw, frameBytes(raw));
  }

  /**
   * Handles every waiting frame now, slices aside: at shutdown each request still has to get its
   * one reply (a refusal, by then) before its socket is closed. From then on every socket is read
   * (each emptied inbox resumes its socket): a socket left paused would not read the client's reply
   * to the closing handshake, and closing it with unread input resets the connection, so the client
   * loses the replies and the close frame already on their way (1006 instead of 1001).
   */
  drainAll(): void {
    this.draining = true;
    for (const socket of this.held) this.unhold(socket);
    for (const socket of this.resting) this.wake(socket);
    while (this.waiting.size > 0) {
      this.spentMs = 0;
      this.pass();
    }
  }

  /**
   * Takes the frames still waiting in `socket`'s inbox, in order, out of it: its connection is about
   * to close, and each read frame is owed a reply (a refusal) before the close.
   */
  takeQueued(socket: S): RawFrame[] {
    const box = this.inboxOf(socket);
    const frames = box.frames.slice(box.head);
    // Read again once its hold ends (unhold): the client's closing handshake must be read.
    this.empty(socket, box);
    return frames;
  }

  /** Drops what `socket`'s inbox holds, and it waits no more. */
  private empty(socket: S, box: Inbox): void {
    box.frames = [];
    box.head = 0;
    box.bytes = 0;
    box.paused = false;
    this.waiting.delete(socket);
  }

  /** The connection is gone: what it sent and was not handled yet is dropped with it. */
  closed(socket: S): void {
    const box = this.inboxOf(socket);
    box.closed = true;
    this.unhold(socket);
    if (box.resting) clearTimeout(box.resting);
    box.resting = null;
    this.resting.delete(socket);
    this.empty(socket, box);
  }

  /**
   * Stops reading `socket` for `ms`: its client is over a rate. Frames already read are still handled
   * (and refused, if still over); a socket already held keeps its first timer.
   */
  hold(socket: S, ms: number): boolean {
    const box = this.inboxOf(socket);
    if (box.closed || box.held || this.draining) return false;
    this.held.add(socket);
    box.held = setTimeout(() => this.unhold(socket), ms);
    if (!box.paused && !box.resting) socket.pause();
    return true;
  }

  /**
   * Stops reading `socket` until `unhold`, whatever hold it was under: its connection is to be closed
   * once the replies it is owed are sent. Frames already read are still handled.
   */
  holdUntilClosed(socket: S): void {
    const box = this.inboxOf(socket);
    if (box.closed || this.draining) return;
    box.closing = true;
    if (box.held !== null && box.held !== true) clearTimeout(box.held);
    box.held = true;
    this.held.add(socket);
    if (!box.paused && !box.resting) socket.pause();
    // What it sent before is refused now rather than after a rest: its replies are what the close waits for.
    this.wake(socket);
  }

  /** Ends a hold (its time is up, or the connection is closing and its closing handshake must be read). */
  unhold(socket: S): void {
    const box = this.inboxOf(socket);
    if (!box.held) return;
    if (box.held !== true) clearTimeout(box.held);
    box.held = null;
    this.held.delete(socket);
    if (!box.paused && !box.closed && !box.resting) socket.resume();
  }

  /** Over its handling budget: `socket` is neither read nor served for `ms`. */
  private rest(socket: S, box: Inbox, ms: number): void {
    this.resting.add(socket);
    box.resting = setTimeout(() => this.wake(socket), ms);
    this.waiting.delete(socket);
    if (!box.paused && !box.held) socket.pause();
    this.onRest();
  }

  /** The budget is paid back (or the gateway is shutting down): read and served again. */
  private wake(socket: S): void {
    const box = this.inboxOf(socket);
    if (!box.resting) return;
    clearTimeout(box.resting);
    box.resting = null;
    this.resting.delete(socket);
    if (box.closed) return;
    if (!box.paused && !box.held) socket.resume();
    if (box.head < box.frames.length) {
      this.waiting.add(socket);
      this.arm();
    }
  }

  /**
   * Milliseconds `box`'s connection must rest before a frame of `size` bytes is handled (0: now).
   * Checked before each frame, not only charged after: the connections resting for the total all
   * woke when it was paid back, and each ran a frame before any was charged (eight 45 ms frames, back
   * to back, every second or so: an innocent client's publish waited 550 ms). Checked first, one
   * runs, the total is spent again, and the others rest on.
   */
  private waitBefore(box: Inbox, size: number): number {
    if (!box.budget || this.draining || box.closing) return 0;
    return box.budget.waitMs(performance.now(), size);
  }

  /** Handles one frame of `size` bytes, and charges what it cost (in ms, returned) to the connection's budget. */
  private run(socket: S, raw: RawFrame, size: number): number {
    const stalls = this.options.stalls;
    const stalledBefore = stalls?.total ?? 0;
    const started = performance.now();
    this.handle(socket, raw);
    const now = performance.now();
    let cost = now - started;
    if (stalls) {
      stalls.observe(now);
      cost = Math.max(0, cost - (stalls.total - stalledBefore));
    }
    this.spentMs += cost;
    this.arm();
    const box = this.inboxOf(socket);
    // A connection being closed is not rested: what it sent is refused now, and its close waits for those replies.
    if (box.budget && !this.draining && !box.closing) {
      box.budget.spend(cost, size);
      const wait = box.budget.waitMs(now);
      // At most MAX_REST_MS at a time, however far in debt: unread, its pings would go unanswered.
      if (wait > 0 && !box.closed) this.rest(socket, box, Math.min(wait, MAX_REST_MS));
    }
    return cost;
  }

  /**
   * After a stall of the process, what was read meanwhile is read all at once, and a client that gave
   * up on this instance during it (the SDK does after 20 s without an answer) has its close behind
   * the requests it then sent again to another instance: handled first, they were written twice
   * (outside tester: 12 and 222 events a run, in Kafka twice). So for SETTLE_MS after a stall no
   * frame is handled: the input is read to its end first, and a connection found closed meanwhile
   * has its frames dropped with it (ingress.closed), unwritten and unanswered, as the client expects.
   */
  private noticeStall(): void {
    const stalls = this.options.stalls!;
    const now = performance.now();
    stalls.observe(now);
    if (stalls.total !== this.seenStalls) {
      this.seenStalls = stalls.total;
      if (!this.draining) this.settleUntil = now + SETTLE_MS;
    }
  }

  /** The next pass of the event loop starts a fresh slice (and serves the inboxes, if any wait). */
  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    if (this.settleUntil !== 0) setTimeout(this.pass, Math.max(0, this.settleUntil - performance.now()));
    else setImmediate(this.pass);
  }

  private readonly pass = (): void => {
    this.armed = false;
    if (this.settleUntil !== 0) {
      if (performance.now() < this.settleUntil && !this.draining) return this.arm();
      this.settleUntil = 0;
    }
    let served = 0;
    while (this.waiting.size > 0 && (this.spentMs < this.options.sliceMs || served === 0)) {
      // A connection put back in line is met again in this same loop: that is its next round.
      for (const socket of this.waiting) {
        const box = this.inboxOf(socket);
        box.credit += QUANTUM_MS;
        while (box.credit > 0 && box.head < box.frames.length && !box.resting) {
          const raw = box.frames[box.head]!;
          const size = frameBytes(raw);
          const wait = this.waitBefore(box, size);
          if (wait > 0) {
            this.rest(socket, box, Math.min(wait, MAX_REST_MS));
            break;
          }
          box.frames[box.head++] = undefined as unknown as RawFrame; // released as soon as handled
          box.bytes -= size;
          box.credit -= this.run(socket, raw, size);
          served++;
          if (this.spentMs >= this.options.sliceMs) break;
        }
        this.waiting.delete(socket);
        if (box.head === box.frames.length) {
          box.frames = [];
          box.head = 0;
          // Credit is not saved up while idle; a debt is kept, and paid in later rounds.
          box.credit = Math.min(box.credit, 0);
          if (box.paused && !box.closed) {
            box.paused = false;
            if (!box.held && !box.resting) socket.resume();
          }
        } else if (!box.resting) {
          this.waiting.add(socket); // to the back of the line (a resting one is put back when it wakes)
        }
        if (this.spentMs >= this.options.sliceMs && served > 0) break;
      }
    }
    // The next turn's budget starts now: its arrivals and its pass share it.
    this.spentMs = 0;
    if (this.waiting.size > 0) this.arm();
  };
}
