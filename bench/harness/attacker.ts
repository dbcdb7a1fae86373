/**
 * One hostile client for the flood-isolation bench (bench/scenarios/s7-flood.ts), in a process of
 * its own so that its CPU is its own:
 *   bun bench/harness/attacker.ts <flood|connect|malformed|replay> WS_URL SECONDS [START_AT] [TOPIC]
 * Prints one JSON line at the end: what it sent and what it got back, by kind and code.
 *
 * - flood: pipelines 100-event batches without waiting for acks, 20 at a time, as fast as it can;
 *   closed for it, it connects again at once.
 * - connect: opens connections as fast as it can (64 handshakes at once), says hello, closes.
 * - malformed: sends frames that do not decode (bad msgpack, bad JSON, truncated, wrong types), with
 *   correlation ids where a reader could find one, as fast as the replies come back.
 * - replay: REPLAYS connections each replaying TOPIC from `earliest`, reading as fast as it can, and
 *   starting again from `earliest` each time it goes live: the most history one client address may
 *   ask for at once (MAX_REPLAYS_PER_ADDRESS).
 */
import { Packr, Unpackr } from "msgpackr";

const [mode, url, seconds, startAt, topic] = process.argv.slice(2);
// With START_AT (ms since the epoch), the attack begins then: the process's own start-up (a second
// of a core for Bun's, on the box under test) is over before the control measures.
if (startAt) await Bun.sleep(Math.max(0, Number(startAt) - Date.now()));
const until = Date.now() + Number(seconds) * 1000;
const counts: Record<string, number> = {};
const count = (k: string, n = 1) => void (counts[k] = (counts[k] ?? 0) + n);
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

function open(): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url!);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("connect failed"));
  });
}

function replyKind(data: unknown): string {
  try {
    const f = typeof data === "string" ? JSON.parse(data) : unpackr.unpack(new Uint8Array(data as ArrayBuffer));
    return f.code ? `${f.t}:${f.code}` : String(f.t);
  } catch {
    return "undecodable";
  }
}

async function flood(): Promise<void> {
  const events = Array.from({ length: 100 }, (_, i) => ({ type: "flood", key: `k${i % 16}`, data: { i, pad: "x".repeat(100) } }));
  let cid = 1;
  // Closed for ignoring RATE_LIMITED (4429), it comes straight back, for as long as the attack lasts.
  while (Date.now() < until) {
    const ws = await open().catch(() => null);
    if (!ws) {
      count("refused");
      await Bun.sleep(10);
      continue;
    }
    count("opened");
    const openedAt = performance.now();
    ws.send(packr.pack({ t: 1, v: 1 }));
    ws.onmessage = (m) => count(`reply ${replyKind(m.data)}`);
    // How long the gateway let it flood before closing it: what it was allowed is that long at its rate.
    const closed = new Promise<void>((r) => (ws.onclose = (e) => (count(`closed ${e.code}`), count(`ms open before ${e.code}`, Math.round(performance.now() - openedAt)), r())));
    while (Date.now() < until && ws.readyState === WebSocket.OPEN) {
      for (let i = 0; i < 20; i++) ws.send(packr.pack({ t: 11, cid: cid++, events }));
      count("sent", 20);
      await Bun.sleep(0);
    }
    if (ws.readyState === WebSocket.OPEN) ws.close();
    await Promise.race([closed, Bun.sleep(2000)]);
  }
}

async function connect(): Promise<void> {
  const one = async () => {
    try {
      const ws = await open();
      ws.send(packr.pack({ t: 1, v: 1 }));
      await new Promise<void>((r) => {
        ws.onmessage = () => r();
        ws.onclose = () => r();
        setTimeout(r, 5000);
      });
      ws.close();
      count("opened");
    } catch {
      count("refused");
    }
  };
  const lanes = Array.from({ length: 64 }, async () => {
    while (Date.now() < until) await one();
  });
  await Promise.all(lanes);
}

async function malformed(): Promise<void> {
  // Its address may already be refused (another attacker's close penalised it): it keeps trying.
  let first: WebSocket | null = null;
  while (!first && Date.now() < until) first = await open().catch(() => (count("refused"), Bun.sleep(10).then(() => null)));
  if (!first) return;
  let ws = first;
  let inflight = 0;
  const attach = (s: WebSocket) => {
    s.onmessage = (m) => {
      inflight--;
      count(`reply ${replyKind(m.data)}`);
    };
    s.onclose = (e) => count(`closed ${e.code}`);
  };
  attach(ws);
  let cid = 1;
  const bad = (): string | Uint8Array => {
    const c = cid++;
    switch (c % 6) {
      case 0: return new Uint8Array([0x82, 0xa1, 0x74, 0x0a, 0xa3, 0x63, 0x69, 0x64, 0xce, 0, 0, c >> 8, c & 0xff, 0xdc, 0xff, 0xff]); // a whole frame, then bytes after it
      case 1: return `{"t":10,"cid":${c},"event":{"type":"x",`; // truncated JSON
      case 2: return packr.pack({ t: 10, cid: c, event: { type: 42 } }); // wrong type
      case 3: return new Uint8Array(Array.from({ length: 64 }, (_, i) => (i * 37 + c) & 0xff)); // noise
      case 4: return `{"t":10,"cid":${c},"event":${"[".repeat(200)}`; // deep and unterminated
      default: return packr.pack({ t: 99, cid: c }); // unknown frame type
    }
  };
  while (Date.now() < until) {
    if (ws.readyState !== WebSocket.OPEN) {
      ws = await open().catch(() => ws);
      attach(ws);
      inflight = 0;
    }
    while (inflight < 256 && ws.readyState === WebSocket.OPEN) {
      ws.send(bad());
      inflight++;
      count("sent");
    }
    await Bun.sleep(1);
  }
  ws.close();
}

// MAX_REPLAYS_PER_ADDRESS's default: more from one address are refused.
const REPLAYS = 16;

async function replay(): Promise<void> {
  const lanes = Array.from({ length: REPLAYS }, async (_, lane) => {
    const ws = await open().catch(() => null);
    if (!ws) return count("refused");
    let cid = 0;
    let round = 0;
    const subscribe = () => ws.send(packr.pack({ t: 12, cid: ++cid, sub: `r${lane}-${++round}`, topic: topic ?? "s7-history", start: "earliest" }));
    ws.onmessage = (m) => {
      const data = m.data as ArrayBuffer;
      // Event frames are only counted: a replaying client on another machine decodes them on its own CPU.
      if (data.byteLength > 512) return count("event bytes", data.byteLength);
      const f = unpackr.unpack(new Uint8Array(data));
      if (f.t === 26) {
        count("live");
        ws.send(packr.pack({ t: 13, cid: ++cid, sub: f.sub }));
        subscribe();
      } else if (f.code) count(`reply ${f.t}:${f.code}`);
    };
    const closed = new Promise<void>((r) => (ws.onclose = (e) => (count(`closed ${e.code}`), r())));
    ws.send(packr.pack({ t: 1, v: 1 }));
    subscribe();
    await Promise.race([closed, Bun.sleep(Math.max(0, until - Date.now()))]);
    ws.close();
  });
  await Promise.all(lanes);
}

await { flood, connect, malformed, replay }[mode as "flood"]();
console.log(JSON.stringify({ mode, counts }));
process.exit(0);
