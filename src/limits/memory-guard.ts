import { readFileSync } from "node:fs";
import { totalmem } from "node:os";

/** Of the memory the process may use (its cgroup's limit, or the machine's), what MEMORY_LIMIT_BYTES 0 takes. */
const DERIVED_SHARE = 0.75;
const CHECK_MS = 250;
/** While over the limit, one client address's quiet connections are closed at most this often. */
const SHED_EVERY_MS = 1000;
/** A reading this much of the limit below the last one means memory is being given back: no shed then. */
const FALLING_SHARE = 0.01;
/** Back under this share of the limit, the gateway accepts connections again. */
const RESUME_SHARE = 0.9;

/** The bytes the process may use: its cgroup's memory.max (v2) or memory.limit_in_bytes (v1), else the machine's. */
export function memoryAvailable(): number {
  const machine = totalmem();
  for (const file of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    try {
      const text = readFileSync(file, "utf8").trim();
      if (/^\d+$/.test(text)) return Math.min(machine, Number(text));
    } catch {
      // not this cgroup version
    }
  }
  return machine;
}

/** MEMORY_LIMIT_BYTES as set, or (0) three quarters of what the process may use. */
export function memoryLimit(configured: number): number {
  return configured > 0 ? configured : Math.floor(memoryAvailable() * DERIVED_SHARE);
}

export interface MemoryGuardOptions {
  limitBytes: number;
  /** The limit was reached: stop taking connections. */
  over(rss: number): void;
  /** Back under RESUME_SHARE of it. */
  under(rss: number): void;
  /** Close what most likely holds the memory. */
  shed(): void;
  /**
   * How long the gateway stays over the limit before it sheds: a connection is quiet only after
   * that long without a whole frame, and the ones that just took the gateway over are not quiet yet
   * (shedding at once closed three idle subscribers of another address instead).
   */
  shedAfterMs: number;
  /** The process's resident bytes now; what else would read them is for the guard's own tests. */
  readRss?: () => number;
}

/**
 * Keeps the process under its memory limit where no bound of its own can: Bun assembles a frame
 * (and a fragmented message) before the gateway sees any of it, up to 4 × MAX_FRAME_BYTES a
 * connection, so clients that send most of a large frame and stop held that much each, unseen
 * (100 connections from one address: 390 MB in under 4 s; the 1,000 one address may open, 4 GB).
 * Over the limit the gateway refuses new connections and /health/ready says 503, and each second
 * closes the quiet connections (nothing whole received for a while, nor anything sent taken) of the
 * client address holding the most of them: a connection in the middle of a large frame is quiet, a
 * subscriber reading what it is sent is not. As Envoy's overload
 * manager does, it acts on what the process holds, not on what it can see.
 */
export class MemoryGuard {
  private timer: Timer | null = null;
  private overSince = 0;
  private lastShed = 0;
  private isOver = false;
  private lastRss = 0;
  private fellAt = 0;

  constructor(private readonly options: MemoryGuardOptions) {}

  get over(): boolean {
    return this.isOver;
  }

  start(): void {
    if (this.options.limitBytes <= 0) return;
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One reading and what it calls for (each CHECK_MS; `now` given by the guard's own tests). */
  check(now = Date.now()): void {
    const rss = (this.options.readRss ?? process.memoryUsage.rss)();
    if (!this.isOver && rss >= this.options.limitBytes) {
      this.isOver = true;
      this.overSince = now;
      this.options.over(rss);
    } else if (this.isOver && rss < this.options.limitBytes * RESUME_SHARE) {
      this.isOver = false;
      this.options.under(rss);
      return;
    }
    // Closed connections give their memory back over seconds, not at once: while it falls, the last
    // shed is working, and choosing the next address then closed a conforming one (outside tester).
    if (rss < this.lastRss - this.options.limitBytes * FALLING_SHARE) this.fellAt = now;
    this.lastRss = rss;
    if (this.isOver && rss >= this.options.limitBytes && now - this.overSince >= this.options.shedAfterMs && now - this.lastShed >= SHED_EVERY_MS && now - this.fellAt >= SHED_EVERY_MS) {
      this.lastShed = now;
      this.options.shed();
    }
  }
}
