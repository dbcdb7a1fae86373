/**
 * How many partitions topics have, asked of Kafka for many callers at once. Each answer is a full
 * metadata request (naming a topic would auto-create it), and subscribing, the ids reader and replays
 * all ask: one at a time per caller, a few connections subscribing to made-up topics queued minutes
 * of requests in front of everyone else's. So at most one request is in flight; every topic asked
 * while it runs waits for the next one, which answers them all. An answer is never older than the
 * question: a topic created before it was asked is seen.
 */
export class PartitionCounts {
  private waiting = new Map<string, Array<{ resolve: (n: number) => void; reject: (e: unknown) => void }>>();
  private asking = false;

  /** `ask` puts one metadata request to Kafka for `topics`: their partition counts, 0 for a missing topic. */
  constructor(private readonly ask: (topics: string[]) => Promise<number[]>) {}

  /** Partitions of `topic`, 0 if the cluster does not have it. */
  of(topic: string): Promise<number> {
    return new Promise((resolve, reject) => {
      let callers = this.waiting.get(topic);
      if (!callers) this.waiting.set(topic, (callers = []));
      callers.push({ resolve, reject });
      void this.next();
    });
  }

  private async next(): Promise<void> {
    if (this.asking || this.waiting.size === 0) return;
    this.asking = true;
    const batch = this.waiting;
    this.waiting = new Map();
    try {
      const topics = [...batch.keys()];
      const counts = await this.ask(topics);
      topics.forEach((t, i) => {
        for (const c of batch.get(t)!) c.resolve(counts[i] ?? 0);
      });
    } catch (e) {
      for (const callers of batch.values()) for (const c of callers) c.reject(e);
    } finally {
      this.asking = false;
      void this.next();
    }
  }
}
