import { Unpackr } from "msgpackr";
import { type FrameTemplate, stamp } from "./frames";
import { connectHelloed } from "./handshake";

const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

/** What a publisher connection reports for each answered frame. */
export interface AckSink {
  /** `events` of a frame sent at `sentAt` (performance.now() ms) were answered at `now`; `failed` of them refused. */
  answered(sentAt: number, now: number, events: number, failed: number, code: string | undefined): void;
}

/** What the load schedule (load.ts) drives: the raw client below, or the SDK's (sdk-publisher.ts). */
export interface LoadConnection {
  /** Sends the next frame's events; `intendedAt` is when the schedule wanted them sent (performance.now() ms). Returns how many. */
  send(intendedAt: number): number;
  /** Requests not answered yet. */
  readonly pendingFrames: number;
  readonly inflightEvents: number;
  /** The gateway's per-connection window. */
  readonly window: number;
  readonly closed: boolean;
  /** Counts everything unanswered as failed with `code`. */
  failAll(code: string): void;
  close(): void;
}

/**
 * One load-generating WebSocket: sends pre-built publish frames and matches their acks by
 * correlation id. It never decodes more of an ack than the count of failures.
 */
export class PublisherConnection implements LoadConnection {
  private cid = 1;
  private readonly sentAt = new Map<number, number>();
  private readonly sizes = new Map<number, number>();
  private next = 0;
  inflightEvents = 0;
  /** The gateway's per-connection window, from its welcome frame. */
  window = Number.POSITIVE_INFINITY;
  closed = false;

  private constructor(
    private readonly ws: WebSocket,
    private readonly templates: FrameTemplate[],
    private readonly sink: AckSink,
    private readonly onDrained: () => void,
  ) {}

  static async open(url: string, templates: FrameTemplate[], sink: AckSink, onDrained: () => void = () => {}): Promise<PublisherConnection> {
    const { ws, welcome } = await connectHelloed(url);
    const conn = new PublisherConnection(ws, templates, sink, onDrained);
    if (typeof welcome.limits?.window === "number") conn.window = welcome.limits.window;
    ws.onmessage = (m) => conn.onReply(new Uint8Array(m.data as ArrayBuffer));
    ws.onclose = () => {
      conn.closed = true;
      conn.failAll("CLOSED");
    };
    return conn;
  }

  /** Sends the next frame; `intendedAt` is when the schedule wanted it sent (performance.now() ms). */
  send(intendedAt: number): number {
    const t = this.templates[this.next++ % this.templates.length]!;
    const cid = this.cid++;
    const events = t.stampsAt.length;
    this.sentAt.set(cid, intendedAt);
    this.sizes.set(cid, events);
    this.inflightEvents += events;
    this.ws.send(stamp(t, cid, performance.timeOrigin + intendedAt));
    return events;
  }

  get pendingFrames(): number {
    return this.sentAt.size;
  }

  close(): void {
    this.ws.close();
  }

  /** Counts every unanswered frame as failed with `code` (connection lost, or the drain timed out). */
  failAll(code: string): void {
    const now = performance.now();
    for (const [cid, at] of this.sentAt) this.settle(cid, at, now, this.sizes.get(cid)!, code);
  }

  private onReply(bytes: Uint8Array): void {
    const now = performance.now();
    const f = unpackr.unpack(bytes) as { t: number; cid?: number; errors?: Array<{ code: string }>; code?: string };
    if (typeof f.cid !== "number") return;
    const at = this.sentAt.get(f.cid);
    if (at === undefined) return;
    const n = this.sizes.get(f.cid)!;
    if (f.t === 21) this.settle(f.cid, at, now, n, f.code ?? "NACK");
    else this.settle(f.cid, at, now, n, f.errors?.[0]?.code, f.errors?.length ?? 0);
  }

  private settle(cid: number, at: number, now: number, n: number, code: string | undefined, failed = code ? n : 0): void {
    this.sentAt.delete(cid);
    this.sizes.delete(cid);
    this.inflightEvents -= n;
    this.sink.answered(at, now, n, failed, code);
    this.onDrained();
  }
}
