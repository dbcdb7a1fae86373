import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { resolve } from "node:path";
import type { Subprocess } from "bun";
import { Packr } from "msgpackr";
import { LatencyHistogram } from "../harness/histogram";
import { numberArg, parseBenchArgs } from "../harness/options";
import { Progress } from "../harness/progress";
import { CpuMeter, rssBytes } from "../harness/processes";
import { type RunReport, machine } from "../harness/report";
import type { Scenario } from "../harness/scenario";
import { Stack } from "../harness/stack";
import type { ClientCommand, ClientReply } from "./s5-client";

/**
 * S5: many idle connections. Opens `--sockets` WebSockets (hello → welcome on each) from separate
 * client processes, `--concurrency` handshakes in flight, and measures the connect rate and latency,
 * the gateway's resident memory per idle connection, whether the sockets survive an idle period,
 * and how much of that memory the gateway gives back once they close.
 */
const CLIENT_SCRIPT = resolve(import.meta.dir, "s5-client.ts");
const MiB = 2 ** 20;

type Reply<K extends ClientReply["kind"]> = Extract<ClientReply, { kind: K }>;

/** One client process and its IPC: one command at a time, answered by a reply of a known kind. */
class LoadClient {
  progress = 0;
  private waiting?: { kind: string; resolve: (r: ClientReply) => void };
  readonly proc: Subprocess;

  constructor() {
    this.proc = Bun.spawn([process.execPath, CLIENT_SCRIPT], {
      stdio: ["ignore", "inherit", "inherit"],
      ipc: (m: ClientReply) => {
        if (m.kind === "progress") this.progress = m.done;
        else if (this.waiting?.kind === m.kind) {
          const w = this.waiting;
          this.waiting = undefined;
          w.resolve(m);
        }
      },
    });
    const kill = () => this.proc.kill("SIGKILL");
    process.on("exit", kill);
    void this.proc.exited.then(() => {
      process.off("exit", kill);
      this.waiting?.resolve({ kind: "closed", ms: 0, notClosed: -1 } as ClientReply);
    });
  }

  ask<K extends ClientReply["kind"]>(cmd: ClientCommand, kind: K, timeoutMs = 90_000): Promise<Reply<K>> {
    return new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`s5 client: no ${kind} reply to ${cmd.cmd} within ${timeoutMs / 1000} s`)), timeoutMs);
      this.waiting = {
        kind,
        resolve: (r) => {
          clearTimeout(timer);
          if (r.kind !== kind) rej(new Error(`s5 client exited (code ${this.proc.exitCode}) during ${cmd.cmd}`));
          else res(r as Reply<K>);
        },
      };
      this.proc.send(cmd);
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
    await this.proc.exited;
  }
}

/** A gauge from the gateway's /metrics (prom-client text format), or undefined. */
async function gauge(httpUrl: string, name: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${httpUrl}/metrics`)).text();
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** One socket through hello → welcome, then closed: a connection's one-time costs, paid before the baseline. */
async function warmUp(url: string): Promise<void> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error("s5 warm-up: no welcome within 10 s")), 10_000);
    ws.onopen = () => ws.send(new Uint8Array(new Packr({ useRecords: false }).pack({ t: 1, v: 1, client: "kgw-bench-s5-warmup" })));
    ws.onmessage = () => {
      clearTimeout(timer);
      res();
    };
    ws.onerror = () => rej(new Error(`s5 warm-up: could not connect to ${url}`));
  });
  await new Promise<void>((res) => {
    ws.onclose = () => res();
    ws.close();
  });
}

/** CPU the whole machine used over a window, as % of one core, from /proc/stat (all but idle and iowait). */
class MachineBusy {
  private readonly start = MachineBusy.read();

  private static read(): { busy: number; total: number } {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
  }

  stop(): number {
    const end = MachineBusy.read();
    const cores = cpus().length;
    return Math.round(((end.busy - this.start.busy) / Math.max(1, end.total - this.start.total)) * cores * 100);
  }
}

function merge(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

const mib = (b: number) => Number((b / MiB).toFixed(1));

export const s5: Scenario = {
  name: "s5",
  title: "idle connections: memory per socket and connect rate",
  async run(argv) {
    const { common: o, own } = parseBenchArgs(argv, "bun run bench -- s5 [options]", {
      sockets: { type: "string", default: "10000", help: "idle WebSockets to open" },
      concurrency: { type: "string", default: "200", help: "handshakes in flight at once, over all client processes" },
      clients: { type: "string", default: "2", help: "client processes the sockets are split over" },
      idle: { type: "string", default: "3", help: "seconds the sockets sit idle before the memory is read" },
      rounds: { type: "string", default: "2", help: "times the sockets are opened and closed; later rounds show whether the memory is reused" },
      sample: { type: "string", default: "200", help: "sockets that publish one event each after the idle period (0: none)" },
    });
    const num = (k: keyof typeof own, min: number) => numberArg(k, own[k], { min, integer: true });
    const sockets = num("sockets", 1);
    const concurrency = num("concurrency", 1);
    const nClients = Math.min(num("clients", 1), sockets);
    const idleS = num("idle", 0);
    const sample = num("sample", 0);
    const rounds = num("rounds", 1);
    const startedAt = new Date().toISOString();
    const notes: string[] = [];

    const stack = await Stack.create({ url: o.url, kafka: false });
    const clients: LoadClient[] = [];
    try {
      // No setting caps connections; the WebSocket idleTimeout (120 s, with pings) is far above
      // the idle period here, so the gateway runs with its defaults.
      const url = await stack.startGateway({});
      const gw = stack.gateway;
      const gwPid = gw?.proc.pid;
      const httpUrl = gw?.url;
      for (let i = 0; i < nClients; i++) clients.push(new LoadClient());

      // Warm up what the first connection and the first scrape set up once (code paths, prom-client),
      // so the baseline already holds it; then let start-up garbage settle.
      await warmUp(url);
      if (httpUrl) await gauge(httpUrl, "gateway_process_nodejs_heap_size_used_bytes");
      await Bun.sleep(1000);
      const rssBefore = gwPid ? rssBytes(gwPid) : 0;
      const heapBefore = httpUrl ? await gauge(httpUrl, "gateway_process_nodejs_heap_size_used_bytes") : undefined;
      const clientRssBefore = clients.reduce((a, c) => a + rssBytes(c.pid), 0);

      // Open.
      const openAll = async (label: string) => {
        const cpu = new CpuMeter({ ...stack.groups(), clients: () => clients.map((c) => c.pid) });
        const busy = new MachineBusy();
        cpu.start();
        const progress = new Progress(label);
        const ticker = setInterval(() => progress.update(`${clients.reduce((a, c) => a + c.progress, 0)} / ${sockets} handshakes`), 500);
        const t0 = performance.now();
        const per = (i: number) => Math.floor(sockets / nClients) + (i < sockets % nClients ? 1 : 0);
        const perConc = (i: number) => Math.max(1, Math.floor(concurrency / nClients) + (i < concurrency % nClients ? 1 : 0));
        const opened = await Promise.all(clients.map((c, i) => c.ask({ cmd: "open", url, count: per(i), concurrency: perConc(i) }, "opened")));
        const seconds = (performance.now() - t0) / 1000;
        clearInterval(ticker);
        progress.done();
        const cpuSplit = cpu.stop();
        const machineBusy = busy.stop();
        const welcome = new LatencyHistogram();
        const upgrade = new LatencyHistogram();
        const errors: Record<string, number> = {};
        for (const r of opened) {
          for (const us of r.welcomeMicros) welcome.record(us);
          for (const us of r.openMicros) upgrade.record(us);
          merge(errors, r.errors);
        }
        const ok = opened.reduce((a, r) => a + r.ok, 0);
        const failed = opened.reduce((a, r) => a + r.failed, 0);
        if (failed > 0) notes.push(`${label}: ${failed} connects failed: ${JSON.stringify(errors)}`);
        // What the rest of the machine took while we connected: on a shared box, a slow run with
        // little CPU of our own is someone else's load, not the gateway's.
        const others = Math.max(0, machineBusy - Object.values(cpuSplit).reduce((a, b) => a + b, 0));
        return { ok, failed, seconds, connectsPerSec: Math.round(ok / seconds), welcome, upgrade, cpu: cpuSplit, others };
      };
      const first = await openAll("s5 connect");
      const { ok, failed, welcome, upgrade, connectsPerSec } = first;
      const connectS = first.seconds;
      const connectCpu = first.cpu;
      const gwConnections = gw ? (await gw.health()).connections : undefined;

      // Idle: nothing should run per connection (no per-socket timers), so the gateway's CPU stays near 0.
      const idleCpu = new CpuMeter(stack.groups());
      idleCpu.start();
      await Bun.sleep(idleS * 1000);
      const idleGatewayCpu = gwPid && idleS > 0 ? idleCpu.stop().gateway : undefined;
      const rssAfter = gwPid ? rssBytes(gwPid) : 0;
      const heapAfter = httpUrl ? await gauge(httpUrl, "gateway_process_nodejs_heap_size_used_bytes") : undefined;
      const clientRssAfter = clients.reduce((a, c) => a + rssBytes(c.pid), 0);
      const status = await Promise.all(clients.map((c) => c.ask({ cmd: "status" }, "status")));
      const stillOpen = status.reduce((a, s) => a + s.open, 0);
      const closesDuringIdle = status.reduce((a, s) => a + s.closedDuringIdle, 0);
      const closeCodes: Record<string, number> = {};
      for (const s of status) merge(closeCodes, s.closeCodes);
      if (closesDuringIdle > 0) notes.push(`close codes during idle: ${JSON.stringify(closeCodes)}`);

      // Alive: a publish on a sample of the idle sockets, answered.
      const topic = o.topic ?? `s5-${Date.now()}`;
      const perSample = (i: number) => Math.floor(sample / nClients) + (i < sample % nClients ? 1 : 0);
      const published = sample > 0 ? await Promise.all(clients.map((c, i) => c.ask({ cmd: "publish", n: perSample(i), topic }, "published"))) : [];
      const acked = published.reduce((a, p) => a + p.acked, 0);
      const notAcked = published.reduce((a, p) => a + p.nacked + p.unanswered, 0);
      const ackLatency = new LatencyHistogram();
      for (const p of published) for (const us of p.micros) ackLatency.record(us);
      if (notAcked > 0) {
        const codes: Record<string, number> = {};
        for (const p of published) merge(codes, p.codes);
        notes.push(`${notAcked} of the sample publishes got no ack: ${JSON.stringify(codes)}`);
      }

      // Close, and watch the gateway's memory come back.
      const tClose = performance.now();
      const closed = await Promise.all(clients.map((c) => c.ask({ cmd: "close" }, "closed")));
      const closeS = (performance.now() - tClose) / 1000;
      const notClosed = closed.reduce((a, c) => a + Math.max(0, c.notClosed), 0);
      const rssAfterClose: Array<[number, number]> = [];
      if (gwPid) {
        for (let s = 1; s <= 3; s++) {
          await Bun.sleep(1000);
          rssAfterClose.push([s, rssBytes(gwPid)]);
        }
      }
      const gwConnectionsAfterClose = gw ? (await gw.health()).connections : undefined;

      // Further rounds: the same sockets again. If the memory kept after a close is reused, the
      // gateway ends near the first round's peak each time; if it leaks, one ΔRSS higher per round.
      const again: Array<{ round: number; open: Awaited<ReturnType<typeof openAll>>; rss: number; heap?: number; connections?: number }> = [];
      for (let round = 2; round <= rounds; round++) {
        const r = await openAll(`s5 round ${round}`);
        await Bun.sleep(idleS * 1000);
        const rss = gwPid ? rssBytes(gwPid) : 0;
        const heap = httpUrl ? await gauge(httpUrl, "gateway_process_nodejs_heap_size_used_bytes") : undefined;
        const connections = gw ? (await gw.health()).connections : undefined;
        await Promise.all(clients.map((c) => c.ask({ cmd: "close" }, "closed")));
        again.push({ round, open: r, rss, heap, connections });
        await Bun.sleep(1000);
      }

      const figures: Record<string, number | string> = {
        sockets: ok,
        failed,
        connectsPerSec,
        "connect s": Number(connectS.toFixed(2)),
        "open p50 ms": upgrade.percentileMs(50),
        "open p99 ms": upgrade.percentileMs(99),
        closesDuringIdle,
        stillOpen,
        "other load % of a core": first.others,
      };
      if (gwConnections !== undefined) figures["gateway connections"] = gwConnections;
      const headline: Record<string, number | string> = {
        sockets: ok,
        connectsPerSec,
        "connect p50 ms (open + hello/welcome)": welcome.percentileMs(50),
        "connect p99 ms (open + hello/welcome)": welcome.percentileMs(99),
      };
      if (gwPid) {
        const perConn = Math.round((rssAfter - rssBefore) / Math.max(1, ok));
        Object.assign(figures, { "gateway RSS before MiB": mib(rssBefore), "gateway RSS after MiB": mib(rssAfter), "bytes per idle connection": perConn });
        Object.assign(headline, { "gateway RSS before MiB": mib(rssBefore), "gateway RSS after MiB": mib(rssAfter), "bytes per idle connection (ΔRSS / sockets)": perConn });
        if (heapBefore !== undefined && heapAfter !== undefined) {
          const heapPer = Math.round((heapAfter - heapBefore) / Math.max(1, ok));
          figures["JS heap bytes per connection"] = heapPer;
          headline["gateway JS heap used before/after MiB"] = `${mib(heapBefore)} / ${mib(heapAfter)} (${heapPer} B per connection)`;
        }
        const last = rssAfterClose.at(-1)?.[1];
        if (last !== undefined) {
          const given = rssAfter - rssBefore > 0 ? (rssAfter - last) / (rssAfter - rssBefore) : 0;
          headline["gateway RSS 1/2/3 s after close MiB"] = rssAfterClose.map(([, b]) => mib(b)).join(" / ");
          headline["share of ΔRSS returned 3 s after close"] = `${Math.round(given * 100)}%`;
        }
        if (again.length > 0) {
          headline[`gateway RSS with all open, rounds 1–${rounds} MiB`] = [rssAfter, ...again.map((a) => a.rss)].map(mib).join(" / ");
          if (heapAfter !== undefined) headline[`gateway JS heap with all open, rounds 1–${rounds} MiB`] = [heapAfter, ...again.map((a) => a.heap ?? 0)].map(mib).join(" / ");
        }
      } else {
        notes.push("external gateway (--url): its memory cannot be read from here; connect rate only");
      }
      if (idleGatewayCpu !== undefined) headline["gateway CPU while idle, % of a core"] = idleGatewayCpu;
      headline["closes during idle"] = closesDuringIdle;
      if (sample > 0) headline["sample publishes acked"] = `${acked} / ${acked + notAcked}`;
      headline["client RSS per socket (side figure)"] = Math.round((clientRssAfter - clientRssBefore) / Math.max(1, ok));
      headline["close all s"] = Number(closeS.toFixed(2));
      if (gwConnectionsAfterClose !== undefined) headline["gateway connections after close"] = gwConnectionsAfterClose;
      if (notClosed > 0) notes.push(`${notClosed} sockets had no close event within 30 s of close()`);
      notes.push(
        `${nClients} client process(es), ${concurrency} handshakes in flight; "other load" is the machine's CPU during the connect phase beyond the gateway, its workers, the bench and the clients; connect latency is new WebSocket() → welcome frame, open latency is new WebSocket() → open event; idle ${idleS} s; ${gw ? "gateway started with its default settings (there is no connection cap; the WebSocket idleTimeout is 120 s, with pings)" : "external gateway, so its CPU counts as other load"}`,
      );

      const runs: RunReport[] = [
        { label: `s5 ${sockets} idle sockets`, figures, latency: welcome.summaryMs(), curve: welcome.curveMs(), cpu: connectCpu },
      ];
      for (const a of again) {
        const f: Record<string, number | string> = { sockets: a.open.ok, failed: a.open.failed, connectsPerSec: a.open.connectsPerSec, "connect s": Number(a.open.seconds.toFixed(2)), "open p50 ms": a.open.upgrade.percentileMs(50), "open p99 ms": a.open.upgrade.percentileMs(99), "other load % of a core": a.open.others };
        if (a.connections !== undefined) f["gateway connections"] = a.connections;
        if (gwPid) f["gateway RSS after MiB"] = mib(a.rss);
        runs.push({ label: `s5 round ${a.round} (reconnect)`, figures: f, latency: a.open.welcome.summaryMs(), curve: a.open.welcome.curveMs(), cpu: a.open.cpu });
      }
      if (acked > 0) runs.push({ label: `s5 sample publish ack`, figures: { acked, notAcked }, latency: ackLatency.summaryMs() });
      return { scenario: "s5", title: s5.title, machine: machine(), startedAt, figures: headline, runs, notes };
    } finally {
      await Promise.all(clients.map((c) => c.stop()));
      await stack.stop();
    }
  },
};
