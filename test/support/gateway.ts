import { resolve } from "node:path";
import type { Subprocess } from "bun";
import { afterAll, beforeAll } from "bun:test";

export interface GatewayProcess {
  proc: Subprocess;
  port: number;
  url: string;
  wsUrl: string;
  /** Every stdout line so far (JSON log lines). */
  lines: string[];
  /** Every stderr line so far, when started with `captureStderr` (else stderr is the test's own). */
  errLines: string[];
  health(): Promise<any>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

const root = resolve(import.meta.dir, "../..");

/**
 * Runs the gateway as users do, `bun src/main.ts`, as a separate process on a free port.
 * `ca`: the CA that signed the gateway's certificate when it runs with TLS (the URLs are then
 * https:// and wss://, and health() and the readiness wait trust it).
 */
export async function startGateway(env: Record<string, string> = {}, opts: { waitReady?: boolean; command?: string[]; cwd?: string; ca?: string; captureStderr?: boolean } = {}): Promise<GatewayProcess> {
  const proc = Bun.spawn(opts.command ?? [process.execPath, "src/main.ts"], {
    cwd: root,
    env: { ...process.env, HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info", ...env },
    stdout: "pipe",
    stderr: opts.captureStderr ? "pipe" : "inherit",
  });
  // A test that signals the gateway itself (proc.kill) means it to end: stop() then does not call it a crash.
  let killedByTest = false;
  const kill = proc.kill.bind(proc);
  proc.kill = (signal?: number | NodeJS.Signals) => {
    killedByTest = true;
    kill(signal);
  };
  // Never leave a gateway behind: not when start-up fails below, nor when the caller exits early.
  const killOnExit = () => kill("SIGKILL");
  process.on("exit", killOnExit);
  const lines: string[] = [];
  const errLines: string[] = [];
  let port = 0;
  let tls = false;
  void collectLines(proc.stdout as ReadableStream<Uint8Array>, (line) => {
    lines.push(line);
    if (!port && line.includes('"msg":"listening"')) ({ port, tls = false } = JSON.parse(line));
  });
  if (opts.captureStderr) void collectLines(proc.stderr as ReadableStream<Uint8Array>, (line) => errLines.push(line));
  const deadline = Date.now() + 60_000;
  while (!port) {
    if (proc.exitCode !== null) throw new Error(`gateway exited with ${proc.exitCode}: ${lines.join("\n")}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`gateway did not log "listening" within 60 s (is LOG_LEVEL above info?): ${lines.join("\n")}`);
    }
    await Bun.sleep(20);
  }
  const url = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
  const get = (path: string) => fetch(`${url}${path}`, opts.ca ? { tls: { ca: opts.ca } } : {});
  const g: GatewayProcess = {
    proc,
    port,
    url,
    wsUrl: `${tls ? "wss" : "ws"}://127.0.0.1:${port}/ws`,
    lines,
    errLines,
    health: async () => (await get("/health")).json(),
    async stop(signal = "SIGTERM") {
      const running = proc.exitCode === null && proc.signalCode === null;
      if (running) proc.kill(signal);
      const code = await proc.exited;
      process.off("exit", killOnExit);
      // A gateway must drain and exit 0 on SIGTERM or SIGINT, and never end by itself: a test
      // after which either went otherwise fails here, whatever its own assertions said.
      const asked = running ? signal === "SIGTERM" || signal === "SIGINT" : !killedByTest;
      if (asked && code !== 0) {
        const how = running ? `on ${signal}` : "by itself, before the test stopped it";
        throw new Error(`the gateway exited ${how} with ${proc.signalCode ?? code}; its last lines:\n${[...lines.slice(-15), ...errLines.slice(-15)].join("\n")}`);
      }
      return code;
    },
  };
  if (opts.waitReady ?? true) {
    while ((await get("/health/ready")).status !== 200) {
      if (Date.now() > deadline) throw new Error(`gateway never became ready: ${JSON.stringify(await g.health())}`);
      await Bun.sleep(50);
    }
  }
  return g;
}

async function collectLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) onLine(buf);
}

/**
 * A gateway started before the tests of the enclosing describe block (or file) and stopped after
 * them: read `gw` inside the tests. With a function, the environment is made when it starts.
 */
export function gatewayForBlock(env: Record<string, string> | (() => Promise<Record<string, string>>)): { gw: GatewayProcess } {
  const block = {} as { gw: GatewayProcess };
  beforeAll(async () => {
    block.gw = await startGateway(typeof env === "function" ? await env() : env);
  }, 60_000);
  afterAll(() => block.gw?.stop(), 60_000);
  return block;
}
