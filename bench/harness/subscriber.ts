import { Packr, Unpackr } from "msgpackr";
import { readStamp } from "./frames";
import { connectHelloed } from "./handshake";
import { LatencyHistogram } from "./histogram";

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });

export interface SubscriptionSpec {
  topic: string;
  filter?: Record<string, unknown>;
}

/**
 * A WebSocket holding many subscriptions, counting deliveries and measuring publish → delivery
 * latency from the send-time stamp the load client writes at the start of each event's data.
 */
export class SubscriberConnection {
  delivered = 0;
  lagged = 0;
  readonly latency = new LatencyHistogram();
  private cid = 1;
  private readonly waiting = new Map<number, (f: Record<string, any>) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.onmessage = (m) => this.onFrame(new Uint8Array(m.data as ArrayBuffer));
  }

  static async open(url: string): Promise<SubscriberConnection> {
    return new SubscriberConnection((await connectHelloed(url)).ws);
  }

  /** Subscribes from the live end; resolves when the gateway confirms. */
  async subscribe(sub: string, spec: SubscriptionSpec): Promise<void> {
    const r = await this.request({ t: 12, sub, topic: spec.topic, ...(spec.filter ? { filter: spec.filter } : {}), start: "latest" });
    if (r.t !== 23) throw new Error(`subscribe ${sub} refused: ${JSON.stringify(r)}`);
  }

  close(): void {
    this.ws.close();
  }

  private request(frame: Record<string, unknown>): Promise<Record<string, any>> {
    const cid = this.cid++;
    return new Promise((resolve) => {
      this.waiting.set(cid, resolve);
      this.ws.send(packr.pack({ ...frame, cid }));
    });
  }

  private onFrame(bytes: Uint8Array): void {
    const f = unpackr.unpack(bytes) as Record<string, any>;
    if (f.t === 24 || f.t === 25) {
      const now = performance.timeOrigin + performance.now();
      const events: Array<{ event: { data?: Uint8Array } }> = f.t === 24 ? [f] : f.events;
      for (const e of events) {
        this.delivered++;
        const at = e.event.data instanceof Uint8Array ? readStamp(e.event.data) : Number.NaN;
        if (at > 0) this.latency.record((now - at) * 1000);
      }
      return;
    }
    if (f.t === 27) {
      this.lagged += typeof f.dropped === "number" ? f.dropped : 1;
      return;
    }
    const w = this.waiting.get(f.cid);
    if (w) {
      this.waiting.delete(f.cid);
      w(f);
    }
  }
}

/** `count` subscriptions to `topic` over as many connections as `perConnection` requires. */
export async function openSubscribers(url: string, count: number, topic: string, filterFor: (i: number) => Record<string, unknown> | undefined, perConnection = 100): Promise<SubscriberGroup> {
  // Subscribing never creates a topic (UNKNOWN_TOPIC on Kafka): one event written first creates it,
  // before any subscriber starts reading from the end, so none of them counts it.
  const http = url.replace(/^ws/, "http").replace(/\/(api\/v1\/)?ws$/, "");
  const created = await fetch(`${http}/api/v1/events?topic=${encodeURIComponent(topic)}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "bench.topic-created" }) });
  if (created.status !== 202) throw new Error(`creating topic ${topic} failed: ${created.status} ${await created.text()}`);
  const conns = await Promise.all(Array.from({ length: Math.ceil(count / perConnection) }, () => SubscriberConnection.open(url)));
  for (let i = 0; i < count; i++) await conns[Math.floor(i / perConnection)]!.subscribe(`s${i}`, { topic, filter: filterFor(i) });
  return new SubscriberGroup(conns);
}

/** A run's subscriptions, read together: the raw ones below, or the SDK's (sdk-subscriber.ts). */
export interface Subscribers {
  readonly delivered: number;
  /** Events the gateway dropped for them, as their lagged notices said. */
  readonly lagged: number;
  latency(): LatencyHistogram;
  close(): void;
}

/** The subscriber connections of one run, read together. */
export class SubscriberGroup implements Subscribers {
  constructor(readonly conns: SubscriberConnection[]) {}
  get delivered(): number {
    return this.conns.reduce((a, c) => a + c.delivered, 0);
  }
  get lagged(): number {
    return this.conns.reduce((a, c) => a + c.lagged, 0);
  }
  latency(): LatencyHistogram {
    const h = new LatencyHistogram();
    for (const c of this.conns) h.add(c.latency);
    return h;
  }
  close(): void {
    for (const c of this.conns) c.close();
  }
}
