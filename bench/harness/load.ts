import { type FrameShape, buildTemplates } from "./frames";
import { LatencyHistogram, type LatencySummary } from "./histogram";
import { Progress } from "./progress";
import { type AckSink, type LoadConnection, PublisherConnection } from "./publisher";
import { SdkPublisherConnection } from "./sdk-publisher";

export interface LoadOptions extends FrameShape {
  url: string;
  connections: number;
  /** Target events/s, open loop. 0 means as fast as the windows allow (closed loop, "max"). */
  rate: number;
  /** Events in flight per connection in max mode; clamped to the gateway's own window. */
  window: number;
  durationS: number;
  label: string;
  /** Seconds to wait for the last acks after sending stops. */
  drainS?: number;
  /**
   * Who publishes: pre-encoded frames (`raw`, the default: next to no client CPU per event, so the
   * figures are the gateway's), or the client SDK, as an application does (sdk-publisher.ts).
   */
  client?: "raw" | "sdk";
  /** Called when the measured part starts (after the warm-up frames) and when its last ack is in. */
  onMeasure?: (phase: "start" | "end") => void;
}

export interface Series {
  /** Seconds since the start of the measurement. */
  t: number[];
  sentPerSec: number[];
  ackedPerSec: number[];
  p50Ms: number[];
  p99Ms: number[];
}

export interface LoadResult {
  label: string;
  mode: "open-loop" | "max";
  client: "raw" | "sdk";
  targetRate: number;
  connections: number;
  batch: number;
  payloadBytes: number;
  seconds: number;
  sent: number;
  /** Events of the warm-up frames, sent before measuring; subscribers see them too. */
  warmupEvents: number;
  acked: number;
  failed: number;
  failures: Record<string, number>;
  eventsPerSec: number;
  /** Ack latency, from the intended send time in open loop (so stalls are not hidden). */
  latency: LatencySummary;
  curve: Array<[number, number]>;
  series: Series;
}

/**
 * Publishes for `durationS` over `connections` sockets. Open loop: frame i is due at
 * start + i/frameRate, sent as soon as the timer lets us, and its latency counts from that due time,
 * so a gateway stall shows up in full rather than pausing the clock (coordinated omission). Max: each
 * connection keeps its window full; latency is then send → ack.
 */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const templates = o.client === "sdk" ? [] : buildTemplates(o);
  const total = new LatencyHistogram();
  const interval = new LatencyHistogram();
  let sent = 0;
  let acked = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  let measuring = false;
  const sink: AckSink = {
    answered(sentAt, now, events, nFailed, code) {
      if (!measuring) return;
      const ok = events - nFailed;
      acked += ok;
      failed += nFailed;
      if (code) failures[code] = (failures[code] ?? 0) + nFailed;
      if (ok > 0) {
        total.record((now - sentAt) * 1000, ok);
        interval.record((now - sentAt) * 1000, ok);
      }
    },
  };
  let pump: () => void = () => {};
  const open = (): Promise<LoadConnection> => (o.client === "sdk" ? SdkPublisherConnection.open(o.url, o, sink, () => pump()) : PublisherConnection.open(o.url, templates, sink, () => pump()));
  const conns = await Promise.all(Array.from({ length: o.connections }, open));

  // Warm-up: one frame per connection, answered, creates the topic and connects the producers.
  let warmupEvents = 0;
  for (const c of conns) warmupEvents += c.send(performance.now());
  if (!(await waitFor(() => conns.every((c) => c.pendingFrames === 0), 60_000))) throw new Error(`${o.label}: the warm-up frames got no answer within 60 s`);

  const series: Series = { t: [], sentPerSec: [], ackedPerSec: [], p50Ms: [], p99Ms: [] };
  const progress = new Progress(o.label);
  o.onMeasure?.("start");
  const start = performance.now();
  const end = start + o.durationS * 1000;
  measuring = true;
  let lastSent = 0;
  let lastAcked = 0;
  let lastAt = start;
  /** One point of the series: the rates since the previous point (the last may cover less than 1 s). */
  const sample = () => {
    const now = performance.now();
    const dt = (now - lastAt) / 1000;
    if (dt < 0.05) return;
    const t = (now - start) / 1000;
    series.t.push(Number(t.toFixed(2)));
    series.sentPerSec.push(Math.round((sent - lastSent) / dt));
    series.ackedPerSec.push(Math.round((acked - lastAcked) / dt));
    series.p50Ms.push(interval.percentileMs(50));
    series.p99Ms.push(interval.percentileMs(99));
    progress.update(`${t.toFixed(0)}s  sent ${fmt((sent - lastSent) / dt)}/s  acked ${fmt((acked - lastAcked) / dt)}/s  p50 ${interval.percentileMs(50).toFixed(1)} ms  p99 ${interval.percentileMs(99).toFixed(1)} ms  failed ${fmt(failed)}`);
    lastSent = sent;
    lastAcked = acked;
    lastAt = now;
    interval.reset();
  };
  const ticker = setInterval(sample, 1000);

  if (o.rate > 0) {
    const frameInterval = (1000 * o.batch) / o.rate;
    const frames = Math.floor(o.durationS * 1000 / frameInterval);
    let i = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        const due = Math.min(frames, Math.floor((now - start) / frameInterval) + 1);
        for (; i < due; i++) {
          const c = conns[i % conns.length]!;
          if (!c.closed) sent += c.send(start + i * frameInterval);
        }
        if (i >= frames) return resolve();
        setTimeout(tick, Math.max(0, Math.min(2, start + i * frameInterval - performance.now())));
      };
      tick();
    });
  } else {
    pump = () => {
      const now = performance.now();
      if (now >= end) return;
      for (const c of conns) {
        const window = Math.min(o.window, c.window);
        while (!c.closed && c.inflightEvents + o.batch <= Math.max(window, o.batch)) sent += c.send(now);
      }
    };
    pump();
    await Bun.sleep(Math.max(0, end - performance.now()));
    pump = () => {};
  }
  const sendingStopped = performance.now();
  await waitFor(() => conns.every((c) => c.pendingFrames === 0), (o.drainS ?? 30) * 1000);
  for (const c of conns) c.failAll("TIMEOUT");
  clearInterval(ticker);
  sample();
  const lastAck = Math.max(sendingStopped, performance.now());
  o.onMeasure?.("end");
  progress.done();
  for (const c of conns) c.close();

  const seconds = (lastAck - start) / 1000;
  return {
    label: o.label,
    mode: o.rate > 0 ? "open-loop" : "max",
    client: o.client ?? "raw",
    targetRate: o.rate,
    connections: o.connections,
    batch: o.batch,
    payloadBytes: o.payloadBytes,
    seconds: Number(seconds.toFixed(2)),
    sent,
    warmupEvents,
    acked,
    failed,
    failures,
    eventsPerSec: Math.round(acked / seconds),
    latency: total.summaryMs(),
    curve: total.curveMs(),
    series,
  };
}

export async function waitFor(cond: () => boolean, timeoutMs = 30_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) return false;
    await Bun.sleep(5);
  }
  return true;
}

export function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}
