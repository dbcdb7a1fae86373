import { Packr, Unpackr } from "msgpackr";

/** A minimal client of the gateway's wire protocol, used by tests and benchmarks over real sockets. */
export type Frame = Record<string, any> & { t: number };
export type Codec = "msgpack" | "json";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

export class GatewayClient {
  private cid = 1;
  private readonly pending = new Map<number, (f: Frame) => void>();
  private readonly uncorrelated: Frame[] = [];
  private waiters: Array<(f: Frame) => void> = [];
  private readonly subHandlers = new Map<string, (f: Frame) => void>();
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(
    readonly ws: WebSocket,
    readonly codec: Codec,
  ) {
    ws.binaryType = "arraybuffer";
    ws.onmessage = (m) => this.onFrame(typeof m.data === "string" ? JSON.parse(m.data) : unpackr.unpack(new Uint8Array(m.data as ArrayBuffer)));
    this.closed = new Promise((resolve) => (ws.onclose = (e) => resolve({ code: e.code, reason: e.reason })));
  }

  /** `tls`: Bun's client options for wss:// (e.g. the `ca` a test's certificate was signed with). */
  static async connect(url: string, codec: Codec = "msgpack", hello = true, tls?: { ca?: string; cert?: string; key?: string }): Promise<GatewayClient> {
    const ws = tls ? new WebSocket(url, { tls } as never) : new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`could not connect to ${url}`));
    });
    const c = new GatewayClient(ws, codec);
    if (hello) {
      c.send({ t: 1, v: 1, client: "test" });
      const welcome = await c.next();
      if (welcome.t !== 2) throw new Error(`expected welcome, got ${JSON.stringify(welcome)}`);
    }
    return c;
  }

  send(frame: object): void {
    this.ws.send(this.codec === "msgpack" ? packr.pack(frame) : JSON.stringify(frame));
  }

  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  /** Sends a frame with a fresh correlation id and resolves with its reply. */
  request(frame: Record<string, unknown>): Promise<Frame> {
    const cid = this.cid++;
    const reply = new Promise<Frame>((resolve) => this.pending.set(cid, resolve));
    this.send({ ...frame, cid });
    return reply;
  }

  publish(event: Record<string, unknown>, topic?: string): Promise<Frame> {
    return this.request({ t: 10, event, ...(topic ? { topic } : {}) });
  }

  /**
   * Subscribes; `onFrame` gets every frame of the subscription (event, event_batch, live, lagged),
   * and may be called before this resolves with the subscribed (or nack) frame.
   */
  subscribe(frame: Record<string, unknown> & { sub: string }, onFrame: (f: Frame) => void): Promise<Frame> {
    this.subHandlers.set(frame.sub, onFrame);
    return this.request({ t: 12, ...frame });
  }

  publishBatch(events: Array<Record<string, unknown>>, topic?: string): Promise<Frame> {
    return this.request({ t: 11, events, ...(topic ? { topic } : {}) });
  }

  /** The next frame that answers no request (welcome, error), waiting up to `timeoutMs`. */
  next(timeoutMs = 5000): Promise<Frame> {
    const f = this.uncorrelated.shift();
    if (f) return Promise.resolve(f);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no frame arrived")), timeoutMs);
      this.waiters.push((frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
    });
  }

  close(): void {
    this.ws.close();
  }

  private onFrame(f: Frame): void {
    if (typeof f.sub === "string" && f.cid === undefined) {
      const handler = this.subHandlers.get(f.sub);
      if (handler) return handler(f);
    }
    const waiter = typeof f.cid === "number" ? this.pending.get(f.cid) : undefined;
    if (waiter) {
      this.pending.delete(f.cid);
      return waiter(f);
    }
    const w = this.waiters.shift();
    if (w) w(f);
    else this.uncorrelated.push(f);
  }
}

/**
 * The entries (`event` frames, and each item of `event_batch`) a new subscription of `topic` from
 * its earliest record gets, until `count` have come or `timeoutMs` has passed.
 */
export async function replayedEntries(url: string, codec: Codec, topic: string, count: number, timeoutMs = 20_000): Promise<Frame[]> {
  const client = await GatewayClient.connect(url, codec);
  const entries: Frame[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const reply = await client.subscribe({ sub: "s", topic, start: "earliest" }, (f) => {
    if (f.t === 24) entries.push(f);
    else if (f.t === 25) entries.push(...(f.events as Frame[]));
    if (entries.length >= count) done();
  });
  if (reply.t !== 23) throw new Error(`subscribe refused: ${JSON.stringify(reply)}`);
  await Promise.race([all, Bun.sleep(timeoutMs)]);
  client.close();
  return entries;
}
