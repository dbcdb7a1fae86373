import type { CompiledFilter, FilterableEvent } from "./filter";

/** Subscribers whose filters have the same identity: one evaluation per event serves them all. */
interface Group<S> {
  readonly identity: string;
  readonly filter: CompiledFilter;
  readonly subs: Set<S>;
  /** The match() call that last evaluated this group, so no group is evaluated twice per event. */
  seen: number;
  /** Its last subscriber left: skipped by match(), and taken out of its buckets when they are next compacted. */
  gone: boolean;
}

/**
 * Groups in one place of the index. `groups` is only ever appended to; a removal marks its group
 * gone, and once gone ones are half of a bucket it is replaced by a compacted copy. So a match()
 * running while a subscriber is removed (a slow consumer disconnected from inside onMatch) still
 * walks the array it started with, skipping no group, and removing N groups costs O(N), not O(N²):
 * copying the bucket on every removal made closing 60 connections of 100 distinct filters each
 * block the event loop for ~200 ms.
 */
interface Bucket<S> {
  groups: Group<S>[];
  gone: number;
}

type Buckets<S> = Map<string, Bucket<S>>;

/**
 * The subscribers of one feed, indexed so that matching an event costs in proportion to the
 * filters that can match it, not to all filters. Each group sits in exactly one place, chosen from
 * its filter, most selective first:
 *
 * - exact types: a Map lookup of the event's type;
 * - type prefixes (`order.*`): a Map lookup of each prefix of the event's type, but only at the
 *   lengths some group registered, so few lookups however many groups;
 * - keys (for filters with keys whose types cannot be indexed): a Map lookup of the event's key;
 * - everything else (no types nor keys, or glob types like `*.created`): a scan list, every event.
 *
 * Indexes only narrow the candidates; each candidate group's matches() decides.
 *
 * Buckets are append-only arrays, compacted into a copy (see Bucket): a subscriber removed from
 * inside onMatch (a slow consumer disconnected) cannot make the running match() skip a group.
 */
export class FilterIndex<S> {
  private readonly groups = new Map<string, Group<S>>();
  private readonly groupOf = new Map<S, Group<S>>();
  private readonly byType: Buckets<S> = new Map();
  private readonly byPrefix: Buckets<S> = new Map();
  private readonly byKey: Buckets<S> = new Map();
  private scan: Bucket<S> = { groups: [], gone: 0 };
  /** How many byPrefix entries have each length; `prefixLengths` is its sorted key list. */
  private readonly prefixLengthCount = new Map<number, number>();
  private prefixLengths: number[] = [];
  private epoch = 0;
  /** The terms of its distinct filters together: what one event's matching costs at most. */
  private termCount = 0;

  /** Subscribers in the index. */
  get size(): number {
    return this.groupOf.size;
  }

  /** Distinct filters in the index. */
  get groupCount(): number {
    return this.groups.size;
  }

  /** The terms of the distinct filters, were `filter` added: its own only if no group has it yet. */
  termsWith(filter: CompiledFilter): number {
    return this.termCount + (this.groups.has(filter.identity) ? 0 : filter.terms);
  }

  /** Adds `sub` with `filter`; a subscriber already present is moved to the new filter. */
  add(sub: S, filter: CompiledFilter): void {
    if (this.groupOf.has(sub)) this.remove(sub);
    let group = this.groups.get(filter.identity);
    if (!group) {
      group = { identity: filter.identity, filter, subs: new Set(), seen: 0, gone: false };
      this.groups.set(group.identity, group);
      this.termCount += filter.terms;
      this.place(group, true);
    }
    group.subs.add(sub);
    this.groupOf.set(sub, group);
  }

  remove(sub: S): boolean {
    const group = this.groupOf.get(sub);
    if (!group) return false;
    this.groupOf.delete(sub);
    group.subs.delete(sub);
    if (group.subs.size === 0) {
      group.gone = true;
      this.groups.delete(group.identity);
      this.termCount -= group.filter.terms;
      this.place(group, false);
    }
    return true;
  }

  /**
   * Calls onMatch for every subscriber whose filter matches `ev`. Returns how many groups were
   * evaluated: the cost of this event, which tests and metrics can watch.
   */
  match(ev: FilterableEvent, onMatch: (sub: S) => void): number {
    const epoch = ++this.epoch;
    let evaluated = this.visit(this.byType.get(ev.type), ev, onMatch, epoch);
    const type = ev.type;
    for (const len of this.prefixLengths) {
      if (len > type.length) break;
      evaluated += this.visit(this.byPrefix.get(len === type.length ? type : type.slice(0, len)), ev, onMatch, epoch);
    }
    if (ev.key !== null) evaluated += this.visit(this.byKey.get(ev.key), ev, onMatch, epoch);
    return evaluated + this.visit(this.scan, ev, onMatch, epoch);
  }

  private visit(bucket: Bucket<S> | undefined, ev: FilterableEvent, onMatch: (sub: S) => void, epoch: number): number {
    if (!bucket) return 0;
    let evaluated = 0;
    // Up to the length it had: a group added from inside onMatch waits for the next event.
    const groups = bucket.groups;
    for (let i = 0, n = groups.length; i < n; i++) {
      const g = groups[i]!;
      if (g.gone || g.seen === epoch) continue;
      g.seen = epoch;
      evaluated++;
      if (g.filter.matches(ev)) for (const sub of g.subs) onMatch(sub);
    }
    return evaluated;
  }

  /** Puts a group into (or takes it out of) the one index its filter selects. */
  private place(g: Group<S>, into: boolean): void {
    const f = g.filter;
    const edit = into ? put : drop;
    if (f.exactTypes) for (const t of f.exactTypes) edit(this.byType, t, g);
    else if (f.typePrefixes) {
      for (const p of f.typePrefixes) {
        const had = this.byPrefix.has(p);
        edit(this.byPrefix, p, g);
        if (had !== this.byPrefix.has(p)) this.countPrefixLength(p.length, into ? 1 : -1);
      }
    } else if (f.keys) for (const k of f.keys) edit(this.byKey, k, g);
    else if (into) this.scan.groups.push(g);
    else this.scan = compacted(this.scan) ?? { groups: [], gone: 0 };
  }

  private countPrefixLength(len: number, delta: number): void {
    const n = (this.prefixLengthCount.get(len) ?? 0) + delta;
    if (n === 0) this.prefixLengthCount.delete(len);
    else this.prefixLengthCount.set(len, n);
    if (n === 0 || n === delta) this.prefixLengths = [...this.prefixLengthCount.keys()].sort((a, b) => a - b);
  }
}

function put<S>(map: Buckets<S>, k: string, g: Group<S>): void {
  const bucket = map.get(k);
  if (bucket) bucket.groups.push(g);
  else map.set(k, { groups: [g], gone: 0 });
}

/** `g`, already marked gone, leaves the bucket at `k` (by the bucket's count; see Bucket). */
function drop<S>(map: Buckets<S>, k: string, _g: Group<S>): void {
  const bucket = map.get(k);
  if (!bucket) return;
  const next = compacted(bucket);
  if (next === null) map.delete(k);
  else if (next !== bucket) map.set(k, next);
}

/**
 * `bucket` with one more of its groups gone: itself, or a compacted copy once gone ones are half of
 * it (the old array is left as it was, for a match() walking it), or null when none is left.
 */
function compacted<S>(bucket: Bucket<S>): Bucket<S> | null {
  bucket.gone++;
  if (bucket.gone >= bucket.groups.length) return null;
  if (bucket.gone * 2 <= bucket.groups.length) return bucket;
  return { groups: bucket.groups.filter((g) => !g.gone), gone: 0 };
}
