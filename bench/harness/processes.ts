import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU and memory of local processes, read from /proc: the split of the machine between the
 * gateway, its Kafka workers, the broker and the load client is half of what a figure means on
 * a shared 2-core box.
 */
const TICKS_PER_SECOND = 100; // USER_HZ; 100 on every Linux we run on

/** utime + stime of a process, in seconds, or 0 if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 2 (comm) may hold spaces; count the fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Resident memory of a process in bytes (VmRSS), or 0 if it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Direct children of a process (the gateway's Kafka workers). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export type ProcessGroups = Record<string, () => number[]>;

/** CPU used by each named group of processes over a window, as % of one core. */
export class CpuMeter {
  private startAt = 0;
  private readonly before = new Map<string, number>();

  constructor(private readonly groups: ProcessGroups) {}

  start(): void {
    this.startAt = performance.now();
    for (const [name, pids] of Object.entries(this.groups)) this.before.set(name, sum(pids().map(cpuSeconds)));
  }

  /** % of one core per group since start(); 200% is the whole of a 2-core machine. */
  stop(): Record<string, number> {
    const secs = (performance.now() - this.startAt) / 1000;
    const out: Record<string, number> = {};
    for (const [name, pids] of Object.entries(this.groups)) {
      out[name] = Math.round(((sum(pids().map(cpuSeconds)) - this.before.get(name)!) / secs) * 100);
    }
    return out;
  }
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/**
 * utime + stime of each thread of a process, in seconds, summed by thread name with digits dropped
 * (librdkafka's "rdk:broker1" and "rdk:broker-1" → "rdk:broker"; the JS thread is "bun"): where a
 * process's CPU goes, without a profiler.
 */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")).replace(/-?\d+$/, "").replace(/\d+/g, "#");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(name, (out.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}
