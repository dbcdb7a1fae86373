import { existsSync } from "node:fs";

/**
 * Finds a real Node (>= 20) for the benchmarks that measure the official Node client (S2 raw-node,
 * the S6 bridges). Under `bun run --bun`, `node` on PATH is a shim that is
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
  throw new Error(`no Node.js >= 20 found (tried ${candidates.join(", ")}); set NODE_BINARY`);
}
