/**
 * A count per key (a client address, a feed), where a key whose count falls to zero is forgotten:
 * the keys are a client's to choose, so one kept at zero would be memory it could grow at will.
 */
export class KeyCounts<K> {
  private readonly counts = new Map<K, number>();

  get(key: K): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: K, n = 1): void {
    this.counts.set(key, this.get(key) + n);
  }

  /** `by` less (one by default); at zero the key is dropped. Removing a key not counted does nothing. */
  remove(key: K, by = 1): void {
    const n = this.get(key) - by;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
  }

  /** Keys counted (with a count above zero). */
  get size(): number {
    return this.counts.size;
  }

  has(key: K): boolean {
    return this.counts.has(key);
  }
}
