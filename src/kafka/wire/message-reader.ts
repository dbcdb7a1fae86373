/** The receiving end of the IPC stream (see ipc.ts for the message format). */

/**
 * Splits a byte stream into whole messages. Emitted slices are only valid during the callback,
 * unless said `owned` (see the constructor).
 *
 * With `reuse`, a message that arrives in several chunks is assembled in one buffer kept for the
 * next, instead of a fresh concatenation per message: the worker receives 256 KiB PRODUCE batches
 * in several socket reads each, and a new buffer per batch was a steady stream of large allocations
 * for the allocator to return. Only for receivers that keep nothing of a body past the callback.
 */
export class MessageReader {
  // Without `reuse`: a message not yet whole, in a buffer of its own size (`whole`, filled as its
  // chunks come), or, while fewer than its length prefix's 4 bytes are in, those bytes (`prefix`).
  // One buffer per message, not its chunks joined once it is whole: joining a record of 5 MB from
  // another producer was one copy into fresh memory, 17-22 ms of page faults at once on this machine's
  // kind, where chunk by chunk the faults come a socket read at a time, other clients' work between
  // (outside probe: every client's pings stalled 100-166 ms per 5 MB record delivered).
  private whole: Buffer | null = null;
  private wholeLen = 0;
  private prefix: Buffer | null = null;
  private need = -1; // with `reuse`: bytes of the incomplete message, length prefix included; -1 until known
  // `reuse`: the incomplete message's bytes, at the start of `acc`.
  private acc: Buffer | null = null;
  private accLen = 0;

  constructor(
    /**
     * `owned`: the body lies in a buffer made for this message alone, which the receiver may keep
     * views of after the callback (a large record's value, uncopied). Otherwise the body is valid only
     * during the callback (with `reuse`), or a view of a socket read that other messages share.
     */
    private readonly onMessage: (type: number, body: Buffer, owned: boolean) => void,
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
    if (this.prefix !== null) {
      // At most 3 bytes were held: rare, and the one place a chunk is copied whole.
      chunk = Buffer.concat([this.prefix, chunk]);
      this.prefix = null;
    }
    let from = 0;
    const whole = this.whole;
    if (whole !== null) {
      from = Math.min(chunk.length, whole.length - this.wholeLen);
      chunk.copy(whole, this.wholeLen, 0, from);
      this.wholeLen += from;
      if (this.wholeLen < whole.length) return;
      this.whole = null;
      this.wholeLen = 0;
      this.emitWhole(whole, 0, true);
    }
    if (from < chunk.length) this.parse(chunk, from);
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

  /** Emits the whole messages of `data` from `pos` on; returns where the first incomplete one starts. */
  private emitWhole(data: Buffer, pos = 0, owned = false): number {
    while (data.length - pos >= 4) {
      const len = data.readUInt32LE(pos);
      if (data.length - pos - 4 < len) break;
      const type = data[pos + 4]!;
      const body = data.subarray(pos + 5, pos + 4 + len);
      pos += 4 + len;
      if (this.onError === null) this.onMessage(type, body, owned);
      else {
        try {
          this.onMessage(type, body, owned);
        } catch (e) {
          this.onError(e, type);
        }
      }
    }
    return pos;
  }

  private parse(data: Buffer, from: number): void {
    const pos = this.emitWhole(data, from);
    const rest = data.length - pos;
    if (rest === 0) return;
    // Copied: keeping a view would pin the whole (possibly large) chunk.
    if (rest < 4) {
      this.prefix = Buffer.from(data.subarray(pos));
      return;
    }
    this.whole = Buffer.allocUnsafe(4 + data.readUInt32LE(pos));
    this.wholeLen = data.copy(this.whole, 0, pos);
  }
}
