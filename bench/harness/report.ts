import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import type { LatencySummary } from "./histogram";
import type { Series } from "./load";

/** One measured configuration of a scenario: a load run, or a single figure such as a codec loop. */
export interface RunReport {
  label: string;
  figures: Record<string, number | string>;
  latency?: LatencySummary;
  curve?: Array<[number, number]>;
  series?: Series;
  cpu?: Record<string, number>;
}

export interface ScenarioReport {
  scenario: string;
  title: string;
  machine: { cpus: number; cpuModel: string; memGiB: number; bun: string; platform: string };
  startedAt: string;
  /** Headline figures and the ratios measured in this same run. */
  figures: Record<string, number | string>;
  runs: RunReport[];
  notes: string[];
}

export function machine(): ScenarioReport["machine"] {
  const c = cpus();
  return { cpus: c.length, cpuModel: c[0]?.model ?? "unknown", memGiB: Math.round(totalmem() / 2 ** 30), bun: Bun.version, platform: `${process.platform}-${process.arch}` };
}

export const reportsDir = resolve(import.meta.dir, "../../.reports");

/** Writes `<scenario>-<time>.json` and a self-contained `.html` (inline SVG, no scripts) into .reports/. */
export function writeReport(r: ScenarioReport, dir = reportsDir): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${r.scenario}-${r.startedAt.replace(/[:.]/g, "-")}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(`${base}.html`, html(r));
  return { json: `${base}.json`, html: `${base}.html` };
}

/** Prints the figures as aligned lines, the form RESULTS.md quotes. */
export function printFigures(r: ScenarioReport): void {
  console.log(`\n== ${r.scenario}: ${r.title}`);
  for (const run of r.runs) {
    const parts = Object.entries(run.figures).map(([k, v]) => `${k}=${typeof v === "number" ? v.toLocaleString("en-US") : v}`);
    if (run.latency) parts.push(`p50=${run.latency.p50}ms p99=${run.latency.p99}ms p99.9=${run.latency.p999}ms max=${run.latency.max}ms`);
    if (run.cpu) parts.push(`cpu%=${Object.entries(run.cpu).map(([k, v]) => `${k}:${v}`).join(",")}`);
    console.log(`  ${run.label.padEnd(28)} ${parts.join("  ")}`);
  }
  for (const [k, v] of Object.entries(r.figures)) console.log(`  ${k}: ${v}`);
  for (const n of r.notes) console.log(`  note: ${n}`);
}

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];

interface Line {
  name: string;
  points: Array<[number, number]>;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= v)!;
}

/** A line chart as inline SVG. `xTicks` overrides the x labels (the percentile axis). */
function chart(title: string, lines: Line[], xLabel: string, yLabel: string, xTicks?: Array<[number, string]>): string {
  const W = 640;
  const H = 280;
  const L = 70;
  const B = 40;
  const pts = lines.flatMap((l) => l.points);
  if (pts.length === 0) return "";
  const xMin = Math.min(...pts.map((p) => p[0]));
  const xMax = Math.max(...pts.map((p) => p[0]), xMin + 1e-9);
  const yMax = niceMax(Math.max(...pts.map((p) => p[1])));
  const x = (v: number) => L + ((v - xMin) / (xMax - xMin)) * (W - L - 20);
  const y = (v: number) => H - B - (v / yMax) * (H - B - 20);
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => `<line x1="${L}" x2="${W - 20}" y1="${y(f * yMax)}" y2="${y(f * yMax)}" stroke="#e5e7eb"/><text x="${L - 6}" y="${y(f * yMax) + 4}" text-anchor="end">${fmtNum(f * yMax)}</text>`)
    .join("");
  const ticks = (xTicks ?? [0, 0.25, 0.5, 0.75, 1].map((f): [number, string] => [xMin + f * (xMax - xMin), fmtNum(xMin + f * (xMax - xMin))]))
    .map(([v, s]) => `<text x="${x(v)}" y="${H - B + 16}" text-anchor="middle">${esc(s)}</text>`)
    .join("");
  const paths = lines
    .map((l, i) => `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${l.points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(" ")}"/>`)
    .join("");
  const legend = lines.map((l, i) => `<tspan fill="${COLORS[i % COLORS.length]}">■ ${esc(l.name)}</tspan>`).join("  ");
  return `<figure><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${W} ${H + 20}" width="${W}" height="${H + 20}" font-size="11" font-family="sans-serif">
${grid}${ticks}${paths}
<text x="${(L + W) / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>
<text transform="translate(14 ${(H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>
<text x="${L}" y="${H + 14}">${legend}</text></svg></figure>`;
}

function fmtNum(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e4 ? 0 : 1)}k`;
  return Number(v.toPrecision(3)).toString();
}

// Percentiles on the axis HdrHistogram's plots use: 1/(1-p), so the tail gets the room.
const tailX = (p: number) => Math.log10(1 / Math.max(1e-6, 1 - p / 100));
const TAIL_TICKS: Array<[number, string]> = [0, 90, 99, 99.9, 99.99, 99.999].map((p) => [tailX(p), `${p}%`]);

function html(r: ScenarioReport): string {
  const withSeries = r.runs.filter((run) => run.series && run.series.t.length > 0);
  const withCurve = r.runs.filter((run) => run.curve && run.curve.length > 0);
  const figureRows = Object.entries(r.figures).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td></tr>`).join("");
  const keys = [...new Set(r.runs.flatMap((run) => Object.keys(run.figures)))];
  const runRows = r.runs
    .map((run) => {
      const cells = keys.map((k) => `<td>${esc(String(run.figures[k] ?? ""))}</td>`).join("");
      const lat = run.latency ? `<td>${run.latency.p50}</td><td>${run.latency.p99}</td><td>${run.latency.p999}</td><td>${run.latency.max}</td>` : "<td></td><td></td><td></td><td></td>";
      const cpu = run.cpu ? Object.entries(run.cpu).map(([k, v]) => `${k} ${v}%`).join(", ") : "";
      return `<tr><th>${esc(run.label)}</th>${cells}${lat}<td>${esc(cpu)}</td></tr>`;
    })
    .join("");
  const charts = [
    withSeries.length ? chart("Acknowledged events per second", withSeries.map((run) => ({ name: run.label, points: run.series!.t.map((t, i): [number, number] => [t, run.series!.ackedPerSec[i]!]) })), "seconds", "events/s") : "",
    withSeries.length ? chart("p99 ack latency per second (ms)", withSeries.map((run) => ({ name: run.label, points: run.series!.t.map((t, i): [number, number] => [t, run.series!.p99Ms[i]!]) })), "seconds", "ms") : "",
    withCurve.length ? chart("Latency by percentile (ms)", withCurve.map((run) => ({ name: run.label, points: run.curve!.map(([p, ms]): [number, number] => [tailX(p), ms]) })), "percentile", "ms", TAIL_TICKS) : "",
  ].join("\n");
  const m = r.machine;
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.scenario)}: ${esc(r.title)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{text-align:left}figure{margin:1em 0}figcaption{font-weight:bold}td:last-child{white-space:nowrap;text-align:left}</style></head><body>
<h1>${esc(r.scenario)}: ${esc(r.title)}</h1>
<p>${esc(r.startedAt)} · ${m.cpus} × ${esc(m.cpuModel)} · ${m.memGiB} GiB · Bun ${esc(m.bun)} · ${esc(m.platform)}</p>
<table>${figureRows}</table>
<table><tr><th>run</th>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}<th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>CPU (% of a core)</th></tr>${runRows}</table>
${charts}
${r.notes.map((n) => `<p>${esc(n)}</p>`).join("\n")}
</body></html>
`;
}
