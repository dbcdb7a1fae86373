import { Unpackr } from "msgpackr";

/**
 * Test helpers that see the wire as a non-JS client does: an encoder that writes integers the way
 * Python's msgpack (and most non-JS encoders) do, and a socket that keeps every frame it receives.
 */

/** Bytes pyPack writes as they are: a hand-made value (a timestamp extension, say) inside a frame. */
export class RawMsgpack {
  constructor(readonly bytes: Uint8Array) {}
}

/** msgpack as Python's msgpack writes it: the smallest integer form, so 2^32 and up are uint64/int64. */
export function pyPack(v: unknown): Uint8Array {
  const out: number[] = [];
  const u = (n: bigint, bytes: number) => {
    for (let i = bytes - 1; i >= 0; i--) out.push(Number((n >> BigInt(8 * i)) & 0xffn));
  };
  const enc = (x: unknown): void => {
    if (x instanceof RawMsgpack) out.push(...x.bytes);
    else if (x === null || x === undefined) out.push(0xc0);
    else if (x === true) out.push(0xc3);
    else if (x === false) out.push(0xc2);
    else if (typeof x === "bigint" || (typeof x === "number" && Number.isInteger(x))) {
      const n = BigInt(x);
      if (n >= 0n) {
        if (n < 128n) out.push(Number(n));
        else if (n < 256n) out.push(0xcc), u(n, 1);
        else if (n < 65536n) out.push(0xcd), u(n, 2);
        else if (n < 2n ** 32n) out.push(0xce), u(n, 4);
        else out.push(0xcf), u(n, 8);
      } else if (n >= -32n) out.push(Number(n + 256n));
      else if (n >= -128n) out.push(0xd0), u(n + 256n, 1);
      else if (n >= -32768n) out.push(0xd1), u(n + 65536n, 2);
      else if (n >= -(2n ** 31n)) out.push(0xd2), u(n + 2n ** 32n, 4);
      else out.push(0xd3), u(n + 2n ** 64n, 8);
    } else if (typeof x === "number") {
      const b = new DataView(new ArrayBuffer(8));
      b.setFloat64(0, x);
      out.push(0xcb, ...new Uint8Array(b.buffer));
    } else if (typeof x === "string") {
      const s = new TextEncoder().encode(x);
      if (s.length < 32) out.push(0xa0 | s.length);
      else if (s.length < 256) out.push(0xd9, s.length);
      else if (s.length < 65536) out.push(0xda), u(BigInt(s.length), 2);
      else out.push(0xdb), u(BigInt(s.length), 4);
      out.push(...s);
    } else if (x instanceof Uint8Array) {
      out.push(0xc6), u(BigInt(x.length), 4), out.push(...x);
    } else if (Array.isArray(x)) {
      if (x.length < 16) out.push(0x90 | x.length);
      else out.push(0xdc), u(BigInt(x.length), 2);
      x.forEach(enc);
    } else if (typeof x === "object") {
      const entries = Object.entries(x as Record<string, unknown>);
      if (entries.length < 16) out.push(0x80 | entries.length);
      else out.push(0xde), u(BigInt(entries.length), 2);
      for (const [k, val] of entries) enc(k), enc(val);
    } else throw new Error(`cannot encode ${typeof x}`);
  };
  enc(v);
  return new Uint8Array(out);
}

/** Concatenates byte arrays, to build hostile frames by hand. */
export const bytes = (...parts: Array<Uint8Array | number[]>) => new Uint8Array(parts.flatMap((p) => [...p]));

// Replies decoded with 64-bit integers as BigInt, so a test can tell an int64 from a float.
const unpackr = new Unpackr({ useRecords: false, int64AsType: "bigint" });

export interface Received {
  raw: Uint8Array | string;
  frame: Record<string, any>;
}

/** A WebSocket that keeps every frame, in order, raw and decoded. */
export class RawSocket {
  readonly received: Received[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    ws.onmessage = (m) => {
      const raw = typeof m.data === "string" ? m.data : new Uint8Array(m.data as ArrayBuffer);
      this.received.push({ raw, frame: typeof raw === "string" ? JSON.parse(raw) : (unpackr.unpack(raw) as Record<string, any>) });
    };
    this.closed = new Promise((resolve) => (ws.onclose = (e) => resolve({ code: e.code, reason: e.reason })));
  }

  static async connect(url: string, hello?: "msgpack" | "json"): Promise<RawSocket> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`could not connect to ${url}`));
    });
    const s = new RawSocket(ws);
    if (hello) {
      s.send(hello === "json" ? JSON.stringify({ t: 1, v: 1 }) : pyPack({ t: 1, v: 1 }));
      await s.waitFor((r) => r.frame.t === 2);
      s.received.length = 0;
    }
    return s;
  }

  send(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  /** Waits until some received frame satisfies `pred` (or `count` of them do); throws after `timeoutMs`. */
  async waitFor(pred: (r: Received) => boolean, count = 1, timeoutMs = 20_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hits = this.received.filter(pred);
      if (hits.length >= count) return hits;
      if (Date.now() > deadline) throw new Error(`only ${hits.length}/${count} matching frames after ${timeoutMs} ms; got ${JSON.stringify(this.received.map((r) => r.frame), (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`);
      await Bun.sleep(10);
    }
  }

  withCid(cid: number): Received[] {
    return this.received.filter((r) => r.frame.cid === cid);
  }

  close(): void {
    this.ws.close();
  }
}

/**
 * A connection that publishes throughout a test, a few requests in flight at a time, and records
 * every reply: harm done to other connections must never cost it an ack.
 */
export class ControlPublisher {
  sent = 0;
  readonly replies: Array<Record<string, any>> = [];
  private running = true;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly sock: RawSocket, private readonly topic: string) {}

  start(): void {
    this.loop = (async () => {
      while (this.running) {
        const first = this.sent + 1;
        for (let i = 0; i < 5; i++) {
          this.sent++;
          this.sock.send(JSON.stringify({ t: 10, cid: this.sent, topic: this.topic, event: { type: "control", data: { i: this.sent } } }));
        }
        await this.sock.waitFor((r) => typeof r.frame.cid === "number" && r.frame.cid >= first, 5);
        await Bun.sleep(5);
      }
    })();
  }

  /** Stops and returns once every request sent has its reply. */
  async stop(): Promise<Array<Record<string, any>>> {
    this.running = false;
    await this.loop;
    const all = await this.sock.waitFor((r) => typeof r.frame.cid === "number", this.sent);
    return all.map((r) => r.frame);
  }
}
