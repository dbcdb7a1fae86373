/**
 * A helper thread of the Kafka worker (queries.ts): questions are answered in order, each blocking
 * that thread alone. The worker asks the gateway's metadata questions of one, its broker probe's of
 * another, and has its readers' consumers made on a third.
 */
import type { ThreadContext, ThreadQuery } from "./queries";

/** `denied`: the error was Kafka's ACLs refusing the gateway's principal (KAFKA_DENIED, not UNAVAILABLE). */
export type Answer = { result?: unknown; error?: string; denied?: boolean };

/**
 * A thread that has questions waiting and has answered none for `ms` is stuck in a call that may
 * never return: it is let go, every question waiting on it fails, and a new thread takes the next.
 * Timed from its last answer, not from each question: hundreds asked at once are slow, not stuck.
 */
export interface StallWatch {
  ms: number;
  stalled(reason: string): void;
  /**
   * An answer from a thread let go, to a question already failed: what it made (a consumer's handle,
   * say) would otherwise be kept by nobody.
   */
  late(answer: Answer): void;
}

interface Asked {
  thread: Worker;
  /** Questions asked of it and not answered, failed or not. */
  outstanding: number;
}

const QUERIES_URL = new URL("./queries.ts", import.meta.url).href;

export class QueryThread {
  private current: Asked;
  private readonly waiting = new Map<number, (r: Answer) => void>();
  private seq = 0;
  private watchdog: Timer | null = null;

  /** `script`: the thread's module (queries.ts; another only in tests). */
  constructor(
    private readonly producerRk: () => number,
    private readonly context: ThreadContext,
    private readonly stall?: StallWatch,
    private readonly script = QUERIES_URL,
  ) {
    this.current = this.start();
  }

  private start(): Asked {
    const asked: Asked = { thread: new Worker(this.script), outstanding: 0 };
    asked.thread.onmessage = (e: MessageEvent<Answer & { reqId: number }>) => {
      asked.outstanding--;
      const done = this.waiting.get(e.data.reqId);
      if (done) {
        this.waiting.delete(e.data.reqId);
        this.watch(true);
        done(e.data);
      } else {
        this.stall?.late(e.data);
      }
      // A thread let go leaves once it has answered everything it was asked.
      if (asked !== this.current && asked.outstanding === 0) asked.thread.terminate();
    };
    // A thread let go already is replaced already: its failure must not replace its successor.
    if (this.stall) asked.thread.onerror = (e) => asked === this.current && this.replace(`the thread failed: ${e.message}`);
    return asked;
  }

  /** Keeps the watchdog armed while questions wait; `progress`: the thread just answered one. */
  private watch(progress: boolean): void {
    if (!this.stall) return;
    if (this.watchdog && (progress || this.waiting.size === 0)) {
      clearTimeout(this.watchdog);
      this.watchdog = null;
    }
    if (!this.watchdog && this.waiting.size > 0) {
      const ms = this.stall.ms;
      this.watchdog = setTimeout(() => this.replace(`the thread answered nothing for ${ms} ms; it is replaced`), ms);
    }
  }

  private replace(reason: string): void {
    this.stall?.stalled(reason);
    // Not terminated: its late answers still come to `late` (terminate() would drop them).
    const old = this.current;
    this.current = this.start();
    if (old.outstanding === 0) old.thread.terminate();
    const failed = [...this.waiting.values()];
    this.waiting.clear();
    this.watch(true);
    for (const done of failed) done({ error: reason });
  }

  /** Lets go of the thread at once (one stuck in a call that never returns keeps only itself). */
  terminate(): void {
    this.waiting.clear();
    this.current.thread.terminate();
  }

  /** `deadline` (ms since the epoch): if it has passed when the question's turn comes, it is not asked. */
  ask(query: ThreadQuery, done: (r: Answer) => void, deadline?: number): void {
    const reqId = ++this.seq;
    this.waiting.set(reqId, done);
    this.current.outstanding++;
    this.watch(false);
    this.current.thread.postMessage({ reqId, rk: this.producerRk(), query, deadline, context: this.context });
  }
}
