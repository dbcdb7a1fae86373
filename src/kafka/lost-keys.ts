/** Stands for an event without an id: no re-send matches it, so its key stays blocked until clear(). */
const NEVER = Symbol("no id");

/** What LostKeys needs of a record: its topic, its key and its CloudEvents id (the ce_id header). */
export interface KeyedRecord {
  topic: string;
  key: Uint8Array | string | null;
  headers: Array<[string, string | Uint8Array]>;
}

/**
 * The keys of events that will be sent again while a worker's replacement is awaited: those its
 * predecessor took with it (WORKER_LOST) and those refused meanwhile. A later event of such a key,
 * held and written first, would be written before them: a client pipelining its events had sent it
 * before it read the earlier one's nack. So later events of the key are refused too, until each of
 * the earlier ones has come again (known by its id). Refusing keeps per-key order at worst a little
 * longer than needed; letting one through could not be undone.
 */
export class LostKeys {
  /** Per topic and key (its bytes as latin1), the ids still to come again. */
  private readonly byKey = new Map<string, Set<string | typeof NEVER>>();
  private ids = 0;
  /** More lost than `max` could name: every keyed event is refused until clear(). */
  private overflowed = false;

  /** `max`: ids and keys remembered at most (the in-flight cap: a worker never loses more at once). */
  constructor(private readonly max: number) {}

  get empty(): boolean {
    return this.byKey.size === 0 && !this.overflowed;
  }

  /** An event of its key is to come again: later ones of the key must wait for it. */
  add(r: KeyedRecord): void {
    if (r.key === null) return; // keyless events have no order to keep
    const k = keyString(r.topic, r.key);
    let ids = this.byKey.get(k);
    const id = idOf(r.headers);
    if (!ids) {
      if (this.byKey.size >= this.max) return void (this.overflowed = true);
      this.byKey.set(k, (ids = new Set()));
    }
    // Without an id its re-send cannot be known: the key stays blocked (an entry that never empties).
    if (id === undefined || this.ids >= this.max) return void ids.add(NEVER);
    if (!ids.has(id)) {
      ids.add(id);
      this.ids++;
    }
  }

  /**
   * Whether `r` must be refused for an earlier event of its key still to come again. A re-send of
   * one of those is let through (and no longer waited for).
   */
  refuses(r: KeyedRecord): boolean {
    if (r.key === null || this.empty) return false;
    if (this.overflowed) return true;
    const k = keyString(r.topic, r.key);
    const ids = this.byKey.get(k);
    if (!ids) return false;
    const id = idOf(r.headers);
    if (id === undefined || !ids.delete(id)) return true;
    this.ids--;
    if (ids.size === 0) this.byKey.delete(k);
    return false;
  }

  /** Whether `r`'s key has events still to come again (no re-send is let through). */
  blocks(r: KeyedRecord): boolean {
    if (r.key === null || this.empty) return false;
    return this.overflowed || this.byKey.has(keyString(r.topic, r.key));
  }

  clear(): void {
    this.byKey.clear();
    this.ids = 0;
    this.overflowed = false;
  }
}


/** A string key and a byte key with the same UTF-8 bytes are one key to Kafka's partitioner. */
function keyString(topic: string, key: Uint8Array | string): string {
  const bytes = typeof key === "string" ? Buffer.from(key, "utf8") : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return `${topic}\u0000${bytes.toString("latin1")}`;
}

function idOf(headers: Array<[string, string | Uint8Array]>): string | undefined {
  for (const [name, value] of headers) if (name === "ce_id") return typeof value === "string" ? value : Buffer.from(value).toString("latin1");
  return undefined;
}
