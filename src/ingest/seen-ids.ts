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
  /** Told of an id found written at a second position of its topic while the first is remembered. */
  writtenTwice?: (topic: string) => void;
}

// Ids per chunk of the FIFO: allocated as ids arrive and dropped once all of theirs are forgotten.
const CHUNK = 4096;

// Maps per topic, an id's by its last two characters and length: see SeenIds.
const SHARDS = 64;

function shardOf(id: string): number {
  const n = id.length;
  return (id.charCodeAt(n - 1) + 31 * id.charCodeAt(n - 2) + n) & (SHARDS - 1);
}

/** One topic's ids, each mapped to its sequence number. */
class TopicIds {
  readonly shards: Array<Map<string, number> | undefined> = new Array(SHARDS);
  size = 0;
  constructor(readonly topic: string) {}
}

/** CHUNK consecutive ids of the FIFO, by their sequence number modulo CHUNK. */
class Chunk {
  readonly ids: Array<string | undefined> = new Array(CHUNK);
  readonly maps: Array<Map<string, number> | undefined> = new Array(CHUNK);
  readonly owners: Array<TopicIds | undefined> = new Array(CHUNK);
  readonly partitions = new Int32Array(CHUNK);
  readonly offsets = new Float64Array(CHUNK);
  readonly times = new Float64Array(CHUNK);
}

/**
 * The ids of events written to each topic within the window, with where they landed: what a re-sent
 * event is checked against. Bounded twice, by age and by count, forgetting oldest first (one FIFO
 * across topics).
 *
 * At the default bound a busy instance holds 500,000 ids, and every publish with an id looks one up,
 * adds one and forgets one. In one Map of that many string keys the engine rebuilds its table now
 * and then (growing, and clearing out deleted entries), and each rebuild stalled the event loop for
 * 150 ms to over a second (bench/seen-ids.ts). So a topic's ids are spread over SHARDS maps, each
 * rebuilt in a sixty-fourth of the time; ids chosen to fall in one shard cost what one map did. Each
 * id has a sequence number, and its position and time sit in typed arrays of fixed-size chunks that
 * never move: nothing per id for the collector to trace but its map entry and its string.
 */
export class SeenIds {
  private readonly topics = new Map<string, TopicIds>();
  private chunks: Chunk[] = [];
  /** The sequence number of the first id of chunks[0] is firstChunk * CHUNK. */
  private firstChunk = 0;
  /** Sequence numbers of the oldest id remembered, and of the next. */
  private head = 0;
  private end = 0;
  /** Ids forgotten by the count bound before their window ended. */
  evictedEarly = 0;
  private epoch: number;

  constructor(private readonly options: SeenIdsOptions) {
    this.epoch = options.epoch?.() ?? 0;
  }

  get size(): number {
    this.sync();
    return this.end - this.head;
  }

  private chunkOf(seq: number): Chunk {
    return this.chunks[Math.floor(seq / CHUNK) - this.firstChunk]!;
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
    this.chunks = [];
    this.head = this.end;
  }

  get(topic: string, id: string, now: number): Landed | undefined {
    this.sync();
    const seq = this.topics.get(topic)?.shards[shardOf(id)]?.get(id);
    if (seq === undefined) return undefined;
    const c = this.chunkOf(seq);
    const i = seq % CHUNK;
    return now - c.times[i]! > this.options.windowMs ? undefined : { partition: c.partitions[i]!, offset: c.offsets[i]! };
  }

  /**
   * Remembers `id` at this position, learned now. An id already remembered keeps its position (the
   * one its re-sends get), unless this one is a later write of it in the same partition: an id
   * written again past its window (here, or on another instance whose window ran out first) is what
   * re-sends must get for a window from now. Keeping the first instead, an instance that had learned
   * the first write late forgot the id when that aged out, and wrote a third copy of it.
   */
  add(topic: string, id: string, partition: number, offset: number, now: number): void {
    this.sync();
    // Aged out first: an id past its window is remembered again from this write, not ignored.
    this.expire(now, 0);
    const shard = shardOf(id);
    const owned = this.topics.get(topic);
    const known = owned?.shards[shard]?.get(id);
    if (known !== undefined) {
      const c = this.chunkOf(known);
      const i = known % CHUNK;
      if (c.partitions[i] !== partition || c.offsets[i] !== offset) this.options.writtenTwice?.(topic);
      if (c.partitions[i] !== partition || c.offsets[i]! >= offset) return;
      // Its entry stays in the FIFO until it ages out, named by no map (as forgetPartition leaves it).
      owned!.shards[shard]!.delete(id);
      if (--owned!.size === 0) this.topics.delete(topic);
    }
    this.expire(now, 1);
    // Looked up after both: forgetting a topic's last id drops its maps.
    let owner = this.topics.get(topic);
    if (owner === undefined) this.topics.set(topic, (owner = new TopicIds(topic)));
    let ids = owner.shards[shard];
    if (ids === undefined) owner.shards[shard] = ids = new Map();
    const seq = this.end++;
    const i = seq % CHUNK;
    if (i === 0 || this.chunks.length === 0) {
      if (this.chunks.length === 0) this.firstChunk = Math.floor(seq / CHUNK);
      this.chunks.push(new Chunk());
    }
    const c = this.chunks[this.chunks.length - 1]!;
    c.ids[i] = id;
    c.maps[i] = ids;
    c.owners[i] = owner;
    c.partitions[i] = partition;
    c.offsets[i] = offset;
    c.times[i] = now;
    ids.set(id, seq);
    owner.size++;
  }

  /**
   * Forgets the ids of one partition: its log was reset (the topic created again), so the positions
   * remembered are in a log that is gone, and a re-send must be written again, not answered with them.
   * Their entries stay in the FIFO until they age out, named by no map.
   */
  /** Every id of `topic`: its log is gone (the topic deleted), and the positions they name with it. */
  forgetTopic(topic: string): void {
    // Their entries stay in the FIFO until they age out, named by no map (as forgetPartition leaves them).
    this.topics.delete(topic);
  }

  forgetPartition(topic: string, partition: number): void {
    const owner = this.topics.get(topic);
    if (owner === undefined) return;
    for (const ids of owner.shards) {
      if (ids === undefined) continue;
      for (const [id, seq] of ids) {
        if (this.chunkOf(seq).partitions[seq % CHUNK] !== partition) continue;
        ids.delete(id);
        owner.size--;
      }
    }
    if (owner.size === 0) this.topics.delete(topic);
  }

  /** Drops the ids older than the window, and enough of the oldest that `room` more fit under maxIds. */
  private expire(now: number, room: number): void {
    const oldest = now - this.options.windowMs;
    while (this.head < this.end) {
      const seq = this.head;
      const c = this.chunks[0]!;
      const i = seq % CHUNK;
      const full = this.end - this.head + room > this.options.maxIds;
      if (!full && c.times[i]! >= oldest) break;
      if (full && c.times[i]! >= oldest) this.evictedEarly++;
      const id = c.ids[i]!;
      const ids = c.maps[i]!;
      const owner = c.owners[i]!;
      c.ids[i] = undefined;
      c.maps[i] = undefined;
      c.owners[i] = undefined;
      this.head++;
      if (i === CHUNK - 1) {
        this.chunks.shift();
        this.firstChunk++;
      }
      // Forgotten already (forgetPartition), and perhaps remembered again since: that one stays.
      if (ids.get(id) !== seq) continue;
      ids.delete(id);
      if (--owner.size === 0 && this.topics.get(owner.topic) === owner) this.topics.delete(owner.topic);
    }
  }
}
