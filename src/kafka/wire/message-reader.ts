/** The receiving end of the IPC stream (see ipc.ts for the message format). */

/**
 * Splits a byte stream into whole messages. Emitted slices are only valid during the callback.
 *
 * With `reuse`, a message that arrives in several chunks is assembled in one buffer kept for the
 * next, instead of a fresh concatenation per message: the worker receives 256 KiB PRODUCE batches
 * in several socket reads each, and a new buffer per batch was a steady stream of large allocations
 * for the allocator to return. Only for receivers that keep nothing of a body past the callback.
 */
export class MessageReader {
  // A message that has not fully arrived, as the chunks it came in: concatenated once, when
  // complete, rather than once per chunk (a 256 KiB batch arrives in several socket reads).
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1; // bytes of the incomplete message, length prefix included; -1 until known
  // `reuse`: the incomplete message's bytes, at the start of `acc`.
  private acc: Buffer | null = null;
  private accLen = 0;

  constructor(
    private readonly onMessage: (type: number, body: Buffer) => void,
    private readonly reuse = false,
    /**
     * Told of a throw out of onMessage, which then costs that message only. Without it the throw goes
     * on up, and the rest of the chunk is lost with it: every later message would be read from the
     * middle of another.
     */
    private readonly onError: ((e: unknown, type: number) => void) | null = null,
  ) {}

  push(chunk: Buffer): void {
    if (this.reuse) return this.pushReused(chunk);
    if (this.chunks.length === 0) return this.parse(chunk);
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.need < 0 && this.buffered >= 4) {
      if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
      this.need = 4 + this.chunks[0]!.readUInt32LE(0);
    }
    if (this.need < 0 || this.buffered < this.need) return;
    const data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    this.need = -1;
    this.parse(data);
  }

  private pushReused(chunk: Buffer): void {
    if (this.accLen === 0) {
      const pos = this.emitWhole(chunk);
      if (pos < chunk.length) this.keep(chunk, pos);
      return;
    }
    this.append(chunk, 0);
    if (this.need < 0 && this.accLen >= 4) this.need = 4 + this.acc!.readUInt32LE(0);
    if (this.need < 0 || this.accLen < this.need) return;
    const data = this.acc!.subarray(0, this.accLen);
    this.accLen = 0;
    this.need = -1;
    const pos = this.emitWhole(data);
    // The rest moves to the front of the same buffer (copy is a memmove).
    if (pos < data.length) this.keep(data, pos);
  }

  /** Keeps `src[from..]`, the start of a message, in `acc`. */
  private keep(src: Buffer, from: number): void {
    this.accLen = 0;
    this.append(src, from);
    this.need = this.accLen >= 4 ? 4 + this.acc!.readUInt32LE(0) : -1;
  }

  private append(src: Buffer, from: number): void {
    const n = src.length - from;
    if (!this.acc || this.acc.length < this.accLen + n) {
      const bigger = Buffer.allocUnsafe(Math.max(this.accLen + n, (this.acc?.length ?? 0) * 2, 64 * 1024));
      if (this.acc && this.accLen > 0) this.acc.copy(bigger, 0, 0, this.accLen);
      this.acc = bigger;
    }
    src.copy(this.acc, this.accLen, from);
    this.accLen += n;
  }

  /** Emits the whole messages at the start of `data`; returns where the first incomplete one starts. */
  private emitWhole(data: Buffer): number {
    let pos = 0;
    while (data.length - pos >= 4) {
      const len = data.readUInt32LE(pos);
      if (data.length - pos - 4 < len) break;
      const type = data[pos + 4]!;
      const body = data.subarray(pos + 5, pos + 4 + len);
      pos += 4 + len;
      if (this.onError === null) this.onMessage(type, body);
      else {
        try {
          this.onMessage(type, body);
        } catch (e) {
          this.onError(e, type);
        }
      }
    }
    return pos;
  }

  private parse(data: Buffer): void {
    const pos = this.emitWhole(data);
    if (pos === data.length) return;
    // Copy the tail: keeping a subarray would pin the whole (possibly large) chunk.
    const tail = Buffer.from(data.subarray(pos));
    this.chunks = [tail];
    this.buffered = tail.length;
    this.need = tail.length >= 4 ? 4 + tail.readUInt32LE(0) : -1;
  }
}
