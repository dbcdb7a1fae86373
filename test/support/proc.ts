import { readFileSync } from "node:fs";

/**
 * A process's resident memory in MiB, from /proc; 0 once it is gone, so a sampler left running by a
 * failed test cannot throw between tests.
 */
export function rssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
  } catch {
    return 0;
  }
}

/** CPU seconds the process has used (user + system), from /proc; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * Bytes waiting in the kernel's send queue of each TCP connection whose local port is `port`
 * (sent and not yet acknowledged by the peer, or not yet sent), by the peer's port: tx_queue in
 * /proc/net/tcp and tcp6.
 */
export function tcpSendQueues(port: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5 || f[3] !== "01") continue; // ESTABLISHED
      const local = Number.parseInt(f[1]!.split(":")[1]!, 16);
      if (local !== port) continue;
      out.set(Number.parseInt(f[2]!.split(":")[1]!, 16), Number.parseInt(f[4]!.split(":")[0]!, 16));
    }
  }
  return out;
}
