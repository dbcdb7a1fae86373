import type { DeliveredEvent, Subscription } from "../../src/client";

/** An SDK subscription's events in arrival order: the SDK's counterpart of collector.ts. */
export interface Collected {
  readonly events: DeliveredEvent[];
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  /** Events of each partition arrived in offset order. */
  inOrderPerPartition(): boolean;
}

export function collect(sub: Subscription): Collected {
  const events: DeliveredEvent[] = [];
  sub.onEvent((e) => events.push(e));
  return {
    events,
    async waitFor(n, timeoutMs = 30_000) {
      for (const deadline = Date.now() + timeoutMs; events.length < n && Date.now() < deadline; ) await Bun.sleep(20);
    },
    inOrderPerPartition() {
      const last = new Map<string, number>();
      for (const e of events) {
        const k = `${e.topic}/${e.partition}`;
        if ((last.get(k) ?? -1) >= e.offset) return false;
        last.set(k, e.offset);
      }
      return true;
    },
  };
}
