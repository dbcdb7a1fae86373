/** Where an event with a given id landed. */
export interface Landed {
  partition: number;
  offset: number;
}

export interface SeenIdsOptions {
  /** How long an id is remembered, ms. */
  windowMs: number;
  /** The most ids remembered across topics; past it the oldest are forgotten early. */
  maxIds: number;
  /** The log's epoch (EventLog.epoch): when it moves, every id remembered names a position that is gone. */
  epoch?: () => number;
}

const FIRST_CAPACITY = 1024;

/**
 * The ids of events written to each topic within the window, with where they landed: what a re-sent
 * event is checked against. Bounded twice, by age and by count, forgetting oldest first (one FIFO
 * across topics).
 *
 * At the default bound the maps hold 500,000 ids and every publish with an id looks one up, adds
 * one and (full) forgets one, and the ids reader looks it up again: a profile at one event per frame
 * put a fifth of the gateway's CPU in the maps when each id held an object of its own. So each id is
 * a slot of one ring of typed arrays (partition, offset, time), and a topic's map holds the slot's
 * number: no object per id for the collector to trace, and no pointer to chase on a lookup.
 */
export class SeenIds {
  private readonly topics = new Map<string, Map<string, number>>();
  // The ring, oldest at `head`; grows by doubling up to maxIds so a quiet instance holds little.
  private ids: Array<string | undefined> = new Array(FIRST_CAPACITY);
  private maps: Array<Map<string, number> | undefined> = new Array(FIRST_CAPACITY);
  private topicNames: Array<string | undefined> = new Array(FIRST_CAPACITY);
  private partitions = new Int32Array(FIRST_CAPACITY);
  private offsets = new Float64Array(FIRST_CAPACITY);
  private times = new Float64Array(FIRST_CAPACITY);
  private head = 0;
  private count = 0;
  /** Ids forgotten by the count bound before their window ended. */
  evictedEarly = 0;
  private epoch: number;

  constructor(private readonly options: SeenIdsOptions) {
    this.epoch = options.epoch?.() ?? 0;
  }

  get size(): number {
    this.sync();
    return this.count;
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
    this.ids.fill(undefined);
    this.maps.fill(undefined);
    this.topicNames.fill(undefined);
    this.head = 0;
    this.count = 0;
  }

  get(topic: string, id: string, now: number): Landed | undefined {
    this.sync();
    const slot = this.topics.get(topic)?.get(id);
    if (slot === undefined || now - this.times[slot]! > this.options.windowMs) return undefined;
    return { partition: this.partitions[slot]!, offset: this.offsets[slot]! };
  }

  /** Remembers `id`; an id already remembered keeps its first position (the one its re-sends get). */
  add(topic: string, id: string, partition: number, offset: number, now: number): void {
    this.sync();
    // Aged out first: an id past its window is remembered again from this write, not ignored.
    this.expire(now, 0);
    if (this.topics.get(topic)?.has(id)) return;
    this.expire(now, 1);
    // Looked up after both: forgetting a topic's last id drops its map.
    let ids = this.topics.get(topic);
    if (ids === undefined) this.topics.set(topic, (ids = new Map()));
    if (this.count === this.ids.length) this.grow();
    const slot = (this.head + this.count) % this.ids.length;
    this.count++;
    this.ids[slot] = id;
    this.maps[slot] = ids;
    this.topicNames[slot] = topic;
    this.partitions[slot] = partition;
    this.offsets[slot] = offset;
    this.times[slot] = now;
    ids.set(id, slot);
  }

  /**
   * Forgets the ids of one partition: its log was reset (the topic created again), so the positions
   * remembered are in a log that is gone, and a re-send must be written again, not answered with them.
   * Their slots stay in the ring until they age out, pointing at no map entry.
   */
  forgetPartition(topic: string, partition: number): void {
    const ids = this.topics.get(topic);
    if (ids === undefined) return;
    for (const [id, slot] of ids) if (this.partitions[slot] === partition) ids.delete(id);
    if (ids.size === 0) this.topics.delete(topic);
  }

  /** Drops the ids older than the window, and enough of the oldest that `room` more fit under maxIds. */
  private expire(now: number, room: number): void {
    const oldest = now - this.options.windowMs;
    const capacity = this.ids.length;
    while (this.count > 0) {
      const slot = this.head;
      const full = this.count + room > this.options.maxIds;
      if (!full && this.times[slot]! >= oldest) break;
      if (full && this.times[slot]! >= oldest) this.evictedEarly++;
      const id = this.ids[slot]!;
      const ids = this.maps[slot]!;
      const topic = this.topicNames[slot]!;
      this.ids[slot] = undefined;
      this.maps[slot] = undefined;
      this.topicNames[slot] = undefined;
      this.head = (slot + 1) % capacity;
      this.count--;
      // Forgotten already (forgetPartition), and perhaps remembered again since: that one stays.
      if (ids.get(id) !== slot) continue;
      ids.delete(id);
      if (ids.size === 0 && this.topics.get(topic) === ids) this.topics.delete(topic);
    }
  }

  /** The ring, twice as long (at most maxIds), oldest first from slot 0; the maps' slot numbers follow. */
  private grow(): void {
    const old = { ids: this.ids, maps: this.maps, topicNames: this.topicNames, partitions: this.partitions, offsets: this.offsets, times: this.times };
    const capacity = Math.min(this.options.maxIds, old.ids.length * 2);
    this.ids = new Array(capacity);
    this.maps = new Array(capacity);
    this.topicNames = new Array(capacity);
    this.partitions = new Int32Array(capacity);
    this.offsets = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
    for (let i = 0; i < this.count; i++) {
      const from = (this.head + i) % old.ids.length;
      const id = old.ids[from]!;
      const ids = old.maps[from]!;
      this.ids[i] = id;
      this.maps[i] = ids;
      this.topicNames[i] = old.topicNames[from];
      this.partitions[i] = old.partitions[from]!;
      this.offsets[i] = old.offsets[from]!;
      this.times[i] = old.times[from]!;
      if (ids.get(id) === from) ids.set(id, i);
    }
    this.head = 0;
  }
}
