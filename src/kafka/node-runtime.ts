import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { GatewayError } from "../protocol/errors";

const projectRoot = resolve(import.meta.dir, "../..");

/**
 * Finds a real Node (>= 20) for the workers. Under `bun run --bun`, `node` on PATH is a shim that is
 * Bun itself, in which the librdkafka addon does not load, so each candidate is asked what it is.
 */
export function resolveNodeBinary(preferred?: string): string {
  const candidates = [preferred, "/usr/bin/node", "/usr/local/bin/node", Bun.which("node")].filter(Boolean) as string[];
  for (const bin of candidates) {
    if (!existsSync(bin)) continue;
    const probe = Bun.spawnSync([bin, "-e", "process.stdout.write(typeof Bun === 'undefined' ? process.versions.node : 'bun')"]);
    const answer = probe.stdout.toString();
    if (probe.exitCode === 0 && answer !== "bun" && Number(answer.split(".")[0]) >= 20) return bin;
  }
  throw new GatewayError("UNAVAILABLE", `no Node.js >= 20 found for the Kafka workers (tried ${candidates.join(", ")}); set NODE_BINARY`);
}

/**
 * Bundles worker.ts (and the IPC code it shares with the gateway) into one CommonJS file for Node.
 * The addon stays external and is found through NODE_PATH, pointing at our node_modules.
 */
export async function buildWorkerBundle(outDir: string): Promise<{ file: string; nodePath: string }> {
  mkdirSync(outDir, { recursive: true });
  const result = await Bun.build({
    entrypoints: [join(import.meta.dir, "worker.ts")],
    outdir: outDir,
    target: "node",
    format: "cjs",
    naming: "kafka-worker.cjs",
    external: ["@confluentinc/kafka-javascript"],
  });
  if (!result.success) {
    throw new GatewayError("INTERNAL", `could not bundle the Kafka worker: ${result.logs.map(String).join("; ")}`);
  }
  return { file: join(outDir, "kafka-worker.cjs"), nodePath: join(projectRoot, "node_modules") };
}

/**
 * Removes worker bundles (kgw-worker-<pid>[-id]) and IPC sockets (kgw-<pid>-id.sock) that gateways
 * killed without a clean stop left in `dir`. Only those of processes that no longer exist: a live
 * gateway's are its own business.
 */
export function removeStaleWorkerFiles(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^kgw-worker-(\d+)(?:-[0-9a-f]{8})?$/.exec(name) ?? /^kgw-(\d+)-[0-9a-f]{8}\.sock$/.exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
