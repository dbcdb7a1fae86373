import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "../..");

test("bun run bench -- load: open-loop publishing with subscribers, printed and written as JSON and HTML", async () => {
  const out = mkdtempSync(join(tmpdir(), "kgw-bench-"));
  const proc = Bun.spawn([process.execPath, "bench/cli.ts", "load", "--rate", "5000", "--duration", "2", "--batch", "50", "--subscribers", "2"], {
    cwd: root,
    env: { ...process.env, BENCH_REPORTS_DIR: out },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
  expect(stdout).toContain("acked events/s:");

  const files = readdirSync(out);
  const json = files.find((f) => f.endsWith(".json"))!;
  expect(files).toContain(json.replace(/\.json$/, ".html"));
  const report = JSON.parse(readFileSync(join(out, json), "utf8"));
  const [publish, subscribers] = report.runs;
  // Open loop: exactly rate × duration events are scheduled, whatever the gateway does.
  expect(publish.figures.sent).toBe(10_000);
  expect(publish.figures.acked).toBe(10_000);
  expect(publish.latency.count).toBe(10_000);
  expect(publish.latency.p50).toBeGreaterThan(0);
  expect(publish.series.t.length).toBeGreaterThanOrEqual(2);
  // Two unfiltered subscribers see every event, the warm-up frame's 50 included.
  expect(subscribers.figures.delivered).toBe(2 * 10_050);
  expect(subscribers.latency.count).toBe(2 * 10_050);
  const html = readFileSync(join(out, json.replace(/\.json$/, ".html")), "utf8");
  expect(html).toContain("<svg");
  expect(html).not.toContain("<script");
}, 60_000);
