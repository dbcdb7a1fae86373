/**
 * A line of members served in turn within a time budget: each gets one serving per pass, in the
 * order they joined, and one that wants more goes to the back of the line. The embedded log shares
 * its append and read budgets of each event-loop turn this way, so that no source or reader can
 * starve the others.
 */
export class RoundRobin<K, V> {
  // A Map iterates in insertion order: deleting and setting again moves a member to the back.
  private readonly line = new Map<K, V>();

  get size(): number {
    return this.line.size;
  }

  get(key: K): V | undefined {
    return this.line.get(key);
  }

  /** Joins at the back; a member already in line keeps its place. */
  join(key: K, value: V): void {
    if (!this.line.has(key)) this.line.set(key, value);
  }

  leave(key: K): void {
    this.line.delete(key);
  }

  /**
   * Serves members until the line is empty or `until` (performance.now()) has passed, checked after
   * each serving. `serve` says whether the member wants more. Returns whether members are left.
   */
  serve(until: number, serve: (key: K, value: V) => boolean): boolean {
    while (this.line.size > 0) {
      for (const [key, value] of this.line) {
        this.line.delete(key);
        if (serve(key, value)) this.line.set(key, value);
        if (performance.now() >= until) return this.line.size > 0;
      }
    }
    return false;
  }
}
