import { readFileSync, readdirSync } from "node:fs";

/** The soft RLIMIT_NOFILE of this process, or 0 when it cannot be read. */
export function openFilesLimit(): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    return soft && /^\d+$/.test(soft) ? Number(soft) : 0;
  } catch {
    return 0;
  }
}

/** Descriptors this process holds; null when none is left even to count them (EMFILE). */
function countOpenFiles(): number | null {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return null;
  }
}

export interface OpenFilesGuardOptions {
  limit: number;
  /** Stop accepting connections. */
  pause(open: number | null): void;
  /** Accept again; false when that failed and should be tried at the next check. */
  resume(open: number): boolean;
  /** Each count, for the gauge. */
  report?(open: number | null): void;
}

// The guard's own cost: counting reads one directory entry per descriptor (about 1.4 µs each, 20 ms
// at 15,000), so checks are spaced to keep it near 2% of a core, and never further apart than 2 s.
const COST_SHARE = 50;
const MIN_INTERVAL_MS = 250;
const MAX_INTERVAL_MS = 2000;

/**
 * Keeps a reserve of descriptors by pausing the listener before the open-files limit, and resumes
 * once enough are free again. MAX_CONNECTIONS caps WebSockets, but a TCP connection that never sends
 * a request (or an idle keep-alive one) holds a descriptor Bun never shows us until HTTP_IDLE_TIMEOUT
 * closes it; at the limit Bun's accept loop spins and nothing new, /health/live included, is answered.
 * The reserve is 5% of the limit (at least 32): room for Kafka, files, INTERNAL_PORT's accepts and the
 * count itself. Resuming waits for twice that to be free, so a flood does not flap the port.
 */
export class OpenFilesGuard {
  readonly pauseAt: number;
  readonly resumeAt: number;
  private paused = false;
  private timer: Timer | null = null;

  constructor(private readonly options: OpenFilesGuardOptions) {
    const reserve = Math.max(32, Math.ceil(options.limit * 0.05));
    this.pauseAt = options.limit - reserve;
    this.resumeAt = options.limit - 2 * reserve;
  }

  start(): void {
    if (this.options.limit <= 0) return; // no limit read: nothing to keep a reserve of
    const tick = () => {
      const t0 = performance.now();
      this.check();
      const cost = performance.now() - t0;
      this.timer = setTimeout(tick, Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, cost * COST_SHARE)));
      this.timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One count and what it calls for. */
  private check(): void {
    const open = countOpenFiles();
    this.options.report?.(open);
    if (!this.paused && (open === null || open >= this.pauseAt)) {
      this.paused = true;
      this.options.pause(open);
    } else if (this.paused && open !== null && open <= this.resumeAt) {
      if (this.options.resume(open)) this.paused = false;
    }
  }
}
