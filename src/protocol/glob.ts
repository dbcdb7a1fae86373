/**
 * A glob where `*` is any run of characters (line breaks included) and every other character is
 * itself, compiled once: the types of filters, and the topic and type patterns of token grants.
 * Not a RegExp: `a*b*c*…` as a regex backtracks on long subjects that do not match (a grant
 * `*a*a*a*a*a*b` took 14 s on 249 characters, `*.*.*.*.*.events` half a second on a 248-character
 * topic, each request). Here the first and last parts are anchored checks and each middle part is
 * placed at its leftmost occurrence (which is always safe for `*`-only globs). A long middle part
 * is found by a search that reads each character of the subject once (Knuth-Morris-Pratt): indexOf
 * costs up to the product of the lengths, 190 us for a 500-character part that nearly matches a
 * 1,024-character source, and one record tested against 64,000 such filters held the event loop
 * 8-12 s (outside hostile tester). So a test costs one pass over the subject in all.
 */
export function glob(pattern: string): (s: string) => boolean {
  return compile(pattern);
}

// Middle parts shorter than this are found by indexOf: its worst case is then within a few passes.
const LINEAR_FROM = 16;

/** Where `part` first occurs in `s` at or after `from`, or -1. */
type Finder = (s: string, from: number) => number;

function finder(part: string): Finder {
  if (part.length < LINEAR_FROM) return (s, from) => s.indexOf(part, from);
  // fail[i]: the length of the longest proper prefix of part[0..i] that is also its suffix.
  const fail = new Int32Array(part.length);
  for (let i = 1, k = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    while (k > 0 && c !== part.charCodeAt(k)) k = fail[k - 1]!;
    if (c === part.charCodeAt(k)) k++;
    fail[i] = k;
  }
  const n = part.length;
  return (s, from) => {
    for (let i = from, k = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      while (k > 0 && c !== part.charCodeAt(k)) k = fail[k - 1]!;
      if (c === part.charCodeAt(k) && ++k === n) return i - n + 1;
    }
    return -1;
  };
}

function compile(pattern: string): (s: string) => boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return (s) => s === pattern;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const middle = parts.slice(1, -1).filter((p) => p !== "");
  const min = first.length + last.length + middle.reduce((n, p) => n + p.length, 0);
  const finders = middle.map(finder);
  if (middle.length === 0) {
    if (last === "") return (s) => s.startsWith(first);
    if (first === "") return (s) => s.endsWith(last);
  }
  return (s) => {
    if (s.length < min || !s.startsWith(first) || !s.endsWith(last)) return false;
    const end = s.length - last.length;
    let from = first.length;
    for (let k = 0; k < middle.length; k++) {
      const m = middle[k]!;
      const i = finders[k]!(s, from);
      if (i === -1 || i + m.length > end) return false;
      from = i + m.length;
    }
    return true;
  };
}
