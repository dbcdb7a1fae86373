import { KeyCounts } from "../limits/key-counts";
import { GatewayError } from "../protocol/errors";

/**
 * The feeds the subscriptions of each client address hold (MAX_FEEDS_PER_ADDRESS), over all its
 * connections, so that one address cannot take every feed of the instance (MAX_FEEDS) from the rest.
 * A feed is named by what it reads: `topic:<name>` for a topic's shared live feed, `share:<key>` for a
 * share group's, and a name of its own for each replay. A feed the address holds already costs it
 * nothing more, whoever opened it; each is counted once per address however many subscriptions hold it.
 * The subscriptions themselves are counted per address too (MAX_SUBSCRIPTIONS_PER_ADDRESS): each costs
 * its filter and a frame per read batch, and a thousand connections of a hundred each were 100,000.
 * And so are the characters of their filters (MAX_FILTER_CHARS_PER_ADDRESS; CompiledFilter.footprint, once
 * for each topic it is placed in): a `keys` list of 1,024 long keys is one term of the filter bounds,
 * and 1,000 subscriptions of ~1 MB of keys held 2.3 GB. Those of every address together are bounded too
 * (MAX_FILTER_CHARS): many addresses each within their bound are not.
 */
export class AddressFeeds {
  /** Per address, each feed it holds and how many of its subscriptions hold it. */
  private readonly held = new Map<string, KeyCounts<string>>();
  /** Per address, its subscriptions (each charged once, by take). */
  private readonly subscriptions = new KeyCounts<string>();
  /** Per address, the characters of its subscriptions' filters (each charged by take). */
  private readonly filterChars = new KeyCounts<string>();
  /** The characters of every address's filters together. */
  private allFilterChars = 0;

  constructor(
    private readonly max: number,
    private readonly maxSubscriptions = Number.POSITIVE_INFINITY,
    private readonly maxFilterChars = Number.POSITIVE_INFINITY,
    private readonly maxAllFilterChars = Number.POSITIVE_INFINITY,
  ) {}

  /** What the filters of every address's subscriptions hold, in characters (MAX_FILTER_CHARS). */
  get filterCharsHeld(): number {
    return this.allFilterChars;
  }

  /**
   * Charges `feeds` and a filter of `chars` characters to `address`, or throws TOO_MANY_SUBSCRIPTIONS
   * (charging nothing) past a bound.
   */
  take(address: string, feeds: readonly string[], chars = 0): void {
    let mine = this.held.get(address);
    let added = 0;
    for (const f of feeds) if (!mine?.has(f)) added++;
    const holds = mine?.size ?? 0;
    const subs = this.subscriptions.get(address);
    if (subs >= this.maxSubscriptions) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `this client address holds ${subs} subscriptions over all its connections, at most ${this.maxSubscriptions}; end some first`);
    }
    const held = this.filterChars.get(address);
    if (held + chars > this.maxFilterChars) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `the filters of this client address's subscriptions hold ${held} characters over all its connections, and this one's ${chars} would pass MAX_FILTER_CHARS_PER_ADDRESS (${this.maxFilterChars}); end some, or use shorter filters`);
    }
    if (this.allFilterChars + chars > this.maxAllFilterChars) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `the filters of this instance's subscriptions hold ${this.allFilterChars} characters, and this one's ${chars} would pass MAX_FILTER_CHARS (${this.maxAllFilterChars}); subscribe with a shorter filter, or to another instance`);
    }
    if (added > 0 && holds + added > this.max) {
      throw new GatewayError("TOO_MANY_SUBSCRIPTIONS", `subscriptions from this client address hold ${holds} feeds, at most ${this.max}; subscribe to topics it reads already, or end some`);
    }
    if (!mine) this.held.set(address, (mine = new KeyCounts()));
    for (const f of feeds) mine.add(f);
    this.subscriptions.add(address);
    if (chars > 0) this.filterChars.add(address, chars);
    this.allFilterChars += chars;
  }

  /** Moves `address`'s hold of `from` to `to` (a replay moved onto its topic's live feed): no bound is passed, one feed for another or for one it holds already. */
  swap(address: string, from: readonly string[], to: readonly string[]): void {
    const mine = this.held.get(address);
    if (!mine) return;
    for (const f of from) mine.remove(f);
    for (const f of to) mine.add(f);
  }

  release(address: string, feeds: readonly string[], chars = 0): void {
    this.subscriptions.remove(address);
    if (chars > 0) this.filterChars.remove(address, chars);
    this.allFilterChars -= chars;
    const mine = this.held.get(address);
    if (!mine) return;
    for (const f of feeds) mine.remove(f);
    if (mine.size === 0) this.held.delete(address);
  }
}
