/**
 * A question about topics (how many partitions each has, what its configuration refuses), asked of
 * Kafka for many callers at once. Each answer is a request to the cluster (for partitions a full
 * metadata request, since naming a topic would auto-create it), and subscribing, the ids reader,
 * replays and publishers all ask: one at a time per caller, a few connections subscribing to
 * made-up topics queued minutes of requests in front of everyone else's. So at most one request is
 * in flight; every topic asked while it runs waits for the next one, which answers them all. An
 * answer is never older than the question: a topic created before it was asked is seen.
 */
export class TopicQuestions<T> {
  private waiting = new Map<string, Array<{ resolve: (v: T) => void; reject: (e: unknown) => void }>>();
  private asking = false;

  /** `ask` puts one request to Kafka for `topics`: an answer for each, in their order. */
  constructor(
    private readonly ask: (topics: string[]) => Promise<T[]>,
    /** The answer for a topic the request left out. */
    private readonly missing: T,
  ) {}

  /** The answer for `topic`. */
  of(topic: string): Promise<T> {
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
        for (const c of batch.get(t)!) c.resolve(counts[i] ?? this.missing);
      });
    } catch (e) {
      for (const callers of batch.values()) for (const c of callers) c.reject(e);
    } finally {
      this.asking = false;
      void this.next();
    }
  }
}
