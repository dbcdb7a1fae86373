import type { Frame } from "./ws-client";

export interface Received {
  topic: string;
  partition: number;
  offset: number;
  event: Record<string, any>;
}

/** Gathers a subscription's events in arrival order, with its last token and notices. */
export class Collector {
  readonly events: Received[] = [];
  readonly notices: Frame[] = [];
  token = "";
  live = false;

  readonly onFrame = (f: Frame): void => {
    if (f.t === 24) this.events.push({ topic: f.topic, partition: f.partition, offset: f.offset, event: f.event });
    else if (f.t === 25) this.events.push(...f.events);
    else this.notices.push(f);
    if (f.t === 26) this.live = true;
    if (typeof f.token === "string" && (f.t === 24 || f.t === 25)) this.token = f.token;
  };

  async waitFor(n: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length < n && Date.now() < deadline) await Bun.sleep(20);
  }

  /** Events of each partition must arrive in offset order. */
  inOrderPerPartition(): boolean {
    const last = new Map<string, number>();
    for (const e of this.events) {
      const k = `${e.topic}/${e.partition}`;
      if ((last.get(k) ?? -1) >= e.offset) return false;
      last.set(k, e.offset);
    }
    return true;
  }
}
