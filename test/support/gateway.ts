import { resolve } from "node:path";
import type { Subprocess } from "bun";

export interface GatewayProcess {
  proc: Subprocess;
  port: number;
  url: string;
  wsUrl: string;
  /** Every stdout line so far (JSON log lines). */
  lines: string[];
  health(): Promise<any>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

const root = resolve(import.meta.dir, "../..");

/** Runs the gateway as users do, `bun src/main.ts`, as a separate process on a free port. */
export async function startGateway(env: Record<string, string> = {}, opts: { waitReady?: boolean; command?: string[]; cwd?: string } = {}): Promise<GatewayProcess> {
  const proc = Bun.spawn(opts.command ?? [process.execPath, "src/main.ts"], {
    cwd: root,
    env: { ...process.env, HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info", ...env },
    stdout: "pipe",
    stderr: "inherit",
  });
  // Never leave a gateway behind: not when start-up fails below, nor when the caller exits early.
  const killOnExit = () => proc.kill("SIGKILL");
  process.on("exit", killOnExit);
  const lines: string[] = [];
  let port = 0;
  const listening = (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (!port && line.includes('"msg":"listening"')) port = JSON.parse(line).port;
      }
    }
  })();
  void listening;
  const deadline = Date.now() + 60_000;
  while (!port) {
    if (proc.exitCode !== null) throw new Error(`gateway exited with ${proc.exitCode}: ${lines.join("\n")}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`gateway did not log "listening" within 60 s (is LOG_LEVEL above info?): ${lines.join("\n")}`);
    }
    await Bun.sleep(20);
  }
  const url = `http://127.0.0.1:${port}`;
  const g: GatewayProcess = {
    proc,
    port,
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    lines,
    health: async () => (await fetch(`${url}/health`)).json(),
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      const code = await proc.exited;
      process.off("exit", killOnExit);
      return code;
    },
  };
  if (opts.waitReady ?? true) {
    while ((await fetch(`${url}/health/ready`)).status !== 200) {
      if (Date.now() > deadline) throw new Error(`gateway never became ready: ${JSON.stringify(await g.health())}`);
      await Bun.sleep(50);
    }
  }
  return g;
}
