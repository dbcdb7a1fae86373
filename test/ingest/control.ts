import { expect } from "bun:test";
import type { GatewayProcess } from "../support/gateway";
import { type GatewayClient, connect } from "../../src/client";

/**
 * An innocent client for harm tests: one connection publishing one event at a time throughout, and
 * a poller of /health/live. Every control request must be acked and every health check answered
 * 200; latencies are reported (quiet versus under attack) rather than asserted, since the machine
 * is shared.
 */
export class Control {
  private running = false;
  private loops: Promise<void>[] = [];
  readonly latencies: number[] = [];
  readonly failures: unknown[] = [];
  health = { ok: 0, bad: 0 };
  quietP50 = 0;

  private constructor(
    private readonly gw: GatewayProcess,
    private readonly client: GatewayClient,
    private readonly topic: string,
    private readonly healthUrl: string,
  ) {}

  /** `healthUrl`: where /health/live is polled (the gateway's own port unless given); `token`: with authentication on. */
  static async start(gw: GatewayProcess, topic: string, healthUrl = `${gw.url}/health/live`, token?: string): Promise<Control> {
    // One attempt per publish: a refusal is a failure of the control, not something to retry quietly.
    const c = new Control(gw, await connect({ url: gw.wsUrl, maxAttempts: 1, ...(token ? { token } : {}) }), topic, healthUrl);
    const quiet: number[] = [];
    for (let i = 0; i < 20; i++) quiet.push(await c.once());
    c.quietP50 = pct(quiet, 0.5);
    c.latencies.length = 0;
    c.running = true;
    c.loops = [c.publishLoop(), c.healthLoop()];
    return c;
  }

  private async once(): Promise<number> {
    const t0 = performance.now();
    const reply = await Promise.race([
      this.client.publish({ type: "control" }, { topic: this.topic }).then(
        () => null,
        (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }),
      ),
      Bun.sleep(60_000).then(() => ({ timeout: true })),
    ]);
    const ms = performance.now() - t0;
    if (reply !== null) this.failures.push(reply);
    this.latencies.push(ms);
    return ms;
  }

  private async publishLoop(): Promise<void> {
    while (this.running) await this.once();
  }

  private async healthLoop(): Promise<void> {
    while (this.running) {
      try {
        const r = await fetch(this.healthUrl, { signal: AbortSignal.timeout(30_000) });
        r.status === 200 ? this.health.ok++ : this.health.bad++;
      } catch {
        this.health.bad++;
      }
      await Bun.sleep(50);
    }
  }

  /**
   * Stops, reports, and asserts the control was never harmed: every request answered, health
   * answered throughout, and with `p99UnderMs` its latency below that (a bound far above the quiet
   * value, for harms whose damage was latency; the machine is shared, so never 2× of quiet here).
   */
  async stop(label: string, p99UnderMs?: number, p50UnderMs?: number, maxUnderMs?: number): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.client.close();
    const l = this.latencies;
    console.log(
      `[control] ${label}: quiet p50 ${this.quietP50.toFixed(1)} ms; during: ${l.length} publishes, p50 ${pct(l, 0.5).toFixed(1)} ms, p99 ${pct(l, 0.99).toFixed(1)} ms, max ${pct(l, 1).toFixed(1)} ms; /health/live ${this.health.ok} ok, ${this.health.bad} not`,
    );
    expect(this.failures).toEqual([]);
    expect(l.length).toBeGreaterThan(0);
    expect(this.health.bad).toBe(0);
    expect(this.health.ok).toBeGreaterThan(0);
    if (p99UnderMs !== undefined) expect(pct(l, 0.99)).toBeLessThan(p99UnderMs);
    if (p50UnderMs !== undefined) expect(pct(l, 0.5)).toBeLessThan(p50UnderMs);
    if (maxUnderMs !== undefined) expect(pct(l, 1)).toBeLessThan(maxUnderMs);
  }
}

/** Runs `attack` with a control publishing and polling health throughout. */
export async function underControl<T>(gw: GatewayProcess, label: string, attack: () => Promise<T>, opts: { p99UnderMs?: number; p50UnderMs?: number; maxUnderMs?: number; token?: string } = {}): Promise<T> {
  const control = await Control.start(gw, "hostile-control", undefined, opts.token);
  try {
    return await attack();
  } finally {
    await control.stop(label, opts.p99UnderMs, opts.p50UnderMs, opts.maxUnderMs);
  }
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}
