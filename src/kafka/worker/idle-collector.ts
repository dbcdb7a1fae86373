/**
 * Collects the worker's garbage once its readers go quiet after copying out a lot.
 *
 * Records are copied out of librdkafka into buffers outside JavaScriptCore's heap, and JSC collects
 * as JavaScript allocates. When the replays that made them end, nothing allocates, so nothing is
 * collected: after 16 SSE replays of 200 KB events had closed, the two workers held 140–215 MB,
 * 100–195 MB of it dead buffers, for as long as they stayed idle; collected, 75–84 MB, and with
 * glibc's free pages returned (malloc_trim, for what librdkafka freed), 67 MB, as before the
 * replays. The collection costs 11–14 ms of this thread, once, when the readers have been quiet.
 */
import { dlopen, FFIType } from "bun:ffi";

// Copied out since the last collection before one is worth its pause.
const THRESHOLD_BYTES = 8 * 1024 * 1024;
// Readers quiet this long: the burst is over.
const QUIET_MS = 1000;
// Readers closing (and nothing much copied) collect at most this often: subscriptions that churn
// must not buy a pause each.
const CLOSE_INTERVAL_MS = 10_000;

let libc: { malloc_trim(pad: number): number } | null | undefined;

/** glibc's malloc_trim, or null where the C library has none (the gateway runs on glibc: Dockerfile). */
function mallocTrim(): { malloc_trim(pad: number): number } | null {
  if (libc !== undefined) return libc;
  try {
    libc = dlopen("libc.so.6", { malloc_trim: { args: [FFIType.u64], returns: FFIType.i32 } }).symbols;
  } catch {
    libc = null;
  }
  return libc;
}

export class IdleCollector {
  private copied = 0;
  private lastCopyAt = 0;
  /** A reader closed since the last collection: librdkafka freed its fetch buffers (glibc keeps the pages). */
  private closed = false;
  /** When closes alone last made it collect. */
  private closeCollectedAt = -Infinity;
  private readonly timer: Timer;

  constructor() {
    this.timer = setInterval(() => this.check(), QUIET_MS);
    this.timer.unref();
  }

  /** Bytes of records just copied out (a RECORDS message sent). */
  copiedOut(bytes: number): void {
    this.copied += bytes;
    this.lastCopyAt = performance.now();
  }

  /** A reader was closed. */
  readerClosed(): void {
    this.closed = true;
    this.lastCopyAt = performance.now();
  }

  private check(): void {
    const now = performance.now();
    if (now - this.lastCopyAt < QUIET_MS) return;
    if (this.copied < THRESHOLD_BYTES) {
      if (!this.closed || now - this.closeCollectedAt < CLOSE_INTERVAL_MS) return;
      this.closeCollectedAt = now;
    }
    this.copied = 0;
    this.closed = false;
    Bun.gc(true);
    mallocTrim()?.malloc_trim(0);
  }
}
