/**
 * Load and watchers for the tests that harm the Kafka side (workers, brokers) under traffic: a
 * control publisher that counts every request and its reply, and a poller of /health/live.
 */
import { expect } from "bun:test";
import { type GatewayClient, type PublishError, connect } from "../../src/client";
import type { GatewayProcess } from "../support/gateway";

/**
 * A client for the control load and probes of harm tests: one attempt per event, so what is counted
 * is the gateway's own answer to each publish (the SDK would otherwise retry retriable refusals).
 */
export const oneAttemptClient = (url: string): Promise<GatewayClient> => connect({ url, maxAttempts: 1 });

export interface Outcome {
  topic: string;
  id: string;
  partition: number;
  offset: number;
  code?: string;
  mayBePersisted?: boolean;
}

/**
 * Publishes batches round-robin over `topics`, at most `maxInflight` requests (publishBatch calls)
 * at once, until stopped. A request is answered once each of its events is acked or refused.
 */
export class Pump {
  sent = 0;
  answered = 0;
  events = 0;
  maxLatencyMs = 0;
  readonly acked: Outcome[] = [];
  readonly nacked: Outcome[] = [];
  /** [sentAt, answeredAt, code or "ok"] of every request, for "answered within" claims. */
  readonly requests: Array<[number, number, string]> = [];
  private stopped = false;
  private readonly inflight = new Set<Promise<void>>();
  private running: Promise<void> | null = null;
  private seq = 0;

  constructor(
    private readonly client: GatewayClient,
    private readonly topics: string[],
    private readonly opts: { batch: number; maxInflight: number; pauseMs?: number; prefix?: string },
  ) {}

  start(): this {
    this.running = this.loop();
    return this;
  }

  /** Stops sending; resolves once every request sent has its reply, or rejects after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    await this.running;
    const all = Promise.all(this.inflight).then(() => true);
    const ok = await Promise.race([all, Bun.sleep(timeoutMs).then(() => false)]);
    if (!ok) throw new Error(`${this.sent - this.answered} of ${this.sent} publish requests unanswered ${timeoutMs} ms after the load stopped`);
  }

  private async loop(): Promise<void> {
    let t = 0;
    while (!this.stopped) {
      while (this.inflight.size < this.opts.maxInflight && !this.stopped) {
        const topic = this.topics[t++ % this.topics.length]!;
        this.send(topic);
      }
      await Promise.race([...this.inflight, Bun.sleep(50)]);
      if (this.opts.pauseMs) await Bun.sleep(this.opts.pauseMs);
    }
  }

  private send(topic: string): void {
    const prefix = this.opts.prefix ?? "p";
    const events = Array.from({ length: this.opts.batch }, () => {
      const n = this.seq++;
      return { id: `${prefix}-${n}`, type: "test.harm", key: `k${n % 13}`, data: { n } };
    });
    const sentAt = Date.now();
    this.sent++;
    this.events += events.length;
    const p: Promise<void> = this.client.publishBatch(events, { topic }).then((settled) => {
      const at = Date.now();
      this.answered++;
      this.maxLatencyMs = Math.max(this.maxLatencyMs, at - sentAt);
      let code = "ok";
      settled.forEach((r, i) => {
        if (r.status === "fulfilled") this.acked.push({ topic, id: r.value.id, partition: r.value.partition, offset: r.value.offset });
        else {
          const err = r.reason as PublishError;
          code = err.code;
          this.nacked.push({ topic, id: events[i]!.id, partition: -1, offset: -1, code: err.code, mayBePersisted: err.mayBePersisted });
        }
      });
      this.requests.push([sentAt, at, code]);
    });
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }
}

/** Polls /health/live every `everyMs`; an answer slower than `slowMs` (or none) counts as a failure. */
export class LivenessWatch {
  polls = 0;
  readonly failures: string[] = [];
  maxMs = 0;
  private stopped = false;
  private readonly running: Promise<void>;
  private readonly startedAt = Date.now();
  private stoppedAt = 0;

  constructor(url: string, everyMs = 150, slowMs = 1000) {
    this.running = (async () => {
      while (!this.stopped) {
        const at = Date.now();
        try {
          const r = await fetch(`${url}/health/live`, { signal: AbortSignal.timeout(slowMs) });
          if (r.status !== 200) this.failures.push(`status ${r.status} at ${new Date(at).toISOString()}`);
        } catch (e) {
          this.failures.push(`${(e as Error).name} at ${new Date(at).toISOString()}`);
        }
        this.polls++;
        this.maxMs = Math.max(this.maxMs, Date.now() - at);
        await Bun.sleep(everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    this.stoppedAt = Date.now();
  }

  /** How long it watched, ms (once stopped). */
  get watchedMs(): number {
    return (this.stoppedAt || Date.now()) - this.startedAt;
  }
}

/** Polls `check` every 100 ms until it is true; returns the ms it took, or -1 after `timeoutMs`. */
export async function within(timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await check()) return Date.now() - start;
    await Bun.sleep(100);
  }
  return -1;
}

export async function readyStatus(url: string): Promise<number> {
  try {
    return (await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2000) })).status;
  } catch {
    return 0;
  }
}

/** GET /health with a deadline: a wedged gateway fails the test instead of hanging it. */
export async function health(url: string): Promise<any> {
  try {
    return await (await fetch(`${url}/health`, { signal: AbortSignal.timeout(3000) })).json();
  } catch (e) {
    throw new Error(`GET /health got no answer within 3 s (${(e as Error).name}): the gateway is wedged`);
  }
}

/**
 * Runs `body` while a control client publishes to `topic` (a Pump with `pump` options) and
 * /health/live is polled; then asserts that every control request was answered, none refused, some
 * acked, and every health check answered within 150 ms. Generous on purpose: the work the body
 * causes is real on a shared machine; the point is that the gateway answers.
 */
export async function withControl<T>(gw: GatewayProcess, topic: string, body: () => Promise<T>, pump: { batch: number; maxInflight: number; pauseMs?: number } = { batch: 10, maxInflight: 4, pauseMs: 20 }): Promise<T> {
  const watch = new LivenessWatch(gw.url, 150, 15_000);
  const control = await oneAttemptClient(gw.wsUrl);
  const load = new Pump(control, [topic], pump).start();
  try {
    return await body();
  } finally {
    await load.stop(30_000);
    await watch.stop();
    control.close();
    console.log(`[control] ${topic}: ${load.sent} requests, all answered: ${load.answered === load.sent}; slowest ${load.maxLatencyMs} ms`);
    expect(load.answered).toBe(load.sent);
    expect(load.nacked).toEqual([]);
    expect(load.acked.length).toBeGreaterThan(0);
    expect(watch.failures).toEqual([]);
  }
}
