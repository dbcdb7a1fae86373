/**
 * The charts' figures over a sliding window of one-second buckets, and their drawing on <canvas> by
 * hand. Recording an event is a few counter bumps; drawing happens on animation frames, at most
 * every DRAW_EVERY_MS, so a fast stream costs the page counting, not painting.
 */
const SECONDS = 60;
// Distinct types and keys counted per second; the rest count as "(other)", so memory stays bounded.
const MAX_NAMES = 500;
// Ack latencies kept per second for the percentiles.
const MAX_SAMPLES = 1000;
const DRAW_EVERY_MS = 250;
const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"];

interface Bucket {
  second: number;
  types: Map<string, number>;
  keys: Map<string, number>;
  acks: number[];
}

function bump(map: Map<string, number>, name: string): void {
  const n = map.get(name);
  if (n !== undefined) map.set(name, n + 1);
  else if (map.size < MAX_NAMES) map.set(name, 1);
  else map.set("(other)", (map.get("(other)") ?? 0) + 1);
}

export class WindowStats {
  private readonly buckets: Bucket[] = Array.from({ length: SECONDS }, () => ({ second: -1, types: new Map(), keys: new Map(), acks: [] }));
  private drawnAt = 0;
  private dirty = true;

  private bucket(now: number): Bucket {
    const second = Math.floor(now / 1000);
    const b = this.buckets[second % SECONDS]!;
    if (b.second !== second) {
      b.second = second;
      b.types.clear();
      b.keys.clear();
      b.acks.length = 0;
    }
    this.dirty = true;
    return b;
  }

  event(type: string, key: string | undefined, now = Date.now()): void {
    const b = this.bucket(now);
    bump(b.types, type);
    if (key !== undefined) bump(b.keys, key);
  }

  ack(ms: number, now = Date.now()): void {
    const b = this.bucket(now);
    if (b.acks.length < MAX_SAMPLES) b.acks.push(ms);
  }

  /** Draws the three charts if due; call once per animation frame. */
  draw(rate: HTMLCanvasElement, keys: HTMLCanvasElement, acks: HTMLCanvasElement, now = Date.now()): void {
    if (now - this.drawnAt < DRAW_EVERY_MS) return;
    const second = Math.floor(now / 1000);
    if (!this.dirty && second === Math.floor(this.drawnAt / 1000)) return;
    this.drawnAt = now;
    this.dirty = false;
    const window: Bucket[] = [];
    for (let s = second - SECONDS + 1; s <= second; s++) {
      const b = this.buckets[s % SECONDS]!;
      window.push(b.second === s ? b : { second: s, types: new Map(), keys: new Map(), acks: [] });
    }
    const topTypes = top(window.map((b) => b.types), 5);
    lines(rate, topTypes.map(([t]) => ({ name: t, points: window.map((b) => b.types.get(t) ?? 0) })));
    bars(keys, top(window.map((b) => b.keys), 8));
    const pct = (p: number) => window.map((b) => percentile(b.acks, p));
    lines(acks, [
      { name: "p50", points: pct(0.5) },
      { name: "p90", points: pct(0.9) },
      { name: "p99", points: pct(0.99) },
    ]);
  }
}

function top(maps: Map<string, number>[], n: number): Array<[string, number]> {
  const sum = new Map<string, number>();
  for (const m of maps) for (const [k, v] of m) sum.set(k, (sum.get(k) ?? 0) + v);
  return [...sum].sort((a, b) => b[1] - a[1]).slice(0, n);
}

function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = samples.toSorted((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function context(c: HTMLCanvasElement): CanvasRenderingContext2D {
  const g = c.getContext("2d")!;
  g.clearRect(0, 0, c.width, c.height);
  g.font = "11px system-ui, sans-serif";
  return g;
}

/** One line per series over the window's seconds (NaN: no point), with a y scale and a legend. */
function lines(c: HTMLCanvasElement, series: Array<{ name: string; points: number[] }>): void {
  const g = context(c);
  const pad = { l: 40, r: 8, t: 8, b: 16 };
  const w = c.width - pad.l - pad.r;
  const h = c.height - pad.t - pad.b;
  let max = 1;
  for (const s of series) for (const v of s.points) if (v > max) max = v;
  g.strokeStyle = "#ccc";
  g.fillStyle = "#666";
  g.beginPath();
  g.moveTo(pad.l, pad.t);
  g.lineTo(pad.l, pad.t + h);
  g.lineTo(pad.l + w, pad.t + h);
  g.stroke();
  g.fillText(fmt(max), 2, pad.t + 8);
  g.fillText("0", 2, pad.t + h);
  g.fillText("-60 s", pad.l, c.height - 2);
  g.fillText("now", pad.l + w - 20, c.height - 2);
  series.forEach((s, i) => {
    g.strokeStyle = g.fillStyle = COLORS[i % COLORS.length]!;
    g.beginPath();
    let pen = false;
    s.points.forEach((v, x) => {
      if (Number.isNaN(v)) return void (pen = false);
      const px = pad.l + (x / (s.points.length - 1)) * w;
      const py = pad.t + h - (v / max) * h;
      if (pen) g.lineTo(px, py);
      else g.moveTo(px, py);
      pen = true;
    });
    g.stroke();
    // A second with no neighbour (a one-off publish) has no line to show it: a dot does.
    const lone = (x: number) => !Number.isNaN(s.points[x]!) && Number.isNaN(s.points[x - 1] ?? Number.NaN) && Number.isNaN(s.points[x + 1] ?? Number.NaN);
    s.points.forEach((v, x) => lone(x) && g.fillRect(pad.l + (x / (s.points.length - 1)) * w - 1.5, pad.t + h - (v / max) * h - 1.5, 3, 3));
    g.fillText(s.name.slice(0, 24), pad.l + 8 + i * 90, pad.t + 10);
  });
  if (series.length === 0) g.fillText("no data yet", pad.l + 8, pad.t + 20);
}

/** Horizontal bars, largest first. */
function bars(c: HTMLCanvasElement, items: Array<[string, number]>): void {
  const g = context(c);
  const max = items[0]?.[1] ?? 1;
  const rowH = Math.min(16, (c.height - 4) / Math.max(1, items.length));
  items.forEach(([name, n], i) => {
    const y = 2 + i * rowH;
    g.fillStyle = COLORS[i % COLORS.length]!;
    g.fillRect(140, y, ((c.width - 200) * n) / max, rowH - 3);
    g.fillStyle = "#333";
    g.fillText(name.slice(0, 22), 2, y + rowH - 5);
    g.fillText(fmt(n), 144 + ((c.width - 200) * n) / max, y + rowH - 5);
  });
  if (items.length === 0) g.fillText("no keyed events yet", 8, 20);
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : n >= 100 ? n.toFixed(0) : String(Math.round(n * 10) / 10);
}
