import { expect, test } from "bun:test";
import { resolve } from "node:path";

const root = resolve(import.meta.dir, "../..");

test("scripts/start serves with no bun on PATH, as on a fresh machine", async () => {
  const proc = Bun.spawn(["bash", "scripts/start"], {
    cwd: root,
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: process.env.HOME ?? "/root", HOST: "127.0.0.1", PORT: "0", KAFKA_BROKERS: "" },
    stdout: "pipe",
    stderr: "pipe",
  });
  let port = 0;
  const decoder = new TextDecoder();
  let out = "";
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const deadline = Date.now() + 60_000;
  while (!port && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    out += decoder.decode(value);
    const line = out.split("\n").find((l) => l.includes('"msg":"listening"') && l.endsWith("}"));
    if (line) port = JSON.parse(line).port;
  }
  try {
    expect(port).toBeGreaterThan(0);
    expect((await fetch(`http://127.0.0.1:${port}/health/ready`)).status).toBe(200);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
}, 90_000);
