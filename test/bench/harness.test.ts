import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "../..");

test("bun run bench -- load: open-loop publishing with subscribers through the client SDK, printed and written as JSON and HTML", async () => {
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
  expect(report.notes[0]).toStartWith("the client SDK,");
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

test("bun run bench -- sdk: the same open-loop load through the raw client and through the SDK, side by side", async () => {
  const out = mkdtempSync(join(tmpdir(), "kgw-bench-sdk-"));
  const proc = Bun.spawn([process.execPath, "bench/cli.ts", "sdk", "--rate", "2000", "--duration", "2"], {
    cwd: root,
    env: { ...process.env, BENCH_REPORTS_DIR: out },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
  for (const figure of ["raw events/s:", "sdk events/s:", "raw ack p50/p99 ms:", "sdk ack p50/p99 ms:", "raw client CPU µs/event:", "sdk client CPU µs/event:", "sdk/raw client CPU:"]) expect(stdout).toContain(figure);

  const report = JSON.parse(readFileSync(join(out, readdirSync(out).find((f) => f.endsWith(".json"))!), "utf8"));
  expect(report.runs.map((r: { label: string }) => r.label)).toEqual(["raw client: publish", "raw client: subscribe", "SDK: publish", "SDK: subscribe"]);
  const [rawPub, rawSub, sdkPub, sdkSub] = report.runs;
  // Both clients ran the same schedule to the end: every event scheduled was acknowledged and delivered.
  for (const pub of [rawPub, sdkPub]) {
    expect(pub.figures).toMatchObject({ sent: 4000, acked: 4000, failed: 0 });
    expect(pub.latency.count).toBe(4000);
    expect(pub.figures.clientCpuMicrosPerEvent).toBeGreaterThan(0);
  }
  // Each subscriber also sees its run's warm-up tick (10 events).
  for (const sub of [rawSub, sdkSub]) {
    expect(sub.figures.delivered).toBe(4010);
    expect(sub.latency.count).toBe(4010);
  }
}, 120_000);
