/**
 * Comparing two strings costs as long as they are alike: a filter's `data.a == data.b` over two
 * equal 450 KB strings is a 450 KB compare, and five hundred filters of 24 such comparisons held the
 * event loop 0.6-0.85 s per event (hostile tester). Per event, two paths holding long strings are
 * compared once, whichever filters ask: the order found is kept under the paths' text (the same path
 * names the same value in one event). Remembering by the strings themselves would not do: looking
 * up a string in a Map compares its text with an equal key's again.
 */
export const LONG_STRING = 256;

// Per event: an event object is matched against every filter and then dropped, and so is this.
const perEvent = new WeakMap<object, Map<string, number>>();

/**
 * The order of `a` (at path `pair`'s left) and `b` (at its right) in `event`: -1, 0 or 1, as
 * `a < b`, equal, `a > b`. `pair` and `reversed` are the two paths' text, joined both ways.
 */
export function compareLong(event: object, pair: string, reversed: string, a: string, b: string): number {
  let known = perEvent.get(event);
  if (known === undefined) perEvent.set(event, (known = new Map()));
  let sign = known.get(pair);
  if (sign === undefined) {
    sign = a === b ? 0 : a < b ? -1 : 1;
    known.set(pair, sign);
    known.set(reversed, -sign);
  }
  return sign;
}
