import type { Socket } from "bun";

/**
 * Bun's socket.write() is unbuffered: it returns how many bytes the kernel took and silently drops
 * the rest. This keeps the remainder and writes it on `drain`, so message framing never breaks.
 *
 * Two lanes: bulk messages (a reader's RECORDS, up to a MiB each) queue behind everything, and the
 * rest (acks, delivery reports, PONGs, status) go ahead of any bulk message not yet begun. With one
 * lane, sixteen replays read as fast as they came queued megabytes of records ahead of every
 * delivery report, and other clients' publish acks waited 0.2–3.5 s behind them (hostile tester);
 * a PONG stuck there got the worker killed as hung.
 * The queue is bounded upstream: the pool caps the records in flight per worker, and each reader
 * its RECORDS awaiting acknowledgement.
 */
export class SocketWriter {
  private readonly queue: Array<{ buf: Uint8Array; bulk: boolean }> = [];
  /** The queue's head is partly written: nothing may go before it. */
  private headStarted = false;
  queuedBytes = 0;

  constructor(private readonly socket: Socket<unknown>) {}

  write(buf: Uint8Array): void {
    this.send(buf, false, false);
  }

  /** As write(), behind everything queued: a large message that may wait. */
  writeBulk(buf: Uint8Array): void {
    this.send(buf, false, true);
  }

  /**
   * As write(), for a buffer the caller reuses once this returns: only what the kernel did not take
   * is copied (usually nothing), instead of copying every message out of a reused writer first.
   */
  writeTransient(buf: Uint8Array): void {
    this.send(buf, true, false);
  }

  private send(buf: Uint8Array, transient: boolean, bulk: boolean): void {
    if (this.queue.length > 0) {
      const entry = { buf: transient ? Buffer.from(buf) : buf, bulk };
      this.queuedBytes += buf.byteLength;
      if (bulk) return void this.queue.push(entry);
      // Ahead of the first bulk message not begun, behind every other message (their order kept).
      let at = this.headStarted ? 1 : 0;
      while (at < this.queue.length && !this.queue[at]!.bulk) at++;
      this.queue.splice(at, 0, entry);
      return;
    }
    const n = Math.max(0, this.socket.write(buf));
    if (n < buf.byteLength) {
      const rest = transient ? Buffer.from(buf.subarray(n)) : buf.subarray(n);
      this.queue.push({ buf: rest, bulk });
      this.headStarted = n > 0;
      this.queuedBytes += rest.byteLength;
    }
  }

  /** Call from the socket's `drain` handler. */
  drain(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = Math.max(0, this.socket.write(head.buf));
      this.queuedBytes -= n;
      if (n < head.buf.byteLength) {
        head.buf = head.buf.subarray(n);
        if (n > 0) this.headStarted = true;
        return;
      }
      this.queue.shift();
      this.headStarted = false;
    }
  }
}
