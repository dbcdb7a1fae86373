/** Where an event with a given id landed. */
export interface Landed {
  partition: number;
  offset: number;
}

interface Entry extends Landed {
  /** When this instance learned of it (its own write, or reading another's), ms. */
  at: number;
  id: string;
  topic: string;
  ids: Map<string, Entry>;
}

export interface SeenIdsOptions {
  /** How long an id is remembered, ms. */
  windowMs: number;
  /** The most ids remembered across topics; past it the oldest are forgotten early. */
  maxIds: number;
  /** The log's epoch (EventLog.epoch): when it moves, every id remembered names a position that is gone. */
  epoch?: () => number;
}

/**
 * The ids of events written to each topic within the window, with where they landed: what a re-sent
 * event is checked against. Bounded twice, by age and by count, forgetting oldest first (one FIFO
 * across topics). Lookups allocate nothing: a map per topic, keyed by the id itself.
 */
export class SeenIds {
  private readonly topics = new Map<string, Map<string, Entry>>();
  private fifo: Entry[] = [];
  private head = 0;
  /** Ids forgotten by the count bound before their window ended. */
  evictedEarly = 0;
  private epoch: number;

  constructor(private readonly options: SeenIdsOptions) {
    this.epoch = options.epoch?.() ?? 0;
  }

  get size(): number {
    return this.fifo.length - this.head;
  }

  /**
   * Every log was replaced (a new cluster at the brokers' address): a re-send of an id remembered
   * from before must be written again, not answered with a position in a log that is gone. Checked
   * before every lookup and every new id, so nothing learned since is ever forgotten with them.
   */
  private sync(): void {
    const epoch = this.options.epoch?.() ?? 0;
    if (epoch === this.epoch) return;
    this.epoch = epoch;
    this.topics.clear();
    this.fifo = [];
    this.head = 0;
  }

  get(topic: string, id: string, now: number): Landed | undefined {
    this.sync();
    const e = this.topics.get(topic)?.get(id);
    return e !== undefined && now - e.at <= this.options.windowMs ? e : undefined;
  }

  /** Remembers `id`; an id already remembered keeps its first position (the one its re-sends get). */
  add(topic: string, id: string, partition: number, offset: number, now: number): void {
    this.sync();
    let ids = this.topics.get(topic);
    if (ids === undefined) this.topics.set(topic, (ids = new Map()));
    if (ids.has(id)) return;
    const e: Entry = { partition, offset, at: now, id, topic, ids };
    ids.set(id, e);
    this.fifo.push(e);
    this.expire(now);
  }

  /**
   * Forgets the ids of one partition: its log was reset (the topic created again), so the positions
   * remembered are in a log that is gone, and a re-send must be written again, not answered with them.
   */
  forgetPartition(topic: string, partition: number): void {
    const ids = this.topics.get(topic);
    if (ids === undefined) return;
    for (const [id, e] of ids) if (e.partition === partition) ids.delete(id);
    if (ids.size === 0) this.topics.delete(topic);
  }

  private expire(now: number): void {
    const oldest = now - this.options.windowMs;
    while (this.head < this.fifo.length) {
      const e = this.fifo[this.head]!;
      const full = this.fifo.length - this.head > this.options.maxIds;
      if (!full && e.at >= oldest) break;
      if (full && e.at >= oldest) this.evictedEarly++;
      this.fifo[this.head++] = undefined as never;
      // Forgotten already (forgetPartition), and perhaps remembered again since: that one stays.
      if (e.ids.get(e.id) !== e) continue;
      e.ids.delete(e.id);
      if (e.ids.size === 0 && this.topics.get(e.topic) === e.ids) this.topics.delete(e.topic);
    }
    if (this.head > 4096 && this.head * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.head);
      this.head = 0;
    }
  }
}
