import type { GatewayError } from "../protocol/errors";

/** What LostKeys needs of a record: its topic, its key and its CloudEvents id (the ce_id header). */
export interface KeyedRecord {
  topic: string;
  key: Uint8Array | string | null;
  headers: Array<[string, string | Uint8Array]>;
}

/**
 * How long at least a key stays blocked after an event of it was refused or lost, unless that event
 * comes again first: long enough for what its client sent before it read the refusal to arrive,
 * short enough that a client that gives up on the event is not refused for long.
 */
export const KEY_BLOCK_MS = 1_000;

/**
 * How long a re-send of an event whose write is in doubt (WORKER_LOST) may wait before it is written:
 * the ids reader's sync (src/ingest/idempotence.ts), which later appends of its topic wait behind. A
 * block begun by a loss outlasts it, or a later event held in that wait would be let through when
 * the block ended and written before the re-send (outside probe R).
 */
export const IN_DOUBT_RESEND_WAIT_MS = 3_000;

/** Why an event blocked behind an earlier one of its key is refused (retriable; it was not written). */
export const KEY_ORDER_MESSAGE = "an earlier event of this key was refused (or lost with a Kafka worker) and has not come again; written now, this one would go before it. The event was not sent: send it again after that one";

interface Entry {
  /** Date.now() after which the key is free again, whatever is still to come. */
  until: number;
  /** Ids of the key's events still to come again. */
  ids: Set<string>;
  /** An event without an id (or past the bound) is to come again: no re-send can be known, so the block lasts to `until`. */
  anonymous: boolean;
  /** What a later event of the key is refused with: the code of the refusal that began the block. */
  refusal: GatewayError;
}

/**
 * Keys of events refused (retriably) or lost with a Kafka worker, which will come again: a worker
 * slot's (src/kafka/pool.ts) and the fair share's in front of the workers (src/ingest/fair-share.ts).
 * A later event of such a key, written meanwhile, would be written before them: a client pipelining
 * its events had sent it before it read the earlier one's refusal (the SDK holds the key once it has).
 * So later events of the key are refused too, until each of the earlier ones has come again (known
 * by its id), or the entry's time is up: a client that gives up on an event must not have its key
 * refused for long. Refusing keeps per-key order at worst a little longer than needed; a write
 * cannot be undone.
 */
export class LostKeys {
  /** Per topic and key (its bytes as latin1). */
  private readonly byKey = new Map<string, Entry>();
  private ids = 0;
  /** More refused than `max` could name: every keyed event is refused until then (Date.now()). */
  private overflowUntil = 0;
  private overflowRefusal: GatewayError | null = null;

  /** `max`: ids and keys remembered at most (the slot's in-flight cap). */
  constructor(private readonly max: number) {}

  get empty(): boolean {
    return this.byKey.size === 0 && this.overflowUntil === 0;
  }

  /**
   * `r` was refused or lost and may come again: later events of its key wait for it, until `until`
   * at the latest, and are refused with `refusal` (the first block of the key decides).
   */
  block(r: KeyedRecord, until: number, refusal: GatewayError): void {
    if (r.key === null) return; // keyless events have no order to keep
    const k = keyString(r.topic, r.key);
    let entry = this.byKey.get(k);
    if (!entry) {
      if (this.byKey.size >= this.max) {
        this.overflowUntil = Math.max(this.overflowUntil, until);
        this.overflowRefusal ??= refusal;
        return;
      }
      this.byKey.set(k, (entry = { until, ids: new Set(), anonymous: false, refusal }));
    } else if (until > entry.until) entry.until = until;
    this.note(entry, r);
  }

  /**
   * What `r` is refused with, for an earlier event of its key still to come again (it is then waited
   * for as well), or null. One of those, sent again, is let through, and no longer waited for: a
   * client re-sends them in its own order, and re-sends of an event in doubt are written before
   * its topic's later appends (src/ingest/idempotence.ts). Letting only the first through
   * made an outside tester's immediate re-sender spin (70,000 refusals, more inversions, not fewer).
   */
  refusal(r: KeyedRecord, now: number): GatewayError | null {
    if (r.key === null || this.empty) return null;
    if (this.overflowUntil > now) return this.overflowRefusal;
    const k = keyString(r.topic, r.key);
    const entry = this.byKey.get(k);
    if (!entry) return null;
    if (entry.until <= now) {
      this.drop(k, entry);
      return null;
    }
    const id = idOf(r.headers);
    if (id === undefined || !entry.ids.delete(id)) {
      this.note(entry, r);
      return entry.refusal;
    }
    this.ids--;
    if (entry.ids.size === 0 && !entry.anonymous) this.byKey.delete(k);
    return null;
  }

  /** Whether `r`'s key has events still to come again (nothing is changed). */
  blocks(r: KeyedRecord, now: number): boolean {
    if (r.key === null || this.empty) return false;
    if (this.overflowUntil > now) return true;
    const entry = this.byKey.get(keyString(r.topic, r.key));
    return entry !== undefined && entry.until > now;
  }

  /** Forgets entries whose time is up (the pool's watchdog, a few times a second). */
  sweep(now: number): void {
    if (this.overflowUntil !== 0 && this.overflowUntil <= now) {
      this.overflowUntil = 0;
      this.overflowRefusal = null;
    }
    for (const [k, entry] of this.byKey) if (entry.until <= now) this.drop(k, entry);
  }

  private note(entry: Entry, r: KeyedRecord): void {
    const id = idOf(r.headers);
    // Without an id (or past the bound) its re-send cannot be known: the key stays blocked to the end.
    if (id === undefined || this.ids >= this.max) {
      entry.anonymous = true;
      return;
    }
    if (!entry.ids.has(id)) {
      entry.ids.add(id);
      this.ids++;
    }
  }

  private drop(k: string, entry: Entry): void {
    this.ids -= entry.ids.size;
    this.byKey.delete(k);
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
