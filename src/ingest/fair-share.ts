import { type AppendResults, type LogRecord, failedResults, newResults, setError } from "../log/event-log";
import { KEY_BLOCK_MS, KEY_ORDER_MESSAGE, LostKeys } from "../log/lost-keys";
import { GatewayError } from "../protocol/errors";

/** What FairShare stands in front of, and what it is to its callers: EventLog's append. */
export interface Appender {
  append(records: LogRecord[], source: string, acceptedAt?: number): Promise<AppendResults>;
}

export interface FairShareOptions {
  /**
   * How much longer than the quietest recent append an append may take before fewer records are
   * handed over: the queueing allowed inside the log, where it is first come, first served.
   */
  targetDelayMs: number;
  /** Records always allowed in the log at once, whatever the latency (the budget's floor). */
  minRecords: number;
  /**
   * The budget's ceiling, and the most records held here and in the log together: past it, an append
   * is refused OVERLOADED at once, as the workers refuse past KAFKA_MAX_INFLIGHT_PER_WORKER.
   */
  maxRecords: number;
  /**
   * When nothing handed over has settled for this long, the log is stalled (a broker frozen, a worker
   * hung): everything waiting is handed over, budget or not, so that the log's own answers
   * (OVERLOADED, the publish deadline, WORKER_LOST) reach the clients instead of a wait here.
   */
  stallMs: number;
  /** Told when a stall makes everything waiting go in at once, and how many records that was. */
  onStall?: (waitingRecords: number) => void;
  /** Told the records waiting and the budget at each adjustment (metrics). */
  report?: (waitingRecords: number, budgetRecords: number) => void;
}

interface Waiting {
  records: LogRecord[];
  source: string;
  /** Date.now() when it came: the log's deadline counts from then, the wait here included. */
  acceptedAt: number;
  resolve: (r: Promise<AppendResults>) => void;
}

// How often the budget is reconsidered, and how long the quietest latency is remembered (two halves).
const ADJUST_EVERY_MS = 100;
const BASELINE_HALF_MS = 15_000;

/**
 * Kafka's workers are shared by every connection and serve records first come, first served: were
 * records handed over as they arrive, one connection keeping its whole window in flight would put a
 * window of records ahead of everyone else's, and a single publish from another connection would
 * wait for all of it (1.3 s for a 10,000-event window at 7.8k events/s).
 *
 * So only a budget of records is in the log at once, and appends beyond it wait here, one queue per
 * connection, handed over round-robin as records settle: another connection's append waits for about
 * one append of each busy connection, not for their windows. The budget follows latency, as a
 * delay-based congestion controller does: it grows while appends wait here and the log answers
 * within `targetDelayMs` of its quietest recent latency, and shrinks when the log's own queue makes
 * answers slower than that. So the log is kept busy (throughput is not capped) without a queue of
 * more than about `targetDelayMs` inside it.
 *
 * Order: one connection's appends are handed over in the order they came. Appends of different
 * connections were never ordered with respect to each other. An event refused OVERLOADED here
 * blocks its key (LostKeys) until it comes again: a later event of the key sent before its client
 * read the refusal would otherwise be written first, once acks made room
 * (test/kafka/overload-order.test.ts).
 */
export class FairShare implements Appender {
  /** Waiting appends by source, served in turn (a Map iterates in insertion order). */
  private readonly queues = new Map<string, Waiting[]>();
  private waitingRecords = 0;
  private outstanding = 0;
  /** Records in the log by source, for the sources that have any. */
  private readonly inLog = new Map<string, number>();
  private budget: number;
  private readonly floor: number;
  // Latency samples of the current adjustment interval, and the quietest of two baseline halves.
  private intervalMin = Infinity;
  private baselineNow = Infinity;
  private baselinePrev = Infinity;
  private halfStarted = performance.now();
  private timer: ReturnType<typeof setInterval> | null = null;
  /**
   * When the log last answered, or last got work with none in it: a stall is nothing settling for
   * stallMs while there was something to answer. Counted from the last answer alone, the first burst
   * after stallMs of quiet, waiting here for its first acks, passed for a stall and went in whole.
   */
  private lastSettled = performance.now();
  private flushing = false;
  private readonly overloaded: GatewayError;
  private readonly keyOrder: GatewayError;
  private readonly refusedKeys: LostKeys;
  private nextSweep = 0;

  constructor(
    private readonly log: Appender,
    private readonly options: FairShareOptions,
  ) {
    this.floor = Math.min(options.minRecords, options.maxRecords);
    this.budget = this.floor;
    this.overloaded = new GatewayError("OVERLOADED", `the Kafka workers hold their maximum of ${options.maxRecords} unacknowledged events, waiting or in flight; retry after acks arrive`);
    this.refusedKeys = new LostKeys(options.maxRecords);
    this.keyOrder = new GatewayError("OVERLOADED", `${KEY_ORDER_MESSAGE} (the Kafka workers held their maximum of ${options.maxRecords} unacknowledged events)`);
  }

  append(records: LogRecord[], source: string): Promise<AppendResults> {
    // Empty but for a moment after a refusal: one property read.
    if (!this.refusedKeys.empty) {
      const now = Date.now();
      if (now >= this.nextSweep) {
        this.refusedKeys.sweep(now);
        this.nextSweep = now + 250;
      }
      let refused: Array<GatewayError | null> | null = null;
      for (let i = 0; i < records.length; i++) {
        const refusal = this.refusedKeys.refusal(records[i]!, now);
        if (refusal !== null) (refused ??= new Array(records.length).fill(null))[i] = refusal;
      }
      if (refused !== null) return this.appendAllBut(records, refused, source);
    }
    return this.take(records, source);
  }

  /** Appends the records not `refused` (a refusal at their index: behind an earlier event of their key). */
  private async appendAllBut(records: LogRecord[], refused: Array<GatewayError | null>, source: string): Promise<AppendResults> {
    const rest = records.filter((_, i) => refused[i] === null);
    const got = rest.length > 0 ? await this.take(rest, source) : null;
    const out = newResults(records.length);
    for (let i = 0, j = 0; i < records.length; i++) {
      const refusal = refused[i];
      if (refusal !== null) setError(out, i, refusal!);
      else {
        const error = got!.errors?.[j];
        if (error) setError(out, i, error);
        else {
          out.partitions[i] = got!.partitions[j]!;
          out.offsets[i] = got!.offsets[j]!;
        }
        j++;
      }
    }
    return out;
  }

  private take(records: LogRecord[], source: string): Promise<AppendResults> {
    if (this.waitingRecords + this.outstanding + records.length > this.options.maxRecords && !this.flushing) {
      const until = Date.now() + KEY_BLOCK_MS;
      for (const r of records) this.refusedKeys.block(r, until, this.keyOrder);
      return Promise.resolve(failedResults(records.length, this.overloaded));
    }
    if (this.flushing || (this.queues.size === 0 && this.outstanding < this.budget)) return this.handOver(records, source);
    // A connection with nothing in the log and nothing waiting goes straight in, budget or not, as a
    // new flow does in fq_codel: a light publisher's event waits behind what is already in the log,
    // never behind the busy connections' queues. Each connection can have one such append at a time,
    // so this adds at most one batch per connection to the log.
    if (!this.inLog.has(source) && !this.queues.has(source)) return this.handOver(records, source);
    return new Promise((resolve) => {
      let queue = this.queues.get(source);
      if (queue === undefined) this.queues.set(source, (queue = []));
      queue.push({ records, source, acceptedAt: Date.now(), resolve });
      this.waitingRecords += records.length;
      this.arm();
    });
  }

  /** From now on, and for everything waiting, appends go straight to the log (at shutdown). */
  flush(): void {
    this.flushing = true;
    this.releaseAll();
    this.disarm();
  }

  private handOver(records: LogRecord[], source: string, acceptedAt?: number): Promise<AppendResults> {
    const n = records.length;
    if (this.outstanding === 0) this.lastSettled = performance.now();
    this.outstanding += n;
    this.inLog.set(source, (this.inLog.get(source) ?? 0) + n);
    const started = performance.now();
    const settled = (results?: AppendResults) => {
      this.lastSettled = performance.now();
      this.outstanding -= n;
      const left = this.inLog.get(source)! - n;
      if (left === 0) this.inLog.delete(source);
      else this.inLog.set(source, left);
      // Refusals come back at once (OVERLOADED, a worker lost): they say nothing of the log's queue.
      if (results !== undefined && results.errors === null) {
        const ms = performance.now() - started;
        if (ms < this.intervalMin) this.intervalMin = ms;
        if (ms < this.baselineNow) this.baselineNow = ms;
      }
      this.admit();
    };
    const p = this.log.append(records, source, acceptedAt);
    p.then(settled, () => settled());
    return p;
  }

  private release(w: Waiting): void {
    this.waitingRecords -= w.records.length;
    w.resolve(this.handOver(w.records, w.source, w.acceptedAt));
  }

  /** Everything waiting, budget or not, each source's appends in order. */
  private releaseAll(): void {
    for (const queue of this.queues.values()) for (const w of queue) this.release(w);
    this.queues.clear();
  }

  /** One append of each waiting source in turn, while the budget allows. */
  private admit(): void {
    while (this.queues.size > 0 && this.outstanding < this.budget) {
      for (const [source, queue] of this.queues) {
        this.release(queue.shift()!);
        this.queues.delete(source);
        if (queue.length > 0) this.queues.set(source, queue); // to the back of the line
        if (this.outstanding >= this.budget) break;
      }
    }
  }

  private arm(): void {
    if (this.timer === null) this.timer = setInterval(this.tick, ADJUST_EVERY_MS);
  }

  private disarm(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private readonly tick = (): void => {
    const now = performance.now();
    this.adjust(now);
    if (this.outstanding > 0 && now - this.lastSettled >= this.options.stallMs && this.queues.size > 0) {
      this.options.onStall?.(this.waitingRecords);
      this.releaseAll();
    }
    this.admit();
    this.options.report?.(this.waitingRecords, this.budget);
    if (this.queues.size === 0 && this.outstanding === 0) this.disarm();
  };

  private adjust(now: number): void {
    if (now - this.halfStarted >= BASELINE_HALF_MS) {
      this.baselinePrev = this.baselineNow;
      this.baselineNow = Infinity;
      this.halfStarted = now;
    }
    const latency = this.intervalMin;
    this.intervalMin = Infinity;
    if (latency === Infinity) return;
    const baseline = Math.min(this.baselineNow, this.baselinePrev);
    const { maxRecords, targetDelayMs } = this.options;
    if (latency > baseline + targetDelayMs) this.budget = Math.max(this.floor, Math.floor(this.budget * 0.85));
    else if (this.queues.size > 0) this.budget = Math.min(maxRecords, Math.ceil(this.budget * 1.25));
  }
}
