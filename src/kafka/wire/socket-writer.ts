import type { Socket } from "bun";

/**
 * Bun's socket.write() is unbuffered: it returns how many bytes the kernel took and silently drops
 * the rest. This keeps the remainder and writes it on `drain`, so message framing never breaks.
 * The queue is bounded upstream: the pool caps the records in flight per worker.
 */
export class SocketWriter {
  private readonly queue: Uint8Array[] = [];
  queuedBytes = 0;

  constructor(private readonly socket: Socket<unknown>) {}

  write(buf: Uint8Array): void {
    if (this.queue.length > 0) {
      this.queue.push(buf);
      this.queuedBytes += buf.byteLength;
      return;
    }
    const n = Math.max(0, this.socket.write(buf));
    if (n < buf.byteLength) {
      const rest = buf.subarray(n);
      this.queue.push(rest);
      this.queuedBytes += rest.byteLength;
    }
  }

  /**
   * As write(), for a buffer the caller reuses once this returns: only what the kernel did not take
   * is copied (usually nothing), instead of copying every message out of a reused writer first.
   */
  writeTransient(buf: Uint8Array): void {
    if (this.queue.length > 0) {
      const copy = Buffer.from(buf);
      this.queue.push(copy);
      this.queuedBytes += copy.byteLength;
      return;
    }
    const n = Math.max(0, this.socket.write(buf));
    if (n < buf.byteLength) {
      const rest = Buffer.from(buf.subarray(n));
      this.queue.push(rest);
      this.queuedBytes += rest.byteLength;
    }
  }

  /** Call from the socket's `drain` handler. */
  drain(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = Math.max(0, this.socket.write(head));
      this.queuedBytes -= n;
      if (n < head.byteLength) {
        this.queue[0] = head.subarray(n);
        return;
      }
      this.queue.shift();
    }
  }
}
