/**
 * The load client of S5, run as its own process (`bun bench/scenarios/s5-client.ts`, spawned with
 * IPC by s5-connections.ts) so that its sockets, file descriptors and CPU are not the gateway's nor
 * the bench's. It obeys one command at a time from the parent:
 *
 *   open    open `count` WebSockets, `concurrency` at a time, each through hello → welcome
 *   status  how many are still open, and the close codes of those that closed on their own
 *   publish publish one event on each of the first `n` sockets and wait for the acks
 *   close   close them all and wait for the close events
 *
 * After a close, `open` may be sent again (the scenario's second round).
 */
import { Packr, Unpackr } from "msgpackr";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });
const HELLO = packr.pack({ t: 1, v: 1, client: "kgw-bench-s5" });
const CONNECT_TIMEOUT_MS = 30_000;

export type ClientCommand =
  | { cmd: "open"; url: string; count: number; concurrency: number }
  | { cmd: "status" }
  | { cmd: "publish"; n: number; topic: string }
  | { cmd: "close" };

export type ClientReply =
  | { kind: "progress"; done: number }
  | { kind: "opened"; ok: number; failed: number; errors: Record<string, number>; welcomeMicros: number[]; openMicros: number[]; ms: number }
  | { kind: "status"; open: number; closedDuringIdle: number; closeCodes: Record<string, number> }
  | { kind: "published"; acked: number; nacked: number; unanswered: number; micros: number[]; codes: Record<string, number> }
  | { kind: "closed"; ms: number; notClosed: number };

interface Sock {
  ws: WebSocket;
  open: boolean;
  /** Called with each decoded frame after the welcome. */
  onFrame?: (f: Record<string, any>) => void;
}

let socks: Sock[] = [];
let closedOnTheirOwn = 0;
const closeCodes: Record<string, number> = {};
let closing = false;
let pendingCloses: (() => void) | undefined;

function reply(r: ClientReply): void {
  process.send!(r);
}

function bump(m: Record<string, number>, k: string): void {
  m[k] = (m[k] ?? 0) + 1;
}

/** One socket through hello → welcome: [µs to open, µs to welcome]. */
function connectOne(url: string): Promise<[number, number]> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const s: Sock = { ws, open: false };
    let tOpen = 0;
    let settled = false;
    const timer = setTimeout(() => fail(new Error("timeout")), CONNECT_TIMEOUT_MS);
    function fail(e: Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        ws.close();
      } catch {}
      reject(e);
    }
    ws.onopen = () => {
      tOpen = performance.now();
      ws.send(HELLO);
    };
    ws.onerror = () => fail(new Error("error"));
    ws.onmessage = (m) => {
      const f = unpackr.unpack(new Uint8Array(m.data as ArrayBuffer)) as Record<string, any>;
      if (!settled) {
        if (f.t !== 2) return fail(new Error(`not welcome: t=${f.t} ${f.code ?? ""}`));
        settled = true;
        clearTimeout(timer);
        s.open = true;
        socks.push(s);
        const now = performance.now();
        resolve([(tOpen - t0) * 1000, (now - t0) * 1000]);
        return;
      }
      s.onFrame?.(f);
    };
    ws.onclose = (e) => {
      if (!settled) return fail(new Error(`closed ${e.code}`));
      if (!s.open) return;
      s.open = false;
      if (closing) {
        openCount--;
        if (openCount === 0) pendingCloses?.();
        return;
      }
      openCount--;
      closedOnTheirOwn++;
      bump(closeCodes, String(e.code));
    };
  });
}

let openCount = 0;

async function open(url: string, count: number, concurrency: number): Promise<void> {
  // A second round starts from a clean slate: the sockets of the first were all closed.
  socks = socks.filter((s) => s.open);
  closing = false;
  const started = performance.now();
  const welcomeMicros: number[] = [];
  const openMicros: number[] = [];
  const errors: Record<string, number> = {};
  let next = 0;
  let done = 0;
  let failed = 0;
  const progress = setInterval(() => reply({ kind: "progress", done }), 500);
  async function lane(): Promise<void> {
    while (next < count) {
      next++;
      try {
        const [o, w] = await connectOne(url);
        openMicros.push(o);
        welcomeMicros.push(w);
        openCount++;
      } catch (e) {
        failed++;
        bump(errors, (e as Error).message);
      }
      done++;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  clearInterval(progress);
  reply({ kind: "opened", ok: welcomeMicros.length, failed, errors, welcomeMicros, openMicros, ms: performance.now() - started });
}

async function publish(n: number, topic: string): Promise<void> {
  const sample = socks.filter((s) => s.open).slice(0, n);
  const micros: number[] = [];
  const codes: Record<string, number> = {};
  let acked = 0;
  let nacked = 0;
  const answers = sample.map(
    (s, i) =>
      new Promise<void>((resolve) => {
        const t0 = performance.now();
        const timer = setTimeout(() => {
          s.onFrame = undefined;
          resolve();
        }, 10_000);
        s.onFrame = (f) => {
          if (f.cid !== i + 1) return;
          clearTimeout(timer);
          s.onFrame = undefined;
          if (f.t === 20) {
            acked++;
            micros.push((performance.now() - t0) * 1000);
          } else {
            nacked++;
            bump(codes, String(f.code ?? `t=${f.t}`));
          }
          resolve();
        };
        s.ws.send(packr.pack({ t: 10, cid: i + 1, topic, event: { type: "bench.s5", key: `k${i}`, data: "alive" } }));
      }),
  );
  await Promise.all(answers);
  reply({ kind: "published", acked, nacked, unanswered: sample.length - acked - nacked, micros, codes });
}

async function closeAll(): Promise<void> {
  const started = performance.now();
  closing = true;
  const allClosed = new Promise<void>((resolve) => {
    pendingCloses = resolve;
    if (openCount === 0) resolve();
  });
  for (const s of socks) if (s.open) s.ws.close(1000, "bench done");
  await Promise.race([allClosed, Bun.sleep(30_000)]);
  reply({ kind: "closed", ms: performance.now() - started, notClosed: openCount });
}

process.on("message", (m: ClientCommand) => {
  switch (m.cmd) {
    case "open":
      void open(m.url, m.count, m.concurrency);
      return;
    case "status":
      reply({ kind: "status", open: openCount, closedDuringIdle: closedOnTheirOwn, closeCodes });
      return;
    case "publish":
      void publish(m.n, m.topic);
      return;
    case "close":
      void closeAll();
      return;
  }
});
